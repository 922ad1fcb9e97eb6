"""`plan` with a bad configuration or a bad admin URL (issue 26 items 7 and 9): one line naming the variable and
exit 2, like the app; and a password libpq quotes back never reaches the plan's read_error."""

from __future__ import annotations

import json

import pytest

from tests.doubles.k8s_api import KubeApiDouble

from .test_plan import kubeconfig, run_cli

SECRET = "s3cr%zzET"  # a stray %: libpq's "invalid percent-encoded token" message quotes it


@pytest.mark.parametrize("env, named", [
    ({"EVOLUTION_CLUSTER_BACKEND": "bogus"}, "EVOLUTION_CLUSTER_BACKEND"),
    ({"SCALE_TIMEOUT_SECONDS": "abc"}, "SCALE_TIMEOUT_SECONDS"),
    ({"SCALE_POLL_SECONDS": "nan"}, "SCALE_POLL_SECONDS"),
    ({"REPLICATION_TIMEOUT_SECONDS": "-5"}, "REPLICATION_TIMEOUT_SECONDS"),
])
def test_a_bad_setting_is_one_line_naming_it_and_exit_2(env, named):
    out = run_cli("plan", **env)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stderr and out.stdout == "", out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0] and "configuration error" in lines[0], out.stderr


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_password_libpq_cannot_decode_is_not_in_the_plan(tmp_path, fmt):
    with KubeApiDouble() as api:
        api.add_cluster("crdb", "cockroachdb", 1)
        out = run_cli("plan", "phase1_two_nodes", "--format", fmt,
                      CRDB_ADMIN_URL=f"postgresql://root:{SECRET}@127.0.0.1:9/defaultdb?sslmode=disable",
                      KUBECONFIG=str(kubeconfig(tmp_path / "kubeconfig", api.host)))
    assert out.returncode == 0, out.stderr
    text = out.stdout + out.stderr
    assert "percent-encoded" in text, text[:2000]  # the read really failed on the URL
    assert SECRET not in text and "zzET" not in text, text[:2000]
    if fmt == "json":
        assert "***" in json.loads(out.stdout)["read_error"]
