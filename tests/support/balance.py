"""Test order for pytest-xdist's work stealing, so that no long test file is left to the end of the run.

`--dist worksteal` hands worker k the k-th contiguous quarter of the collection (xdist/scheduler/worksteal.py,
check_schedule: `len(self.pending) // nodes_remaining` tests each, from the front), and an idle worker later
steals the back half of the longest queue. A long file at the back of a quarter therefore runs last, alone,
while the other workers are done (it was `make dev` at the end of one worker, ~140 s). Here the long files
(by tests/durations.json) are dealt out first, largest first, each to the quarter with the least long-file
time, at the front of its quarter, whole (a module fixture is set up once); the other tests keep their order
and fill the quarters up to the sizes the scheduler will cut. Every test still runs, only the order changes.

The files whose tests use the pipeline bench (one per worker: two apps, two PostgreSQL, Prometheus, a dozen
stand-in nodes, ~8 % of a core even when idle) go to the first half of the quarters only, so the other
workers need no bench (tests/pipeline/conftest.py starts one only in a quarter that uses it) unless
they steal one.

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


# Per fixture kept apart: how many tests, from the start of the order, make up the quarters that use it (a
# worker whose first test lies beyond will not need it unless it steals one); absent when not kept apart.
apart_until: dict[str, int] = {}
# The bench takes ~15 s to start alone (tests/pipeline/conftest.py starts it early, in a thread), ~25-30 s at
# a run's start, while four workers collect and start their servers: a quarter that uses it starts with about
# this much of other tests meanwhile (at 15 s, the first bench test of a fresh-clone run still waited 16-20 s).
LEAD_IN_SECONDS = 30.0


def _file(item) -> str:
    return item.nodeid.split("::")[0]


def balanced(items: list, workers: int, seconds_of: dict[str, float], apart: str = "bench") -> list:
    """`items` in the order that gives each of `workers` quarters an even share of the long files, and the
    files using the fixture `apart` to the first half of the quarters only (when they fit)."""
    by_file: dict[str, list] = defaultdict(list)
    for item in items:
        by_file[_file(item)].append(item)
    weight = {f: seconds_of.get(f, DEFAULT_SECONDS * len(its)) for f, its in by_file.items()}
    uses = {f for f, its in by_file.items() if any(apart in getattr(i, "fixturenames", ()) for i in its)}
    sizes = quarter_sizes(len(items), workers)
    half = max(1, (workers + 1) // 2)  # 5 workers: 3 with the bench (its files are ~46 % of the time)
    if sum(len(by_file[f]) for f in uses) > sum(sizes[:half]):
        half = workers  # does not fit: no separation, only the balance
    apart_until.pop(apart, None)
    if half < workers:
        apart_until[apart] = sum(sizes[:half])
    front: list[list] = [[] for _ in sizes]
    load = [0.0] * len(sizes)

    def deal(name: str, quarters: range) -> bool:
        fits = [k for k in quarters if len(front[k]) + len(by_file[name]) <= sizes[k]]
        if not fits:
            return False
        k = min(fits, key=lambda k: (load[k], k))
        front[k].extend(by_file[name])
        load[k] += weight[name]
        return True

    # Apart files first, all of them (the long ones first), then the other long files to the other half.
    placed = {f for f in sorted(uses, key=lambda f: (-weight[f], f)) if deal(f, range(half))}
    others = range(half, workers) if half < workers else range(workers)
    placed |= {f for f in sorted(by_file, key=lambda f: (-weight[f], f))
               if f not in uses and weight[f] >= LONG_FILE_SECONDS and deal(f, others)}
    rest = [item for item in items if _file(item) not in placed]
    ordered: list = []
    for k, size in enumerate(sizes):
        lead_in: list = []
        if k < half < workers:  # other tests while the bench starts
            seconds = 0.0
            while rest and seconds < LEAD_IN_SECONDS and len(lead_in) + len(front[k]) < size:
                lead_in.append(rest.pop(0))
                seconds += weight[_file(lead_in[-1])] / len(by_file[_file(lead_in[-1])])
        fill = size - len(lead_in) - len(front[k])
        ordered += lead_in + front[k] + rest[:fill]
        del rest[:fill]
    return ordered


@pytest.hookimpl(trylast=True)  # after `-m` deselection: the scheduler cuts the final list
def pytest_collection_modifyitems(session, config, items):
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0") or 0)
    # In a worker, xdist has already reset --dist to "no": the worker count is what is known here.
    if workers < 2 or not DURATIONS.exists():
        return
    items[:] = balanced(list(items), workers, json.loads(DURATIONS.read_text()))


# Called with a process's first test (tests/pipeline/conftest.py starts the bench only in a quarter using it).
first_test_hooks: list = []
_first = [True]


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    if _first[0]:
        _first[0] = False
        for hook in first_test_hooks:
            hook(item)


_recorded: dict[str, float] = defaultdict(float)


def pytest_runtest_logreport(report):
    _recorded[report.nodeid.split("::")[0]] += report.duration


def pytest_sessionfinish(session):
    config = session.config
    if config.getoption("record_durations") and not hasattr(config, "workerinput") and _recorded:
        DURATIONS.write_text(json.dumps({f: round(s, 1) for f, s in sorted(_recorded.items())}, indent=0) + "\n")
