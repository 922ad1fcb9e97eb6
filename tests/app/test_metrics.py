"""/metrics parses as Prometheus text and carries every contracted name with its labels."""

from __future__ import annotations

from .metrics_text import samples

EXPECTED = {
    # family: label names of its samples (histograms add `le` on buckets)
    "app_requests": {"route", "method", "status"},
    "app_request_duration_seconds": {"route"},
    "app_db_query_duration_seconds": {"pool"},
    "app_db_errors": {"pool", "sqlstate"},
    "app_spike_target_rps": set(),
    "app_spike_achieved_rps": set(),
    "app_spike_active_workers": set(),
    "app_db_pool_connections": {"pool", "state"},
}


def test_metrics_names_and_labels(client):
    client.post("/login", json={"user_id": "metrics"})
    client.get("/search", params={"q": "ced"})
    client.get("/search", params={"q": "%"})
    resp = client.get("/metrics")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    families = samples(resp.text)
    for family, labels in EXPECTED.items():
        assert family in families, family
        found = families[family]
        if family == "app_db_errors" and not found:
            continue  # only present once an error happened (test_privileges makes one)
        assert found, family
        for s in found:
            assert set(s.labels) - {"le"} == labels, (family, s)
    names = {s.name for fam in families.values() for s in fam}
    assert {
        "app_requests_total",
        "app_request_duration_seconds_bucket",
        "app_db_query_duration_seconds_count",
        "app_spike_target_rps",
    } <= names
    by_route = {(s.labels["route"], s.labels["method"], s.labels["status"]) for s in families["app_requests"]}
    assert {("/login", "POST", "200"), ("/search", "GET", "200"), ("/search", "GET", "400")} <= by_route
    pools = {(s.labels["pool"], s.labels["state"]) for s in families["app_db_pool_connections"]}
    assert pools == {(p, st) for p in ("writer", "reader") for st in ("in_use", "idle", "max")}
    assert {s.labels["pool"] for s in families["app_db_query_duration_seconds"]} == {"writer", "reader"}


def test_db_errors_carry_pool_and_sqlstate(client, pg):
    pg.execute("REVOKE INSERT ON TABLE login_events FROM app_rw")
    try:
        assert client.post("/login", json={"user_id": "denied"}).status_code == 500
    finally:
        pg.execute("GRANT INSERT ON TABLE login_events TO app_rw")
    errors = samples(client.get("/metrics").text)["app_db_errors"]
    assert any(s.labels == {"pool": "writer", "sqlstate": "42501"} and s.value >= 1 for s in errors)


def test_unknown_methods_share_one_label_value(client):
    for method in ("BREW", "PROPFIND", "X-RANDOM-1"):
        assert client.request(method, "/login").status_code in (400, 405)
    assert client.request("DELETE", "/login").status_code == 405
    requests = samples(client.get("/metrics").text)["app_requests"]
    methods = {s.labels["method"] for s in requests}  # a 405 has no route: label "unmatched"
    assert "other" in methods and "DELETE" in methods
    assert not methods & {"BREW", "PROPFIND", "X-RANDOM-1"}
