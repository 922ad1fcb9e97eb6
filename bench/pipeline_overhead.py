"""Orchestration overhead of the evolve job, per phase, with INSTANT stand-ins.

The world converges at once (ready_after_polls=0), every poll interval is 10-50 ms (tests/e2e/instant.py)
and the blocking checks query a REAL Prometheus (Debian package, tests/support/prometheus.py) scraping the
stand-in CockroachDB nodes and the real sample app (on a real PostgreSQL, as in tests/pipeline) every 250 ms,
so they pass as soon as the scrape agrees. What is left is Dagster's own cost:

  (a) in process: build_definitions(...).resolve_job_def("evolve").execute_in_process(), N iterations;
  (b) through the webserver: a real `dagster dev` (webserver + daemon, the project's dagster.yaml, queued
      runs) launched over GraphQL, M runs with the code location's executor (in_process: one run worker
      process for all steps; with Dagster's multiprocess default this bench measured ~3 s per step, which
      is why the definitions pin in_process_executor).

Per phase, from the run's event log: "mat at" = run start -> the phase's materialization; "wall" = the
end of the previous phase's last step (or run start) -> the end of this phase's last step (ops and its
checks); "in ops" = time inside the phase's op and check bodies (each step's last input loaded, or its
start, -> its first output or check evaluation); overhead = wall - in ops. Everything on 127.0.0.1.

    .venv/bin/python bench/pipeline_overhead.py [--iterations 5] [--runs 2] [--max-seconds 600]
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import dagster as dg

import tests.pipeline.conftest as pipeline_bench
from evolution_pipeline.definitions import build_definitions
from evolution_pipeline.environments import LIVE, REHEARSAL
from evolution_pipeline.phases import PHASES
from tests.doubles.pipeline_world import new_world
from tests.e2e.instant import instant
from tests.pipeline.crdb_stand_in import PipelineCrdb
from tests.pipeline.conftest import EnvironmentApp, WorldMetrics
from tests.pipeline.stand_ins import CLUSTER_LABEL, stand_in_resources
from tests.support.dagster_dev import start_dagster_dev
from tests.support.prometheus import start_prometheus

SCRAPE_INTERVAL = "250ms"
CHECK_SETTLE_SECONDS = 10.0  # an upper bound only: a check returns as soon as Prometheus agrees
LOCATION = "crdb_bench"
# The default console logger prints every DEBUG event to the terminal; the event log keeps them all anyway.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}

# Event types (DagsterEventType values, as both the instance and GraphQL name them).
BODY_START = {"STEP_START", "LOADED_INPUT"}
BODY_END = {"STEP_OUTPUT", "ASSET_CHECK_EVALUATION"}


@dataclass(frozen=True)
class Event:
    t: float
    kind: str
    step: str | None
    asset: str | None = None


@dataclass
class PhaseFigures:
    mat_at: float
    wall: float
    in_ops: float
    steps: int

    @property
    def overhead(self) -> float:
        return self.wall - self.in_ops


def read_world_locked(path) -> dict:
    """read_world under a shared lock: world() truncates then rewrites the file under an exclusive lock,
    and with 10 ms polls an unlocked scrape-time read often catches it empty (a failed scrape, a gap in
    the series the checks wait for: noise in the figures)."""
    with open(path) as f:
        fcntl.flock(f, fcntl.LOCK_SH)
        return json.load(f)


# The stand-in nodes run in this process: give their scrape-time reads the lock.
pipeline_bench.read_world = read_world_locked


# --- the stand-in world --------------------------------------------------------------------------------


class Bench:
    """Prometheus scraping three stand-in nodes per environment and the real app, as tests/pipeline does."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.metrics = {LIVE.name: WorldMetrics(), REHEARSAL.name: WorldMetrics()}
        self.apps = {env.name: EnvironmentApp(env.name, workdir) for env in (LIVE, REHEARSAL)}
        # The live app's background load stands in for its users: the app checks need traffic.
        for name, app in self.apps.items():
            app.reset(background_load=name == LIVE.name)
        config = {
            "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": "1s"},
            "scrape_configs": [],
        }
        for env in (LIVE, REHEARSAL):
            labels = {"cluster": CLUSTER_LABEL[env]}
            config["scrape_configs"] += [
                {
                    "job_name": f"cockroachdb-{env.name}",
                    "metrics_path": "/_status/vars",
                    "static_configs": [{"targets": self.metrics[env.name].cluster.targets, "labels": labels}],
                    "relabel_configs": [{"target_label": "job", "replacement": "cockroachdb"}],
                },
                {
                    "job_name": f"sample-app-{env.name}",
                    "static_configs": [{"targets": [self.apps[env.name].target], "labels": labels}],
                    "relabel_configs": [{"target_label": "job", "replacement": "sample-app"}],
                },
            ]
        self.prometheus = start_prometheus(workdir / "prometheus", config)
        self.worlds = {env.name: workdir / f"world-{env.name}.json" for env in (LIVE, REHEARSAL)}
        for path in self.worlds.values():
            new_world(path, ready_after_polls=0)
        # The wire-level CockroachDB stand-in of each environment (the real CrdbSqlResource talks to it).
        self.crdbs = {name: PipelineCrdb(path).start() for name, path in self.worlds.items()}
        for name, crdb in self.crdbs.items():
            self.metrics[name].crdb = crdb
        self.reset()
        # The app checks need a few samples of the request counter inside their window.
        self.prometheus.wait_for(f'app_requests_total{{cluster="{CLUSTER_LABEL[LIVE]}"}}', timeout=60)
        time.sleep(2)

    def reset(self) -> None:
        """A fresh instant world (file rewritten in place: a running code location keeps its path)."""
        for name, path in self.worlds.items():
            # Atomically: the stand-in nodes read the file on every scrape.
            os.replace(new_world(path.with_suffix(".new"), ready_after_polls=0), path)
            self.metrics[name].world_path = str(path)
            self.crdbs[name].recreate()
        # Let one scrape see the empty cluster, so no check reads the previous run's final gauges.
        time.sleep(0.5)

    def env(self) -> dict[str, str]:
        return {
            "TEST_WORLD_LIVE": str(self.worlds["live"]),
            "TEST_WORLD_REHEARSAL": str(self.worlds["rehearsal"]),
            "TEST_PROMETHEUS_URL": self.prometheus.url,
            "TEST_APP_URL_LIVE": self.apps["live"].url,
            "TEST_APP_URL_REHEARSAL": self.apps["rehearsal"].url,
            "TEST_CRDB_URL_LIVE": self.crdbs["live"].url,
            "TEST_CRDB_URL_REHEARSAL": self.crdbs["rehearsal"].url,
            "TEST_CHECK_SETTLE": str(CHECK_SETTLE_SECONDS),
            "TEST_INSTANT": "1",
        }

    def close(self) -> None:
        for crdb in self.crdbs.values():
            crdb.stop()
        self.prometheus.stop()
        for m in self.metrics.values():
            m.cluster.close()
        for a in self.apps.values():
            a.close()


