"""`make dev` as a newcomer meets it, and the pieces it is made of.

The slow tests start the real `make dev` (dagster dev, the sample app, the embedded PostgreSQL): twice in a
fresh clone (offline, on a PATH without apt-get, dpkg, sudo or any of the tools; then again with a release
stand-in that has nothing), and once fetching Prometheus and Grafana from a stand-in mirror. Each start is
stopped with one SIGINT, exactly what a Ctrl-C sends to the terminal's foreground process group. The fast
tests cover `make help`, the local Grafana provisioning files, its service-account token, and the phase kinds.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
import yaml

from crdb_common import httpc
from evolution_pipeline.phases import REPO_ROOT
from tests.doubles.fake_grafana import FakeGrafana
from tests.local.conftest import free_port_base, live_processes
from tests.support.net import free_port
from tests.tools.conftest import load_fetch_tools
from tests.tools.release_server import ReleaseServer, tarball

WORKSPACE_QUERY = """{ workspaceOrError { __typename ... on Workspace { locationEntries { name
  locationOrLoadError { __typename ... on PythonError { message } } } } } }"""
# What a laptop without Debian, root or the tools lacks (`make dev` must need none of it).
HIDDEN = {
    "apt-get",
    "apt",
    "apt-cache",
    "dpkg",
    "sudo",
    "cockroach",
    "prometheus",
    "promtool",
    "grafana",
    "grafana-server",
    "kind",
    "kubectl",
    "helm",
    "docker",
}


# --- helpers ---------------------------------------------------------------------------------------------


def processes_with(marker: str, path: Path) -> list[str]:
    """Processes carrying the test's marker in their environment, or naming its folder on their command line."""
    return [
        f"{pid}: {cmd[:160]}"
        for pid, cmd, environ in live_processes()
        if marker.encode() in environ or str(path) in cmd
    ]


def kill_leftovers(marker: str, path: Path) -> None:
    for line in processes_with(marker, path):
        try:
            os.kill(int(line.split(":")[0]), signal.SIGKILL)
        except ProcessLookupError:
            pass


def shadow_path(folder: Path, hidden: set[str]) -> str:
    """A PATH of one folder linking every command of the current PATH except `hidden`."""
    folder.mkdir()
    for entry in os.environ.get("PATH", "").split(os.pathsep):
        if not entry or not Path(entry).is_dir():
            continue
        for cmd in Path(entry).iterdir():
            link = folder / cmd.name
            if cmd.name in hidden or link.exists() or link.is_symlink():
                continue
            if cmd.is_file() and os.access(cmd, os.X_OK):
                link.symlink_to(cmd)
    return str(folder)


class MakeDev:
    """One `make dev` in its own process group, its output collected line by line."""

    def __init__(self, cwd: Path, env: dict):
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            ["make", "--no-print-directory", "dev"],
            cwd=cwd,
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(
            target=lambda: self.lines.extend(iter(self.proc.stdout.readline, "")), daemon=True
        )
        self.reader.start()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_ready(self, timeout: float = 420) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None and "[dev] ready" not in self.output:
            time.sleep(0.25)
        assert "[dev] ready" in self.output, f"make dev did not become ready:\n{self.output}"
        took = time.monotonic() - self.started
        time.sleep(2)  # a part that dies right after "ready" makes dev.sh stop the rest: catch that here
        assert self.proc.poll() is None, f"make dev stopped after ready:\n{self.output}"
        return took

    def ctrl_c(self) -> int:
        os.killpg(self.proc.pid, signal.SIGINT)
        code = self.proc.wait(timeout=90)
        self.reader.join(timeout=10)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)


@pytest.fixture
def data_dir():
    """The local data folder outside pytest's tmp root: run as root, pgserver starts PostgreSQL as its own
    `pgserver` user, which must traverse the folder's parents, and pytest keeps its root at mode 700 (and
    other pytest sessions on the machine reset it)."""
    folder = Path(tempfile.mkdtemp(prefix="crdb-make-dev-"))
    folder.chmod(0o755)
    yield folder / "data"
    shutil.rmtree(folder, ignore_errors=True)


