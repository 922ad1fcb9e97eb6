"""Prometheus configs and alert rules, judged by the real promtool (Debian's prometheus package)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.observability.promql_support import (
    DASHBOARDS,
    K8S,
    KNOWN_NAMES,
    RULE_FILES,
    RULE_TESTS,
    dashboard_exprs,
    metric_names,
    rule_exprs,
    substitute,
)
from tests.support.prometheus import LOCAL_PROMETHEUS, copy_rules


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if not path:
        pytest.skip("promtool is not installed: run `make setup`")
    return path


def run(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def k8s_docs(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]


def k8s_prometheus_config() -> dict:
    cm = next(d for d in k8s_docs("prometheus.yaml") if d["kind"] == "ConfigMap")
    return yaml.safe_load(cm["data"]["prometheus.yml"])


def k8s_rules() -> dict[str, str]:
    return next(d for d in k8s_docs("prometheus-rules.yaml") if d["kind"] == "ConfigMap")["data"]


def lay_out_local_runtime(root: Path, targets: list[str], ca_pem: str = "") -> Path:
    """The runtime layout grafana/local/prometheus.yml documents (the local-cluster helper creates it)."""
    (root / "targets").mkdir(parents=True)
    (root / "certs").mkdir()
    copy_rules(root)
    shutil.copy(LOCAL_PROMETHEUS, root / "prometheus.yml")
    (root / "targets" / "cockroachdb.json").write_text(json.dumps([{"targets": targets, "labels": {}}]))
    (root / "certs" / "ca.crt").write_text(ca_pem)
    return root / "prometheus.yml"


# ---------------------------------------------------------------------------------------------- configs
# Prometheus's documented kubernetes_sd_configs fields (the pod role is what the jobs use).
K8S_SD_ROLES = {"node", "service", "pod", "endpoints", "endpointslice", "ingress"}
K8S_SD_FIELDS = {"api_server", "role", "kubeconfig_file", "namespaces", "selectors", "attach_metadata",
                 "basic_auth", "authorization", "oauth2", "proxy_url", "follow_redirects", "enable_http2",
                 "tls_config"}


def without_kubernetes_sd(config: dict, sd_file: Path) -> dict:
    """Debian's Prometheus is built without Kubernetes discovery, so its promtool rejects the field itself.
    Check those blocks against the documented schema here and let promtool judge everything else (relabel
    rules, TLS, intervals, rule files) with an equivalent file_sd block in their place."""
    for job in config["scrape_configs"]:
        for sd in job.pop("kubernetes_sd_configs"):
            assert set(sd) <= K8S_SD_FIELDS, f"{job['job_name']}: unknown fields {set(sd) - K8S_SD_FIELDS}"
            assert sd["role"] in K8S_SD_ROLES
            assert set(sd.get("namespaces", {})) <= {"names", "own_namespace"}
            for sel in sd.get("selectors", []):
                assert set(sel) <= {"role", "label", "field"} and sel["role"] in K8S_SD_ROLES
        job["file_sd_configs"] = [{"files": [str(sd_file)]}]
    return config


def test_k8s_prometheus_config_passes_promtool(promtool, tmp_path):
    """The config inside the ConfigMap, with the rules ConfigMap mounted where the Deployment mounts it."""
    sd_file = tmp_path / "pods.json"
    sd_file.write_text("[]")
    config = without_kubernetes_sd(k8s_prometheus_config(), sd_file)
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    for name, text in k8s_rules().items():
        (rules_dir / name).write_text(text)
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    config["rule_files"] = [str(rules_dir / "*.yml")]
    ca = tmp_path / "ca.crt"
    ca.write_text("")
    config["scrape_configs"][0]["tls_config"]["ca_file"] = str(ca)
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    result = run([promtool, "check", "config", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(k8s_rules())} rule files found" in result.stdout + result.stderr


def test_local_prometheus_config_passes_promtool_in_its_runtime_layout(promtool, tmp_path):
    config = lay_out_local_runtime(tmp_path / "runtime", ["127.0.0.1:8080", "127.0.0.1:8081"])
    result = run([promtool, "check", "config", str(config)], cwd=tmp_path)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert f"SUCCESS: {len(RULE_FILES)} rule files found" in out
    assert "SUCCESS: 7 rules found" in out


def test_promtool_rejects_a_broken_config(promtool, tmp_path):
    """Control: the check above can fail."""
    config = yaml.safe_load(LOCAL_PROMETHEUS.read_text())
    config["scrape_configs"][0]["scrape_interval"] = "15 seconds"
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    assert run([promtool, "check", "config", str(path)]).returncode != 0


def scrape_jobs(config: dict) -> dict[str, dict]:
    return {job["job_name"]: job for job in config["scrape_configs"]}


def default_cluster_label(job: dict) -> str:
    """The `cluster` a local job sets when its target does not name one."""
    (rule,) = [r for r in job["relabel_configs"] if r.get("target_label") == "cluster"]
    assert rule["source_labels"] == ["cluster"] and rule["regex"] == ""
    assert rule.get("action", "replace") == "replace"
    return rule["replacement"]


def cluster_mapping(job: dict) -> dict[tuple[str, str], str]:
    """(source label, value) -> cluster, for the cluster config's per-namespace / per-app mapping."""
    out = {}
    for r in job["relabel_configs"]:
        if r.get("target_label") == "cluster":
            (source,) = r["source_labels"]
            out[(source, r["regex"])] = r["replacement"]
    return out


