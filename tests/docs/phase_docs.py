"""The docs' view of the phase table (evolution_pipeline.phases.PHASES), generated and checked.

Each doc that describes the phases carries the same generated table between two markers:

    <!-- phase-table:begin (generated from evolution_pipeline/phases.py; python -m tests.docs.phase_docs --write) -->
    ...
    <!-- phase-table:end -->

`python -m tests.docs.phase_docs --write` rewrites those tables after a change to PHASES; the tests fail
when a table differs from what PHASES says. The table states each zone as the phase asks for it (replicas /
voters) and what every range ends up with on the phase's nodes (voters + non-voters, the allocator's
targets), so phase 1's "two copies: one voter, one read replica" is a fact of the table, not of prose.

Prose is scanned too: a phase name that is not in the table, or a node count, RF or `num_replicas` /
`num_voters` written next to a phase name that disagrees with it, is an error; so is "RF 2" anywhere,
because CockroachDB refuses two voting replicas.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from evolution_pipeline.phases import PHASES, PHASES_BY_NAME, Phase, Replication

from .md_parse import REPO_ROOT, fenced_blocks

BEGIN = "<!-- phase-table:begin (generated from evolution_pipeline/phases.py; python -m tests.docs.phase_docs --write) -->"
END = "<!-- phase-table:end -->"
TABLE_RE = re.compile(re.escape(BEGIN) + r"\n(?P<body>.*?)\n?" + re.escape(END), re.DOTALL)

PHASE_DIAGRAMS = {p.name: f"diagrams/{p.name.replace('_', '-')}.md" for p in PHASES}
CONCEPTUAL_DIAGRAM = "diagrams/phase3-multicluster.md"
TIMELINE_DIAGRAM = "diagrams/evolution-timeline.md"
# The docs that must carry the generated table (a phase's own diagram carries its row only).
DOCS_WITH_TABLE = ("README.md", "context.md", "demo/DEMO.md", TIMELINE_DIAGRAM, *PHASE_DIAGRAMS.values())
# Phase 3 (multi-cluster / DR) is documented but has no asset: the one phase number past the table.
CONCEPTUAL_INDEX = len(PHASES)


def checked_docs() -> list[str]:
    return [*DOCS_WITH_TABLE, CONCEPTUAL_DIAGRAM]


def table_phases(doc: Path) -> tuple[Phase, ...]:
    """All phases, or only its own phase for a phase diagram."""
    for name, diagram in PHASE_DIAGRAMS.items():
        if doc.resolve() == (REPO_ROOT / diagram).resolve():
            return (PHASES_BY_NAME[name],)
    return PHASES


def zone_cell(r: Replication) -> str:
    """A zone as the phase asks for it: replicas / voters, and where the voters are pinned."""
    cell = f"{r.num_replicas} / {r.num_voters}"
    return cell + ", voters on node 1" if r.pin_voters_to_first_node else cell


def range_cell(voters: int, non_voters: int) -> str:
    """What every range ends up with on the phase's nodes (the allocator's targets)."""
    return f"{voters} + {non_voters}"


HEADER = (
    "| Phase (asset) | Nodes | Data zone: replicas / voters | Data range: voters + non-voters "
    "| System zones: replicas / voters | System range: voters + non-voters | Node failures tolerated "
    "| SQL files |"
)


def render_table(doc: Path) -> str:
    """The phase table as Markdown, with links relative to `doc`."""
    def link(sql_file: str) -> str:
        target = os.path.relpath(REPO_ROOT / "sql" / sql_file, doc.parent)
        return f"[`{sql_file}`]({target})"

    rows = [HEADER, "|---|---|---|---|---|---|---|---|"]
    for p in table_phases(doc):
        rows.append(
            f"| `{p.name}` | {p.nodes} | {zone_cell(p.data)} "
            f"| {range_cell(p.expected_data_voters, p.expected_data_non_voters)} "
            f"| {zone_cell(p.system)} "
            f"| {range_cell(p.expected_system_voters, p.expected_system_non_voters)} "
            f"| {p.failures_tolerated} | {', '.join(link(f) for f in p.sql_files)} |"
        )
    return "\n".join(rows)


def table_problems(doc: Path) -> list[str]:
    text = doc.read_text(encoding="utf-8")
    tables = list(TABLE_RE.finditer(text))
    if not tables:
        return [f"{doc.name}: no generated phase table (add the markers and run python -m tests.docs.phase_docs --write)"]
    expected = render_table(doc)
    return [
        f"{doc.name}: phase table #{i + 1} differs from evolution_pipeline/phases.py "
        "(run python -m tests.docs.phase_docs --write)"
        for i, m in enumerate(tables) if m["body"].strip() != expected
    ]


def write_tables(doc: Path) -> bool:
    text = doc.read_text(encoding="utf-8")
    new = TABLE_RE.sub(lambda _: f"{BEGIN}\n{render_table(doc)}\n{END}", text)
    if new != text:
        doc.write_text(new, encoding="utf-8")
    return new != text


# --- prose -------------------------------------------------------------------------------------------------

SNAKE_RE = re.compile(r"\bphase(\d+)_[a-z0-9]+(?:_[a-z0-9]+)*")
PROSE_RE = re.compile(r"\bphases?\s+(\d+)\b", re.IGNORECASE)
WORDS = {"single": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "nine": 9}
COUNT = r"(\d+|single|one|two|three|four|five|six|seven|nine)"
NODES_RE = re.compile(rf"\b{COUNT}[- ]nodes?\b", re.IGNORECASE)
RF_RE = re.compile(r"\b(?:RF|replication factor(?: of)?)\s*(\d+)\b", re.IGNORECASE)
ZONE_FIELD_RE = re.compile(r"\bnum_(replicas|voters)\s*=\s*(\d+)\b")
# CockroachDB refuses two voting replicas (cockroachdb/cockroach pkg/config/zonepb/zone.go
# ZoneConfig.Validate: "at least 3 replicas are required for multi-replica configurations" for num_replicas
# = 2 without num_voters; "at least 3 voting replicas ..." for num_voters = 2), so no doc may promise it.
REFUSED_RE = re.compile(r"\b(?:RF|replication factor(?: of)?)\s*2\b", re.IGNORECASE)
REFUSED_HINT = (
    "CockroachDB refuses two voting replicas (pkg/config/zonepb/zone.go ZoneConfig.Validate): "
    "say 'two copies: one voter, one read replica (non-voting)'"
)


def phase_refs(line: str) -> tuple[set[int], list[str]]:
    """Phase indices a line talks about, and phase names in it that the table does not know."""
    unknown, indices = [], set()
    for m in SNAKE_RE.finditer(line):
        name = m.group(0)
        if name in PHASES_BY_NAME:
            indices.add(PHASES_BY_NAME[name].index)
        else:
            unknown.append(name)
    for m in PROSE_RE.finditer(line):
        idx = int(m.group(1))
        if idx > CONCEPTUAL_INDEX:
            unknown.append(m.group(0))
        else:
            indices.add(idx)
    return indices, unknown


def refused_replication(text: str, where: str) -> list[str]:
    """Every line, whatever phase it names, that promises a replication CockroachDB refuses."""
    return [f"{where}:{n}: {m.group(0)!r}: {REFUSED_HINT}"
            for n, line in enumerate(text.splitlines(), 1) for m in REFUSED_RE.finditer(line)]


def rf_problems(phase: Phase, line: str) -> list[str]:
    """An RF only describes a zone whose replicas all vote; a zone with non-voters is said in voters."""
    plain_rf = {r.num_voters for r in (phase.data, phase.system) if r.num_voters == r.num_replicas}
    return [
        f"{m.group(0)!r} next to {phase.name}, whose zones are replicas / voters "
        f"{phase.data.num_replicas} / {phase.data.num_voters} (system {phase.system.num_replicas} / "
        f"{phase.system.num_voters}); say voters and non-voters where they differ"
        for m in RF_RE.finditer(line) if int(m.group(1)) not in plain_rf
    ]


def zone_field_problems(phase: Phase, line: str) -> list[str]:
    """`num_replicas = N` / `num_voters = N` next to a phase must be one of its zones' values."""
    problems = []
    for m in ZONE_FIELD_RE.finditer(line):
        field, value = f"num_{m.group(1)}", int(m.group(2))
        allowed = {getattr(phase.data, field), getattr(phase.system, field)}
        if value not in allowed:
            problems.append(f"{m.group(0)!r} next to {phase.name}, whose {field} is "
                            f"{' or '.join(map(str, sorted(allowed)))}")
    return problems


