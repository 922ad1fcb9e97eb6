"""The stand-in `cockroach cert` (tests/doubles/fake_cockroach.py) takes node and client keys from a pool, a
deliberate deviation for the suite's CPU. What the tests rely on still holds: every CA has a key of its own
(a certificate of another CA is refused), and no two keys of one certs dir are the same, even when the
certificates are made at once; --overwrite gives a new key. And the pool is used: a second cluster's node and
client keys come from it rather than being generated again."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

FAKE_COCKROACH = Path(__file__).resolve().parent / "fake_cockroach"


@pytest.fixture
def cert(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "FAKE_COCKROACH_ARGV_LOG"}
    env |= {"FAKE_COCKROACH_KEY_POOL": str(tmp_path / "pool"), "FAKE_COCKROACH_CLUSTER_DIR": str(tmp_path)}

    def run(cluster: str, *args: str, wait: bool = True):
        d = tmp_path / cluster
        argv = [str(FAKE_COCKROACH), "cert", *args, f"--certs-dir={d}/certs", f"--ca-key={d}/ca.key"]
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if wait:
            finish(proc)
        return proc

    return run


def finish(proc: subprocess.Popen) -> None:
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err


def public_key_of(pem_file: Path):
    key = serialization.load_pem_private_key(pem_file.read_bytes(), None)
    return key.public_key().public_numbers()


def keys_in(certs: Path) -> dict:
    return {p.name: public_key_of(p) for p in sorted(certs.glob("*.key"))}


def test_keys_differ_within_a_certs_dir_and_between_cas(cert, tmp_path):
    a, b = tmp_path / "a" / "certs", tmp_path / "b" / "certs"
    for cluster in ("a", "b"):
        cert(cluster, "create-ca")
        # The node and two clients at once, as concurrent workers would; for "b" the pool already holds the
        # keys, and only its lock keeps the three apart.
        procs = [cert(cluster, "create-node", "127.0.0.1", "localhost", wait=False)]
        procs += [cert(cluster, "create-client", user, wait=False) for user in ("root", "app_rw_01")]
        for proc in procs:
            finish(proc)
    assert public_key_of(tmp_path / "a" / "ca.key") != public_key_of(tmp_path / "b" / "ca.key")
    first_a, first_b = keys_in(a), keys_in(b)
    assert sorted(first_b) == ["client.app_rw_01.key", "client.root.key", "node.key"]
    assert len(set(first_a.values())) == 3 and len(set(first_b.values())) == 3, "one certs dir, no key twice"
    assert set(first_b.values()) == set(first_a.values()), "the second cluster's keys come from the pool"

    cert("b", "create-node", "127.0.0.1", "localhost", "--overwrite")
    keys = keys_in(b)
    assert keys["node.key"] not in first_b.values(), "--overwrite makes the node a key the dir did not hold"

    ca_a = x509.load_pem_x509_certificate((a / "ca.crt").read_bytes())
    ca_b = x509.load_pem_x509_certificate((b / "ca.crt").read_bytes())
    for name, numbers in keys.items():
        crt = x509.load_pem_x509_certificate((b / name.replace(".key", ".crt")).read_bytes())
        assert crt.public_key().public_numbers() == numbers, f"{name} belongs to its certificate"
        crt.verify_directly_issued_by(ca_b)
        with pytest.raises(InvalidSignature):  # same issuer name, another CA's key
            crt.verify_directly_issued_by(ca_a)