# --- figures from an event log -------------------------------------------------------------------------


def phase_of(step: str | None) -> str | None:
    return next((p.name for p in PHASES if step and step.startswith(p.name)), None)


def body_seconds(events: list[Event], step: str) -> float:
    mine = [e for e in events if e.step == step]
    starts = [e.t for e in mine if e.kind in BODY_START]
    ends = [e.t for e in mine if e.kind in BODY_END]
    return (min(ends) - max(s for s in starts if s <= min(ends))) if starts and ends else 0.0


def phase_figures(events: list[Event]) -> tuple[dict[str, PhaseFigures], float, float]:
    """Per phase figures, plus the run's (start -> end) seconds and its seconds inside ops."""
    events = sorted(events, key=lambda e: e.t)
    start = next(e.t for e in events if e.kind == "RUN_START")
    end = next(e.t for e in events if e.kind in ("RUN_SUCCESS", "RUN_FAILURE"))
    figures, previous_end, total_in_ops = {}, start, 0.0
    for phase in PHASES:
        steps = {e.step for e in events if phase_of(e.step) == phase.name}
        mat = next(e.t for e in events if e.kind == "ASSET_MATERIALIZATION" and e.asset == phase.name)
        last = max(e.t for e in events if e.step in steps and e.kind in ("STEP_SUCCESS", "STEP_FAILURE"))
        in_ops = sum(body_seconds(events, s) for s in steps)
        figures[phase.name] = PhaseFigures(mat - start, last - previous_end, in_ops, len(steps))
        previous_end, total_in_ops = last, total_in_ops + in_ops
    return figures, end - start, total_in_ops


def instance_events(instance: dg.DagsterInstance, run_id: str) -> list[Event]:
    out = []
    for entry in instance.all_logs(run_id):
        ev = entry.dagster_event
        if ev is None:
            continue
        asset = ev.asset_key.to_user_string() if ev.event_type_value == "ASSET_MATERIALIZATION" else None
        # The instance stores legacy values (RUN_START is "PIPELINE_START"); GraphQL names the members.
        out.append(Event(entry.timestamp, ev.event_type.name, ev.step_key, asset))
    return out


def graphql_events(dev, run_id: str) -> list[Event]:
    out = []
    for e in dev.events(run_id):
        if not e.get("eventType"):
            continue
        asset = "/".join(e["assetKey"]["path"]) if e.get("assetKey") else None
        out.append(Event(int(e["timestamp"]) / 1000.0, e["eventType"], e.get("stepKey"), asset))
    return out


# --- (a) in process, (b) through dagster dev ------------------------------------------------------------


