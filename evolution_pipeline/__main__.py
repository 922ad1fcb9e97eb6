"""python -m evolution_pipeline plan [PHASE ...] [--format text|markdown|json] [--environment live|rehearsal]
                                     [--evolution FILE]
   python -m evolution_pipeline docs [--write]   (the manual steps in demo/DEMO.md and context.md)

The evolution is EVOLUTION_PLAN's file (default evolutions/demo.yaml), or --evolution's. A file that
CockroachDB or the topology would refuse stops here with one line naming the file, the phase and the field,
and exit status 2: nothing is planned from a wrong file.

Prints what each phase would do against the current cluster, read-only, through the same code the
pipeline's resources run (configured from the environment like `dagster dev`: EVOLUTION_CLUSTER_BACKEND,
CRDB_ADMIN_URL, ...). Without a reachable cluster it prints the plan from the phase table, says why, and
still exits 0: the plan is for reading, also when the cluster is down.

Neither command imports Dagster (~2 CPU-seconds per call): the plan reads through the resources' Dagster-free
classes (settings.plan_resources), and tests/plan/test_plan_imports.py keeps it that way.
"""

from __future__ import annotations

import argparse
import os
import sys

from .environments import ENVIRONMENTS
from .evolution.load import DEFAULT_PLAN, PLAN_VARIABLE, EvolutionError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evolution_pipeline")
    commands = parser.add_subparsers(dest="command", required=True)
    plan = commands.add_parser("plan", help="show what each phase would change, read-only")
    plan.add_argument("phases", nargs="*", metavar="PHASE", help="phases to plan (default: all)")
    plan.add_argument("--evolution", metavar="FILE",
                      help=f"the evolution file (default: ${PLAN_VARIABLE}, else {DEFAULT_PLAN})")
    plan.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    plan.add_argument("--environment", choices=[e.name for e in ENVIRONMENTS], default="live")
    plan.add_argument("--offline", action="store_true", help="do not read the cluster; plan from the table")
    docs = commands.add_parser("docs", help="check (or --write) the generated manual steps in the docs")
    docs.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)
    if getattr(args, "evolution", None):
        os.environ[PLAN_VARIABLE] = args.evolution  # before the phases load: everything follows this file
    try:
        from .phases import PHASES, get_phase
    except EvolutionError as exc:
        print(f"python -m evolution_pipeline: evolution error: {exc}", file=sys.stderr)
        return 2
    if args.command == "docs":
        return _docs(args.write)

    try:
        phases = [get_phase(name) for name in args.phases] or list(PHASES)
    except KeyError as exc:
        parser.error(exc.args[0])
    from .plan import build_plan, render
    from .settings import plan_resources

    env = next(e for e in ENVIRONMENTS if e.name == args.environment)
    try:
        cluster, crdb, unreadable = plan_resources(env)
    except ValueError as exc:  # ConfigurationError, or a setting that does not parse (a port that is no number)
        # One line naming the variable and exit 2, like python -m sample_app: never a traceback.
        message = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        print(f"python -m evolution_pipeline: configuration error: {message}", file=sys.stderr)
        return 2
    if args.offline:
        unreadable = "--offline: the cluster was not read"
    result = build_plan(phases, environment=env.name, cluster=cluster, crdb=crdb, unreadable=unreadable)
    sys.stdout.write(render(result, args.format))
    return 0


def _docs(write: bool) -> int:
    from .phases import REPO_ROOT
    from .plan import DOCS, manual_section, with_manual_section

    section, stale = manual_section(), []
    for name in DOCS:
        path = REPO_ROOT / name
        text = path.read_text()
        fresh = with_manual_section(text, section)
        if fresh != text:
            stale.append(name)
            if write:
                path.write_text(fresh)
    if stale and not write:
        print(f"out of date: {', '.join(stale)}; run python -m evolution_pipeline docs --write", file=sys.stderr)
        return 1
    print(f"{'rewrote' if stale else 'up to date'}: {', '.join(stale or DOCS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
