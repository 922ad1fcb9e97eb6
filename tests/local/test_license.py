"""The local license: optional CRDB_LICENSE or .data/license, applied once the local cluster has nodes
(`SET CLUSTER SETTING enterprise.license`, as k8s/license-job.yaml does in Kubernetes), once per key."""

from __future__ import annotations

import logging
import subprocess

import pytest

from evolution_pipeline.resources.cluster import ClusterControlError
from evolution_pipeline.resources.local import LocalClusterConfig, LocalClusterControl
from evolution_pipeline.resources.local.control import local_license

KEY = "crl-0-ChB0ZXN0LWxpY2Vuc2Uta2V5EAA="


class RecordingControl(LocalClusterControl):
    """The control with `cockroach sql` recorded instead of run (the statement arrives on stdin)."""

    def __init__(self, config, returncode=0):
        super().__init__(config)
        self.calls: list[tuple[list[str], str | None]] = []
        self.returncode = returncode

    def _run(self, args, stdin=None):
        self.calls.append((args, stdin))
        return subprocess.CompletedProcess(
            args, self.returncode, "", "ERROR: invalid license" if self.returncode else ""
        )


def control(tmp_path, key: str, returncode=0) -> RecordingControl:
    (tmp_path / "data").mkdir(exist_ok=True)
    return RecordingControl(
        LocalClusterConfig(data_dir=tmp_path / "data", cockroach_bin="/x/cockroach", license_key=key),
        returncode,
    )


def test_license_is_applied_once_per_key_over_stdin(tmp_path):
    c = control(tmp_path, KEY)
    c.apply_license("/x/cockroach", 1)
    ((args, stdin),) = c.calls
    assert args[:2] == ["/x/cockroach", "sql"] and f"--host={c.node(1).sql_addr}" in args
    assert any(a.startswith("--certs-dir=") for a in args) and "--insecure" not in args
    assert stdin == f"SET CLUSTER SETTING enterprise.license = '{KEY}';\n"
    assert KEY not in " ".join(args), "the key never shows on a command line (ps)"
    marker = (tmp_path / "data" / "license.applied").read_text()
    assert KEY not in marker
    c.apply_license("/x/cockroach", 2)
    assert len(c.calls) == 1, "the same key is not applied twice"
    other = control(tmp_path, KEY + "x")
    other.apply_license("/x/cockroach", 2)
    assert len(other.calls) == 1, "a new key is applied"


def test_no_license_is_a_warning_from_two_nodes(tmp_path, caplog):
    c = control(tmp_path, "")
    with caplog.at_level(logging.WARNING):
        c.apply_license("/x/cockroach", 1)
        assert not caplog.records
        c.apply_license("/x/cockroach", 2)
    assert c.calls == [] and "throttled 7 days after init" in caplog.text and "CRDB_LICENSE" in caplog.text


@pytest.mark.parametrize("bad", ["REPLACE_WITH_YOUR_KEY'; DROP DATABASE app; --", "a b"])
def test_a_key_that_is_not_one_is_refused_before_sql(tmp_path, bad):
    c = control(tmp_path, bad)
    with pytest.raises(ClusterControlError, match="not a CockroachDB license key"):
        c.apply_license("/x/cockroach", 1)
    assert c.calls == []


def test_a_refused_license_says_what_to_do_without_the_key(tmp_path):
    c = control(tmp_path, KEY, returncode=1)
    with pytest.raises(ClusterControlError) as err:
        c.apply_license("/x/cockroach", 1)
    assert (
        "invalid license" in str(err.value) and "re-execute" in str(err.value) and KEY not in str(err.value)
    )
    assert not (tmp_path / "data" / "license.applied").exists()


def test_license_from_env_or_file(tmp_path):
    f = tmp_path / "license"
    f.write_text(f"  {KEY}\n")
    assert local_license({"CRDB_LICENSE": KEY + "env", "CRDB_LICENSE_FILE": str(f)}) == KEY + "env"
    assert local_license({"CRDB_LICENSE_FILE": str(f)}) == KEY
    assert local_license({"CRDB_LICENSE_FILE": str(tmp_path / "none")}) == ""
    assert KEY not in repr(LocalClusterConfig(data_dir=tmp_path, cockroach_bin=None, license_key=KEY))