def in_process(bench: Bench, iterations: int, deadline: float) -> list[tuple[dict, float, float, float]]:
    resources = instant(
        stand_in_resources(
            {k: str(v) for k, v in bench.worlds.items()},
            bench.prometheus.url,
            {k: a.url for k, a in bench.apps.items()},
            {k: c.url for k, c in bench.crdbs.items()},
            settle=CHECK_SETTLE_SECONDS,
        )
    )
    job = build_definitions(resources).resolve_job_def("evolve")
    results = []
    with dg.instance_for_test() as instance:
        for i in range(iterations + 1):  # iteration 0 warms imports and caches: not reported
            if time.monotonic() > deadline:
                break
            bench.reset()
            t0 = time.perf_counter()
            result = job.execute_in_process(instance=instance, run_config=QUIET)
            call = time.perf_counter() - t0
            if not result.success:
                raise SystemExit(f"in-process evolve failed on iteration {i}")
            if i:
                figures, run_s, run_in_ops = phase_figures(instance_events(instance, result.run_id))
                results.append((figures, run_s, run_in_ops, call))
    return results


# The definitions set in_process_executor; its run config has no executor choice, so one variant.
EXECUTORS = {"in_process": {}}


def via_webserver(bench: Bench, runs: int, deadline: float) -> dict[str, list]:
    """`runs` runs launched through GraphQL with the code location's executor."""
    results: dict[str, list] = {name: [] for name in EXECUTORS}
    with tempfile.TemporaryDirectory(prefix="bench-dagster-dev-") as tmp:
        dev = start_dagster_dev(Path(tmp), "tests.e2e.stand_in_location", LOCATION, env=bench.env())
        try:
            dev.wait_until_loaded(LOCATION, timeout=240)
            for name, run_config in EXECUTORS.items():
                for _ in range(runs):
                    if time.monotonic() > deadline:
                        break
                    results[name].append(one_webserver_run(bench, dev, run_config, deadline))
        finally:
            left = dev.stop(timeout=30)
            if left or dev.processes():
                print(f"warning: dagster dev processes needed SIGKILL: {left}", file=sys.stderr)
    return results


def one_webserver_run(bench: Bench, dev, run_config: dict, deadline: float):
    bench.reset()
    t0 = time.time()
    run_id = dev.launch(LOCATION, "__repository__", "evolve", run_config)
    run = dev.wait_for_run(run_id, timeout=max(120.0, deadline - time.monotonic()), poll=0.2)
    if run["status"] != "SUCCESS":
        raise SystemExit(f"evolve run {run_id} ended {run['status']}:\n{dev.errors(run_id)}")
    events = graphql_events(dev, run_id)
    figures, run_s, run_in_ops = phase_figures(events)
    run_start = next(e.t for e in events if e.kind == "RUN_START")
    return figures, run_s, run_in_ops, run_start - t0


# --- report --------------------------------------------------------------------------------------------


def median(xs) -> float:
    return statistics.median(xs) if xs else float("nan")


def report(title: str, results, extra_label: str) -> None:
    print(f"\n{title}: {len(results)} run(s), medians in seconds")
    print(
        f"  {'phase':<20} {'steps':>5} {'mat at':>7} {'wall':>7} {'in ops':>7} {'overhead':>9} {'per step':>9}"
    )
    for phase in PHASES:
        rows = [r[0][phase.name] for r in results]
        steps, overhead = rows[0].steps, median(r.overhead for r in rows)
        print(
            f"  {phase.name:<20} {steps:5d} {median(r.mat_at for r in rows):7.2f} "
            f"{median(r.wall for r in rows):7.2f} {median(r.in_ops for r in rows):7.2f} {overhead:9.2f} "
            f"{overhead / steps:9.3f}"
        )
    run_s, in_ops = median(r[1] for r in results), median(r[2] for r in results)
    steps = sum(f.steps for f in results[0][0].values())
    overhead = median(r[1] - r[2] for r in results)
    print(
        f"  {'whole run':<20} {steps:5d} {'':>7} {run_s:7.2f} {in_ops:7.2f} {overhead:9.2f} "
        f"{overhead / steps:9.3f}"
    )
    print(f"  {extra_label}: {median(r[3] for r in results):.2f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=5, help="in-process runs (after one warm-up)")
    parser.add_argument("--runs", type=int, default=2, help="runs through dagster dev, per executor")
    parser.add_argument("--max-seconds", type=float, default=600, help="stop starting new runs after this")
    parser.add_argument("--skip-webserver", action="store_true")
    args = parser.parse_args()
    deadline = time.monotonic() + args.max_seconds
    # apply_sql refuses to create users without passwords; these only reach the stand-in world.
    os.environ.setdefault("APP_WRITER_PASSWORD", "bench-writer-password")
    os.environ.setdefault("APP_READER_PASSWORD", "bench-reader-password")
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        bench = Bench(Path(tmp))
        try:
            a = in_process(bench, args.iterations, deadline)
            b = {} if args.skip_webserver else via_webserver(bench, args.runs, deadline)
        finally:
            bench.close()
    print(
        f"\nevolve job, {len(PHASES)} phases, instant stand-ins, checks on a real Prometheus "
        f"(scrape {SCRAPE_INTERVAL}); {os.cpu_count()} CPU(s)"
    )
    if a:
        report("(a) in process (execute_in_process, in-process executor)", a, "execute_in_process call")
    for name, runs in b.items():
        if runs:
            report(
                f"(b) dagster dev over GraphQL, queued run, {name} executor",
                runs,
                "launch -> RUN_START (queue, daemon, run worker)",
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
