"""Suite-wide rules.

In CI (CI=true) a skipped test is a failure: every tool a test needs is installed by `make test`
(scripts/setup.sh), so a skip there can only mean a missing install step.
"""

from __future__ import annotations

import os

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, which is not allowed (install the tool in scripts/setup.sh): {report.longrepr}"
