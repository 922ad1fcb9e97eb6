"""A step that fails for a known reason shows ONE actionable message in the Dagster UI: the message says
what to do (get the binary, restart make dev, re-execute), with no chained traceback of our own code
("The above exception was the direct cause of ...") burying it."""

from __future__ import annotations

import dagster as dg

from evolution_pipeline.resources.local import MISSING_BINARY_MESSAGE
from tests.local.test_pipeline_wiring import local_backend_env, materialize_phase0  # noqa: F401 (fixture)


def test_a_known_failure_is_one_message_without_a_chained_traceback(local_backend_env, monkeypatch):  # noqa: F811
    monkeypatch.setenv("CRDB_TOOLS_BIN_DIR", str(local_backend_env / "no-tools"))  # nothing fetched either
    result = materialize_phase0()
    failures = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert failures and not result.success
    error = failures[0].event_specific_data.error
    assert MISSING_BINARY_MESSAGE in error.message
    assert (
        "make tools" in error.message and "re-execute" in error.message and "start it again" in error.message
    )
    assert error.cause is None and error.context is None, "no chained traceback under the message"
