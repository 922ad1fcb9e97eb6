"""demo/DEMO.md is a timed script a presenter can run alone: contiguous beats totalling 10-15 minutes, and
every beat says what to click, what to say and which panel to point at; failures have a recovery path."""

from __future__ import annotations

import re

from .code_names import PANEL_REF_RE, panel_refs
from .md_parse import REPO_ROOT

BEAT_RE = re.compile(r"^## (?P<n>\d+)\. (?P<title>.+?) \((?P<start>\d\d:\d\d)-(?P<end>\d\d:\d\d)\)\s*$", re.M)


def seconds(mmss: str) -> int:
    m, s = mmss.split(":")
    return int(m) * 60 + int(s)


def beats(text: str) -> list[dict]:
    found = list(BEAT_RE.finditer(text))
    out = []
    for i, m in enumerate(found):
        body_end = found[i + 1].start() if i + 1 < len(found) else text.find("\n## ", m.end())
        out.append({**m.groupdict(), "body": text[m.end():body_end if body_end != -1 else len(text)]})
    return out


def timing_problems(text: str) -> list[str]:
    items = beats(text)
    if not items:
        return ["no beat headings like '## 1. Title (00:00-02:00)'"]
    problems = []
    if items[0]["start"] != "00:00":
        problems.append(f"the first beat starts at {items[0]['start']}, not 00:00")
    for a, b in zip(items, items[1:]):
        if a["end"] != b["start"]:
            problems.append(f"beat {a['n']} ends at {a['end']} but beat {b['n']} starts at {b['start']}")
    for i, beat in enumerate(items, 1):
        if int(beat["n"]) != i:
            problems.append(f"beat numbered {beat['n']} is beat {i}")
        if seconds(beat["end"]) <= seconds(beat["start"]):
            problems.append(f"beat {beat['n']} has no time")
    total = seconds(items[-1]["end"])
    if not 10 * 60 <= total <= 15 * 60:
        problems.append(f"the script lasts {total // 60}:{total % 60:02d}, not 10-15 minutes")
    return problems


def test_demo_beats_are_contiguous_and_last_10_to_15_minutes():
    assert timing_problems((REPO_ROOT / "demo" / "DEMO.md").read_text("utf-8")) == []


def test_every_beat_says_what_to_click_say_and_point_at():
    text = (REPO_ROOT / "demo" / "DEMO.md").read_text("utf-8")
    for beat in beats(text):
        body = beat["body"]
        assert "**Click**" in body, f"beat {beat['n']} never says what to click"
        assert "**Say" in body, f"beat {beat['n']} never says what to say"
        assert panel_refs(body) or "**Show**" in body, f"beat {beat['n']} points at no panel"


def test_the_summary_table_matches_the_beats():
    text = (REPO_ROOT / "demo" / "DEMO.md").read_text("utf-8")
    rows = re.findall(r"^\| (\d\d:\d\d) \| (\d+)\. ", text, re.M)
    assert [(b["start"], b["n"]) for b in beats(text)] == rows


def test_the_story_beats_of_the_issue_are_all_there():
    text = (REPO_ROOT / "demo" / "DEMO.md").read_text("utf-8").lower()
    titles = " | ".join(b["title"].lower() for b in beats(text))
    for beat in ("baseline", "spike", "phase 1", "phase 2", "boring is good"):
        assert beat in titles, f"no beat about {beat!r}: {titles}"
    for fact in ("read-only user", "under-replicated", "rebalancing", "fragile"):
        assert fact in text


def test_failures_have_a_recovery_path():
    text = (REPO_ROOT / "demo" / "DEMO.md").read_text("utf-8")
    assert "(#if-a-step-fails)" in text
    section = text.split("## If a step fails", 1)[1]
    assert "**Re-execute**" in section and "**From failure**" in section and "**Runs**" in section
    for step in ("preflight", "backup", "scale", "apply_sql", "verify_replication"):
        assert f"`{step}`" in section, f"no recovery advice for {step}"


def test_timing_checker_catches_gaps_and_length():
    bad = "## 1. A (00:00-02:00)\n**Click**\n## 2. B (03:00-20:00)\n"
    problems = timing_problems(bad)
    assert any("ends at 02:00" in p for p in problems) and any("not 10-15 minutes" in p for p in problems)
    assert PANEL_REF_RE.search("*Board* › **Panel**")
