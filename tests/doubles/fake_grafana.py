"""A stand-in Grafana server for the `make dev` tests. NOT Grafana (no Grafana can run here).

Run as the official archive's `bin/grafana` would be (`grafana server --homepath <home>`), configured the
way scripts/dev.sh configures the real one, it implements only what `make dev` relies on, each rule from
Grafana's documentation or source:

- `server` is the subcommand of the `grafana` binary (Grafana 10+: pkg/cmd/grafana `grafana server`); any
  other is refused. `--homepath` must hold conf/defaults.ini, else it exits 1 with Grafana's own message
  "Grafana-server Init Failed: Could not find config defaults, make sure homepath command line parameter
  is set or working directory is homepath" (pkg/setting/setting.go).
- Settings come from GF_<SECTION>_<KEY> variables (grafana.com/docs/grafana/latest/setup-grafana/
  configure-grafana/#override-configuration-with-environment-variables): server.http_addr/http_port,
  security.admin_user/admin_password, paths.provisioning/data, auth.anonymous enabled/org_role.
- The admin password is only used when the database is created (docs: [security] admin_password "only
  used on first run"): here the data folder keeps the first one.
- Provisioning files under <provisioning>/datasources and <provisioning>/dashboards are read with
  $VAR / ${VAR} in their values replaced from the environment (docs: administration/provisioning, "Use
  environment variables"; pkg/services/provisioning/values). An unset variable, a datasource without a URL or a dashboards path that is not a folder
  makes it exit 1 (stricter than Grafana, which logs and goes on).
- HTTP API: GET /api/health; GET /api/search (the provisioned dashboards: uid, title; anonymous viewers may
  read when auth.anonymous is enabled); GET /api/datasources/uid/<uid>; the service-account API
  (grafana.com/docs/grafana/latest/developers/http_api/serviceaccount/: search, create with a role,
  tokens -> {"key"}) with basic auth as admin; GET/POST /api/annotations with a Bearer token of an Editor
  service account (GET filtered by tags and time range as grafana_api.py says). Anything else: 401 without
  credentials, 404 otherwise.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.doubles.grafana_api import find_annotations
from tests.doubles.http_reply import send_json

ENV_REF = re.compile(r"\$\{(\w+)\}|\$(\w+)")


def expand(text: str, env: dict) -> str:
    def value(m: re.Match) -> str:
        name = m.group(1) or m.group(2)
        if name not in env:
            raise SystemExit(f"fake grafana: provisioning names ${name}, which is not set")
        return env[name]

    return ENV_REF.sub(value, text)


def expand_values(node, env: dict):
    """Environment references are replaced in the parsed YAML's string values, not in the raw text (so a
    comment may mention $VAR): pkg/services/provisioning/values/values.go interpolates values."""
    if isinstance(node, dict):
        return {k: expand_values(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [expand_values(v, env) for v in node]
    return expand(node, env) if isinstance(node, str) else node


def load(path: Path, env: dict) -> dict:
    import yaml

    return expand_values(yaml.safe_load(path.read_text()), env)


def read_provisioning(folder: Path, env: dict) -> tuple[list[dict], list[dict]]:
    """(datasources, dashboards) from the provisioning folder, as Grafana would provision them."""
    datasources, dashboards = [], []
    for f in sorted((folder / "datasources").glob("*.y*ml")):
        for ds in load(f, env).get("datasources", []):
            if not ds.get("url"):
                raise SystemExit(f"fake grafana: datasource {ds.get('name')} in {f} has no url")
            datasources.append(ds)
    for f in sorted((folder / "dashboards").glob("*.y*ml")):
        for provider in load(f, env).get("providers", []):
            path = Path(provider["options"]["path"])
            if not path.is_dir():
                raise SystemExit(f"fake grafana: dashboards path {path} (from {f}) is not a folder")
            for board in sorted(path.glob("*.json")):
                data = json.loads(board.read_text())
                dashboards.append(
                    {"uid": data["uid"], "title": data["title"], "folderTitle": provider.get("folder")}
                )
    return datasources, dashboards


class FakeGrafana:
    def __init__(
        self,
        password: str,
        data_dir: Path | None = None,
        datasources=(),
        dashboards=(),
        anonymous: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
    ):
        self.state_file = data_dir / "fake-grafana.json" if data_dir else None
        state = (
            json.loads(self.state_file.read_text()) if self.state_file and self.state_file.exists() else {}
        )
        self.password = state.get("password", password)  # only the first run's password counts
        self.accounts: list[dict] = state.get("accounts", [])
        self.tokens: dict[str, int] = state.get("tokens", {})  # token -> service account id
        self.annotations: list[dict] = []
        self.datasources, self.dashboards, self.anonymous = list(datasources), list(dashboards), anonymous
        self.lock = threading.Lock()
        self.save()
        self.server = ThreadingHTTPServer((host, port), self.handler())
        self.url = f"http://{host}:{self.server.server_address[1]}"

    def save(self) -> None:
        if self.state_file:
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            self.state_file.write_text(
                json.dumps({"password": self.password, "accounts": self.accounts, "tokens": self.tokens})
            )

    def who(self, header: str) -> str | None:
        """'admin', 'editor' (a token of an Editor service account), or None."""
        basic = "Basic " + base64.b64encode(f"admin:{self.password}".encode()).decode()
        if header == basic:
            return "admin"
        account = self.tokens.get(header.removeprefix("Bearer ")) if header.startswith("Bearer ") else None
        if account is not None and any(
            a["id"] == account and a["role"] in ("Editor", "Admin") for a in self.accounts
        ):
            return "editor"
        return None

    def handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                who = fake.who(self.headers.get("Authorization", ""))
                viewer = who or ("viewer" if fake.anonymous else None)
                if self.path == "/api/health":
                    return send_json(self, 200, {"database": "ok", "version": "stand-in"})
                if viewer is None:
                    return send_json(self, 401, {"message": "Unauthorized"})
                if self.path.startswith("/api/search"):
                    return send_json(self, 200, [{"type": "dash-db", **d} for d in fake.dashboards])
                if m := re.fullmatch(r"/api/datasources/uid/([\w-]+)", self.path):
                    found = [d for d in fake.datasources if d.get("uid") == m.group(1)]
                    return send_json(
                        self, 200 if found else 404, found[0] if found else {"message": "not found"}
                    )
                if self.path == "/api/annotations" or self.path.startswith("/api/annotations?"):
                    # Filtered as Grafana's store filters (tags AND, overlapping time range): grafana_api.py.
                    query = self.path.partition("?")[2]
                    return send_json(self, 200 if who else 401, find_annotations(fake.annotations, query)
                                     if who else {"message": "Unauthorized"})
                if self.path.startswith("/api/serviceaccounts/search") and who == "admin":
                    return send_json(
                        self, 200, {"serviceAccounts": fake.accounts, "totalCount": len(fake.accounts)}
                    )
                send_json(self, 404 if who else 401, {"message": "Not found" if who else "Unauthorized"})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                who = fake.who(self.headers.get("Authorization", ""))
                with fake.lock:
                    if self.path == "/api/annotations" and who:
                        fake.annotations.append(body)
                        return send_json(
                            self, 200, {"message": "Annotation added", "id": len(fake.annotations)}
                        )
                    if who != "admin":
                        return send_json(self, 401, {"message": "Unauthorized"})
                    if self.path == "/api/serviceaccounts":
                        account = {"id": len(fake.accounts) + 1, "name": body["name"], "role": body["role"]}
                        fake.accounts.append(account)
                        fake.save()
                        return send_json(self, 201, account)
                    if m := re.fullmatch(r"/api/serviceaccounts/(\d+)/tokens", self.path):
                        if not any(a["id"] == int(m.group(1)) for a in fake.accounts):
                            return send_json(self, 404, {"message": "service account not found"})
                        key = f"glsa_{uuid.uuid4().hex}"
                        fake.tokens[key] = int(m.group(1))
                        fake.save()
                        return send_json(
                            self, 200, {"id": len(fake.tokens), "name": body["name"], "key": key}
                        )
                send_json(self, 404, {"message": "Not found"})

            def log_message(self, *args):
                pass

        return Handler

    def serve_in_thread(self) -> FakeGrafana:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "server":
        print(f"fake grafana: unknown command {argv[:1]}; use `grafana server`", file=sys.stderr)
        return 1
    homepath = argv[argv.index("--homepath") + 1] if "--homepath" in argv else os.getcwd()
    if not (Path(homepath) / "conf" / "defaults.ini").is_file():
        print(
            "Grafana-server Init Failed: Could not find config defaults, make sure homepath command line "
            "parameter is set or working directory is homepath"
        )
        return 1
    env = dict(os.environ)
    datasources, dashboards = read_provisioning(Path(env["GF_PATHS_PROVISIONING"]), env)
    fake = FakeGrafana(
        env["GF_SECURITY_ADMIN_PASSWORD"],
        Path(env["GF_PATHS_DATA"]),
        datasources,
        dashboards,
        anonymous=env.get("GF_AUTH_ANONYMOUS_ENABLED") == "true",
        host=env.get("GF_SERVER_HTTP_ADDR", "0.0.0.0"),
        port=int(env.get("GF_SERVER_HTTP_PORT", "3000")),
    )
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=fake.server.shutdown).start())
    print(f"fake grafana (tests/doubles, NOT Grafana) listening on {fake.url}", flush=True)
    fake.server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
