"""Phase names, node counts, voters and non-voters in the docs match evolution_pipeline.phases.PHASES."""

from __future__ import annotations

import re

import pytest

from evolution_pipeline.phases import PHASES

from .md_parse import REPO_ROOT, fenced_blocks, markdown_files, rel
from .phase_docs import (
    BEGIN, CONCEPTUAL_DIAGRAM, DOCS_WITH_TABLE, END, PHASE_DIAGRAMS, TIMELINE_DIAGRAM, checked_docs,
    diagram_node_labels, prose_problems, refused_replication, render_table, table_problems,
)


@pytest.mark.parametrize("doc", DOCS_WITH_TABLE)
def test_generated_phase_table_matches_the_phase_table(doc):
    assert table_problems(REPO_ROOT / doc) == []


@pytest.mark.parametrize("doc", checked_docs())
def test_prose_names_only_real_phases_with_their_real_counts(doc):
    path = REPO_ROOT / doc
    assert path.exists(), f"{doc} is missing"
    assert prose_problems(path.read_text("utf-8"), doc) == []


@pytest.mark.parametrize("phase", PHASES, ids=lambda p: p.name)
def test_each_phase_has_its_diagram_with_one_box_per_node(phase):
    doc = REPO_ROOT / PHASE_DIAGRAMS[phase.name]
    text = doc.read_text("utf-8")
    assert phase.name in text
    assert diagram_node_labels(text) == set(range(1, phase.nodes + 1)), \
        f"{doc.name}: its Mermaid diagram must label exactly node 1..{phase.nodes}"
    drawing = "\n".join(b.text for b in fenced_blocks(text) if b.lang == "mermaid").lower()
    assert ("non-voter" in drawing) == bool(phase.expected_data_non_voters), \
        f"{doc.name}: draw the non-voting replicas exactly when the phase has them"
    if phase.data.pin_voters_to_first_node:
        node1 = next(line for line in drawing.splitlines() if "node 1" in line)
        assert "voter" in node1 and "leaseholder" in node1, f"{doc.name}: node 1 holds the voters and leases"


def test_no_doc_dashboard_or_alert_promises_two_voting_replicas():
    grafana = REPO_ROOT / "grafana"
    files = [*markdown_files(), *sorted(grafana.rglob("*.json")), *sorted(grafana.rglob("*.yml"))]
    assert refused_replication("x\nphase 1 sets RF 2\n", "x.md"), "the scan itself must catch it"
    assert [p for f in files for p in refused_replication(f.read_text("utf-8"), rel(f))] == []


def test_every_doc_mentions_every_phase():
    for doc in ("README.md", "context.md", "demo/DEMO.md", TIMELINE_DIAGRAM):
        text = (REPO_ROOT / doc).read_text("utf-8")
        for phase in PHASES:
            assert phase.name in text, f"{doc} never names {phase.name}"


def test_the_timeline_walks_the_phases_in_table_order():
    text = (REPO_ROOT / TIMELINE_DIAGRAM).read_text("utf-8")
    timeline = next(b.text for b in fenced_blocks(text) if b.lang == "mermaid" and "timeline" in b.text)
    positions = [timeline.find(f"section {p.name}") for p in PHASES]
    assert -1 not in positions, "every phase needs a section in the timeline diagram"
    assert positions == sorted(positions)
    assert timeline.find("Phase 3") > positions[-1], "the conceptual phase 3 comes last"


def test_phase3_stays_conceptual_with_both_layouts():
    text = (REPO_ROOT / CONCEPTUAL_DIAGRAM).read_text("utf-8")
    assert "no asset" in text.lower()
    diagrams = [b.text for b in fenced_blocks(text) if b.lang == "mermaid"]
    assert any(all(f"zone {z}" in d for z in "abc") and "RF 3" in d for d in diagrams), "three-zone layout"
    six = [d for d in diagrams if "RF 5" in d]
    assert six and {int(n) for n in re.findall(r"node (\d+)", six[0])} == set(range(1, 7)), "six-node RF 5 layout"
    assert not re.search(r"\bphase3_\w+", text), "phase 3 has no asset name"


