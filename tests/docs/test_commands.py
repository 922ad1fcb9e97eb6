"""The README's newcomer commands come first and exist; every command the docs tell a reader to run exists."""

from __future__ import annotations

import pytest

from .command_check import command_problems, make_targets, shell_commands
from .md_parse import REPO_ROOT, fenced_blocks

DOCS = ("README.md", "context.md", "demo/DEMO.md")


def test_readme_starts_with_make_dev_then_make_test():
    text = (REPO_ROOT / "README.md").read_text("utf-8")
    quick_start = text.split("## Quick start", 1)
    assert len(quick_start) == 2, "README.md needs a '## Quick start' section"
    before, after = quick_start
    assert not [b for b in fenced_blocks(before) if b.lang in {"bash", "sh", "shell", "console"}], \
        "no command block may come before the Quick start"
    commands = [c for _, c in shell_commands(after.split("\n## ", 1)[0])]
    block_commands = [c for b in fenced_blocks(after) if b.lang == "bash" for c in b.text.split("\n") if c.strip()]
    assert block_commands[:2] == ["make dev", "make test"], block_commands[:2]
    assert commands[:2] == ["make dev", "make test"]


def test_make_dev_and_make_test_exist_and_test_runs_setup_then_pytest():
    targets = make_targets(REPO_ROOT)
    assert {"dev", "test"} <= targets, f"missing make targets: {sorted({'dev', 'test'} - targets)}"
    makefile = (REPO_ROOT / "Makefile").read_text("utf-8")
    assert "test: setup" in makefile and "pytest" in makefile


def test_ci_runs_exactly_the_readme_test_command():
    ci = (REPO_ROOT / ".ci" / "run").read_text("utf-8")
    assert "make test" in ci


@pytest.mark.parametrize("doc", DOCS)
def test_every_command_in_the_docs_exists(doc):
    text = (REPO_ROOT / doc).read_text("utf-8")
    commands = shell_commands(text)
    problems = [f"{doc}:{line}: {p}" for line, cmd in commands for p in command_problems(cmd, REPO_ROOT)]
    assert problems == []


def test_missing_targets_scripts_paths_and_modules_are_reported():
    text = (
        "```bash\n"
        "make dev\n"
        "make no-such-target-anywhere\n"
        "bash scripts/no-such-script.sh && make test\n"
        "kubectl apply -f k8s/no-such-manifest.yaml\n"
        "python -m sample_app.no_such_module --port 8000\n"
        "$ echo fine | grep fine  # a comment mentioning make nothing\n"
        "```\n"
        "Inline: `make also-missing` and `make test`.\n"
    )
    commands = shell_commands(text)
    problems = [p for _, c in commands for p in command_problems(c, REPO_ROOT)]
    assert any("make no-such-target-anywhere" in p for p in problems), problems
    assert any("scripts/no-such-script.sh" in p for p in problems), problems
    assert any("k8s/no-such-manifest.yaml" in p for p in problems), problems
    assert any("sample_app.no_such_module" in p for p in problems), problems
    assert any("make also-missing" in p for p in problems), problems
    assert len(problems) == 5, problems


def test_line_continuations_and_console_prompts():
    text = "```console\n$ make \\\n    test\noutput line make nothing\n```\n"
    assert [c for _, c in shell_commands(text)] == ["make test"]
