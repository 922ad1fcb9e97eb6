"""Start-up with a bad configuration (issue 26 items 7 and 8): one line naming what is wrong, exit 2, no
traceback and no secret, whatever the variable or argument; and secrets stay out of the log once running."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from crdb_common import httpc

from .appproc import AppProcess
from .conftest import app_env

REPO = Path(__file__).resolve().parents[2]
SECRET = "s3cr%zzET"  # a stray % : libpq quotes the token it cannot decode, i.e. the password
LOCAL = {"APP_DB_WRITER_URL": "postgresql://app_rw_01:pw@127.0.0.1:1/app",
         "APP_DB_READER_URL": "postgresql://app_ro_01:pw@127.0.0.1:1/app", "APP_HASH_SALT": "x" * 20}
OTLP = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}


def run_app(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("APP_", "OTEL_"))}
    full.update(env)
    return subprocess.run([sys.executable, "-m", "sample_app", *args], cwd=REPO, env=full, capture_output=True,
                          text=True, timeout=60, check=False)


def assert_one_line_exit_2(proc: subprocess.CompletedProcess, *named: str) -> str:
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "Traceback" not in out, out
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("sample_app: "), out
    for word in named:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("extra, named", [
    (dict(OTLP, OTEL_BSP_MAX_EXPORT_BATCH_SIZE="abc"), "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"),
    (dict(OTLP, OTEL_BSP_MAX_EXPORT_BATCH_SIZE="0"), "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"),
    (dict(OTLP, OTEL_BSP_SCHEDULE_DELAY="abc"), "OTEL_BSP_SCHEDULE_DELAY"),
    (dict(OTLP, OTEL_BSP_EXPORT_TIMEOUT="-5"), "OTEL_BSP_EXPORT_TIMEOUT"),
    (dict(OTLP, OTEL_EXPORTER_OTLP_TIMEOUT="soon"), "OTEL_EXPORTER_OTLP_TIMEOUT"),
    ({"OTEL_PROPAGATORS": "bogus"}, "OTEL_PROPAGATORS"),  # tracing off: still read on import
    (dict(OTLP, OTEL_PROPAGATORS="tracecontext,bogus"), "OTEL_PROPAGATORS"),
    ({"APP_DB_WRITER_URL": "postgresql://app_rw_01:pw@127.0.0.1:99999x/app"}, "APP_DB_WRITER_URL"),
    ({"APP_DB_READER_URL": "postgresql://app_ro_01:pw@127.0.0.1:70000/app"}, "APP_DB_READER_URL"),
])
def test_bad_variables_are_one_line_and_exit_2(extra, named):
    assert_one_line_exit_2(run_app(dict(LOCAL, **extra)), named)


@pytest.mark.parametrize("args, named", [
    (("--port", "99999"), "--port"),
    (("--port", "-1"), "--port"),
    (("--host", "256.1.1.1"), "--host"),
    (("--host", "no-such-host.invalid"), "--host"),
])
def test_bad_listen_arguments_are_one_line_and_exit_2(args, named):
    assert_one_line_exit_2(run_app(LOCAL, *args), named)


def test_a_port_in_use_is_one_line_and_exit_2():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = assert_one_line_exit_2(run_app(LOCAL, "--host", "127.0.0.1", "--port", str(port)), "--port")
    assert "already in use" in line


@pytest.mark.parametrize("var", ["APP_DB_WRITER_URL", "APP_DB_READER_URL"])
def test_a_password_libpq_cannot_decode_is_never_printed(var):
    env = dict(LOCAL, **{var: f"postgresql://app_rw_01:{SECRET}@127.0.0.1:5432/app"})
    line = assert_one_line_exit_2(run_app(env), var, "percent-encoded")
    assert SECRET not in line and "zzET" not in line, line


@pytest.mark.slow
def test_otlp_endpoint_credentials_are_not_logged(pg, tmp_path):
    """Tracing on, to an endpoint with user info that nothing listens on: the INFO start line and the export
    failure line show the endpoint without its password."""
    env = app_env(pg, APP_LOG_LEVEL="INFO", OTEL_EXPORTER_OTLP_ENDPOINT="http://tracer:T0kenS3cret@127.0.0.1:9",
                  OTEL_BSP_SCHEDULE_DELAY="100", OTEL_EXPORTER_OTLP_TIMEOUT="1")
    app = AppProcess(env, tmp_path / "app.log")
    try:
        app.wait_ready()
        httpc.post(app.base_url + "/login", json={"user_id": "traced"})
        deadline = time.monotonic() + 15
        while "trace export to" not in app.log() and time.monotonic() < deadline:
            time.sleep(0.2)
        log = app.log()
        assert "tracing on: OTLP/HTTP to http://tracer:***@127.0.0.1:9/v1/traces" in log, log
        assert "trace export to http://tracer:***@" in log, log
        assert "T0kenS3cret" not in log
    finally:
        app.stop()