def dev_env(
    tmp_path: Path, mirror: str, path: str, marker: str, data_dir: Path
) -> tuple[dict, dict[str, int]]:
    ports: dict[str, int] = {}
    for name in ("dagster", "app", "prometheus", "grafana"):
        ports[name] = free_port_base(1, exclude=set(ports.values()))
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir(exist_ok=True)
    shutil.copy(REPO_ROOT / "dagster_home" / "dagster.yaml", dagster_home / "dagster.yaml")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"COCKROACH_BIN", "DAGSTER_HOME", "MAKEFLAGS", "MFLAGS", "CRDB_LICENSE"}
    }
    env.update(
        {
            "PATH": path,
            "CRDB_TOOLS_MIRROR": mirror,  # never the internet: a stand-in, or nothing at all
            "CRDB_TOOLS_TIMEOUT": "5",
            "PIP_NO_INDEX": "1",  # offline for Python packages too
            "DEV_DAGSTER_PORT": str(ports["dagster"]),
            "DEV_APP_PORT": str(ports["app"]),
            "DEV_PROMETHEUS_PORT": str(ports["prometheus"]),
            "DEV_GRAFANA_PORT": str(ports["grafana"]),
            "DEV_DAGSTER_HOME": str(dagster_home),
            "LOCAL_CRDB_DATA_DIR": str(data_dir),
            "LOCAL_CRDB_SQL_PORT_BASE": str(free_port_base()),
            "LOCAL_CRDB_LISTEN_PORT_BASE": str(free_port_base()),
            "LOCAL_CRDB_HTTP_PORT_BASE": str(free_port_base()),
            marker.split("=")[0]: marker.split("=")[1],
        }
    )
    return env, ports


def assert_ui_and_app_up(ports: dict[str, int]) -> None:
    app = httpc.get(f"http://127.0.0.1:{ports['app']}/healthz", timeout=10)
    assert app.status_code == 200
    ready = httpc.get(f"http://127.0.0.1:{ports['app']}/readyz", timeout=10)
    assert ready.status_code == 200 and ready.json()["ready"] is True, ready.text  # the embedded PostgreSQL
    info = httpc.get(f"http://127.0.0.1:{ports['dagster']}/server_info", timeout=10)
    assert info.status_code == 200 and "dagster_version" in info.json()
    workspace = httpc.post(
        f"http://127.0.0.1:{ports['dagster']}/graphql", json={"query": WORKSPACE_QUERY}, timeout=30
    ).json()["data"]["workspaceOrError"]
    entries = workspace["locationEntries"]
    assert [e["locationOrLoadError"]["__typename"] for e in entries] == ["RepositoryLocation"], entries


def assert_clean_stop(
    dev: MakeDev, code: int, marker: str, folders: list[Path], ports: dict[str, int]
) -> None:
    assert "[dev] stopped" in dev.output
    assert code in (0, -signal.SIGINT), f"make dev ended with {code}:\n{dev.output[-2000:]}"
    assert not re.search(r"\*\*\* .*Error \d+", dev.output), (
        "make reports no error for a stop that was asked for"
    )
    deadline = time.monotonic() + 30

    def left() -> list[str]:
        return [line for folder in folders for line in processes_with(marker, folder)]

    while time.monotonic() < deadline and left():
        time.sleep(0.5)
    assert left() == [], "everything make dev started is gone"
    for port in ports.values():
        with pytest.raises(httpx.ConnectError):
            httpc.get(f"http://127.0.0.1:{port}/", timeout=2)


def missing_lines(output: str) -> dict[str, str]:
    return {m.group(1): m.group(0) for m in re.finditer(r"\[dev\] missing (\w+): [^\n]*", output)}


# --- the slow ones: the real make dev ---------------------------------------------------------------------


