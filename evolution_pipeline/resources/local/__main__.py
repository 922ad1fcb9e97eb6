"""A small CLI for make dev / make local-status / make local-stop:
`python -m evolution_pipeline.resources.local <command>`."""

from __future__ import annotations

import os
import sys

from evolution_pipeline.resources.cluster_control import LIVE, REHEARSAL

# Dagster-free on purpose (settings.py, not resource.py): make dev runs this several times per start.
from .binary import MISSING_BINARY_MESSAGE, find_cockroach
from .control import LocalClusterControl
from .settings import config_from_env


def _cli(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m evolution_pipeline.resources.local",
        description="The local CockroachDB cluster, from the environment make dev sets.",
    )
    parser.add_argument(
        "command",
        choices=[
            "find-binary",
            "missing-binary-message",
            "status",
            "stop",
            "app-urls",
            "admin-urls",
            "prepare-prometheus",
        ],
    )
    parser.add_argument("--environment", default=LIVE, choices=[LIVE, REHEARSAL])
    args = parser.parse_args(argv)
    if args.command == "missing-binary-message":
        print(MISSING_BINARY_MESSAGE)
        return 0
    if args.command == "find-binary":
        found = find_cockroach()
        print(found or MISSING_BINARY_MESSAGE, file=sys.stdout if found else sys.stderr)
        return 0 if found else 1
    control = LocalClusterControl(config_from_env(args.environment))
    if args.command == "status":
        print(control.describe())
        if not control.config.cockroach_bin:
            print(MISSING_BINARY_MESSAGE)
        print(control.status().summary())
        for name, addr in control.endpoints().items():
            print(f"{name}: {addr}")
    elif args.command == "stop":
        stopped = control.stop_nodes()
        print(
            f"stopped {', '.join(stopped)}" if stopped else f"no running nodes found for {control.data_dir}"
        )
    elif args.command == "app-urls":
        import shlex

        print(f"APP_DB_WRITER_URL={shlex.quote(control.writer_url(os.environ.get('APP_WRITER_PASSWORD')))}")
        print(f"APP_DB_READER_URL={shlex.quote(control.reader_url(os.environ.get('APP_READER_PASSWORD')))}")
    elif args.command == "admin-urls":
        import shlex

        # root over its client certificate; the pipeline's SQL resource reads these (CRDB_ADMIN_URL and
        # the REHEARSAL_ twin). Printed even without a binary, so a phase fails on the binary message.
        rehearsal = LocalClusterControl(config_from_env(REHEARSAL))
        print(f"CRDB_ADMIN_URL={shlex.quote(control.sql_url(1, 'root', 'defaultdb'))}")
        print(f"REHEARSAL_CRDB_ADMIN_URL={shlex.quote(rehearsal.sql_url(1, 'root', 'defaultdb'))}")
    elif args.command == "prepare-prometheus":
        if control.config.cockroach_bin:
            control.prepare_prometheus()
        else:
            control.write_prometheus_targets(0)
        print(control.prometheus_dir)
    return 0


if __name__ == "__main__":
    sys.exit(_cli(sys.argv[1:]))
