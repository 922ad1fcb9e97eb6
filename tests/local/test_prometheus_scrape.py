"""The file_sd targets and CA bundle the local backend writes, read by a REAL Prometheus with the committed
local scrape config (grafana/local/prometheus.yml): the nodes are discovered with their cluster label and
scraped over TLS verified by the local CA (plain HTTP for an insecure cluster)."""

from __future__ import annotations

import pytest

from tests.local.conftest import wait_ready
from tests.support.prometheus import copy_rules, local_prometheus_config, start_prometheus

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("insecure", [False, True], ids=["secure", "insecure"])
def test_prometheus_scrapes_the_local_nodes_it_is_told_about(local_env, insecure):
    """A real Prometheus discovering stand-in nodes as the local backend starts them (file_sd refresh and scrapes
    at 1 s): ~10-20 s of real discovery."""
    control = local_env.control(insecure=insecure)
    # As make dev does: Prometheus starts before any node, the pipeline grows the cluster afterwards.
    runtime = control.prepare_prometheus().parent.parent
    assert (runtime / "certs" / "ca.crt").is_file()
    copy_rules(runtime)
    prometheus = start_prometheus(runtime, config=local_prometheus_config("1s"))
    try:
        control.scale_to(2)
        wait_ready(control, 2)
        http = local_env.ports["http"]
        up = prometheus.wait_for(
            'up{job="cockroachdb",cluster="local"}',
            timeout=60,
            predicate=lambda r: len(r) == 2 and all(s["value"][1] == "1" for s in r),
        )
        assert sorted(s["metric"]["instance"] for s in up) == [f"127.0.0.1:{http}", f"127.0.0.1:{http + 1}"]
        live = prometheus.wait_for(
            'min(liveness_livenodes{job="cockroachdb",cluster="local"})',
            timeout=30,
            predicate=lambda r: r[0]["value"][1] == "2",
        )
        assert live
        # Node 3 joins: the rewritten targets file is picked up without touching Prometheus.
        control.scale_to(3)
        wait_ready(control, 3)
        prometheus.wait_for(
            'count(up{job="cockroachdb",cluster="local"} == 1)',
            timeout=60,
            predicate=lambda r: r[0]["value"][1] == "3",
        )
    finally:
        prometheus.stop()


def test_a_local_rehearsal_cluster_joins_the_same_prometheus_with_its_own_label_and_ca(
    local_env, tmp_path, monkeypatch
):
    """The rehearsal writes targets/cockroachdb-rehearsal.json and appends its own CA to certs/ca.crt in the
    live Prometheus folder; Prometheus, started before the rehearsal existed, scrapes it verified by that CA."""
    from tests.local.conftest import free_port_base

    live = local_env.control()
    runtime = live.prepare_prometheus().parent.parent
    taken = {local_env.ports[k] + i for k in local_env.ports for i in range(3)}
    bases = {}
    for name in ("sql", "listen", "http"):
        bases[name] = free_port_base(exclude=taken)
        taken |= set(range(bases[name], bases[name] + 3))
    rehearsal = local_env.control(
        environment="rehearsal",
        data_dir=tmp_path / "rehearsal",
        live_data_dir=local_env.data_dir,
        prometheus_dir=runtime,
        cluster_label="local-rehearsal",
        sql_port_base=bases["sql"],
        listen_port_base=bases["listen"],
        http_port_base=bases["http"],
    )
    prometheus = start_prometheus(runtime, config=local_prometheus_config("1s"))
    try:
        live.scale_to(1)
        wait_ready(live, 1)
        # The rehearsal uses its own stand-in cluster state, as two real clusters share nothing.
        monkeypatch.setenv("FAKE_COCKROACH_CLUSTER_DIR", str(tmp_path / "rehearsal-fake"))
        rehearsal.scale_to(1)
        wait_ready(rehearsal, 1)
        assert (runtime / "certs" / "ca.crt").read_text().count("BEGIN CERTIFICATE") == 2
        up = prometheus.wait_for('up{job="cockroachdb"} == 1', timeout=90, predicate=lambda r: len(r) == 2)
        labels = {s["metric"]["instance"]: s["metric"]["cluster"] for s in up}
        assert labels == {
            f"127.0.0.1:{local_env.ports['http']}": "local",
            f"127.0.0.1:{bases['http']}": "local-rehearsal",
        }
    finally:
        prometheus.stop()
