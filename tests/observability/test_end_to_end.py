"""End to end: a real Prometheus, configured by grafana/local/prometheus.yml in its documented runtime layout,
scrapes stand-in CockroachDB nodes over verified TLS and the REAL sample app on a real PostgreSQL; then every
dashboard query, run as Grafana runs it (a range query, variables substituted), must return data.

Only two things differ from the shipped config, both stated here: the scrape/evaluation/file_sd refresh
intervals are 1 s (instead of 15-30 s) so the test takes seconds, and the app's static target is the free
port the test's app listens on (instead of 127.0.0.1:8000, which a developer's running app may hold).
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import time
from pathlib import Path

import httpx
import pytest
import yaml

from crdb_common import httpc
from crdb_common.httpc import default_tls
from tests.app.appproc import AppProcess
from tests.doubles.crdb_metrics import CrdbMetricsCluster
from tests.observability.promql_support import DASHBOARDS, RULE_FILES, dashboard_exprs, substitute
from tests.observability.tls_front import TlsFront, make_ca_and_server_cert
from tests.support.prometheus import copy_rules, local_prometheus_config, start_prometheus

pytestmark = pytest.mark.slow

# $__rate_interval as Grafana computes it for these 1 s scrapes and a 1 s step: max($__interval + scrape
# interval, 4 x scrape interval) = 4 s (grafana docs, "Variables: $__rate_interval").
RATE_INTERVAL_SECONDS = 4
VARIABLES = {"cluster": "local", "node": ".*", "instance": ".*", "__rate_interval": f"{RATE_INTERVAL_SECONDS}s"}


def write_targets(runtime: Path, targets: list[str], name: str = "cockroachdb.json",
                  labels: dict[str, str] | None = None) -> None:
    """What the local-cluster helper does as nodes start: rewrite the file_sd file atomically."""
    tmp = runtime / "targets" / f".{name}.tmp"
    tmp.write_text(json.dumps([{"targets": targets, "labels": labels or {}}]))
    tmp.replace(runtime / "targets" / name)


def local_config(app_port: int) -> dict:
    config = local_prometheus_config("1s")
    app_job = next(j for j in config["scrape_configs"] if j["job_name"] == "sample-app")
    assert app_job["static_configs"] == [{"targets": ["127.0.0.1:8000"]}]
    app_job["static_configs"] = [{"targets": [f"127.0.0.1:{app_port}"]}]
    return config


def has_finite_value(result: list[dict]) -> bool:
    return any(not math.isnan(float(v)) and not math.isinf(float(v))
               for series in result for _, v in series["values"])


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """PostgreSQL + the app + 2 stand-in nodes behind TLS + Prometheus, torn down in reverse order."""
    from tests.app.pg import LocalPostgres  # the app helper's real-PostgreSQL fixture (pgserver)

    root = tmp_path_factory.mktemp("observability-e2e")
    runtime = root / "runtime"
    for sub in ("targets", "certs"):
        (runtime / sub).mkdir(parents=True)
    copy_rules(runtime)
    ca, cert, key = make_ca_and_server_cert(root / "pki")
    shutil.copy(ca, runtime / "certs" / "ca.crt")

    cleanup = []
    try:
        # Outside pytest's basetemp: a concurrent pytest session resets /tmp/pytest-of-<user> to 0700,
        # which would lock out the `pgserver` system user PostgreSQL runs as under root.
        pg_root = Path(tempfile.mkdtemp(prefix="crdb-obs-pg-"))
        cleanup.append(lambda: shutil.rmtree(pg_root, ignore_errors=True))
        pg = LocalPostgres(pg_root)
        cleanup.append(pg.close)
        app = AppProcess({"APP_DB_WRITER_URL": pg.url("app_rw_01"), "APP_DB_READER_URL": pg.url("app_ro_01"),
                          "APP_HASH_SALT": "observability-test-salt", "APP_DB_POOL_TIMEOUT_SECONDS": "2",
                          "APP_LOG_LEVEL": "WARNING"}, root / "app.log")  # returns once /healthz answers
        cleanup.append(app.stop)
        crdb = CrdbMetricsCluster(nodes=2)
        cleanup.append(crdb.close)
        crdb.set_all(liveness_livenodes=2)
        fronts = [TlsFront(t, cert, key) for t in crdb.targets]
        cleanup.extend(f.close for f in fronts)
        write_targets(runtime, [f.target for f in fronts])
        # A local rehearsal cluster scraped by the same Prometheus, named by its targets file.
        rehearsal = CrdbMetricsCluster(nodes=1)
        cleanup.append(rehearsal.close)
        rehearsal_front = TlsFront(rehearsal.targets[0], cert, key)
        cleanup.append(rehearsal_front.close)
        write_targets(runtime, [rehearsal_front.target], "cockroachdb-rehearsal.json", {"cluster": "local-rehearsal"})
        app.wait_ready(timeout=60)
        prom = start_prometheus(runtime, config=local_config(app.port))
        cleanup.append(prom.stop)
        yield {"pg": pg, "app": app, "crdb": crdb, "fronts": fronts, "prom": prom, "runtime": runtime,
               "cert": cert, "key": key, "rehearsal_front": rehearsal_front}
    finally:
        for close in reversed(cleanup):
            close()


def drive_the_evolution_and_the_app(s) -> float:
    """Traffic (ok, bad input, a spike, then refused reads), and the cluster growing from 2 to 3 nodes."""
    prom, app, crdb = s["prom"], s["app"], s["crdb"]
    started = time.time()
    prom.wait_for('count(up{job="cockroachdb",cluster="local"} == 1) == 2', timeout=60)
    prom.wait_for('up{job="sample-app",cluster="local"} == 1', timeout=60)
    with httpx.Client(verify=default_tls(), base_url=app.base_url, timeout=10) as c:
        for i in range(30):
            assert c.post("/login", json={"user_id": f"user{i % 7}"}).status_code == 200
            assert c.get("/search", params={"q": "cock"}).status_code == 200
        for _ in range(5):
            assert c.post("/login", json={"nope": 1}).status_code == 400
        assert c.post("/spike", json={"seconds": 4, "rps": 25}).status_code == 202
        time.sleep(2)
        # Node 3 joins: the helper rewrites the file_sd targets, every node now reports 3 live nodes,
        # and ranges are under-replicated until the new node has its replicas.
        s["joined_at"] = time.time()
        node3 = crdb.add_node()
        crdb.set_all(liveness_livenodes=3)
        node3.set(liveness_livenodes=3)
        crdb.nodes[0].set(ranges_underreplicated=12)
        s["fronts"].append(TlsFront(crdb.targets[-1], s["cert"], s["key"]))
        write_targets(s["runtime"], [f.target for f in s["fronts"]])
        prom.wait_for('count(up{job="cockroachdb",cluster="local"} == 1) == 3', timeout=60)
        # The reader loses SELECT: searches now fail with a server error and a database error (42501).
        s["pg"].execute("REVOKE SELECT ON TABLE search_terms FROM app_ro")
        try:
            codes = {c.get("/search", params={"q": "x"}).status_code for _ in range(10)}
        finally:
            s["pg"].execute("GRANT SELECT ON TABLE search_terms TO app_ro")
        assert codes == {500}, codes
        for _ in range(10):
            assert c.get("/search", params={"q": "cock"}).status_code == 200
        c.delete("/spike")
    # The under-replicated ranges are scraped before they heal, so the panels see both.
    prom.wait_for('sum(ranges_underreplicated{job="cockroachdb",cluster="local"}) == 12', timeout=30)
    crdb.nodes[0].set(ranges_underreplicated=0)
    prom.wait_for('sum(ranges_underreplicated{job="cockroachdb",cluster="local"}) == 0', timeout=30)
    time.sleep(RATE_INTERVAL_SECONDS + 1)  # a full $__rate_interval after the last change, plus a scrape
    return started


@pytest.fixture(scope="module")
def window(stack):
    return drive_the_evolution_and_the_app(stack), time.time()


def range_query(prom, expr: str, start: float, end: float) -> list[dict]:
    r = httpc.get(f"{prom.url}/api/v1/query_range",
                  params={"query": expr, "start": start, "end": end, "step": "1s"}, timeout=30)
    assert r.status_code == 200, f"{expr}: {r.text}"
    return r.json()["data"]["result"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_dashboard_query_returns_data(stack, window, path):
    start, end = window
    empty = []
    for e in dashboard_exprs(path):
        result = range_query(stack["prom"], substitute(e.text, VARIABLES), start, end)
        if not has_finite_value(result):
            empty.append(f"{e.where}: {e.text}")
    assert not empty, "queries without data:\n" + "\n".join(empty)


def test_every_series_carries_the_contract_labels(stack, window):
    prom = stack["prom"]
    app_series = prom.query('{job="sample-app"}')
    assert app_series and {s["metric"].get("cluster") for s in app_series} == {"local"}
    by_cluster: dict[str, set[str]] = {}
    for s in prom.query('sys_uptime{job="cockroachdb"}'):
        by_cluster.setdefault(s["metric"]["cluster"], set()).add(s["metric"]["instance"])
    # The live targets file names no cluster (default "local"); the rehearsal's file names its own.
    assert by_cluster == {"local": {f.target for f in stack["fronts"]},
                          "local-rehearsal": {stack["rehearsal_front"].target}}


def test_the_pipeline_check_query_sees_the_grown_cluster(stack, window):
    (result,) = stack["prom"].query('min(liveness_livenodes{job="cockroachdb",cluster="local"})')
    assert float(result["value"][1]) == 3


def test_node_count_change_annotation_marks_the_join(stack, window):
    d = json.loads(next(p for p in DASHBOARDS if p.name == "cockroachdb-evolution.json").read_text())
    ann = next(a for a in d["annotations"]["list"] if a.get("expr", "").startswith("changes("))
    start, end = window
    result = range_query(stack["prom"], substitute(ann["expr"], VARIABLES), start, end)
    (series,) = result
    marked = [float(t) for t, _ in series["values"]]
    # Marked from the join on (for the expression's 1 minute window), never before it.
    assert marked and min(marked) >= stack["joined_at"] - 1, (stack["joined_at"], marked)
    assert max(marked) - min(marked) <= 61


def test_alert_rules_are_loaded_and_evaluate(stack, window):
    groups = httpc.get(f"{stack['prom'].url}/api/v1/rules", timeout=10).json()["data"]["groups"]
    loaded = {r["name"]: r for g in groups for r in g["rules"]}
    expected = {r["alert"] for p in RULE_FILES for g in yaml.safe_load(p.read_text())["groups"]
                for r in g["rules"] if "alert" in r}
    assert set(loaded) == expected
    assert all(r["health"] == "ok" for r in loaded.values()), {n: r.get("lastError") for n, r in loaded.items()}
    # Unavailable-ranges alert stays quiet on a healthy cluster; the app is up, so SampleAppDown too.
    assert loaded["CockroachDBUnavailableRanges"]["state"] == "inactive"
    assert loaded["SampleAppDown"]["state"] == "inactive"