def test_k8s_config_scrapes_exactly_the_two_jobs_with_the_contract_labels():
    config = k8s_prometheus_config()
    assert config["global"]["scrape_interval"] == "15s"
    jobs = scrape_jobs(config)
    assert set(jobs) == {"cockroachdb", "sample-app"}
    # The pipeline's checks select cluster="crdb-live" (live) and cluster="crdb-rehearsal" (nightly
    # rehearsal): every series carries one of them, derived from where it was discovered.
    assert cluster_mapping(jobs["cockroachdb"]) == {
        ("__meta_kubernetes_namespace", "crdb"): "crdb-live",
        ("__meta_kubernetes_namespace", "crdb-rehearsal"): "crdb-rehearsal"}
    assert cluster_mapping(jobs["sample-app"]) == {
        ("__meta_kubernetes_pod_label_app_kubernetes_io_name", "sample-app"): "crdb-live",
        ("__meta_kubernetes_pod_label_app_kubernetes_io_name", "sample-app-rehearsal"): "crdb-rehearsal"}
    assert "cluster" not in config["global"].get("external_labels", {})

    crdb = jobs["cockroachdb"]
    assert crdb["metrics_path"] == "/_status/vars" and crdb["scheme"] == "https"
    assert crdb["tls_config"].get("ca_file") or crdb["tls_config"].get("insecure_skip_verify")
    (sd,) = crdb["kubernetes_sd_configs"]
    assert sd["role"] == "pod" and sd["namespaces"]["names"] == ["crdb", "crdb-rehearsal"]
    assert sd["selectors"] == [{"role": "pod", "label": "app.kubernetes.io/name=cockroachdb"}]
    address = next(r for r in crdb["relabel_configs"] if r.get("target_label") == "__address__")
    assert address["replacement"].endswith(":8080")

    app = jobs["sample-app"]
    assert app["metrics_path"] == "/metrics"
    (sd,) = app["kubernetes_sd_configs"]
    assert sd["namespaces"]["names"] == ["crdb-demo"]
    assert sd["selectors"] == [{"role": "pod", "label": "app.kubernetes.io/name in (sample-app, sample-app-rehearsal)"}]


def test_k8s_cockroachdb_tls_server_name_is_in_every_node_certificate():
    """Prometheus verifies the nodes against the CA by a DNS name the live AND rehearsal certificates carry."""
    crdb = scrape_jobs(k8s_prometheus_config())["cockroachdb"]
    certs = [d for f in ("10-certificates.yaml", "30-rehearsal-certificates.yaml")
             for d in yaml.safe_load_all((K8S.parent / "tls" / f).read_text())
             if d and d.get("kind") == "Certificate" and d["spec"].get("dnsNames")]
    namespaces = {c["metadata"]["namespace"] for c in certs}
    assert namespaces == {"crdb", "crdb-rehearsal"}
    for c in certs:
        assert crdb["tls_config"]["server_name"] in c["spec"]["dnsNames"], c["metadata"]["name"]


def test_local_config_follows_the_runtime_layout_contract():
    config = yaml.safe_load(LOCAL_PROMETHEUS.read_text())
    jobs = scrape_jobs(config)
    assert set(jobs) == {"cockroachdb", "sample-app"}
    assert {default_cluster_label(j) for j in jobs.values()} == {"local"}
    assert config["rule_files"] == ["rules/*.yml"]
    crdb = jobs["cockroachdb"]
    assert crdb["file_sd_configs"][0]["files"] == ["targets/cockroachdb*.json"]
    assert crdb["scheme"] == "https" and crdb["tls_config"] == {"ca_file": "certs/ca.crt"}
    assert crdb["metrics_path"] == "/_status/vars"
    assert jobs["sample-app"]["static_configs"] == [{"targets": ["127.0.0.1:8000"]}]
    assert jobs["sample-app"]["file_sd_configs"][0]["files"] == ["targets/sample-app*.json"]


