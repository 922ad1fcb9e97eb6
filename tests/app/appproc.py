"""Run the real app (`python -m sample_app`) as a subprocess on a free 127.0.0.1 port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from crdb_common import httpc
from tests.support.net import free_port

REPO = Path(__file__).resolve().parents[2]


class AppProcess:
    def __init__(self, env: dict[str, str], log_path: Path, port: int | None = None):
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        # Only what the test gives: no APP_* or OTEL_* (tracing) setting leaks in from the outer shell.
        full_env = {k: v for k, v in os.environ.items() if not k.startswith(("APP_", "OTEL_"))}
        full_env.update(env)
        self._log = open(log_path, "wb")  # noqa: SIM115 - open for the life of the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sample_app", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=REPO,
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: we stop exactly what we started
        )
        try:
            self.wait_up()
        except BaseException:
            self.stop()  # never leave a half-started app behind (the caller gets no object to stop)
            raise

    def wait_up(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"app exited with {self.proc.returncode}: {self.log()}")
            try:
                if httpc.get(self.base_url + "/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"app did not answer /healthz within {timeout}s: {self.log()}")

    def wait_ready(self, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = httpc.get(self.base_url + "/readyz", timeout=5.0)
            if last.status_code == 200:
                return last.json()
            time.sleep(0.2)
        raise TimeoutError(f"app not ready within {timeout}s: {last.text if last else None}")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self._log.close()
