"""A real run as the image's user, on a DAGSTER_HOME laid out as k8s/pipeline/Dockerfile makes it.

On Kubernetes every run pod runs the image as uid 10001 with home /nonexistent, DAGSTER_HOME set by the
chart (k8s/pipeline/dagster-values.yaml global.dagsterHome) and the chart's instance dagster.yaml mounted into
it as a root-owned file. A run writes its op outputs (filesystem IO manager) and compute logs under
$DAGSTER_HOME/storage, so that directory must be the user's. Here: privileges dropped with setpriv to uid
10001, an environment with HOME=/nonexistent and nothing else, the instance as the chart renders it
(tests/manifests/chart_instance.py: PostgreSQL run/event storage on a real server, the K8sRunLauncher,
telemetry as the values say), and `dagster job execute` of the pipeline's own rehearsal-reset asset
against the stand-in cluster. Writable for the run: what the Dockerfile's `install -d -o 10001` lines make
writable, /tmp (world-writable in the image too), and the stand-in cluster's state file (the cluster, not
the pod's disk).

Each run starts a fresh `dagster` CLI (about 5 s on two shared cores), and the module starts a PostgreSQL:
the three runs take ~30 s together.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from evolution_pipeline.phases import REPO_ROOT
from tests.doubles.pipeline_world import new_world, read_world
from tests.manifests import chart_instance
from tests.manifests.test_dagster_instance import PASSWORD, dagster_db, write_kubeconfig  # noqa: F401

DOCKERFILE = REPO_ROOT / "k8s" / "pipeline" / "Dockerfile"
VENV_BIN = REPO_ROOT / ".venv" / "bin"
INSTALL_DIR = re.compile(r"install -d -o (\d+) -g (\d+) -m ([0-7]{3,4}) (\S+)")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.geteuid() != 0 or not shutil.which("setpriv"),
        reason="dropping to the image's uid needs root and setpriv (CI runs as root)",
    ),
]


def image_user() -> tuple[int, int, str]:
    text = DOCKERFILE.read_text()
    user = re.search(r"^USER (\d+):(\d+)$", text, re.MULTILINE)
    home = re.search(r"useradd [^\n]*--uid (\d+) [^\n]*--home-dir (\S+)", text)
    assert user and home and home.group(1) == user.group(1), "the Dockerfile's USER and useradd disagree"
    return int(user.group(1)), int(user.group(2)), home.group(2)


def dockerfile_dagster_home() -> str:
    match = re.search(r"^ENV DAGSTER_HOME=(\S+)$", DOCKERFILE.read_text(), re.MULTILINE)
    assert match, "the Dockerfile sets no DAGSTER_HOME"
    return match.group(1)


def lay_out_image(root: Path) -> None:
    """The directories the Dockerfile creates with `install -d`, under root, with its owners and modes."""
    for uid, gid, mode, path in INSTALL_DIR.findall(DOCKERFILE.read_text()):
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.mkdir()
        os.chown(target, int(uid), int(gid))
        target.chmod(int(mode, 8))


def chmod_tree(top: Path, stop: Path) -> None:
    """Parents root-owned and traversable, as in the image's filesystem."""
    for parent in [top, *top.parents]:
        if parent == stop.parent:
            break
        parent.chmod(0o755)


@pytest.fixture
def image_root():
    root = Path(tempfile.mkdtemp(prefix="unprivileged-run-"))  # not tmp_path: its parents are 0700
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def prepare(root: Path, pg_port: int, *, values: dict | None = None, home_owner: int | None = None) -> dict:
    """The pod's filesystem and environment; home_owner overrides the Dockerfile's owner of DAGSTER_HOME."""
    uid, gid, user_home = image_user()
    dagster_home = dockerfile_dagster_home()
    lay_out_image(root / "image")
    home = root / "image" / dagster_home.lstrip("/")
    assert home.is_dir(), f"the Dockerfile does not create DAGSTER_HOME ({dagster_home}) with install -d"
    if home_owner is not None:
        os.chown(home, home_owner, home_owner)
        home.chmod(0o755)
    chmod_tree(home.parent, root / "image")
    # The chart's instance ConfigMap, mounted as one root-owned file (configMap volumes: mode 0644).
    kube = root / "kube"
    kube.mkdir(mode=0o755)
    kubeconfig = write_kubeconfig(kube / "config")
    instance = chart_instance.render(pg_port, kubeconfig, values)
    (home / "dagster.yaml").write_text(yaml.safe_dump(instance))
    (home / "dagster.yaml").chmod(0o644)
    kubeconfig.chmod(0o644)
    # The stand-in cluster's state: the cluster's, writable by whoever drives it.
    cluster = root / "cluster"
    cluster.mkdir(mode=0o755)
    world = new_world(cluster / "world.json")
    os.chown(cluster, uid, gid)
    os.chown(world, uid, gid)
    env = {
        "HOME": user_home,
        "PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin",
        "PYTHONDONTWRITEBYTECODE": "1",
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_PASSWORD": PASSWORD,
        "DAGSTER_K8S_INSTANCE_CONFIG_MAP": "dagster-instance",
        "DAGSTER_K8S_PG_PASSWORD_SECRET": "dagster-postgresql-secret",
        "DAGSTER_K8S_PIPELINE_RUN_ENV_CONFIGMAP": "dagster-pipeline-env",
        "TEST_WORLD": str(world),
    }
    return {"env": env, "home": home, "world": world, "uid": uid, "gid": gid, "user_home": user_home}


