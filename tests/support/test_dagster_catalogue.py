"""The memoized component catalogue: what Dagster's own function renders, rendered once per process."""

from __future__ import annotations

from dagster.components.core import load_defs

from evolution_pipeline.definitions import build_definitions
from tests.support import dagster_catalogue


def test_builds_render_dagsters_catalogue_once_through_the_function_dagster_calls(monkeypatch):
    dagster_catalogue.memoize()
    dagster_catalogue.memoize()  # idempotent: the original is kept, not the memo wrapping itself
    original = dagster_catalogue._original
    assert load_defs.get_library_json_enriched_defs is dagster_catalogue._enriched
    assert original is not dagster_catalogue._enriched
    calls = []

    def counted(tree):
        calls.append(tree)
        return original(tree)

    monkeypatch.setattr(dagster_catalogue, "_original", counted)
    monkeypatch.setattr(dagster_catalogue, "_catalogue", None)
    first, second = build_definitions({}), build_definitions({})
    assert len(calls) == 1, "two builds: the catalogue is rendered once, through the function Dagster calls"
    expected = original(None).metadata
    assert expected and first.metadata == second.metadata == expected
