"""The tool fetcher against a local stand-in of the release sites: nothing here touches the internet."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from evolution_pipeline.phases import REPO_ROOT
from tests.support.net import free_port
from tests.tools.release_server import ReleaseServer, script, tarball

VERSIONS = tomllib.loads((REPO_ROOT / "versions.toml").read_text())
CRDB = VERSIONS["cockroach"]["version"]


@pytest.fixture
def server(tmp_path):
    with ReleaseServer(tmp_path / "mirror") as srv:
        yield srv


def env_for(tmp_path: Path, mirror: str, platform: str = "linux-amd64", path: str = "") -> dict:
    empty = tmp_path / "empty-path"
    empty.mkdir(exist_ok=True)
    return {
        "PATH": path or str(empty),  # no real tool can be found by accident
        "CRDB_TOOLS_MIRROR": mirror,
        "CRDB_TOOLS_BIN_DIR": str(tmp_path / "bin"),
        "CRDB_TOOLS_PLATFORM": platform,
        "CRDB_TOOLS_TIMEOUT": "5",
    }


def run(fetch_tools, capsys, env, *tools):
    code = fetch_tools.main(list(tools), env=env)
    out, err = capsys.readouterr()
    return code, out, err


def publish_cockroach(server, fetch_tools, platform="linux-amd64", checksum_of: bytes | None = None):
    rel = fetch_tools.release_for("cockroach", platform, fetch_tools.load_versions())
    archive = tarball(
        {rel.binary: script(f"cockroach {CRDB}"), rel.binary.rsplit("/", 1)[0] + "/lib/libgeos.so": b"x"}
    )
    digest = server.publish(rel.url, archive)
    if checksum_of is not None:
        digest = __import__("hashlib").sha256(checksum_of).hexdigest()
    # binaries.cockroachdb.com: "<hash>  <archive name>", as sha256sum writes it.
    server.publish(rel.checksum_url, f"{digest}  {rel.archive}\n".encode())
    return rel


# --- platforms -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("system", "machine", "expected"),
    [
        ("Linux", "x86_64", "linux-amd64"),
        ("Linux", "aarch64", "linux-arm64"),
        ("Darwin", "x86_64", "darwin-amd64"),
        ("Darwin", "arm64", "darwin-arm64"),
    ],
)
def test_host_platform(fetch_tools, system, machine, expected):
    assert fetch_tools.host_platform(system, machine) == expected


@pytest.mark.parametrize(
    ("system", "machine"), [("Windows", "AMD64"), ("Linux", "armv7l"), ("FreeBSD", "amd64")]
)
def test_unsupported_platform_is_named(fetch_tools, system, machine):
    with pytest.raises(fetch_tools.FetchError, match="no official build is pinned"):
        fetch_tools.host_platform(system, machine)


# Every tool x platform: the exact official URL (the file names the publishers use, see versions.toml).
EXPECTED_URLS = {
    ("cockroach", "linux-amd64"): f"https://binaries.cockroachdb.com/cockroach-{CRDB}.linux-amd64.tgz",
    ("cockroach", "linux-arm64"): f"https://binaries.cockroachdb.com/cockroach-{CRDB}.linux-arm64.tgz",
    ("cockroach", "darwin-amd64"): f"https://binaries.cockroachdb.com/cockroach-{CRDB}.darwin-10.9-amd64.tgz",
    ("cockroach", "darwin-arm64"): f"https://binaries.cockroachdb.com/cockroach-{CRDB}.darwin-11.0-arm64.tgz",
    **{
        ("prometheus", p): "https://github.com/prometheus/prometheus/releases/download/v2.53.2/"
        f"prometheus-2.53.2.{p}.tar.gz"
        for p in ("linux-amd64", "linux-arm64", "darwin-amd64", "darwin-arm64")
    },
    **{
        ("grafana", p): f"https://dl.grafana.com/oss/release/grafana-11.1.4.{p}.tar.gz"
        for p in ("linux-amd64", "linux-arm64", "darwin-amd64", "darwin-arm64")
    },
    **{
        ("kind", p): f"https://github.com/kubernetes-sigs/kind/releases/download/v0.25.0/kind-{p}"
        for p in ("linux-amd64", "linux-arm64", "darwin-amd64", "darwin-arm64")
    },
    **{
        ("kubectl", p): f"https://dl.k8s.io/release/v1.30.6/bin/{p.replace('-', '/')}/kubectl"
        for p in ("linux-amd64", "linux-arm64", "darwin-amd64", "darwin-arm64")
    },
    **{
        ("helm", p): f"https://get.helm.sh/helm-v3.16.2-{p}.tar.gz"
        for p in ("linux-amd64", "linux-arm64", "darwin-amd64", "darwin-arm64")
    },
}


@pytest.mark.parametrize(("tool", "platform"), sorted(EXPECTED_URLS))
def test_each_platform_picks_its_url(fetch_tools, tool, platform):
    rel = fetch_tools.release_for(tool, platform, fetch_tools.load_versions())
    assert rel.url == EXPECTED_URLS[(tool, platform)]
    assert rel.checksum_url.startswith(rel.url.rsplit("/", 1)[0] + "/")


def test_cockroach_follows_the_project_pin(fetch_tools):
    assert fetch_tools.release_for("cockroach", "linux-amd64", VERSIONS).version == CRDB == "v26.2.1"


def test_mirror_keeps_host_and_path(fetch_tools):
    url = "https://dl.k8s.io/release/v1.30.6/bin/linux/amd64/kubectl"
    assert (
        fetch_tools.mirrored(url, "http://127.0.0.1:1/")
        == "http://127.0.0.1:1/dl.k8s.io/release/v1.30.6/bin/linux/amd64/kubectl"
    )
    assert fetch_tools.mirrored(url, "") == url


# --- checksums -------------------------------------------------------------------------------------------


def test_checksum_file_formats(fetch_tools):
    h1, h2 = "a" * 64, "b" * 64
    assert fetch_tools.expected_sha256(f"{h1}\n", "kubectl") == h1
    assert fetch_tools.expected_sha256(f"{h1}  x.tar.gz\n{h2}  y.tar.gz\n", "y.tar.gz") == h2
    assert fetch_tools.expected_sha256(f"{h2} *y.tar.gz\n", "y.tar.gz") == h2
    with pytest.raises(fetch_tools.FetchError, match="names no"):
        fetch_tools.expected_sha256(f"{h1}  x.tar.gz\n", "y.tar.gz")
    with pytest.raises(fetch_tools.FetchError, match="not a SHA-256"):
        fetch_tools.expected_sha256("<html>NotFound</html>\n", "kubectl")


# --- end to end against the stand-in ----------------------------------------------------------------------


def test_good_archive_is_installed_and_runs(fetch_tools, server, tmp_path, capsys):
    publish_cockroach(server, fetch_tools)
    code, out, err = run(fetch_tools, capsys, env_for(tmp_path, server.url), "cockroach")
    assert (code, err) == (0, "")
    tool, path = out.split()
    assert tool == "cockroach" and path == str(tmp_path / "bin" / "cockroach")
    assert subprocess.run([path], capture_output=True, text=True).stdout.strip() == f"cockroach {CRDB}"
    assert (
        tmp_path / "bin" / f"cockroach-{CRDB.lstrip('v')}" / f"cockroach-{CRDB}.linux-amd64" / "lib"
    ).is_dir()
    assert not list((tmp_path / "bin").glob(".fetch-*")), "no work folder left behind"

    # A second run uses the installed copy: no request at all.
    before = len(server.requests)
    code, out, _ = run(fetch_tools, capsys, env_for(tmp_path, server.url), "cockroach")
    assert code == 0 and out.split()[1] == path and len(server.requests) == before


def test_each_archive_shape(fetch_tools, server, tmp_path, capsys):
    """Prometheus (one sha256sums.txt), Grafana (.sha256 with the hash alone, a whole home folder), kind and
    kubectl (the binary itself), helm (<os>-<arch>/helm), each for darwin-arm64 this time."""
    versions = fetch_tools.load_versions()
    plat = "darwin-arm64"
    sums = []
    for tool in ("prometheus", "grafana", "kind", "kubectl", "helm"):
        rel = fetch_tools.release_for(tool, plat, versions)
        body = script(f"{tool} ok")
        data = tarball({rel.binary: body}) if rel.binary else body
        digest = server.publish(rel.url, data)
        if tool == "prometheus":
            sums.append(f"{'0' * 64}  prometheus-2.53.2.linux-amd64.tar.gz\n{digest}  {rel.archive}\n")
            server.publish(rel.checksum_url, sums[-1].encode())
        elif tool == "grafana" or tool == "kubectl":
            server.publish(rel.checksum_url, f"{digest}\n".encode())
        else:
            server.publish(rel.checksum_url, f"{digest}  {rel.archive}\n".encode())
    code, out, err = run(
        fetch_tools,
        capsys,
        env_for(tmp_path, server.url, plat),
        "prometheus",
        "grafana",
        "kind",
        "kubectl",
        "helm",
    )
    assert (code, err) == (0, "")
    found = dict(line.split() for line in out.splitlines())
    for tool, path in found.items():
        assert subprocess.run([path], capture_output=True, text=True).stdout.strip() == f"{tool} ok"
    assert Path(found["grafana"]).resolve().parent.name == "bin"  # bin/grafana inside its home folder


def test_bad_checksum_is_refused_and_nothing_is_left(fetch_tools, server, tmp_path, capsys):
    publish_cockroach(server, fetch_tools, checksum_of=b"some other archive")
    code, out, err = run(fetch_tools, capsys, env_for(tmp_path, server.url), "cockroach")
    assert code == 2 and out == ""
    assert (
        err.count("\n") == 1 and "does not match its published SHA-256" in err and "nothing installed" in err
    )
    assert list((tmp_path / "bin").iterdir()) == [], "no archive, no folder, no link"


def test_offline_gives_one_line_per_missing_tool(fetch_tools, tmp_path, capsys):
    dead = f"http://127.0.0.1:{free_port()}"
    code, out, err = run(fetch_tools, capsys, env_for(tmp_path, dead), "cockroach", "grafana")
    assert code == 2 and out == ""
    lines = err.splitlines()
    assert len(lines) == 2
    assert (
        lines[0].startswith("missing cockroach: could not download")
        and "https://www.cockroachlabs.com/docs/releases/" in lines[0]
    )
    assert lines[1].startswith("missing grafana: could not download") and "offline?" in lines[1]
    assert "Traceback" not in err
    assert not list((tmp_path / "bin").glob(".fetch-*"))


def test_binary_on_path_is_used_without_download(fetch_tools, server, tmp_path, capsys):
    own = tmp_path / "own-bin"
    own.mkdir()
    (own / "cockroach").write_bytes(script("mine"))
    (own / "cockroach").chmod(0o755)
    code, out, err = run(fetch_tools, capsys, env_for(tmp_path, server.url, path=str(own)), "cockroach")
    assert (code, err) == (0, "") and out.split() == ["cockroach", str(own / "cockroach")]
    assert server.requests == []


def test_explicit_bin_variable_wins_and_a_wrong_one_is_named(fetch_tools, server, tmp_path, capsys):
    env = env_for(tmp_path, server.url) | {"COCKROACH_BIN": str(tmp_path / "nope")}
    code, _, err = run(fetch_tools, capsys, env, "cockroach")
    assert code == 2 and "COCKROACH_BIN=" in err and "not an executable file" in err and server.requests == []


def test_cli_usage_and_exit_codes(tmp_path):
    bad = subprocess.run(
        [sys.executable, "scripts/fetch_tools.py", "docker"], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert bad.returncode == 64 and "unknown: docker" in bad.stderr
    dead = f"http://127.0.0.1:{free_port()}"
    offline = subprocess.run(
        [sys.executable, "scripts/fetch_tools.py", "kind"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env=env_for(tmp_path, dead),
    )
    assert offline.returncode == 2 and offline.stdout == "" and len(offline.stderr.splitlines()) == 1
