"""Bad inputs against the real sample app (real PostgreSQL), its credential files, its start-up and `plan`.

    .venv/bin/python bench/hostile_inputs.py [--json]

Each input has an expected good outcome (a 4xx with a JSON body, no effect, one line and exit 2, no secret
shown, ...); the script sends it, judges the outcome and prints a table, one row per input, with the cause it
belongs to (issue 26's numbering; "ok" rows are inputs that were already handled well, kept as controls).
Run from another checkout (e.g. an older commit unpacked with `git archive`) it measures that code: the
script only uses the repository it lives in. About a minute on two cores.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import httpx
from prometheus_client.parser import text_string_to_metric_families

from crdb_common import httpc
from tests.app.appproc import AppProcess
from tests.app.conftest import app_env
from tests.app.pg import LocalPostgres
from tests.app.secret_volume import SecretVolume

SECRET = "s3cr%zzET"
ROWS: list[tuple[str, str, bool, str]] = []  # cause, input, good, what happened


def record(cause: str, name: str, fn: Callable[[], tuple[bool, str]]) -> None:
    try:
        good, what = fn()
    except Exception as exc:  # noqa: BLE001 - a crash of the probe is a bad outcome, reported
        good, what = False, f"probe error: {type(exc).__name__}: {str(exc)[:120]}"
    ROWS.append((cause, name, good, what[:140]))


def counted(base: str, route: str, status: str) -> float:
    text = httpc.get(base + "/metrics", timeout=5).text
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == "app_requests_total" and s.labels.get("route") == route and s.labels.get("status") == status)


def spike_idle(c: httpx.Client) -> bool:
    if c.get("/spike").json().get("active"):
        c.delete("/spike")
        return False
    return True


# --- HTTP inputs -----------------------------------------------------------------------------------------
def http_cases(app: AppProcess, pg: LocalPostgres) -> None:
    base = app.base_url
    c = httpx.Client(base_url=base, timeout=10)

    def expect(method: str, path: str, status: int, **kw) -> Callable[[], tuple[bool, str]]:
        def run():
            r = c.request(method, path, **kw)
            body_ok = r.headers.get("content-type", "").startswith("application/json") and "Traceback" not in r.text
            idle = spike_idle(c)
            return r.status_code == status and body_ok and idle, f"{r.status_code} {r.text[:80]}" + (
                "" if idle else " (a spike started)")
        return run

    # controls: already handled well before issue 26
    for body in ('{"user_id": ""}', '{"user_id": 5}', '{"user_id": "a b"}', '{"user_id": "' + "x" * 65 + '"}',
                 '{"nope": 1}', "[1]", "{bad json", '{"user_id": null}'):
        record("ok", f"POST /login {body[:40]}", expect("POST", "/login", 400, content=body,
                                                          headers={"Content-Type": "application/json"}))
    for q in ("%", "", "a" * 41, "_x", "a%25"):
        record("ok", f"GET /search?q={q[:20]}", expect("GET", "/search", 400, params={"q": q}))
    for limit in ("0", "51", "x", "-1", "9" * 400):
        record("ok", f"GET /search limit={limit[:20]}", expect("GET", "/search", 400, params={"q": "a", "limit": limit}))
    for body in ({"seconds": 0}, {"seconds": 10**6}, {"rps": -1}, {"rps": "10"}, {"mix": {"x": 1}},
                 {"mix": {"login": -1}}, {"mix": []}, {"mix": {"login": 0, "search": 0}}, {"other": 1}):
        record("ok", f"POST /spike {json.dumps(body)[:40]}", expect("POST", "/spike", 400, json=body))
    record("ok", "POST /control/nope/start", expect("POST", "/control/nope/start", 404))
    record("ok", "GET /nowhere", expect("GET", "/nowhere", 404))

    # 1: clients that disconnect mid-request
    for n in range(3):
        def disconnect():
            before = counted(base, "/login", "500")
            body = b'{"user_id": "gone"}'
            with socket.create_connection(("127.0.0.1", app.port), timeout=5) as s:
                s.sendall(b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                          b"Content-Length: %d\r\n\r\n" % len(body) + body[:8])
                time.sleep(0.2)
            time.sleep(0.5)
            after = counted(base, "/login", "500")
            return after == before, f"5xx counted: {after - before:g}"
        record("1", f"POST /login, client disconnects mid-body #{n + 1}", disconnect)

    # 2: weights whose sum overflows; 3: integers too large for a float
    for body in ('{"mix": {"login": 1e308, "search": 1e308}}', '{"mix": {"login": 1.7e308, "search": 1.7e308}}',
                 '{"mix": {"login": 9e307, "search": 9e307}, "rps": 5}'):
        record("2", f"POST /spike {body}", expect("POST", "/spike", 400, content=body,
                                                  headers={"Content-Type": "application/json"}))
    record("2", "POST /spike rps=5e-324 (sends nothing, holds the slot)",
           expect("POST", "/spike", 400, content='{"rps": 5e-324}', headers={"Content-Type": "application/json"}))
    for field in ("seconds", "rps"):
        body = json.dumps({field: 0}).replace("0", "9" * 400)
        record("3", f"POST /spike {field}=<400 digits>", expect("POST", "/spike", 400, content=body,
                                                               headers={"Content-Type": "application/json"}))
    for kind in ("login", "search"):
        body = json.dumps({"mix": {kind: 0}}).replace("0", "9" * 400)
        record("3", f"POST /spike mix.{kind}=<400 digits>", expect("POST", "/spike", 400, content=body,
                                                                  headers={"Content-Type": "application/json"}))
    record("3", "POST /spike seconds=-<400 digits>", expect("POST", "/spike", 400, content='{"seconds": -%s}' % ("9" * 400),
                                                           headers={"Content-Type": "application/json"}))

    # 5: content types and cross-site requests
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
        def login_as(ctype=ctype):
            who = f"csrf-{ctype.split('/')[1][:8]}"
            r = c.post("/login", content=json.dumps({"user_id": who}), headers={"Content-Type": ctype})
            rows = pg.execute("SELECT count(*) FROM login_events WHERE user_id = %s", (who,))[0][0]
            return r.status_code == 415 and rows == 0, f"{r.status_code}, rows written: {rows}"
        record("5", f"POST /login Content-Type: {ctype}", login_as)
        record("5", f"POST /spike Content-Type: {ctype}",
               expect("POST", "/spike", 415, content='{"seconds": 2, "rps": 5}', headers={"Content-Type": ctype}))
    cross = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
    for method, path, body in (("POST", "/login", {"user_id": "xsite"}), ("POST", "/spike", {"seconds": 2, "rps": 5}),
                               ("DELETE", "/spike", None), ("POST", "/control/readers/start", None)):
        def xsite(method=method, path=path, body=body):
            r = c.request(method, path, json=body, headers=cross)
            started = c.get("/control").json()["readers"]["running"]
            if started:
                c.post("/control/readers/stop")
            idle = spike_idle(c)
            return r.status_code == 403 and idle and not started, f"{r.status_code}"
        record("5", f"{method} {path} from another site", xsite)

    # 6: a newline at the end of user_id
    for uid in ("alice\n", "bob\n"):
        def newline(uid=uid):
            r = c.post("/login", json={"user_id": uid})
            return r.status_code == 400, f"{r.status_code}"
        record("6", f"POST /login user_id={uid!r}", newline)

    # slow clients: one byte every 0.3 s must not hold a connection past the total limit
    def trickle():
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", app.port), timeout=5) as s:
            s.sendall(b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 60\r\n\r\n")
            s.settimeout(0.3)
            while time.monotonic() - started < 8:
                try:
                    s.sendall(b"a")
                    if not s.recv(1000):
                        break
                except TimeoutError:
                    continue
                except OSError:
                    break
        held = time.monotonic() - started
        return held < 5, f"connection held {held:.1f}s (limit 2 s where the app has one)"
    record("slow", "POST /login trickling its body", trickle)
    c.close()


# --- credential files ---------------------------------------------------------------------------------------
def credential_cases(pg: LocalPostgres, tmp: Path) -> None:
    for pool, wrong in (("writer", "app_ro_02"), ("reader", "app_rw_02")):
        def run(pool=pool, wrong=wrong):
            vol = SecretVolume(tmp / f"secret-{pool}")
            vol.write({"writer-url": pg.url("app_rw_01"), "reader-url": pg.url("app_ro_01")})
            env = app_env(pg, APP_DB_WRITER_URL_FILE=vol.path("writer-url"), APP_DB_READER_URL_FILE=vol.path("reader-url"))
            del env["APP_DB_WRITER_URL"], env["APP_DB_READER_URL"]
            app = AppProcess(env, tmp / f"cred-{pool}.log")
            try:
                app.wait_ready()
                urls = {"writer-url": pg.url("app_rw_01"), "reader-url": pg.url("app_ro_01")}
                urls[f"{pool}-url"] = pg.url(wrong)
                vol.write(urls)
                time.sleep(3)
                logins = [httpc.post(app.base_url + "/login", json={"user_id": "k"}).status_code for _ in range(30)]
                ready = httpc.get(app.base_url + "/readyz").status_code
                bad = sum(s != 200 for s in logins)
                return bad == 0 and ready == 200, f"{bad}/30 logins failed, /readyz {ready}"
            finally:
                app.stop()
        record("4", f"{wrong}'s URL written into the {pool}'s file", run)
    pg.restore_access()


# --- start-up -----------------------------------------------------------------------------------------------
LOCAL = {"APP_DB_WRITER_URL": "postgresql://app_rw_01:pw@127.0.0.1:1/app",
         "APP_DB_READER_URL": "postgresql://app_ro_01:pw@127.0.0.1:1/app", "APP_HASH_SALT": "x" * 20}
OTLP = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}


def run_module(module: str, env: dict[str, str], *args: str, timeout: float = 20) -> tuple[int | None, str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("APP_", "OTEL_", "CRDB_", "EVOLUTION_"))}
    full.update(env)
    try:
        p = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=full, capture_output=True,
                           text=True, timeout=timeout, check=False)
        return p.returncode, p.stdout + p.stderr
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode(errors="replace") + (exc.stderr or b"").decode(errors="replace")
        return None, out  # still running: it started (or hangs) instead of refusing


def one_line_exit_2(module: str, env: dict[str, str], *args: str, secret: str = "") -> tuple[bool, str]:
    code, out = run_module(module, env, *args)
    lines = [line for line in out.splitlines() if line.strip()]
    good = code == 2 and "Traceback" not in out and len(lines) == 1 and (not secret or secret not in out)
    return good, f"exit {code}, {len(lines)} line(s): {(lines[-1] if lines else '')[:90]}"


def startup_cases() -> None:
    cases = [
        ("8", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE=abc", dict(OTLP, OTEL_BSP_MAX_EXPORT_BATCH_SIZE="abc"), ()),
        ("8", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE=0", dict(OTLP, OTEL_BSP_MAX_EXPORT_BATCH_SIZE="0"), ()),
        ("8", "OTEL_BSP_SCHEDULE_DELAY=abc", dict(OTLP, OTEL_BSP_SCHEDULE_DELAY="abc"), ()),
        ("8", "OTEL_PROPAGATORS=bogus", {"OTEL_PROPAGATORS": "bogus"}, ()),
        ("8", "--port 99999", {}, ("--port", "99999")),
        ("8", "--host 256.1.1.1", {}, ("--host", "256.1.1.1")),
        ("8", "URL port 99999x", {"APP_DB_WRITER_URL": "postgresql://u:pw@127.0.0.1:99999x/app"}, ()),
        ("ok", "APP_SPIKE_MAX_RPS=lots", {"APP_SPIKE_MAX_RPS": "lots"}, ()),
        ("ok", "APP_DB_WRITER_URL=mysql://", {"APP_DB_WRITER_URL": "mysql://u@h/app"}, ()),
        ("ok", "OTEL_TRACES_SAMPLER=bogus", dict(OTLP, OTEL_TRACES_SAMPLER="bogus"), ()),
    ]
    for cause, name, env, args in cases:
        record(cause, f"start-up: {name}", lambda env=env, args=args: one_line_exit_2("sample_app", dict(LOCAL, **env), *args))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        record("8", "start-up: a port already in use",
               lambda: one_line_exit_2("sample_app", LOCAL, "--host", "127.0.0.1", "--port", port))
    bad_pw = f"postgresql://app_rw_01:{SECRET}@127.0.0.1:5432/app"
    record("7", "start-up: password with a stray %",
           lambda: one_line_exit_2("sample_app", dict(LOCAL, APP_DB_WRITER_URL=bad_pw), secret="zzET"))


def otlp_case(pg: LocalPostgres, tmp: Path) -> None:
    def run():
        env = app_env(pg, APP_LOG_LEVEL="INFO", OTEL_EXPORTER_OTLP_ENDPOINT="http://u:T0kenS3cret@127.0.0.1:9",
                      OTEL_BSP_SCHEDULE_DELAY="100")
        app = AppProcess(env, tmp / "otlp.log")
        try:
            app.wait_ready()
            time.sleep(1)
            leaked = "T0kenS3cret" in app.log()
            return not leaked, "endpoint password in the log" if leaked else "redacted"
        finally:
            app.stop()
    record("7", "OTLP endpoint http://u:SECRET@... in the INFO log", run)


def plan_cases(tmp: Path) -> None:
    for name, env in (("EVOLUTION_CLUSTER_BACKEND=bogus", {"EVOLUTION_CLUSTER_BACKEND": "bogus"}),
                      ("SCALE_TIMEOUT_SECONDS=abc", {"SCALE_TIMEOUT_SECONDS": "abc"})):
        record("9", f"plan: {name}", lambda env=env: one_line_exit_2("evolution_pipeline", env, "plan"))
    from tests.doubles.k8s_api import KubeApiDouble
    from tests.plan.test_plan import kubeconfig

    for fmt in ("text", "json"):
        def run(fmt=fmt):
            with KubeApiDouble() as api:
                api.add_cluster("crdb", "cockroachdb", 1)
                env = {"CRDB_ADMIN_URL": f"postgresql://root:{SECRET}@127.0.0.1:9/defaultdb?sslmode=disable",
                       "KUBECONFIG": str(kubeconfig(tmp / f"kubeconfig-{fmt}", api.host))}
                code, out = run_module("evolution_pipeline", env, "plan", "phase1_two_nodes", "--format", fmt,
                                       timeout=60)
            return code == 0 and "zzET" not in out, f"exit {code}, password shown: {'zzET' in out}"
        record("7", f"plan --format {fmt}: admin URL password with a stray %", run)


def postgres_cases(pg: LocalPostgres) -> None:
    import psycopg

    for user in ("app_ro_01",):
        for statement in ("SELECT lo_from_bytea(0, '\\x41'::bytea)", "CREATE TEMP TABLE scratch (x int)"):
            def run(user=user, statement=statement):
                try:
                    with psycopg.connect(pg.url(user), autocommit=True) as conn:
                        conn.execute(statement)
                except psycopg.errors.InsufficientPrivilege:
                    return True, "refused (42501)"
                return False, "allowed"
            record("10", f"{user}: {statement[:40]}", run)


def message_case() -> None:
    def run():
        from tests.real.binary import missing_message

        text = missing_message()
        return "make dev" not in text, text[-90:]
    record("11", "make test-real without a binary: advice", run)


def main() -> int:
    root = Path(tempfile.mkdtemp(prefix="hostile-"))
    root.chmod(0o755)
    pg = LocalPostgres(root)
    try:
        app = AppProcess(app_env(pg, APP_REQUEST_TIMEOUT_SECONDS="2"), root / "app.log")
        try:
            app.wait_ready()
            http_cases(app, pg)
        finally:
            app.stop()
        credential_cases(pg, root)
        startup_cases()
        otlp_case(pg, root)
        plan_cases(root)
        postgres_cases(pg)
        message_case()
    finally:
        pg.close()
    if "--json" in sys.argv:
        print(json.dumps([dict(zip(("cause", "input", "good", "what"), r)) for r in ROWS], indent=1))
    else:
        for cause, name, good, what in ROWS:
            print(f"{cause:>4} {'good' if good else 'BAD ':4} {name[:60]:60} {what}")
    bad = [r for r in ROWS if not r[2]]
    causes = sorted({r[0] for r in bad})
    print(f"\n{len(ROWS)} inputs, {len(ROWS) - len(bad)} handled well, {len(bad)} not, "
          f"from {len(causes)} cause(s): {', '.join(causes)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
