"""Test order for pytest-xdist's work stealing, so that no long test file is left to the end of the run.

`--dist worksteal` hands worker k the k-th contiguous quarter of the collection (xdist/scheduler/worksteal.py,
check_schedule: `len(self.pending) // nodes_remaining` tests each, from the front), and an idle worker later
steals the back half of the longest queue. A long file at the back of a quarter therefore runs last, alone,
while the other workers are done (it was `make dev` at the end of one worker, ~140 s). Here the long files
(by tests/durations.json) are dealt out first, largest first, each to the quarter with the least long-file
time, at the front of its quarter, whole (a module fixture is set up once); the other tests keep their order
and fill the quarters up to the sizes the scheduler will cut. Every test still runs, only the order changes.

`--record-durations` rewrites tests/durations.json from the run (seconds per file: setup, call, teardown).
A file missing from it counts as DEFAULT_SECONDS per test; a stale file only makes the split less even.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

import pytest

DURATIONS = Path(__file__).resolve().parents[1] / "durations.json"
# A file this long or longer is placed whole at the front of a quarter; the rest is left to stealing.
LONG_FILE_SECONDS = 15.0
DEFAULT_SECONDS = 0.5


def pytest_addoption(parser):
    parser.addoption("--record-durations", action="store_true",
                     help=f"write each test file's total duration to {DURATIONS.name} (for the worker balance)")


def quarter_sizes(count: int, workers: int) -> list[int]:
    """The chunk sizes worksteal cuts on its first schedule, in order."""
    sizes, left = [], count
    for i in range(workers):
        sizes.append(left // (workers - i))
        left -= sizes[-1]
    return sizes


def balanced(items: list, workers: int, seconds_of: dict[str, float]) -> list:
    by_file: dict[str, list] = defaultdict(list)
    for item in items:
        by_file[item.nodeid.split("::")[0]].append(item)
    weight = {f: seconds_of.get(f, DEFAULT_SECONDS * len(its)) for f, its in by_file.items()}
    sizes = quarter_sizes(len(items), workers)
    front: list[list] = [[] for _ in sizes]
    load = [0.0] * len(sizes)
    placed: set[str] = set()
    for name in sorted((f for f in by_file if weight[f] >= LONG_FILE_SECONDS), key=lambda f: (-weight[f], f)):
        fits = [k for k in range(len(sizes)) if len(front[k]) + len(by_file[name]) <= sizes[k]]
        if fits:
            k = min(fits, key=lambda k: (load[k], k))
            front[k].extend(by_file[name])
            load[k] += weight[name]
            placed.add(name)
    rest = iter([item for item in items if item.nodeid.split("::")[0] not in placed])
    ordered = []
    for k, size in enumerate(sizes):
        ordered.extend(front[k])
        ordered.extend(next(rest) for _ in range(size - len(front[k])))
    return ordered


@pytest.hookimpl(trylast=True)  # after `-m` deselection: the scheduler cuts the final list
def pytest_collection_modifyitems(session, config, items):
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0") or 0)
    # In a worker, xdist has already reset --dist to "no": the worker count is what is known here.
    if workers < 2 or not DURATIONS.exists():
        return
    items[:] = balanced(list(items), workers, json.loads(DURATIONS.read_text()))


_recorded: dict[str, float] = defaultdict(float)


def pytest_runtest_logreport(report):
    _recorded[report.nodeid.split("::")[0]] += report.duration


def pytest_sessionfinish(session):
    config = session.config
    if config.getoption("record_durations") and not hasattr(config, "workerinput") and _recorded:
        DURATIONS.write_text(json.dumps({f: round(s, 1) for f, s in sorted(_recorded.items())}, indent=0) + "\n")
