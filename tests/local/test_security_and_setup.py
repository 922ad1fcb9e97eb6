"""Secure by default, the missing-binary message, the rehearsal reset guard, Prometheus file_sd targets,
connection strings and the Dagster resource of the local backend."""

from __future__ import annotations

import json
import ssl
import stat
import subprocess

import dagster as dg
import httpx
import pytest
from cryptography import x509
from psycopg.conninfo import conninfo_to_dict

from crdb_common import httpc
from evolution_pipeline.resources.cluster import ClusterControlError, ClusterControlResource
from evolution_pipeline.resources.local import (
    MISSING_BINARY_MESSAGE,
    LocalClusterControl,
    LocalClusterResource,
    settings_from_env,
)
from tests.local.conftest import FAKE_COCKROACH, node_pids_under, wait_ready


def flags_of(argv: list[str]) -> set[str]:
    return {a.split("=", 1)[0] for a in argv if a.startswith("--")}


@pytest.mark.slow
def test_secure_by_default_certs_and_tls_health(local_env):
    control = local_env.control()
    control.scale_to(1)
    wait_ready(control, 1)
    certs = local_env.data_dir / "certs"
    for name in (
        "ca.crt",
        "node.crt",
        "node.key",
        "client.root.crt",
        "client.root.key",
        "client.app_rw_01.crt",
        "client.app_ro_01.crt",
    ):
        assert (certs / name).is_file(), name
    ca_key = local_env.data_dir / "safe" / "ca.key"
    assert ca_key.is_file() and not (certs / "ca.key").exists(), "the CA key stays out of the certs dir"
    assert stat.S_IMODE(ca_key.parent.stat().st_mode) == 0o700
    node_cert = x509.load_pem_x509_certificate((certs / "node.crt").read_bytes())
    sans = node_cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in sans.get_values_for_type(x509.DNSName)
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]

    for argv in (
        local_env.invocations("start") + local_env.invocations("init") + local_env.invocations("node")
    ):
        assert "--insecure" not in flags_of(argv)
        assert f"--certs-dir={certs.resolve()}" in argv
    assert "secure" in control.describe() and "INSECURE" not in control.describe()

    # The health endpoint is HTTPS signed by the local CA: verified, and refused without the CA.
    url = control.health_url(control.node(1))
    assert url.startswith("https://")
    assert httpc.get(url, verify=ssl.create_default_context(cafile=str(certs / "ca.crt"))).status_code == 200
    with pytest.raises(httpx.ConnectError):
        httpc.get(url, verify=True)


@pytest.mark.slow
def test_insecure_only_when_asked_and_labelled(local_env):
    control = local_env.control(insecure=True)
    assert "INSECURE" in control.describe()
    control.scale_to(1)
    wait_ready(control, 1)
    certs = sorted(p.name for p in (local_env.data_dir / "certs").iterdir())
    assert certs == ["ca.crt"], "no node or client certificates in insecure mode (a CA only for Prometheus)"
    starts = local_env.invocations("start")
    assert "--insecure" in starts[0] and "--certs-dir" not in flags_of(starts[0])
    assert control.health_url(control.node(1)).startswith("http://")
    assert conninfo_to_dict(control.sql_url(1, "root"))["sslmode"] == "disable"
    targets = json.loads(control.targets_file().read_text())
    assert targets[0]["labels"] == {"cluster": "local", "__scheme__": "http"}, "scraped over plain HTTP"