def test_k8s_rules_configmap_mounted_where_rule_files_point():
    deploy = next(d for d in k8s_docs("prometheus.yaml") if d["kind"] == "Deployment")
    spec = deploy["spec"]["template"]["spec"]
    mounts = {m["name"]: m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["rules"]["configMap"]["name"] == "prometheus-rules"
    assert k8s_prometheus_config()["rule_files"] == [mounts["rules"] + "/*.yml"]
    assert volumes["config"]["configMap"]["name"] == "prometheus-config"
    ca_file = scrape_jobs(k8s_prometheus_config())["cockroachdb"]["tls_config"]["ca_file"]
    assert ca_file == mounts["crdb-ca"] + "/ca.crt"
    assert volumes["crdb-ca"]["configMap"]["name"] == "cockroachdb-ca"


# ---------------------------------------------------------------------------------------------- rules
def alerts() -> list[dict]:
    return [r for p in RULE_FILES for g in yaml.safe_load(p.read_text())["groups"] for r in g["rules"]
            if "alert" in r]


def test_rules_pass_promtool_check(promtool):
    result = run([promtool, "check", "rules", *map(str, RULE_FILES)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_pass(promtool):
    assert RULE_TESTS
    result = run([promtool, "test", "rules", *[p.name for p in RULE_TESTS]], cwd=RULE_TESTS[0].parent)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_wrong_expectation_fails_the_rule_unit_tests(promtool, tmp_path):
    """Control: break one expected label and promtool must report the failure."""
    src = RULE_TESTS[0]
    text = src.read_text().replace("cluster: crdb-test", "cluster: crdb-other", 1)
    assert text != src.read_text()
    broken = tmp_path / "tests" / src.name
    broken.parent.mkdir()
    broken.write_text(text)
    for rules in RULE_FILES:
        shutil.copy(rules, tmp_path / rules.name)
    result = run([promtool, "test", "rules", src.name], cwd=broken.parent)
    assert result.returncode != 0


def test_every_alert_has_a_firing_and_a_quiet_unit_test():
    fired: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (fired if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {a["alert"] for a in alerts()}
    assert names - fired == set(), "alerts without a firing test"
    assert names - quiet == set(), "alerts without a test where they must stay quiet"


def test_the_key_signals_are_alerted_on():
    text = {a["alert"]: a["expr"] for a in alerts()}
    exprs = " ".join(text.values())
    for metric in ("ranges_underreplicated", "ranges_unavailable", 'up{job="cockroachdb"}',
                   "app_requests_total", "app_request_duration_seconds_bucket"):
        assert metric in exprs
    under = next(a for a in alerts() if "ranges_underreplicated" in a["expr"])
    assert under["for"] in {"5m", "10m", "15m"}, "under-replication is only alarming when it lasts"


def test_every_alert_has_summary_description_runbook_and_severity():
    for a in alerts():
        ann = a["annotations"]
        assert ann.get("summary") and ann.get("description"), a["alert"]
        assert "grafana/README.md#runbooks" in ann.get("runbook", ""), a["alert"]
        assert a["labels"]["severity"] in {"warning", "critical"}


def test_rules_use_only_real_metrics_and_the_contract_jobs():
    for e in rule_exprs():
        names = metric_names(e.text)
        assert names and names <= KNOWN_NAMES, f"{e.where}: {names - KNOWN_NAMES}"
        assert 'job="cockroachdb"' in e.text or 'job="sample-app"' in e.text, e.where


# ---------------------------------------------------------------------------------------------- PromQL
def test_promtool_judges_every_dashboard_expression(promtool, tmp_path):
    """Prometheus's own parser (promtool check rules) on every dashboard query, variables substituted."""
    exprs = [e for p in DASHBOARDS for e in dashboard_exprs(p)]
    rules = {"groups": [{"name": "dashboards", "rules": [
        {"record": f"dashboard:expr_{i}", "expr": substitute(e.text)} for i, e in enumerate(exprs)]}]}
    path = tmp_path / "dashboards.rules.yml"
    path.write_text(yaml.safe_dump(rules))
    result = run([promtool, "check", "rules", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in result.stdout


def test_promtool_rejects_a_broken_expression(promtool, tmp_path):
    """Control: the judgement above can fail (a typo Grafana would only show at view time)."""
    path = tmp_path / "bad.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "x", "rules": [
        {"record": "x:y", "expr": "sum(rate(sql_select_count[1m]) by (instance)"}]}]}))
    assert run([promtool, "check", "rules", str(path)]).returncode != 0
