"""The Kubernetes copies of the dashboards and rules are exactly the source files (generated, checked)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest
import yaml

from tests.observability.promql_support import DASHBOARDS, K8S, REPO, RULE_FILES

spec = importlib.util.spec_from_file_location("build_configmaps", REPO / "grafana" / "build_configmaps.py")
build = importlib.util.module_from_spec(spec)
spec.loader.exec_module(build)


def configmaps(name: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in yaml.safe_load_all((K8S / name).read_text())
            if d and d["kind"] == "ConfigMap"}


def test_regenerating_yields_exactly_the_committed_files():
    assert build.stale() == [], "run `make observability-configmaps` and commit the result"


def test_check_mode_exits_zero_when_up_to_date():
    result = subprocess.run([sys.executable, str(REPO / "grafana" / "build_configmaps.py"), "--check"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr


def test_dashboard_configmaps_hold_the_json_byte_for_byte():
    cms = configmaps("dashboards.yaml")
    for path in DASHBOARDS:
        cm = cms[f"grafana-dashboard-{path.stem}"]
        assert cm["data"] == {path.name: path.read_text()}
        assert cm["metadata"]["namespace"] == "monitoring"


def test_rules_configmap_holds_the_rule_files_byte_for_byte():
    cm = configmaps("prometheus-rules.yaml")["prometheus-rules"]
    assert cm["data"] == {p.name: p.read_text() for p in RULE_FILES}


def test_prometheusrule_has_the_same_groups():
    (doc,) = [d for d in yaml.safe_load_all((K8S / "kube-prometheus-stack" / "prometheusrule.yaml").read_text()) if d]
    assert doc["kind"] == "PrometheusRule"
    assert doc["spec"]["groups"] == [g for p in RULE_FILES for g in yaml.safe_load(p.read_text())["groups"]]


def test_a_changed_source_is_detected(monkeypatch, tmp_path):
    """Control: edit a dashboard (in a copy) and the check reports the generated file as stale."""
    copy = tmp_path / "dashboards"
    copy.mkdir()
    for path in DASHBOARDS:
        (copy / path.name).write_text(path.read_text())
    monkeypatch.setattr(build, "DASHBOARDS_DIR", copy)
    assert build.stale() == []
    first = copy / DASHBOARDS[0].name
    first.write_text(first.read_text().replace('"refresh": "15s"', '"refresh": "30s"'))
    assert build.stale() == [K8S / "dashboards.yaml"]


@pytest.mark.parametrize("text", ["a: 1\n  b: 'x'\n\n# c\n\tend\n", "{\n  \"k\": \"|: - #\"\n}\n"])
def test_literal_blocks_round_trip(text):
    doc = yaml.safe_load("data:\n  f: " + build.literal_block(text, 4))
    assert doc["data"]["f"] == text


@pytest.mark.parametrize("text", ["no newline", "two newlines\n\n", "  indented first line\n"])
def test_literal_block_refuses_what_would_not_round_trip(text):
    with pytest.raises(ValueError):
        build.literal_block(text, 4)