def test_stand_in_refuses_start_without_certificates(tmp_path):
    """The double follows the real CLI: secure mode without certificates is an error, not a silent start."""
    result = subprocess.run(
        [
            str(FAKE_COCKROACH),
            "start",
            f"--store={tmp_path / 's'}",
            "--join=127.0.0.1:1",
            f"--certs-dir={tmp_path / 'missing'}",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "cannot load certificates" in result.stderr and "--insecure" in result.stderr
    result = subprocess.run(
        [str(FAKE_COCKROACH), "start", f"--store={tmp_path / 's'}", "--insecure"],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1 and "no --join flags" in result.stderr
    assert not (tmp_path / "s").exists()


@pytest.mark.slow
def test_stand_in_init_twice_fails_like_the_real_one(local_env):
    control = local_env.control()
    control.scale_to(1)
    wait_ready(control, 1)
    args = [
        str(FAKE_COCKROACH),
        "init",
        f"--certs-dir={control.certs_dir}",
        f"--host={control.node(1).listen_addr}",
    ]
    again = subprocess.run(args, check=False, capture_output=True, text=True, timeout=30)
    assert again.returncode == 1 and "cluster has already been initialized" in again.stderr
    # The backend treats that answer as success: a lost marker file does not break a re-run.
    control.init_marker.unlink()
    control.initialize(control.binary())
    assert control.init_marker.exists()
    wrong_port = subprocess.run(
        args[:-1] + [f"--host={control.node(1).sql_addr}"],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert wrong_port.returncode == 1, "init goes to the RPC (--listen-addr) port, not the SQL port"


def test_missing_binary_gives_one_clear_message(monkeypatch, tmp_path):
    monkeypatch.delenv("COCKROACH_BIN", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no cockroach anywhere
    resource = LocalClusterResource(data_dir=str(tmp_path / "data"))
    with pytest.raises(ClusterControlError) as err:
        resource.control()
    assert str(err.value) == MISSING_BINARY_MESSAGE
    assert "https://www.cockroachlabs.com/docs/releases/" in MISSING_BINARY_MESSAGE
    assert "COCKROACH_BIN" in MISSING_BINARY_MESSAGE and "PATH" in MISSING_BINARY_MESSAGE

    monkeypatch.setenv("COCKROACH_BIN", str(tmp_path / "nope"))
    with pytest.raises(ClusterControlError, match="is not an executable file"):
        resource.control()
    # A control built without a binary (CLI status/stop) fails on the first action that needs one.
    control = LocalClusterControl(resource.config())
    with pytest.raises(ClusterControlError, match="No CockroachDB binary found"):
        control.scale_to(1)
    assert not (tmp_path / "data").exists(), "nothing is created before failing"


def test_binary_from_env_then_path(monkeypatch, tmp_path):
    monkeypatch.setenv("COCKROACH_BIN", str(FAKE_COCKROACH))
    assert LocalClusterResource().control().config.cockroach_bin == str(FAKE_COCKROACH)
    monkeypatch.delenv("COCKROACH_BIN")
    (tmp_path / "cockroach").symlink_to(FAKE_COCKROACH)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert LocalClusterResource().control().config.cockroach_bin == str(tmp_path / "cockroach")


@pytest.mark.slow
def test_rehearsal_reset_guard(local_env, tmp_path):
    live = local_env.control()
    with pytest.raises(ClusterControlError, match="only a 'rehearsal' environment may be wiped"):
        live.reset_rehearsal_environment()

    same = local_env.control(environment="rehearsal", live_data_dir=local_env.data_dir)
    with pytest.raises(ClusterControlError, match="overlaps"):
        same.reset_rehearsal_environment()
    parent = local_env.control(environment="rehearsal", live_data_dir=local_env.data_dir / "inner")
    with pytest.raises(ClusterControlError, match="overlaps"):
        parent.reset_rehearsal_environment()

    foreign = tmp_path / "somebody-elses"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("keep me")
    stranger = local_env.control(environment="rehearsal", data_dir=foreign)
    with pytest.raises(ClusterControlError, match="not made by this pipeline"):
        stranger.reset_rehearsal_environment()
    assert (foreign / "precious.txt").read_text() == "keep me"

    rehearsal = local_env.control(environment="rehearsal")
    rehearsal.scale_to(2)
    wait_ready(rehearsal, 2)
    message = rehearsal.reset_rehearsal_environment()
    assert "node1" in message and "node2" in message
    assert not local_env.data_dir.exists()
    assert node_pids_under(local_env.data_dir) == []
    assert rehearsal.desired_nodes() == 0


@pytest.mark.slow
def test_prometheus_file_sd_targets_follow_the_nodes(local_env):
    control = local_env.control()
    targets = local_env.data_dir / "prometheus" / "targets" / "cockroachdb.json"
    http = local_env.ports["http"]
    for nodes in (1, 2):
        control.scale_to(nodes)
        assert json.loads(targets.read_text()) == [
            {"targets": [f"127.0.0.1:{http + i}" for i in range(nodes)], "labels": {"cluster": "local"}}
        ]
    bundle = local_env.data_dir / "prometheus" / "certs" / "ca.crt"
    assert bundle.read_text().strip() == (local_env.data_dir / "certs" / "ca.crt").read_text().strip()


def test_rehearsal_targets_share_the_live_prometheus_folder(local_env, tmp_path):
    shared = tmp_path / "live" / "prometheus"
    rehearsal = local_env.control(
        environment="rehearsal", cluster_label="local-rehearsal", prometheus_dir=shared
    )
    path = rehearsal.write_prometheus_targets(2)
    assert path == shared / "targets" / "cockroachdb-rehearsal.json", "matches targets/cockroachdb*.json"
    assert json.loads(path.read_text())[0]["labels"] == {"cluster": "local-rehearsal"}
    assert rehearsal.write_prometheus_targets(0).read_text().strip() == "[]"


def test_sql_urls_and_local_service_names(local_env):
    control = local_env.control()
    sql = local_env.ports["sql"]
    root = conninfo_to_dict(control.sql_url(1, "root", "defaultdb"))
    certs = str(local_env.data_dir.resolve() / "certs")
    assert root == {
        "user": "root",
        "host": "127.0.0.1",
        "port": str(sql),
        "dbname": "defaultdb",
        "sslmode": "verify-full",
        "sslrootcert": f"{certs}/ca.crt",
        "sslcert": f"{certs}/client.root.crt",
        "sslkey": f"{certs}/client.root.key",
    }
    writer = conninfo_to_dict(control.writer_url("p@ss/w:rd"))
    assert writer["user"] == "app_rw_01" and writer["password"] == "p@ss/w:rd" and "sslcert" not in writer
    assert writer["host"] == "127.0.0.1" and writer["port"] == str(sql) and writer["dbname"] == "app"
    reader = conninfo_to_dict(control.reader_url("pw"))
    assert reader["host"] == "127.0.0.1,127.0.0.1" and reader["port"] == f"{sql + 1},{sql}", (
        "node 2, then node 1"
    )
    assert control.endpoints() == {"crdb-writer": f"127.0.0.1:{sql}", "crdb-reader": f"127.0.0.1:{sql}"}
    control._write_state(desired_nodes=2)
    assert control.endpoints()["crdb-reader"] == f"127.0.0.1:{sql + 1}", "node 2 once phase 1 has run"


def test_resource_is_a_cluster_control_resource_and_reads_the_environment(monkeypatch, tmp_path):
    assert issubclass(LocalClusterResource, ClusterControlResource)
    env = {
        "COCKROACH_BIN": str(FAKE_COCKROACH),
        "LOCAL_CRDB_DATA_DIR": str(tmp_path / "live"),
        "LOCAL_CRDB_SQL_PORT_BASE": "27000",
        "CRDB_CLUSTER_LABEL": "local",
        "REHEARSAL_LOCAL_CRDB_DATA_DIR": str(tmp_path / "reh"),
        "REHEARSAL_LOCAL_CRDB_HTTP_PORT_BASE": "9200",
    }
    live = LocalClusterResource.from_environment("live", env)
    assert (live.environment, live.data_dir, live.sql_port_base, live.http_port_base) == (
        "live",
        str(tmp_path / "live"),
        27000,
        8080,
    )
    rehearsal = LocalClusterResource.from_environment("rehearsal", env, ready_timeout_seconds=5.0)
    assert rehearsal.environment == "rehearsal" and rehearsal.ready_timeout_seconds == 5.0
    assert (rehearsal.data_dir, rehearsal.live_data_dir) == (str(tmp_path / "reh"), str(tmp_path / "live"))
    assert (rehearsal.sql_port_base, rehearsal.listen_port_base, rehearsal.http_port_base) == (
        26457,
        26557,
        9200,
    )
    assert rehearsal.cluster_label == "local-rehearsal"
    assert rehearsal.prometheus_dir == str(tmp_path / "live" / "prometheus")
    assert settings_from_env("live", {})["data_dir"] == ".data/local"
    control = rehearsal.control()
    assert (
        control.targets_file() == tmp_path / "live" / "prometheus" / "targets" / "cockroachdb-rehearsal.json"
    )

    @dg.asset
    def uses_cluster(cluster: ClusterControlResource) -> int:
        return cluster.control().desired_nodes()

    result = dg.materialize([uses_cluster], resources={"cluster": live})
    assert result.success and result.output_for_node("uses_cluster") == 0


def test_relative_folders_are_under_the_repository():
    from evolution_pipeline.phases import REPO_ROOT

    config = LocalClusterResource(data_dir=".data/x", environment="rehearsal").config()
    assert config.data_dir == REPO_ROOT / ".data" / "x"
    assert (
        LocalClusterResource(environment="rehearsal").config().data_dir == REPO_ROOT / ".data" / "rehearsal"
    )
    with pytest.raises(ClusterControlError, match="loopback"):
        LocalClusterResource(host="10.0.0.5").config()


def test_node_status_csv_parser_reads_the_real_format():
    """Recorded shapes of `cockroach node status --format=csv` (the basic columns, and the wider --all form)."""
    from evolution_pipeline.resources.local import parse_node_status_csv

    basic = (
        "id,address,sql_address,build,started_at,updated_at,locality,is_available,is_live\n"
        "1,127.0.0.1:26357,127.0.0.1:26257,v25.4.0,2026-06-01 10:00:00.1,2026-06-01 10:05:00.2,"
        '"region=local,zone=local-a",true,true\n'
        "2,127.0.0.1:26358,127.0.0.1:26258,v25.4.0,2026-06-01 10:01:00.1,2026-06-01 10:02:00.2,"
        '"region=local,zone=local-b",false,false\n'
    )
    rows = parse_node_status_csv(basic)
    assert [(r["id"], r["address"], r["is_live"]) for r in rows] == [
        ("1", "127.0.0.1:26357", "true"),
        ("2", "127.0.0.1:26358", "false"),
    ]
    assert rows[0]["locality"] == "region=local,zone=local-a"
    wide = (
        "id,address,sql_address,build,started_at,updated_at,locality,is_available,is_live,replicas_leaders,"
        "replicas_leaseholders,ranges,ranges_unavailable,ranges_underreplicated,is_decommissioning,membership,"
        "is_draining\n3,[::1]:42021,[::1]:42021,v22.1.9,2024-05-21 15:19:50.5,2024-05-21 16:31:28.0,,true,true,"
        "10,10,20,0,0,false,active,false\n"
    )
    assert parse_node_status_csv(wide)[0]["membership"] == "active"
    assert parse_node_status_csv("") == [] and parse_node_status_csv("ERROR: cannot dial server") == []
