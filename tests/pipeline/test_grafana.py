"""Phase-run annotations and time-window links for Grafana (through a stand-in of its HTTP API)."""

from __future__ import annotations

import dagster as dg
import pytest

from evolution_pipeline.resources.grafana import GrafanaResource
from tests.doubles.grafana_api import GrafanaApiDouble

TOKEN = "sa-token-for-tests"
DASHBOARDS = __import__("pathlib").Path(__file__).resolve().parents[2] / "grafana" / "dashboards"


@pytest.fixture
def grafana(monkeypatch):
    double = GrafanaApiDouble(token=TOKEN)
    monkeypatch.setenv("GRAFANA_API_TOKEN", TOKEN)
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
    g = GrafanaResource(url=grafana.url, api_token=TOKEN)
    assert "annotated" in g.annotate(10.0, 20.5, "phase 1 done", ["phase1_two_nodes", "live"])
    (body,) = grafana.annotations
    assert body == {"time": 10000, "timeEnd": 20500, "text": "phase 1 done",
                    "tags": ["crdb-evolution", "phase", "phase1_two_nodes", "live"]}
    evolution = (DASHBOARDS / "cockroachdb-evolution.json").read_text()
    assert '"crdb-evolution"' in evolution and '"phase"' in evolution


def test_annotations_go_to_the_api_url_links_to_the_browser_url(grafana):
    """Inside Kubernetes the run pod posts to the Service while links point at the presenter's Grafana."""
    g = GrafanaResource(url="http://127.0.0.1:9", api_url=grafana.url, api_token=TOKEN)
    assert "annotated" in g.annotate(10.0, 20.5, "phase 0 done", ["phase0_single_node", "live"])
    assert len(grafana.annotations) == 1
    assert g.link(10.0, 20.5).startswith("http://127.0.0.1:9/d/crdb-evolution?")


def test_wrong_token_or_no_grafana_never_raises(grafana, monkeypatch):
    assert "refused the annotation (401)" in GrafanaResource(url=grafana.url, api_token="wrong").annotate(
        1, 2, "x", [])
    assert "unreachable" in GrafanaResource(url="http://127.0.0.1:9", api_token=TOKEN).annotate(1, 2, "x", [])
    assert "not annotated" in GrafanaResource(url=grafana.url).annotate(1, 2, "x", [])
    assert len(grafana.annotations) == 0


def test_a_rerun_finds_its_annotation_and_posts_no_duplicate(grafana):
    """A re-executed check or a retried step annotates the same window with the same tags again: Grafana is
    asked first (GET /api/annotations by tags and range) and the existing annotation is kept."""
    g = GrafanaResource(url=grafana.url, api_token=TOKEN)
    first = g.annotate(10.0, 20.5, "phase0 (live): latency phase window", ["latency-phase", "phase0", "live"],
                       base_tags=("crdb-latency-window",))
    again = g.annotate(10.0, 20.5, "phase0 (live): latency phase window", ["latency-phase", "phase0", "live"],
                       base_tags=("crdb-latency-window",))
    assert "annotated Grafana (id 1)" in first and "already annotated in Grafana (id 1)" in again
    assert len(grafana.annotations) == 1 and grafana.finds == 2
    # Another window, or the same window with other tags (the baseline, another environment), is new.
    g.annotate(10.0, 21.5, "x", ["latency-phase", "phase0", "live"], base_tags=("crdb-latency-window",))
    g.annotate(10.0, 20.5, "x", ["latency-baseline", "phase0", "live"], base_tags=("crdb-latency-window",))
    g.annotate(10.0, 20.5, "x", ["latency-phase", "phase0", "rehearsal"], base_tags=("crdb-latency-window",))
    assert len(grafana.annotations) == 4


@pytest.mark.slow
def test_each_phase_posts_one_annotation(resources, worlds, grafana):
    """One phase annotation per phase on the evolution dashboard (its tags), and each phase's latency gate
    marks its two windows (baseline, phase) on the sample-app dashboard only (tag crdb-latency-window)."""
    from evolution_pipeline.definitions import build_definitions
    from evolution_pipeline.latency import ANNOTATION_TAG
    from evolution_pipeline.phases import PHASES

    # The token as configuration.py gives it: an EnvVar Dagster resolves when the run starts.
    resources = {**resources, "grafana": GrafanaResource(url=grafana.url, cluster_label="crdb-test-live",
                                                         api_token=dg.EnvVar("GRAFANA_API_TOKEN"))}
    job = build_definitions(resources).resolve_job_def("evolve")
    with dg.DagsterInstance.ephemeral() as instance:
        assert job.execute_in_process(instance=instance).success
    names = [p.name for p in PHASES]
    phases = [a for a in grafana.annotations if a["tags"][:2] == ["crdb-evolution", "phase"]]
    assert [a["tags"][2] for a in phases] == names
    assert all(a["timeEnd"] >= a["time"] for a in phases)
    windows = [a for a in grafana.annotations if a["tags"][0] == ANNOTATION_TAG]
    assert len(phases) + len(windows) == len(grafana.annotations)  # nothing else was posted
    assert sorted(a["tags"][1:] for a in windows) == sorted(
        [kind, name, "live"] for name in names for kind in ("latency-baseline", "latency-phase"))
    assert not any({"crdb-evolution", "phase"} & set(a["tags"]) for a in windows)  # never on the evolution board
    for name in names:  # the baseline is the same length as the phase window and touches it
        base, phase = (next(a for a in windows if a["tags"][1:3] == [kind, name])
                       for kind in ("latency-baseline", "latency-phase"))
        assert base["timeEnd"] - base["time"] == phase["timeEnd"] - phase["time"] > 0
        assert base["timeEnd"] == phase["time"] or base["time"] == phase["timeEnd"]


def test_urls_and_the_token_are_resolved_per_run_and_never_shown(monkeypatch):
    """configuration.py gives a set URL or token as dg.EnvVar: the resource's config (what the UI shows)
    holds the variable's name, and a value changed after the code location loaded reaches the next run."""
    from evolution_pipeline.configuration import resources_from_env

    monkeypatch.setenv("GRAFANA_API_TOKEN", "glsa_first")
    monkeypatch.setenv("GRAFANA_URL", "http://grafana.first:3000")
    monkeypatch.setenv("PROMETHEUS_URL", "http://prometheus.first:9090")
    monkeypatch.delenv("REHEARSAL_PROMETHEUS_URL", raising=False)
    resources = resources_from_env()
    shown = str(resources["grafana"]._convert_to_config_dictionary())
    assert "glsa_first" not in shown and "{'env': 'GRAFANA_API_TOKEN'}" in shown
    assert resources["prometheus"]._convert_to_config_dictionary()["url"] == {"env": "PROMETHEUS_URL"}
    # Unset: the documented default, as before.
    assert resources["rehearsal_prometheus"].url == "http://127.0.0.1:9090"

    seen = {}

    @dg.asset(required_resource_keys={"grafana", "prometheus"})
    def reads_settings(context):
        seen.update(token=context.resources.grafana.api_token, grafana=context.resources.grafana.url,
                    prometheus=context.resources.prometheus.url)

    monkeypatch.setenv("GRAFANA_API_TOKEN", "glsa_rotated")  # a new Secret value, no reload
    monkeypatch.setenv("PROMETHEUS_URL", "http://prometheus.moved:9090")
    run_resources = {k: resources[k] for k in ("grafana", "prometheus")}
    assert dg.materialize([reads_settings], resources=run_resources).success
    assert seen == {"token": "glsa_rotated", "grafana": "http://grafana.first:3000",
                    "prometheus": "http://prometheus.moved:9090"}
