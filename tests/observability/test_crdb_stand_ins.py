"""The recorded CockroachDB metrics (tests/doubles/crdb_metrics.py, crdb_exposition.py) are shaped like
CockroachDB's and withhold what CockroachDB withholds. Each expectation names its upstream source."""

from __future__ import annotations

import http.client
import math

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from crdb_common import httpc
from tests.doubles.crdb_exposition import (
    CATALOGUE,
    IO_LATENCY_BUCKETS,
    STORE,
    exponential_buckets_range,
    go_float,
)
from tests.doubles.crdb_metrics import CrdbMetricsCluster


@pytest.fixture
def cluster():
    c = CrdbMetricsCluster(2)
    yield c
    c.close()


def scrape(target: str) -> httpx.Response:
    return httpc.get(f"http://{target}/_status/vars", timeout=5)


def families(text: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_io_latency_buckets_are_the_sixty_of_the_source():
    # pkg/util/metric/histogram_buckets.go IOLatencyBuckets: min 10e3 (10µs), max 10e9 (10s), count 60.
    assert len(IO_LATENCY_BUCKETS) == 60
    assert go_float(IO_LATENCY_BUCKETS[0]) == "10000"
    assert math.isclose(IO_LATENCY_BUCKETS[-1], 10e9, rel_tol=1e-12)
    ratios = {round(b / a, 12) for a, b in zip(IO_LATENCY_BUCKETS, IO_LATENCY_BUCKETS[1:])}
    assert len(ratios) == 1, "exponential: one growth factor"


def test_bucket_bounds_match_the_digits_cockroachdb_prints():
    """BatchProcessLatencyBuckets (500e6..300e9, 60) as a v26.2 node printed them in cockroachdb/docs
    src/current/v26.2/multi-dimensional-metrics.md (changefeed_flush_hist_nanos). libc pow would miss the
    last digits of [28] and [59]; Go's math.Pow gets them."""
    printed = {0: "5e+08", 1: "5.572592853587432e+08", 7: "1.0680243876372875e+09",
               28: "1.0409135585614676e+10", 58: "2.691745188300199e+11", 59: "3.0000000000000085e+11"}
    bounds = exponential_buckets_range(500e6, 300e9, 60)
    assert {i: go_float(bounds[i]) for i in printed} == printed


@pytest.mark.parametrize("value, text", [(1e7, "1e+07"), (999999.0, "999999"), (70.0, "70"), (0.2, "0.2"),
                                         (1.234e-05, "1.234e-05"), (9.79696709e8, "9.79696709e+08"),
                                         (0.0, "0"), (math.inf, "+Inf")])
def test_numbers_are_printed_like_go(value, text):
    # strconv.AppendFloat(f, 'g', -1, 64) via prometheus/common expfmt writeFloat.
    assert go_float(value) == text


def test_every_family_has_its_real_type_labels_and_buckets(cluster):
    page = scrape(cluster.targets[1])
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/plain; version=0.0.4")
    found = families(page.text)
    assert set(found) == set(CATALOGUE)
    for name, spec in CATALOGUE.items():
        assert found[name].type == spec.kind, name
        assert found[name].documentation == spec.help, name
        for sample in found[name].samples:
            assert sample.labels["node_id"] == "2", "never node_id=0, always the node's own ID"
            if spec.level == STORE:
                assert sample.labels["store"] == "2", f"{name}: store-level series carry the store ID"
            else:
                assert "store" not in sample.labels, name
    # liveness.heartbeatlatency is a histogram (liveness.go NewNodeLiveness), not a gauge.
    buckets = [s for s in found["liveness_heartbeatlatency"].samples if s.name.endswith("_bucket")]
    bounds = [s.labels["le"] for s in buckets]
    assert len(bounds) == 61 and bounds[0] == "10000" and bounds[-1] == "+Inf"
    assert float(bounds[-2]) == pytest.approx(10e9)
    assert 'store="2",node_id="2"' in page.text, "store first, as AddStore then AddNode label it"


def test_no_metrics_before_the_node_has_an_id(cluster):
    """Before the server has started with a node ID, /_status/vars is not routed (server_http.go setupRoutes
    runs after the node started): Go's 404, not an empty page and never node_id="0"."""
    node = cluster.nodes[0]
    node.node_id = None
    page = scrape(cluster.targets[0])
    assert (page.status_code, page.text) == (404, "404 page not found\n")
    node.node_id = 1
    assert scrape(cluster.targets[0]).status_code == 200


def test_a_down_node_answers_nothing(cluster):
    cluster.nodes[0].up = False
    with pytest.raises(httpx.HTTPError):
        scrape(cluster.targets[0])
    assert scrape(cluster.targets[1]).status_code == 200


def test_per_store_values(cluster):
    node = cluster.nodes[0]
    node.set(ranges_underreplicated=4, liveness_livenodes=2)
    assert 'ranges_underreplicated{store="1",node_id="1"} 4' in scrape(cluster.targets[0]).text
    node.set_store(7, ranges_underreplicated=1, replicas=9)  # a second store on the same node
    text = scrape(cluster.targets[0]).text
    assert 'ranges_underreplicated{store="7",node_id="1"} 1' in text
    assert text.count("# TYPE ranges_underreplicated gauge") == 1, "one family, a series per store"
    with pytest.raises(ValueError, match="set_store"):
        node.set(ranges=3)  # ambiguous with two stores
    with pytest.raises(KeyError, match="not a store-level"):
        node.set_store(1, liveness_livenodes=3)
    with pytest.raises(KeyError, match="not a CockroachDB metric"):
        node.set(ranges_total=1)
    with pytest.raises(KeyError, match="histogram"):
        node.set(liveness_heartbeatlatency=2e6)


def test_observations_land_in_the_right_bucket(cluster):
    node = cluster.nodes[0]
    node.observe("liveness_heartbeatlatency", 1.5e9, times=3)  # a 1.5 s heartbeat: cluster instability
    found = families(scrape(cluster.targets[0]).text)["liveness_heartbeatlatency"]
    cumulative = {s.labels["le"]: s.value for s in found.samples if s.name.endswith("_bucket")}
    below = max(b for b in IO_LATENCY_BUCKETS if b < 1.5e9)
    above = min(b for b in IO_LATENCY_BUCKETS if b >= 1.5e9)
    assert cumulative[go_float(above)] - cumulative[go_float(below)] == 3


def test_scrapes_share_one_kept_alive_connection_and_a_closed_cluster_answers_none():
    """Like CockroachDB's Go server (HTTP/1.1, keep-alive), which Prometheus scrapes over one connection per
    node: each answer on it is a new scrape; a node going down, or the cluster closing, cuts it unanswered."""
    c = CrdbMetricsCluster(2)
    try:
        hosts = [t.split(":") for t in c.targets]
        conns = [http.client.HTTPConnection(host, int(port), timeout=5) for host, port in hosts]
        sent, socks = [], []
        for _ in range(3):
            conns[0].request("GET", "/_status/vars")
            reply = conns[0].getresponse()
            assert reply.status == 200 and not reply.will_close
            sent.append(families(reply.read().decode())["sql_select_count"].samples[0].value)
            socks.append(conns[0].sock)
        assert socks[0] is not None and socks.count(socks[0]) == 3, "one connection for the three scrapes"
        assert sent[1] - sent[0] == sent[2] - sent[1] == CATALOGUE["sql_select_count"].per_scrape
        conns[1].request("GET", "/_status/vars")
        assert conns[1].getresponse().read()
        c.nodes[0].up = False
        conns[0].request("GET", "/_status/vars")
        with pytest.raises((http.client.HTTPException, OSError)):
            conns[0].getresponse()
    finally:
        c.close()
    conns[1].request("GET", "/_status/vars")
    with pytest.raises((http.client.HTTPException, OSError)):
        conns[1].getresponse()
