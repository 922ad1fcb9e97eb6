"""Throughput and p50/p99 of /search and /login on ONE app process, beside a raw psycopg loop.

Everything on 127.0.0.1: a real PostgreSQL (pgserver's binaries, scram passwords, the real
app_rw_01/app_ro_01 rotation users of the role model, sql/00-bootstrap.sql), the app as `python -m sample_app`, wrk as the
HTTP client. The raw loop runs the app's very statements (services.LOGIN_SQL / search_sql) with
the same concurrency on direct psycopg async connections, in one process like the app.

Placement (default on a machine with 2+ CPUs): the app and the raw loop each get the same single
core to themselves, PostgreSQL and wrk share the other. Both sides are then measured on one
dedicated core, and the figures repeat within a few percent instead of swinging with where the
scheduler happened to put PostgreSQL and wrk (--no-pin to let everything float).
Targets: app >= 0.6x raw for /search, >= 0.5x raw for /login. Bounded: about a minute and a half
per tracing mode.

Tracing (--tracing): `off` (no OTLP endpoint, the default deployment), `on` (every request traced and
exported), `sampled` (parentbased_traceidratio at 10 %), or `all` three one after the other against the
same raw loop. Traced modes export over OTLP/HTTP to a receiver process (tests/support/otlp.py) that
runs on wrk's core, so the app's figure includes exactly what tracing costs the app process.

    .venv/bin/python bench/app_throughput.py [--seconds 6] [--concurrency 16] [--rounds 3] [--no-pin] [--strict]
                                            [--tracing off|on|sampled|all]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import psycopg

from sample_app import services
from sample_app.workload import SEED_WORDS
from tests.app.appproc import AppProcess
from tests.app.pg import LocalPostgres
from tests.support.net import free_port

TARGETS = {"search": 0.6, "login": 0.5}
# The app's environment per tracing mode (crdb_common/otel.py reads these standard variables).
TRACING = {
    "off": {},
    "on": {"OTEL_TRACES_SAMPLER": "always_on"},
    "sampled": {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"},
}
# Pinned (the default), the app and the raw loop get the same single core; wrk and PostgreSQL the other.
APP_CORE, CLIENT_CORE = 0, 1
PIN = False
# The same prefixes for both sides: 2-4 letters of a seeded word.
PREFIXES = sorted({w[:n] for w in SEED_WORDS for n in (2, 3, 4)})

WRK_LUA = """
local prefixes = {%(prefixes)s}
local mode = "%(mode)s"
local n = 0
request = function()
  n = n + 1
  if mode == "search" then
    local p = prefixes[math.random(#prefixes)]
    return wrk.format("GET", "/search?q=" .. p)
  end
  return wrk.format("POST", "/login", {["Content-Type"] = "application/json"},
                    '{"user_id":"bench-' .. n .. '"}')
end
"""


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (fields 14 and 15 of /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_wrk(base_url: str, mode: str, seconds: int, concurrency: int, workdir: Path, app_pid: int) -> dict:
    script = workdir / f"{mode}.lua"
    script.write_text(WRK_LUA % {"prefixes": ", ".join(f'"{p}"' for p in PREFIXES), "mode": mode})
    cpu_before = cpu_seconds(app_pid)
    pin = ["taskset", "-c", str(CLIENT_CORE)] if PIN else []
    out = subprocess.run(
        [
            *pin,
            "wrk",
            "-t1",
            f"-c{concurrency}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            base_url,
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=True,
    ).stdout
    cpu = cpu_seconds(app_pid) - cpu_before
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    total = int(re.search(r"(\d+) requests in", out).group(1))
    return {
        "cpu_us": cpu / max(total, 1) * 1e6,
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": _wrk_ms(re.search(r"^\s+50%\s+(\S+)", out, re.MULTILINE).group(1)),
        "p99_ms": _wrk_ms(re.search(r"^\s+99%\s+(\S+)", out, re.MULTILINE).group(1)),
        "errors": int(non2xx.group(1)) if non2xx else 0,
    }


def pin_postgres(pgdata: Path, core: int) -> None:
    """Pin the postmaster and its current children; backends forked later inherit the mask."""
    postmaster = int((pgdata / "postmaster.pid").read_text().split()[0])
    pids = [postmaster]
    for task in Path(f"/proc/{postmaster}/task").iterdir():
        children = task / "children"
        if children.exists():
            pids += [int(p) for p in children.read_text().split()]
    for pid in pids:
        try:
            os.sched_setaffinity(pid, {core})
        except ProcessLookupError:
            pass


def _wrk_ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


async def raw_loop(url: str, mode: str, seconds: int, concurrency: int) -> dict:
    if PIN:
        os.sched_setaffinity(0, {APP_CORE})  # same single core as the app process
    latencies: list[float] = []
    errors = 0
    sql = services.search_sql(False) if mode == "search" else services.LOGIN_SQL
    conns = [await psycopg.AsyncConnection.connect(url, autocommit=True) for _ in range(concurrency)]
    deadline = time.perf_counter() + seconds

    async def worker(conn: psycopg.AsyncConnection, k: int) -> None:
        nonlocal errors
        rng = random.Random(k)
        n = 0
        cur = conn.cursor()  # one cursor per connection, as the app does (sample_app.db.AppConnection)
        while time.perf_counter() < deadline:
            n += 1
            if mode == "search":
                q = rng.choice(PREFIXES)
                lo, hi = services.prefix_range(q)
                params = (lo, hi, q + "%", 20)
            else:
                params = (uuid.uuid4(), f"raw-{k}-{n}", datetime.now(UTC), "h" * 64, "h" * 64)
            t0 = time.perf_counter()
            try:
                await cur.execute(sql, params)
                if cur.description:
                    await cur.fetchall()
            except psycopg.Error:
                errors += 1
            latencies.append(time.perf_counter() - t0)

    started, cpu_before = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker(c, k) for k, c in enumerate(conns)))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_before
    for c in conns:
        await c.close()
    latencies.sort()
    return {
        "cpu_us": cpu / max(len(latencies), 1) * 1e6,
        "rps": len(latencies) / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
        "errors": errors,
    }


def start_app(pg: LocalPostgres, concurrency: int, work: Path, extra: dict[str, str]) -> AppProcess:
    c = str(concurrency)
    env = {
        "APP_DB_WRITER_URL": pg.url("app_rw_01"),
        "APP_DB_READER_URL": pg.url("app_ro_01"),
        "APP_HASH_SALT": "bench-salt-0123456789",
        "APP_LOG_LEVEL": "WARNING",
        "APP_DB_WRITER_POOL_MIN": c,
        "APP_DB_WRITER_POOL_MAX": c,
        "APP_DB_READER_POOL_MIN": c,
        "APP_DB_READER_POOL_MAX": c,
        **extra,
    }
    app = AppProcess(env, work / "app.log")
    if PIN:  # every thread, the trace exporter's included (a thread keeps the mask it was born with)
        for task in Path(f"/proc/{app.proc.pid}/task").iterdir():
            os.sched_setaffinity(int(task.name), {APP_CORE})
    app.wait_ready()
    return app


def start_receiver() -> tuple[subprocess.Popen, str]:
    """The OTLP/HTTP receiver as its own process, on wrk's core: decoding spans is not the app's cost."""
    port = free_port()
    pin = ["taskset", "-c", str(CLIENT_CORE)] if PIN else []
    proc = subprocess.Popen([*pin, sys.executable, "-m", "tests.support.otlp", str(port)], cwd=REPO)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the OTLP receiver did not start")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="interleaved app/raw rounds; the best round of each side is reported "
        "(the machine is shared, best-of-N filters out other processes' bursts)",
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--tracing", choices=[*TRACING, "all"], default="off", help="the app's tracing mode(s)")
    parser.add_argument(
        "--no-pin",
        action="store_true",
        help="do not pin (default: the app and the raw loop on CPU 0, wrk and PostgreSQL on CPU 1)",
    )
    args = parser.parse_args()
    global PIN
    PIN = not args.no_pin and len(os.sched_getaffinity(0)) >= 2
    if not PIN and not args.no_pin:
        print("one CPU available: running unpinned", file=sys.stderr)
    if not shutil.which("wrk"):
        print("wrk is missing: run scripts/setup.sh", file=sys.stderr)
        return 2
    modes = list(TRACING) if args.tracing == "all" else [args.tracing]
    work = Path(tempfile.mkdtemp(prefix="bench-app-"))
    work.chmod(0o755)
    pg = LocalPostgres(work)
    receiver = start_receiver() if any(TRACING[m] for m in modes) else None
    results: dict[str, dict[str, dict]] = {"search": {}, "login": {}}
    raw_rounds: dict[str, list[dict]] = {"search": [], "login": []}
    allowed = os.sched_getaffinity(0)
    try:
        if PIN:
            pin_postgres(pg.pgdata, CLIENT_CORE)
        for tracing in modes:
            env = dict(TRACING[tracing])
            if env:
                env["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver[1]
            app = start_app(pg, args.concurrency, work, env)
            try:
                for mode in ("search", "login"):
                    run_wrk(app.base_url, mode, 2, args.concurrency, work, app.proc.pid)  # warm-up
                    runs = []
                    for _ in range(args.rounds):
                        runs.append(run_wrk(app.base_url, mode, args.seconds, args.concurrency, work, app.proc.pid))
                        if len(raw_rounds[mode]) < args.rounds:  # interleaved with the first app's rounds
                            url = pg.url("app_rw_01" if mode == "login" else "app_ro_01")
                            raw_rounds[mode].append(asyncio.run(raw_loop(url, mode, args.seconds, args.concurrency)))
                            os.sched_setaffinity(0, allowed)
                    results[mode][f"app tracing {tracing}"] = max(runs, key=lambda r: r["rps"])
            finally:
                app.stop()
        for mode, runs in raw_rounds.items():
            results[mode]["raw"] = max(runs, key=lambda r: r["rps"])
    finally:
        if receiver is not None:
            receiver[0].terminate()
            receiver[0].wait(10)
        pg.close()
        shutil.rmtree(work, ignore_errors=True)

    print(
        f"sample app vs raw psycopg, one app process, concurrency {args.concurrency}, {args.seconds}s runs, "
        f"best of {args.rounds} rounds"
    )
    print(f"{'route':8} {'side':20} {'req/s':>9} {'x raw':>6} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'CPU us/req':>11}")
    missed = []
    for mode, sides in results.items():
        raw_rps = sides["raw"]["rps"]
        for side, r in sorted(sides.items(), key=lambda kv: kv[0] != "raw"):
            print(
                f"/{mode:7} {side:20} {r['rps']:9.0f} {r['rps'] / raw_rps:6.2f} {r['p50_ms']:8.2f} "
                f"{r['p99_ms']:8.2f} {r['errors']:7d} {r['cpu_us']:11.0f}"
            )
        for side, r in sides.items():
            if side == "raw":
                continue
            ok = r["rps"] / raw_rps >= TARGETS[mode] and r["errors"] == 0
            print(f"/{mode:7} {side}: {r['rps'] / raw_rps:.2f}x raw (target >= {TARGETS[mode]}x): {'PASS' if ok else 'MISS'}")
            if not ok:
                missed.append(f"{mode} {side}")
    return 1 if missed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