def drop_to(pod: dict) -> list[str]:
    return [
        "setpriv", f"--reuid={pod['uid']}", f"--regid={pod['gid']}", "--clear-groups", "--",
        "env", "-i", *(f"{k}={v}" for k, v in pod["env"].items()),
    ]  # fmt: skip


def python_for(pod: dict) -> tuple[list[str], str]:
    """(interpreter argv, bootstrap code). The venv's interpreter when the image's user can execute it;
    otherwise (a venv built on an interpreter under a private home, as here under /root) the system
    interpreter of the same minor version without its own site-packages (-S), on the venv's site-packages:
    the same packages the venv holds."""
    venv_python = VENV_BIN / "python"
    probe = subprocess.run([*drop_to(pod), str(venv_python), "-c", "pass"], capture_output=True, check=False)
    if probe.returncode == 0:
        return [str(venv_python)], ""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    system = shutil.which(version, path="/usr/local/bin:/usr/bin")
    if system is None:
        pytest.skip(f"the image's user cannot run {venv_python} and there is no system {version}")
    site_packages = REPO_ROOT / ".venv" / "lib" / version / "site-packages"
    return [system, "-S"], f"import site; site.addsitedir({str(site_packages)!r}); "


def run_as_image_user(pod: dict) -> subprocess.CompletedProcess:
    python, bootstrap = python_for(pod)
    cli = [
        "job",
        "execute",
        "-m",
        "tests.manifests.unprivileged_location",
        "-d",
        str(REPO_ROOT),
        "-j",
        "fresh",
    ]
    code = f"{bootstrap}import sys; from dagster._cli import main; sys.argv = ['dagster', *{cli!r}]; "
    code += "sys.exit(main())"
    command = [*drop_to(pod), *python, "-c", code]
    return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=240, check=False)


def test_a_run_as_the_image_user_succeeds_and_writes_only_under_dagster_home(
    dagster_db, image_root  # noqa: F811
):
    pod = prepare(image_root, dagster_db.port)
    result = run_as_image_user(pod)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]

    # The run really happened: the stand-in cluster was reset once, the run is recorded in PostgreSQL.
    assert read_world(pod["world"])["calls"].get("reset") == 1
    assert dagster_db.execute("SELECT status FROM runs", dbname="dagster")[-1] == ("SUCCESS",)
    home: Path = pod["home"]
    # What a run writes, all of it under DAGSTER_HOME and owned by the image's user.
    output = home / "storage" / "rehearsal" / "fresh_environment"
    assert output.is_file(), sorted(str(p.relative_to(home)) for p in home.rglob("*"))
    compute_logs = [p for p in (home / "storage").rglob("*") if p.suffix in (".out", ".err", ".complete")]
    assert compute_logs, "no compute logs under $DAGSTER_HOME/storage"
    written = [p for p in home.rglob("*") if p.name != "dagster.yaml"]
    assert all(p.stat().st_uid == pod["uid"] for p in written)
    assert not Path(pod["user_home"]).exists()
    # Telemetry is off in the values, so nothing of it exists (it would write $DAGSTER_HOME/.telemetry).
    assert not (home / ".telemetry").exists()


@pytest.mark.parametrize(
    ("case", "change", "error"),
    [
        # The image before DAGSTER_HOME was the user's: root-owned (0755), the run cannot write its outputs.
        ("dagster_home root-owned", {"home_owner": 0}, "Permission denied"),
        # The chart's default telemetry: dagster_shared/telemetry makes ~/.dagster/.telemetry for the user
        # id, and the user's home is /nonexistent.
        (
            "telemetry on",
            {"values": {**chart_instance.values(), "telemetry": {"enabled": True}}},
            "/nonexistent",
        ),
    ],
)
def test_the_same_run_fails_without_what_the_image_and_values_provide(
    dagster_db,
    image_root,
    case,
    change,
    error,  # noqa: F811
):
    pod = prepare(image_root, dagster_db.port, **change)
    result = run_as_image_user(pod)
    assert result.returncode != 0, f"{case}: the run succeeded anyway"
    assert error in result.stdout + result.stderr