# --- the checkers themselves must catch mistakes ----------------------------------------------------------

def test_prose_checker_flags_wrong_counts_and_unknown_phases():
    text = "\n".join([
        "`phase1_two_nodes` runs on 3 nodes.",               # wrong node count
        "Phase 2: two nodes and RF 2.",                      # wrong node count, wrong RF, refused RF
        "`phase7_seven_nodes` is not a phase.",              # unknown name
        "Phase 5 does not exist.",                           # unknown index
        "`phase0_single_node`: a single-node cluster, RF 1.",  # right
        "From phase 1 (2 nodes) to phase 2 (3 nodes).",      # two phases on one line: not judged
        "Phase 3 would use six nodes and RF 5.",             # the conceptual phase: not judged
        "Phase 1: RF 1 on both nodes.",                      # phase 1 has non-voters: no plain RF
        "Phase 1 sets num_replicas = 2, num_voters = 1.",    # right
        "Phase 2 sets num_voters = 1.",                      # wrong zone value
        "From phase 0 to phase 2 via RF 2.",                 # refused wherever it is written
    ])
    problems = prose_problems(text, "x.md")
    at = lambda n: [p for p in problems if p.startswith(f"x.md:{n}:")]  # noqa: E731
    assert len(at(1)) == 1 and "'3 nodes'" in at(1)[0], problems
    assert len(at(2)) == 3 and sum("refuses two voting replicas" in p for p in at(2)) == 1, problems
    assert len(at(3)) == 1 and "phase7_seven_nodes" in at(3)[0], problems
    assert len(at(4)) == 1, problems
    assert len(at(8)) == 1 and "voters and non-voters" in at(8)[0], problems
    assert len(at(10)) == 1 and "'num_voters = 1'" in at(10)[0], problems
    assert len(at(11)) == 1 and "refuses" in at(11)[0], problems
    assert len(problems) == 9, problems


def test_table_checker_flags_a_stale_table(tmp_path):
    doc = tmp_path / "doc.md"
    fresh = render_table(doc)
    doc.write_text(f"# x\n\n{BEGIN}\n{fresh}\n{END}\n")
    assert table_problems(doc) == []
    doc.write_text(f"# x\n\n{BEGIN}\n{fresh.replace('| 1 + 1 |', '| 2 + 0 |', 1)}\n{END}\n")
    assert table_problems(doc) and "differs" in table_problems(doc)[0]
    doc.write_text("# x\n\nno table\n")
    assert "no generated phase table" in table_problems(doc)[0]


def test_rendered_table_states_every_phase_fact():
    table = render_table(REPO_ROOT / "README.md")
    for p in PHASES:
        row = next(line for line in table.splitlines() if f"`{p.name}`" in line)
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[1] == str(p.nodes)
        assert cells[2].startswith(f"{p.data.num_replicas} / {p.data.num_voters}")
        assert cells[3] == f"{p.expected_data_voters} + {p.expected_data_non_voters}"
        assert cells[4].startswith(f"{p.system.num_replicas} / {p.system.num_voters}")
        assert cells[5] == f"{p.expected_system_voters} + {p.expected_system_non_voters}"
        assert ("voters on node 1" in cells[2]) == p.data.pin_voters_to_first_node
        assert cells[6] == str(p.failures_tolerated)
        assert all(f"sql/{f}" in row for f in p.sql_files)


def test_phase1_is_one_voter_and_one_read_replica_on_every_range():
    """The table must say what CockroachDB accepts on two nodes (zone.go ZoneConfig.Validate refuses two
    voters): one voter pinned to node 1 and one non-voting replica, tolerating no node failure."""
    table = render_table(REPO_ROOT / "README.md")
    row = next(line for line in table.splitlines() if "`phase1_two_nodes`" in line)
    assert "| 2 / 1, voters on node 1 | 1 + 1 |" in row and "| 0 |" in row, row
