"""Phase-run annotations and time-window links for Grafana (through a stand-in of its HTTP API)."""

from __future__ import annotations

import dagster as dg
import pytest

from evolution_pipeline.resources.grafana import GrafanaResource
from tests.doubles.grafana_api import GrafanaApiDouble

DASHBOARDS = __import__("pathlib").Path(__file__).resolve().parents[2] / "grafana" / "dashboards"


@pytest.fixture
def grafana(monkeypatch):
    double = GrafanaApiDouble(token="sa-token-for-tests")
    monkeypatch.setenv("GRAFANA_API_TOKEN", "sa-token-for-tests")
    yield double
    double.close()


def test_link_targets_a_real_dashboard_and_the_window():
    import json

    g = GrafanaResource(url="http://grafana:3000/", cluster_label="crdb-live")
    uids = {json.loads(p.read_text())["uid"] for p in DASHBOARDS.glob("*.json")}
    assert g.dashboard_uid in uids
    assert g.link(100.0, 160.0) == (
        "http://grafana:3000/d/crdb-evolution?from=100000&to=220000&var-cluster=crdb-live")
    assert GrafanaResource(url="").link(1, 2) is None


def test_annotation_carries_the_tags_the_dashboard_selects(grafana):
    g = GrafanaResource(url=grafana.url)
    assert "annotated" in g.annotate(10.0, 20.5, "phase 1 done", ["phase1_two_nodes", "live"])
    (body,) = grafana.annotations
    assert body == {"time": 10000, "timeEnd": 20500, "text": "phase 1 done",
                    "tags": ["crdb-evolution", "phase", "phase1_two_nodes", "live"]}
    evolution = (DASHBOARDS / "cockroachdb-evolution.json").read_text()
    assert '"crdb-evolution"' in evolution and '"phase"' in evolution


def test_annotations_go_to_the_api_url_links_to_the_browser_url(grafana):
    """Inside Kubernetes the run pod posts to the Service while links point at the presenter's Grafana."""
    g = GrafanaResource(url="http://127.0.0.1:9", api_url=grafana.url)
    assert "annotated" in g.annotate(10.0, 20.5, "phase 0 done", ["phase0_single_node", "live"])
    assert len(grafana.annotations) == 1
    assert g.link(10.0, 20.5).startswith("http://127.0.0.1:9/d/crdb-evolution?")


def test_wrong_token_or_no_grafana_never_raises(grafana, monkeypatch):
    monkeypatch.setenv("GRAFANA_API_TOKEN", "wrong")
    assert "refused the annotation (401)" in GrafanaResource(url=grafana.url).annotate(1, 2, "x", [])
    assert "unreachable" in GrafanaResource(url="http://127.0.0.1:9").annotate(1, 2, "x", [])
    monkeypatch.delenv("GRAFANA_API_TOKEN")
    assert "not annotated" in GrafanaResource(url=grafana.url).annotate(1, 2, "x", [])
    assert len(grafana.annotations) == 0


@pytest.mark.slow
def test_each_phase_posts_one_annotation(resources, worlds, grafana):
    from evolution_pipeline.definitions import build_definitions

    resources = {**resources, "grafana": GrafanaResource(url=grafana.url, cluster_label="crdb-test-live")}
    job = build_definitions(resources).resolve_job_def("evolve")
    with dg.instance_for_test() as instance:
        assert job.execute_in_process(instance=instance).success
    assert [a["tags"][2] for a in grafana.annotations] == ["phase0_single_node", "phase1_two_nodes",
                                                           "phase2_three_nodes"]
    assert all(a["timeEnd"] >= a["time"] for a in grafana.annotations)
