"""The local Grafana for `make dev`: its home folder, and a service-account token for the pipeline's annotations.

    python scripts/dev_grafana.py home GRAFANA_BINARY     prints the home path (conf/defaults.ini, public/)
    python scripts/dev_grafana.py token URL TOKEN_FILE    waits for Grafana, prints GRAFANA_API_TOKEN=...

`token` logs in as the local admin (GRAFANA_ADMIN_PASSWORD from the local secrets file), makes sure a service
account `crdb-live-evolution-pipeline` with role Editor exists (what posting annotations needs) and keeps
one token for it in TOKEN_FILE (mode 600), re-created when Grafana no longer accepts it. Grafana's service
account API: POST /api/serviceaccounts, GET /api/serviceaccounts/search, POST /api/serviceaccounts/<id>/tokens
(grafana.com/docs/grafana/latest/developers/http_api/serviceaccount/).
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ACCOUNT = "crdb-live-evolution-pipeline"


def home(binary: str) -> Path | None:
    """The folder holding conf/defaults.ini: beside the binary's bin/ (the official archive), or the
    Debian/RPM package's /usr/share/grafana."""
    real = Path(binary).resolve()
    for candidate in (
        real.parent.parent,
        Path("/usr/share/grafana"),
        Path("/opt/homebrew/share/grafana"),
        Path("/usr/local/share/grafana"),
    ):
        if (candidate / "conf" / "defaults.ini").is_file():
            return candidate
    return None


def call(url: str, auth: str, method: str = "GET", body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url,
        data=data,
        method=method,
        headers={"Authorization": auth, "Content-Type": "application/json", "Accept": "application/json"},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1, never a proxy
    try:
        with opener.open(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, {}


def wait_healthy(url: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if call(f"{url}/api/health", "")[0] == 200:
                return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


def token(url: str, token_file: Path, password: str, wait_seconds: float = 90) -> str:
    if not wait_healthy(url, wait_seconds):
        raise RuntimeError(
            f"Grafana at {url} did not answer /api/health within {wait_seconds:.0f}s (see its log)"
        )
    if token_file.is_file():
        kept = token_file.read_text().strip()
        if kept and call(f"{url}/api/annotations?limit=1", f"Bearer {kept}")[0] == 200:
            return kept
    admin = "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()
    code, found = call(f"{url}/api/serviceaccounts/search?query={ACCOUNT}", admin)
    if code == 401:
        raise RuntimeError(
            "Grafana refused the local admin password: its data folder was made with another "
            "one; delete .data/local/grafana and restart make dev"
        )
    ids = [a["id"] for a in found.get("serviceAccounts", []) if a.get("name") == ACCOUNT]
    if not ids:
        code, created = call(f"{url}/api/serviceaccounts", admin, "POST", {"name": ACCOUNT, "role": "Editor"})
        if code not in (200, 201):
            raise RuntimeError(f"Grafana did not create the service account (HTTP {code})")
        ids = [created["id"]]
    code, made = call(
        f"{url}/api/serviceaccounts/{ids[0]}/tokens", admin, "POST", {"name": f"make-dev-{int(time.time())}"}
    )
    if code not in (200, 201) or not made.get("key"):
        raise RuntimeError(f"Grafana did not issue a token (HTTP {code})")
    token_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(made["key"] + "\n")
    return made["key"]


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "home":
        found = home(argv[1])
        if not found:
            print(f"no Grafana home folder (conf/defaults.ini) found for {argv[1]}", file=sys.stderr)
            return 1
        print(found)
        return 0
    if len(argv) == 3 and argv[0] == "token":
        password = os.environ.get("GRAFANA_ADMIN_PASSWORD", "")
        if not password:
            print(
                "GRAFANA_ADMIN_PASSWORD is not set (make dev keeps it in the local secrets file)",
                file=sys.stderr,
            )
            return 2
        try:
            print(f"GRAFANA_API_TOKEN={token(argv[1].rstrip('/'), Path(argv[2]), password)}")
        except (RuntimeError, OSError) as exc:
            print(f"no Grafana annotations: {exc}", file=sys.stderr)
            return 1
        return 0
    print(__doc__, file=sys.stderr)
    return 64


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
