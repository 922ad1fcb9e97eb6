"""The fidelity ledger (tests/FIDELITY.md) names every double and every test file it points at."""

from __future__ import annotations

import re

from evolution_pipeline.phases import REPO_ROOT

LEDGER = REPO_ROOT / "tests" / "FIDELITY.md"
# Plumbing, not a stand-in for anything outside: HTTP reply helpers and the doubles' own tests.
NOT_DOUBLES = {"__init__.py", "http_reply.py"}


def ledger_text() -> str:
    return LEDGER.read_text()


def named_paths(text: str) -> set[str]:
    return set(re.findall(r"`(tests/[\w/.-]+\.(?:py|md))`", text))


def test_every_double_is_in_the_ledger():
    text = ledger_text()
    doubles = [p for p in (REPO_ROOT / "tests" / "doubles").iterdir()
               if p.suffix == ".py" and p.name not in NOT_DOUBLES and not p.name.startswith("test_")]
    missing = [p.name for p in doubles if p.name not in text]
    assert not missing, f"doubles with no entry in tests/FIDELITY.md: {missing}"


def test_every_file_the_ledger_names_exists():
    missing = sorted(p for p in named_paths(ledger_text()) if not (REPO_ROOT / p).exists())
    assert not missing, f"tests/FIDELITY.md names files that do not exist: {missing}"


def test_no_entry_is_left_unwritten():
    assert "LEDGER-" not in ledger_text()


def test_every_row_has_evidence_and_a_way_it_is_exercised():
    rows = [line for line in ledger_text().splitlines()
            if line.startswith("| ") and not line.startswith(("| Behaviour", "|---"))]
    assert len(rows) >= 30
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) == 3 and all(cells), f"a ledger row needs behaviour, evidence and coverage: {row}"
