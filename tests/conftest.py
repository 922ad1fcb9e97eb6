"""Suite-wide rules.

In CI (CI=true) a skipped test is a failure: every tool a test needs is installed by `make test`
(scripts/setup.sh), so a skip there can only mean a missing install step.

A test that needs more than about 10 s says why in its docstring: the run ends with a list of those that
took longer and have none (a report, not a failure: durations vary with the machine's load).
"""

from __future__ import annotations

import os

import pytest

pytest_plugins = ["tests.support.balance"]

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


SLOW_SECONDS = 10.0
_UNDOCUMENTED = "slow_without_docstring"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    function = getattr(item, "function", None)
    if report.when == "call" and report.duration > SLOW_SECONDS and not (function and function.__doc__):
        # user_properties travel with the report from a pytest-xdist worker to the controller.
        report.user_properties.append((_UNDOCUMENTED, round(report.duration, 1)))
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, which is not allowed (install the tool in scripts/setup.sh): {report.longrepr}"


def pytest_collection_finish(session):
    # Every test module is imported now: a process that imported Dagster renders its component catalogue
    # once rather than at each definitions build (tests/support/dagster_catalogue.py).
    from tests.support.dagster_catalogue import memoize_if_dagster_loaded

    memoize_if_dagster_loaded()


_slow_undocumented: list[tuple[str, float]] = []


def pytest_runtest_logreport(report):
    for key, seconds in report.user_properties:
        if key == _UNDOCUMENTED:
            _slow_undocumented.append((report.nodeid, seconds))


def pytest_terminal_summary(terminalreporter):
    if _slow_undocumented:
        terminalreporter.section(f"tests over {SLOW_SECONDS:g} s whose docstring does not say why")
        for nodeid, seconds in sorted(_slow_undocumented, key=lambda t: -t[1]):
            terminalreporter.write_line(f"{seconds:6.1f} s  {nodeid}")
