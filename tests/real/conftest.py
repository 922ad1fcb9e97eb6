"""The real-cluster conformance suite (marker `real`): only `make test-real` selects it.

pyproject's addopts deselect it (`-m "not real"`) and `make test-real` passes `-m real`, which wins because
pytest keeps the LAST -m it is given. A `-m` of one's own (e.g. PYTEST_ARGS="-m 'not slow'" for make test)
would replace that default, so the hook below also deselects real tests unless the -m expression names
`real`: the everyday suite never starts CockroachDB by accident.
"""

from __future__ import annotations

import pytest

from evolution_pipeline.resources.local import find_cockroach

from .binary import missing_message

# What the real run measured (total time, per-step seconds, time to converge per phase), printed at the end
# of the session whatever the outcome, so a CI log shows the figures without -s.
REPORT: list[str] = []


def pytest_collection_modifyitems(config, items):
    if "real" in (config.getoption("markexpr") or ""):
        return
    real = [item for item in items if item.get_closest_marker("real")]
    if real:
        config.hook.pytest_deselected(items=real)
        items[:] = [item for item in items if not item.get_closest_marker("real")]


@pytest.fixture(scope="session")
def cockroach_bin() -> str:
    """The official binary (COCKROACH_BIN, PATH, or where scripts/fetch_tools.py puts it). Missing is a
    failure with the one message on getting it, never a skip: a skipped conformance suite proves nothing."""
    found = find_cockroach()
    if not found:
        pytest.fail(missing_message(), pytrace=False)
    return found


def pytest_terminal_summary(terminalreporter):
    if REPORT:
        terminalreporter.section("real-cluster run")
        for line in REPORT:
            terminalreporter.write_line(line)