def node_count_problems(phase: Phase, line: str) -> list[str]:
    problems = []
    for m in NODES_RE.finditer(line):
        word = m.group(1).lower()
        count = int(word) if word.isdigit() else WORDS[word]
        if count != phase.nodes:
            problems.append(f"{m.group(0)!r} next to {phase.name}, which has {phase.nodes} node(s)")
    return problems


def prose_problems(text: str, where: str) -> list[str]:
    """Unknown phase names and refused replication anywhere; wrong node counts, RFs or zone values on a
    line about exactly one phase."""
    problems = refused_replication(text, where)
    for n, line in enumerate(text.splitlines(), 1):
        if line.startswith("<!-- phase-table"):
            continue
        indices, unknown = phase_refs(line)
        problems += [f"{where}:{n}: {u!r} is not a phase of evolution_pipeline/phases.py" for u in unknown]
        if len(indices) != 1 or CONCEPTUAL_INDEX in indices:
            continue
        phase = PHASES[indices.pop()]
        plain = SNAKE_RE.sub(" ", line)  # phase1_two_nodes itself is not a node count
        for problem in (*node_count_problems(phase, plain), *rf_problems(phase, plain),
                        *zone_field_problems(phase, plain)):
            problems.append(f"{where}:{n}: {problem}")
    return problems


NODE_LABEL_RE = re.compile(r"\bnode (\d+)\b", re.IGNORECASE)


def diagram_node_labels(text: str) -> set[int]:
    """CockroachDB node numbers labelled 'node k' in a doc's Mermaid blocks."""
    labels: set[int] = set()
    for block in fenced_blocks(text):
        if block.lang == "mermaid":
            labels.update(int(m.group(1)) for m in NODE_LABEL_RE.finditer(block.text))
    return labels


def main(argv: list[str]) -> int:
    if argv[1:] != ["--write"]:
        print("usage: python -m tests.docs.phase_docs --write   (rewrites the generated phase tables)")
        return 2
    for name in DOCS_WITH_TABLE:
        doc = REPO_ROOT / name
        if doc.exists() and write_tables(doc):
            print(f"rewrote the phase table in {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
