"""The three Grafana dashboards: valid, importable JSON whose every query parses and uses real metrics."""

from __future__ import annotations

import json
import re

import pytest

from tests.observability.promql_support import (
    APP_NAMES,
    CRDB_NAMES,
    DASHBOARDS,
    KNOWN_NAMES,
    dashboard_exprs,
    load_dashboard,
    matcher_map,
    metric_names,
    panels,
    selectors,
    substitute,
)

NAMES = {p.name for p in DASHBOARDS}
GRAFANA_BUILTIN_VARS = {"__rate_interval", "__interval", "__range", "__interval_ms", "__range_s"}


@pytest.fixture(params=DASHBOARDS, ids=lambda p: p.name)
def dashboard(request):
    return request.param, load_dashboard(request.param)


def test_the_three_dashboards_exist():
    assert NAMES == {"cockroachdb-overview.json", "cockroachdb-evolution.json", "sample-app.json"}


def test_uids_and_titles_are_unique():
    boards = [load_dashboard(p) for p in DASHBOARDS]
    assert len({b["uid"] for b in boards}) == len(boards)
    assert len({b["title"] for b in boards}) == len(boards)


def test_top_level_fields(dashboard):
    path, d = dashboard
    assert d["uid"] and len(d["uid"]) <= 40 and d["uid"].replace("-", "").isalnum()
    assert d["title"].strip()
    assert 36 <= d["schemaVersion"] <= 41, "Grafana 10/11 dashboard JSON"
    # Importable as is: no fixed database id, no export-only placeholders.
    assert d.get("id") is None
    assert "__inputs" not in d and "${DS_" not in path.read_text()
    assert d["time"]["from"] and d["refresh"]
    assert path.read_text().endswith("}\n") and json.loads(path.read_text()) == d


def test_panel_ids_unique_and_layout_does_not_overlap(dashboard):
    _, d = dashboard
    ps = panels(d)
    ids = [p["id"] for p in ps]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    cells = {}
    for p in ps:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, f"panel {p['id']} is wider than the grid"
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"panels {cells[(x, y)]} and {p['id']} overlap"
                cells[(x, y)] = p["id"]


def test_every_panel_has_title_description_unit_and_queries(dashboard):
    _, d = dashboard
    for p in panels(d):
        if p["type"] == "row":
            continue
        where = f"panel {p['id']}"
        assert p.get("title", "").strip(), f"{where} has no title"
        assert len(p.get("description", "")) >= 20, f"{where} {p['title']!r} needs a description"
        assert p["fieldConfig"]["defaults"].get("unit"), f"{where} {p['title']!r} has no unit"
        assert p.get("targets"), f"{where} {p['title']!r} has no query"
        ref_ids = [t["refId"] for t in p["targets"]]
        assert len(ref_ids) == len(set(ref_ids))


def test_datasource_variable_and_no_hard_coded_datasource(dashboard):
    path, d = dashboard
    variables = {v["name"]: v for v in d["templating"]["list"]}
    ds = variables.get("datasource")
    assert ds and ds["type"] == "datasource" and ds["query"] == "prometheus"
    assert "cluster" in variables and variables["cluster"]["type"] == "query"

    def walk(node, where):
        if isinstance(node, dict):
            if "datasource" in node:
                ref = node["datasource"]
                assert isinstance(ref, dict), f"{where}: datasource must be a {{type, uid}} reference"
                if ref.get("type") == "grafana":
                    assert ref.get("uid") == "-- Grafana --", where  # Grafana's built-in annotations
                else:
                    assert ref == {"type": "prometheus", "uid": "${datasource}"}, f"{where}: {ref}"
            for k, v in node.items():
                walk(v, f"{where}.{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{where}[{i}]")

    walk(d, path.name)
    # The provisioned datasource's uid must never leak into the JSON.
    assert '"uid": "prometheus"' not in path.read_text()


