"""The file_sd targets and CA bundle the local backend writes, read by a REAL Prometheus with the committed
local scrape config (grafana/local/prometheus.yml): the nodes are discovered with their cluster label and
scraped over TLS verified by the local CA (plain HTTP for an insecure cluster)."""

from __future__ import annotations

import shutil

import pytest
import yaml

from evolution_pipeline.phases import REPO_ROOT
from tests.local.conftest import wait_ready
from tests.support.prometheus import start_prometheus

pytestmark = pytest.mark.slow


def local_scrape_config() -> dict:
    config = yaml.safe_load((REPO_ROOT / "grafana" / "local" / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")  # a test
    for job in config["scrape_configs"]:
        for sd in job.get("file_sd_configs", []):
            sd["refresh_interval"] = "1s"
    return config


@pytest.mark.parametrize("insecure", [False, True], ids=["secure", "insecure"])
def test_prometheus_scrapes_the_local_nodes_it_is_told_about(local_env, insecure):
    control = local_env.control(insecure=insecure)
    # As make dev does: Prometheus starts before any node, the pipeline grows the cluster afterwards.
    runtime = control.prepare_prometheus().parent.parent
    assert (runtime / "certs" / "ca.crt").is_file()
    (runtime / "rules").mkdir(parents=True, exist_ok=True)
    for rules in (REPO_ROOT / "grafana" / "alerts").glob("*.yml"):
        shutil.copy(rules, runtime / "rules" / rules.name)
    prometheus = start_prometheus(runtime, config=local_scrape_config())
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
