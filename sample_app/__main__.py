"""python -m sample_app --host 127.0.0.1 --port 8000

Runs ONE Sanic process (single_process=True), by design: see sample_app/app.py for why. The app
is built by the create_app factory through Sanic's AppLoader, so nothing lives in __main__.
"""

from __future__ import annotations

import argparse
import errno
import logging
import socket
import sys
from functools import partial

from crdb_common import otel

from .settings import Settings, SettingsError

# The app (and with it opentelemetry.propagate, which reads OTEL_PROPAGATORS on import) is imported only
# after the configuration is checked: a bad variable is one line and exit 2, never an import traceback.


class ListenError(ValueError):
    """--host/--port that cannot be listened on; the message says which and why."""


def check_listen(host: str, port: int) -> None:
    """Refuse, before Sanic starts, what would otherwise be its traceback: a port out of range, a host that
    is no address of this machine, a port already taken. (A bind-and-close probe: Sanic binds a moment later.)"""
    if not 0 < port < 65536:
        raise ListenError(f"--port must be from 1 to 65535, got {port}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise ListenError(f"--host {host[:80]!r} is not an address to listen on: {exc}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio's create_server does
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ListenError(f"--port {port} on {host} is already in use: stop what listens there "
                                  "or choose another port") from None
            raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def configure_logging(level: str) -> None:
    """Our loggers, psycopg's (pool reconnects) and OpenTelemetry's; Sanic configures its own.

    A line written inside a sampled request ends with its trace_id and span_id (TraceIdFilter), so an
    error in the log leads to its trace.
    """
    from .tracing import TraceIdFilter

    handler = logging.StreamHandler()
    handler.addFilter(TraceIdFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s%(trace)s"))
    # psycopg.pool logs every checkout at INFO: only its warnings (reconnect failures) unless DEBUG.
    quiet = level if level == "DEBUG" else "WARNING"
    # crdb_common: the tracing set-up the app shares with the pipeline (its start and export-failure lines).
    levels = {"sample_app": level, "crdb_common": level, "psycopg": quiet, "opentelemetry": quiet}
    for name, logger_level in levels.items():
        logger = logging.getLogger(name)
        logger.setLevel(logger_level)
        logger.addHandler(handler)
        logger.propagate = False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sample_app", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 in a container)")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        otel.validate()
    except (SettingsError, otel.TracingConfigError) as exc:
        print(f"sample_app: configuration error: {exc}", file=sys.stderr)
        return 2
    try:
        check_listen(args.host, args.port)
    except ListenError as exc:
        print(f"sample_app: {exc}", file=sys.stderr)
        return 2
    from sanic import Sanic
    from sanic.worker.loader import AppLoader

    from .app import create_app
    from .server import BoundedRequestProtocol

    configure_logging(settings.log_level)
    loader = AppLoader(factory=partial(create_app, settings))
    app = loader.load()
    app.prepare(host=args.host, port=args.port, single_process=True, access_log=False, motd=False,
                protocol=BoundedRequestProtocol)
    Sanic.serve_single(primary=app)
    return 0


if __name__ == "__main__":
    sys.exit(main())
