"""The manual equivalent of each phase in demo/DEMO.md and context.md is what the plan code generates."""

from __future__ import annotations

import pytest

from evolution_pipeline.phases import PHASES, REPO_ROOT
from evolution_pipeline.plan import DOCS, manual_section, with_manual_section
from evolution_pipeline.zones import zone_statements


@pytest.mark.parametrize("name", DOCS)
def test_the_manual_steps_are_generated_from_the_phase_table(name):
    text = (REPO_ROOT / name).read_text()
    assert with_manual_section(text, manual_section()) == text, (
        f"{name}: the manual steps are out of date; run python -m evolution_pipeline docs --write")


def test_the_manual_steps_hold_every_phase_statement_and_the_scale_patch():
    section = manual_section()
    for phase in PHASES:
        for statement in zone_statements(phase):
            assert statement in section
        for path in phase.sql_paths():
            assert f"--file=sql/{path.name}" in section
    assert '"path": "/spec/regions/0/nodes", "value": 2' in section
    assert '"value": 3' in section
    assert "/work/" not in section and str(REPO_ROOT) not in section  # no machine-specific paths


def test_a_document_without_the_markers_is_refused():
    with pytest.raises(ValueError, match="markers"):
        with_manual_section("# no markers here\n", manual_section())