def test_variables_used_are_defined(dashboard):
    path, d = dashboard
    defined = {v["name"] for v in d["templating"]["list"]} | GRAFANA_BUILTIN_VARS
    for e in dashboard_exprs(path):
        used = {m[0] or m[1] for m in re.findall(r"\$\{(\w+)[^}]*\}|\$(\w+)", e.text)}
        assert used <= defined, f"{e.where} uses undefined variables {used - defined}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_expression_parses_and_uses_only_real_metrics(path):
    exprs = dashboard_exprs(path)
    assert len(exprs) >= 10
    for e in exprs:
        names = metric_names(substitute(e.text))  # promql_parser raises on a syntax error
        assert names, f"{e.where}: selects no metric"
        assert names <= KNOWN_NAMES, f"{e.where}: unknown metrics {names - KNOWN_NAMES}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_selector_is_scoped_to_its_job_and_cluster(path):
    """Like CockroachDB's official dashboards: {job="cockroachdb",cluster="$cluster"} on every selector."""
    for e in dashboard_exprs(path):
        if e.where.endswith("variable 'cluster'"):
            continue  # the query that lists the clusters cannot filter on one
        for sel in selectors(substitute(e.text, {"cluster": "CLUSTER", "node": "NODE", "instance": "INST"})):
            m = matcher_map(sel)
            name = sel.name
            if name in CRDB_NAMES:
                job = "cockroachdb"
            elif name in APP_NAMES:
                job = "sample-app"
            else:
                job = m.get("job")
                assert job in {"cockroachdb", "sample-app"}, f"{e.where}: {name} without a job"
            assert m.get("job") == job, f"{e.where}: {name} must select job={job!r}"
            assert m.get("cluster") == "CLUSTER", f"{e.where}: {name} must select cluster=\"$cluster\""


def test_node_filter_applies_to_per_node_panels():
    """Panels broken down by instance honour the $node / $instance selection."""
    for path in DASHBOARDS:
        for e in dashboard_exprs(path):
            if "by (instance)" in e.text or "{{instance}}" in e.text:
                assert 'instance=~"$node"' in e.text or 'instance=~"$instance"' in e.text, e.where


REQUIRED = {
    # The issue's panel list, as the metrics each must show.
    "cockroachdb-overview.json": {
        "liveness_livenodes", "sql_select_count", "sql_insert_count", "sql_update_count", "sql_delete_count",
        "sql_service_latency_bucket", "sys_cpu_combined_percent_normalized", "sys_rss", "capacity",
        "capacity_used", "capacity_available",
    },
    "cockroachdb-evolution.json": {
        "replicas", "ranges", "ranges_underreplicated", "ranges_unavailable", "range_adds", "range_removes",
        "range_snapshots_generated", "range_snapshots_applied_voter", "leases_transfers_success",
        "replicas_leaseholders", "replicas_leaders", "capacity", "capacity_used",
        "rebalancing_queriespersecond", "queue_replicate_pending",
    },
    "sample-app.json": {
        "app_requests_total", "app_request_duration_seconds_bucket", "app_db_query_duration_seconds_bucket",
        "app_spike_target_rps", "app_spike_active_workers", "app_db_errors_total",
    },
}


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_dashboard_covers_the_issue_panel_list(name):
    path = next(p for p in DASHBOARDS if p.name == name)
    used = set().union(*(metric_names(substitute(e.text)) for e in dashboard_exprs(path)))
    assert REQUIRED[name] <= used, f"{name} misses {REQUIRED[name] - used}"


def test_latency_percentiles_p50_p95_p99():
    for name, metric in [("cockroachdb-overview.json", "sql_service_latency_bucket"),
                         ("sample-app.json", "app_request_duration_seconds_bucket")]:
        text = next(p for p in DASHBOARDS if p.name == name).read_text()
        for quantile in ("0.5", "0.95", "0.99"):
            assert f"histogram_quantile({quantile}, sum(rate({metric}" in text, (name, quantile)


def test_evolution_dashboard_marks_node_count_changes():
    d = load_dashboard(next(p for p in DASHBOARDS if p.name == "cockroachdb-evolution.json"))
    exprs = [a.get("expr", "") for a in d["annotations"]["list"]]
    assert any(e.startswith("changes(min(liveness_livenodes{") and e.endswith("> 0") for e in exprs)


def test_latency_units_match_the_metrics():
    """CockroachDB histograms are in nanoseconds, the app's in seconds: the panel unit must say so."""
    for path in DASHBOARDS:
        for p in panels(load_dashboard(path)):
            exprs = " ".join(t["expr"] for t in p.get("targets", []))
            unit = p.get("fieldConfig", {}).get("defaults", {}).get("unit")
            if "histogram_quantile" in exprs and "sql_" in exprs:
                assert unit == "ns", p["title"]
            elif "histogram_quantile" in exprs:
                assert unit == "s", p["title"]


def test_metric_name_check_rejects_names_cockroachdb_does_not_expose():
    """Control: the reference notes there is no `range_rebalances`; dotted names are never exposed."""
    assert not metric_names(substitute('rate(range_rebalances{job="cockroachdb"}[1m])')) <= KNOWN_NAMES
    assert "sql_service_latency_bucket" in KNOWN_NAMES and "app_requests_total" in KNOWN_NAMES
    with pytest.raises(KeyError):
        substitute('up{cluster="$unknown"}')
