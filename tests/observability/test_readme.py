"""grafana/README.md stays in step with the dashboards, alerts and make targets it documents."""

from __future__ import annotations

import re

import yaml

from tests.observability.promql_support import DASHBOARDS, REPO, RULE_FILES, load_dashboard

README = (REPO / "grafana" / "README.md").read_text()


def test_every_dashboard_is_listed_with_its_uid_and_title():
    for path in DASHBOARDS:
        d = load_dashboard(path)
        assert f"`{d['uid']}`" in README and d["title"].split(":")[0] in README, path.name
        assert path.name in README


def test_every_alert_is_in_the_table_and_has_a_runbook_entry():
    runbooks = README.split("## Runbooks", 1)[1].split("\n## ", 1)[0]
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                name = rule["alert"]
                assert f"| `{name}` |" in README, name
                assert f"**{name}**" in runbooks, name


def test_the_make_targets_it_names_exist():
    mk = (REPO / "mk" / "observability.mk").read_text()
    for target in set(re.findall(r"make (observability-[a-z-]+)", README)):
        assert re.search(rf"^{target}:", mk, re.MULTILINE), target


def test_credentials_section_names_the_secret_the_deployment_reads():
    grafana = (REPO / "k8s" / "observability" / "grafana.yaml").read_text()
    assert "name: grafana-admin" in grafana and "monitoring/grafana-admin" in README
