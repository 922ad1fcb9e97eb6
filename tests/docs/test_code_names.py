"""The docs use the code's real names: Dagster jobs, steps, checks, assets; environment variables; panels."""

from __future__ import annotations

import re

import pytest

from .code_names import (
    app_routes,
    dagster_name_problems,
    dagster_names,
    dashboards,
    env_var_problems,
    http_route_problems,
    identifier_problems,
    panel_problems,
    panel_refs,
    resource_name_problems,
    table_first_column,
)
from .md_parse import REPO_ROOT
from .phase_docs import checked_docs

DOCS = checked_docs()


def read(doc: str) -> str:
    return (REPO_ROOT / doc).read_text("utf-8")


@pytest.fixture(scope="module")
def names():
    return dagster_names()


def test_readme_check_table_lists_exactly_the_blocking_checks(names):
    listed = table_first_column(read("README.md"), "Check")
    assert sorted(listed) == sorted(names.checks)


def test_readme_step_list_is_the_phase_graph_in_order(names):
    text = read("README.md")
    section = text.split("### How one phase runs", 1)[1].split("\n#", 1)[0]
    listed = [line.split("`")[1] for line in section.splitlines() if line[:1].isdigit() and "`" in line]
    assert tuple(listed) == names.live_ops


def test_docs_name_every_job_schedule_and_check(names):
    readme, context = read("README.md"), read("context.md")
    for name in sorted(names.jobs | names.schedules | names.checks):
        assert f"`{name}`" in readme, f"README.md never names `{name}`"
    for name in sorted(names.jobs | names.schedules):
        assert f"`{name}`" in context, f"context.md never names `{name}`"
    assert "`rehearsal/fresh_environment`" in readme and "rehearsal/fresh_environment" in names.assets
    for group in names.groups:
        assert f"`{group}`" in readme, f"README.md never names the asset group `{group}`"


@pytest.mark.parametrize("doc", DOCS)
def test_step_keys_and_asset_paths_in_the_docs_exist(doc, names):
    assert dagster_name_problems(read(doc), doc, names) == []


@pytest.mark.parametrize("doc", DOCS)
def test_environment_variables_in_the_docs_are_read_by_the_code(doc):
    assert env_var_problems(read(doc), doc) == []


@pytest.mark.parametrize("doc", DOCS)
def test_snake_case_names_in_the_docs_exist_in_the_code(doc):
    assert identifier_problems(read(doc), doc) == []


def test_demo_panels_exist_on_their_dashboards():
    boards = dashboards()
    assert len(boards) >= 3, "grafana/dashboards/*.json are missing"
    text = read("demo/DEMO.md")
    assert len(panel_refs(text)) >= 15, "the demo script should point at dashboard panels in every beat"
    assert panel_problems(text, "demo/DEMO.md", boards) == []
    assert panel_problems(read("README.md"), "README.md", boards) == []


def test_readme_names_every_dashboard_by_its_title():
    readme = read("README.md")
    for title in dashboards():
        assert f"*{title}*" in readme, f"README.md does not name the dashboard {title!r}"


# --- the checkers themselves must catch mistakes ----------------------------------------------------------

def test_wrong_names_are_reported(names):
    text = ("Click `phase1_two_nodes.scale` then `phase1_two_nodes.resize` and `rehearsal/fresh_start`.\n"
            "Set `CRDB_BACKUP_URI` and `NO_SUCH_SETTING_ANYWHERE`.\n")
    problems = dagster_name_problems(text, "x.md", names)
    assert len(problems) == 2 and "resize" in problems[0] and "fresh_start" in problems[1], problems
    env = env_var_problems(text, "x.md")
    assert len(env) == 1 and "NO_SUCH_SETTING_ANYWHERE" in env[0], env
    ids = identifier_problems("`app_ro_01` reads `search_terms`; `converge_secs` is a typo.\n", "x.md")
    assert len(ids) == 1 and "converge_secs" in ids[0], ids


def test_wrong_panels_are_reported():
    boards = {"Board A": {"Live nodes"}}
    text = ("- *Board A* › **Live nodes**: fine\n- *Board A* › **Dead nodes**: no such panel\n"
            "- *Board B* ›\n  **Live nodes**: no such dashboard, wrapped\n")
    problems = panel_problems(text, "x.md", boards)
    assert len(problems) == 2, problems
    assert "Dead nodes" in problems[0] and "Board B" in problems[1]
    assert problems[0].startswith("x.md:2: ") and problems[1].startswith("x.md:3: "), "line of the reference"


def test_a_check_table_is_read_from_its_first_column():
    text = "| Check | Query |\n|---|---|\n| `a_check` | q |\n| `b_check` | r |\n\nafter\n| x |\n"
    assert table_first_column(text, "Check") == ["a_check", "b_check"]


@pytest.mark.parametrize("doc", DOCS)
def test_http_calls_in_the_docs_are_routes_of_the_sample_app(doc):
    routes = app_routes()
    assert any(re.match(p, "/spike") for p in routes), "could not read the sample app's routes"
    assert http_route_problems(read(doc), doc, routes) == []


@pytest.mark.parametrize("doc", DOCS)
def test_kubernetes_and_label_names_in_the_docs_exist(doc):
    assert resource_name_problems(read(doc), doc) == []


def test_wrong_routes_and_names_are_reported():
    routes = {"^/spike$": {"POST", "GET", "DELETE"}, "^/control/[^/]+/[^/]+$": {"POST"}}
    text = "Call `POST|GET|PUT /spike`, `POST /control/readers/start`, `GET /nope`.\nUse `crdb-nowhere-xyz`.\n"
    problems = http_route_problems(text, "x.md", routes)
    assert problems == ["x.md:1: the sample app serves no PUT /spike", "x.md:1: the sample app serves no GET /nope"]
    assert len(resource_name_problems(text, "x.md")) == 1