def offline_clone(tmp_path: Path) -> Path:
    """A fresh clone whose venv is made without the network: the project's installed packages are reached
    through a .pth file, the clone's own code comes first, and setup's stamp says it is installed."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(REPO_ROOT), str(clone)], check=True)
    venv = clone / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    (site / "00-clone-source.pth").write_text(f"{clone}\n")
    (site / "01-project-packages.pth").write_text(f"{sysconfig.get_path('purelib')}\n")
    dagster = (REPO_ROOT / ".venv" / "bin" / "dagster").read_text().split("\n", 1)[1]
    (venv / "bin" / "dagster").write_text(f"#!{venv / 'bin' / 'python'}\n{dagster}")
    (venv / "bin" / "dagster").chmod(0o755)
    digest = hashlib.sha1((clone / "pyproject.toml").read_bytes()).hexdigest()[:12]
    (venv / f".installed-local-{digest}").touch()
    return clone


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_fresh_clone_offline_then_fetching_prometheus_and_grafana_brings_up_everything_and_one_sigint_stops_all(
    tmp_path, data_dir
):
    """`make dev` twice in a fresh clone, each up to ready and stopped with one Ctrl-C: ~50-100 s, the newcomer's
    first command cannot be proven any faster. Cold: offline, on a PATH without apt-get, dpkg, sudo or any of the
    tools. Warm (same clone and data folder): a release mirror (stand-in) with Prometheus and Grafana but no
    cockroach (HTTP 404), so make dev fetches and starts those two, provisions the dashboards and still has no
    cockroach binary. One test for both, as each start costs a whole stack. (That a tool already on PATH is used
    without a download is fetch_tools' rule: tests/tools/test_fetch_tools.py.)"""
    clone = offline_clone(tmp_path)
    path = shadow_path(tmp_path / "path", HIDDEN)
    for tool in HIDDEN:
        assert shutil.which(tool, path=path) is None, tool
    marker = f"DEV_TEST_MARKER={uuid.uuid4().hex}"
    env, ports = dev_env(tmp_path, f"http://127.0.0.1:{free_port()}", path, marker, data_dir)  # offline
    env.pop("CRDB_TOOLS_BIN_DIR", None)
    timings = {}
    dev = MakeDev(clone, env)
    try:
        timings["cold"] = dev.wait_ready()
        output = dev.output
        missing = missing_lines(output)
        assert set(missing) == {"cockroach", "prometheus", "grafana"}, output
        for tool, line in missing.items():
            assert "could not download" in line and "offline?" in line, line
        assert "https://prometheus.io/download/" in missing["prometheus"]
        assert "grafana.com/grafana/download" in missing["grafana"]
        assert "Traceback" not in output and "sudo" not in output and "apt-get install" not in output
        assert_ui_and_app_up(ports)
        assert not (clone / ".data" / "bin" / "cockroach").exists()
        code = dev.ctrl_c()
        assert_clean_stop(dev, code, marker, [tmp_path, data_dir], ports)
    finally:
        dev.kill()
        kill_leftovers(marker, tmp_path)
        kill_leftovers(marker, data_dir)

    secrets = data_dir / "secrets.env"
    cold_secrets = secrets.read_text()
    # Warm: the same PATH without any tool; the mirror has Prometheus and Grafana, and nothing for cockroach.
    platform = load_fetch_tools().host_platform()
    with ReleaseServer(tmp_path / "mirror") as mirror:
        publish_grafana_and_prometheus(mirror, platform)
        env.update(
            {
                "CRDB_TOOLS_MIRROR": mirror.url,
                "CRDB_TOOLS_BIN_DIR": str(tmp_path / "bin"),
                "CRDB_TOOLS_PLATFORM": platform,
            }
        )
        dev = MakeDev(clone, env)
        try:
            timings["warm"] = dev.wait_ready()
            output = dev.output
            missing = missing_lines(output)
            assert set(missing) == {"cockroach"} and "HTTP 404" in missing["cockroach"], output
            assert output.count("https://www.cockroachlabs.com/docs/releases/") == 1, (
                "one line about cockroach"
            )
            assert "Traceback" not in output, output
            assert_ui_and_app_up(ports)
            assert_fetched_tools_serve(dev, marker, tmp_path / "bin", data_dir, ports)

            assert stat.S_IMODE(secrets.stat().st_mode) == 0o600
            assert {line.split("=")[0] for line in secrets.read_text().splitlines()} >= {
                "APP_WRITER_PASSWORD",
                "APP_READER_PASSWORD",
                "GRAFANA_ADMIN_PASSWORD",
            }
            assert secrets.read_text() == cold_secrets, "a second make dev keeps the passwords it made"
            prom_yml = data_dir / "prometheus" / "prometheus.yml"
            assert f"127.0.0.1:{ports['app']}" in prom_yml.read_text()
            assert all(r.startswith("/") for r in mirror.requests) and mirror.requests, (
                "asked the stand-in only"
            )

            code = dev.ctrl_c()
            assert_clean_stop(dev, code, marker, [tmp_path, data_dir], ports)
        finally:
            dev.kill()
            kill_leftovers(marker, tmp_path)
            kill_leftovers(marker, data_dir)
    print(
        f"\nmake dev time to ready, fresh clone: cold (offline) {timings['cold']:.1f}s, "
        f"warm (Prometheus and Grafana fetched) {timings['warm']:.1f}s"
    )
    (tmp_path / "timings.json").write_text(json.dumps(timings))


def assert_fetched_tools_serve(
    dev: MakeDev, marker: str, bin_dir: Path, data_dir: Path, ports: dict[str, int]
) -> None:
    """Prometheus and Grafana, fetched into bin_dir, serve; Grafana has the dashboards and the pipeline's token."""
    grafana = f"http://127.0.0.1:{ports['grafana']}"
    assert f"Grafana        {grafana}" in dev.output
    assert (bin_dir / "grafana").is_symlink() and (bin_dir / "prometheus").is_symlink()
    assert wait_ok(f"http://127.0.0.1:{ports['prometheus']}/-/ready"), dev.output

    # Provisioned from grafana/local/provisioning: the three dashboards, viewable without a login.
    boards = httpc.get(f"{grafana}/api/search", timeout=10).json()
    want = {json.loads(f.read_text())["uid"] for f in (REPO_ROOT / "grafana" / "dashboards").glob("*.json")}
    assert {b["uid"] for b in boards} == want and len(want) == 3
    datasource = httpc.get(f"{grafana}/api/datasources/uid/prometheus", timeout=10).json()
    assert datasource["url"] == f"http://127.0.0.1:{ports['prometheus']}"

    # The pipeline (dagster dev and the runs it launches) links and annotates this Grafana.
    dagster = process_env(marker, "dagster dev")
    assert dagster["GRAFANA_URL"] == grafana
    token = (data_dir / "grafana" / "api-token").read_text().strip()
    assert dagster["GRAFANA_API_TOKEN"] == token
    note = httpc.post(
        f"{grafana}/api/annotations",
        json={"text": "phase"},
        timeout=10,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert note.status_code == 200
    assert token not in dev.output, "the token is never printed"


def publish_grafana_and_prometheus(mirror: ReleaseServer, platform: str) -> None:
    """Release-shaped archives on the stand-in: Grafana's home folder with the stand-in server as bin/grafana
    (tests/doubles/fake_grafana.py), and Prometheus wrapping the real one on PATH (make test installs it)."""
    fetch_tools = load_fetch_tools()
    versions = fetch_tools.load_versions()
    grafana = fetch_tools.release_for("grafana", platform, versions)
    home = grafana.binary.split("/")[0]
    fake = REPO_ROOT / "tests" / "doubles" / "fake_grafana.py"
    digest = mirror.publish(
        grafana.url,
        tarball(
            {
                grafana.binary: f'#!/bin/sh\nexec "{sys.executable}" "{fake}" "$@"\n'.encode(),
                f"{home}/conf/defaults.ini": b"",
            }
        ),
    )
    mirror.publish(grafana.checksum_url, f"{digest}\n".encode())  # dl.grafana.com: the hash alone
    prometheus = fetch_tools.release_for("prometheus", platform, versions)
    real = shutil.which("prometheus")
    assert real, "Prometheus is installed by make test"
    digest = mirror.publish(
        prometheus.url, tarball({prometheus.binary: f'#!/bin/sh\nexec "{real}" "$@"\n'.encode()})
    )
    mirror.publish(prometheus.checksum_url, f"{digest}  {prometheus.archive}\n".encode())


def wait_ok(url: str, seconds: float = 60) -> bool:
    """Prometheus is started but not waited for by make dev: give it time to open its port."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpc.get(url, timeout=5).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    return False


def process_env(marker: str, needle: str) -> dict[str, str]:
    for _, cmd, environ in live_processes():
        if marker.encode() in environ and needle in cmd:
            return dict(
                item.split("=", 1) for item in environ.decode(errors="replace").split("\0") if "=" in item
            )
    raise AssertionError(f"no process {needle!r} with the test's marker")


# --- the fast ones ----------------------------------------------------------------------------------------


def test_make_help_is_aligned_and_expanded():
    out = subprocess.run(
        ["make", "--no-print-directory", "help"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout
    lines = out.splitlines()
    assert len(lines) > 10 and "$(" not in out, out
    assert "127.0.0.1:8000" in out, "the app target shows its real address"
    columns = {len(m.group(1)) for line in lines if (m := re.match(r"(  make \S+\s+)\S", line))}
    assert len(columns) == 1, f"descriptions start in one column: {sorted(columns)}"
    for target in ("dev", "tools", "kind-tools", "test"):
        assert re.search(rf"^  make {target}\s", out, re.M), target


def test_kind_targets_without_tools_say_what_is_missing(tmp_path):
    path = shadow_path(tmp_path / "path", HIDDEN)
    env = {
        **os.environ,
        "PATH": path,
        "CRDB_TOOLS_MIRROR": f"http://127.0.0.1:{free_port()}",
        "CRDB_TOOLS_BIN_DIR": str(tmp_path / "bin"),
        "CRDB_TOOLS_TIMEOUT": "3",
    }
    env.pop("MAKEFLAGS", None)
    result = subprocess.run(
        ["make", "--no-print-directory", "kind-status"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    out = result.stdout + result.stderr
    for tool in ("kind", "kubectl", "helm"):
        assert f"missing {tool}: could not download" in out
    assert "command not found" not in out and "No such file" not in out
    docker = subprocess.run(
        ["make", "--no-print-directory", "docker-check"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert docker.returncode != 0 and "docker is missing" in docker.stdout + docker.stderr


def test_local_grafana_provisioning_points_at_the_dashboards_and_the_local_prometheus():
    local = REPO_ROOT / "grafana" / "local" / "provisioning"
    datasource = yaml.safe_load((local / "datasources" / "prometheus.yaml").read_text())["datasources"]
    provider = yaml.safe_load((local / "dashboards" / "crdb-live-evolution.yaml").read_text())["providers"]
    assert [(d["name"], d["uid"], d["type"], d["isDefault"]) for d in datasource] == [
        ("Prometheus", "prometheus", "prometheus", True)
    ]
    assert datasource[0]["url"] == "${CRDB_LOCAL_PROMETHEUS_URL}"
    assert provider[0]["type"] == "file" and provider[0]["options"]["path"] == "${CRDB_DASHBOARDS_DIR}"

    # The same datasource and provider as in Kubernetes, only the addresses differ.
    k8s_ds = yaml.safe_load(
        yaml.safe_load((REPO_ROOT / "k8s/observability/datasources.yaml").read_text())["data"][
            "prometheus.yaml"
        ]
    )["datasources"][0]
    assert {k: v for k, v in k8s_ds.items() if k != "url"} == {
        k: v for k, v in datasource[0].items() if k != "url"
    }
    k8s_provider = next(
        d
        for d in yaml.safe_load_all((REPO_ROOT / "k8s/observability/dashboards.yaml").read_text())
        if d["metadata"]["name"] == "grafana-dashboard-provider"
    )
    k8s_p = yaml.safe_load(next(iter(k8s_provider["data"].values())))["providers"][0]
    assert {k: v for k, v in k8s_p.items() if k != "options"} == {
        k: v for k, v in provider[0].items() if k != "options"
    }

    # What dev.sh sets: the path exists and holds the three dashboards, each using the datasource variable.
    dev_sh = (REPO_ROOT / "scripts" / "dev.sh").read_text()
    assert 'CRDB_DASHBOARDS_DIR="$REPO/grafana/dashboards"' in dev_sh
    assert 'GF_PATHS_PROVISIONING="$REPO/grafana/local/provisioning"' in dev_sh
    assert 'CRDB_LOCAL_PROMETHEUS_URL="$PROMETHEUS_URL"' in dev_sh
    dashboards = sorted((REPO_ROOT / "grafana" / "dashboards").glob("*.json"))
    assert [d.name for d in dashboards] == [
        "cockroachdb-evolution.json",
        "cockroachdb-overview.json",
        "sample-app.json",
    ]
    for board in dashboards:
        variables = {v["name"]: v for v in json.loads(board.read_text())["templating"]["list"]}
        assert variables["datasource"]["query"] == "prometheus", board.name


def test_dev_grafana_token_is_made_once_kept_and_renewed(tmp_path):
    grafana = FakeGrafana("pw").serve_in_thread()
    token_file = tmp_path / "api-token"
    script = [
        sys.executable,
        str(REPO_ROOT / "scripts" / "dev_grafana.py"),
        "token",
        grafana.url,
        str(token_file),
    ]
    env = {**os.environ, "GRAFANA_ADMIN_PASSWORD": "pw"}
    first = subprocess.run(script, env=env, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    key = first.stdout.strip().removeprefix("GRAFANA_API_TOKEN=")
    assert key in grafana.tokens and stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert [(a["name"], a["role"]) for a in grafana.accounts] == [("crdb-live-evolution-pipeline", "Editor")]
    again = subprocess.run(script, env=env, capture_output=True, text=True, timeout=60)
    assert again.stdout.strip().endswith(key) and len(grafana.tokens) == 1, "a token Grafana accepts is kept"
    grafana.tokens.clear()  # Grafana's data folder was reset
    renewed = subprocess.run(script, env=env, capture_output=True, text=True, timeout=60)
    assert renewed.returncode == 0 and not renewed.stdout.strip().endswith(key) and len(grafana.accounts) == 1
    token_file.unlink()
    wrong = subprocess.run(
        script, env={**env, "GRAFANA_ADMIN_PASSWORD": "other"}, capture_output=True, text=True, timeout=60
    )
    assert wrong.returncode == 1 and "delete .data/local/grafana" in wrong.stderr
    grafana.close()


def test_dev_grafana_home_is_the_archive_folder(tmp_path):
    home = tmp_path / "grafana-v11.1.4"
    (home / "bin").mkdir(parents=True)
    (home / "conf").mkdir()
    (home / "conf" / "defaults.ini").write_text("")
    (home / "bin" / "grafana").write_text("#!/bin/sh\n")
    link = tmp_path / "grafana"
    link.symlink_to(home / "bin" / "grafana")  # how fetch_tools.py links it into .data/bin
    found = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "dev_grafana.py"), "home", str(link)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert found.returncode == 0 and found.stdout.strip() == str(home)


@pytest.mark.parametrize(
    ("backend", "kinds"), [("operator", {"cockroachdb", "kubernetes"}), ("local", {"cockroachdb"})]
)
def test_phase_kinds_follow_the_backend(backend, kinds, monkeypatch):
    from evolution_pipeline.assets import all_assets
    from evolution_pipeline.configuration import cluster_kinds

    assert cluster_kinds(backend) == kinds
    # The assets read EVOLUTION_CLUSTER_BACKEND when they are built, as a code server builds them at load.
    monkeypatch.setenv("EVOLUTION_CLUSTER_BACKEND", backend)
    # The report reads Prometheus on either backend (kind "prometheus"): every other kind follows the backend.
    built = {k for a in all_assets() for s in a.specs for k in s.kinds if k not in ("dagster", "prometheus")}
    assert built == kinds


def setup_sandbox(tmp_path: Path) -> Path:
    """scripts/setup.sh in a copy of the repo whose venv is already installed (a stamp for each size), so
    only its system-tool step runs."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(REPO_ROOT / "scripts" / "setup.sh", repo / "scripts" / "setup.sh")
    shutil.copy(REPO_ROOT / "pyproject.toml", repo / "pyproject.toml")
    (repo / ".venv" / "bin").mkdir(parents=True)
    (repo / ".venv" / "bin" / "python").write_text("#!/bin/sh\nexit 0\n")
    (repo / ".venv" / "bin" / "python").chmod(0o755)
    digest = hashlib.sha1((repo / "pyproject.toml").read_bytes()).hexdigest()[:12]
    for size in ("local", "test"):
        (repo / ".venv" / f".installed-{size}-{digest}").touch()
    return repo


def test_setup_without_a_package_manager_names_the_test_tools_and_goes_on(tmp_path):
    repo = setup_sandbox(tmp_path)
    path = shadow_path(tmp_path / "path", HIDDEN | {"chromium", "wrk", "node", "npm"})
    env = {**os.environ, "PATH": path}
    test = subprocess.run(
        ["bash", "scripts/setup.sh"], cwd=repo, env=env, capture_output=True, text=True, timeout=60
    )
    assert test.returncode == 0, test.stderr
    need = [line for line in test.stdout.splitlines() if "the tests need:" in line]
    assert len(need) == 1 and "chromium" in need[0] and "wrk" in need[0] and "going on" in need[0], (
        test.stdout
    )
    dev = subprocess.run(
        ["bash", "scripts/setup.sh", "dev"], cwd=repo, env=env, capture_output=True, text=True, timeout=60
    )
    assert dev.returncode == 0 and dev.stdout.strip() == "[setup] ready (dev)", dev.stdout + dev.stderr
    bad = subprocess.run(
        ["bash", "scripts/setup.sh", "everything"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 64 and "usage" in bad.stderr
