"""python -m sample_app --host 127.0.0.1 --port 8000

Runs ONE Sanic process (single_process=True), by design: see sample_app/app.py for why. The app
is built by the create_app factory through Sanic's AppLoader, so nothing lives in __main__.
"""

from __future__ import annotations

import argparse
import logging
import sys
from functools import partial

from sanic import Sanic
from sanic.worker.loader import AppLoader

from . import otel
from .app import create_app
from .server import BoundedRequestProtocol
from .settings import Settings, SettingsError
from .tracing import TraceIdFilter


def configure_logging(level: str) -> None:
    """Our loggers, psycopg's (pool reconnects) and OpenTelemetry's; Sanic configures its own.

    A line written inside a sampled request ends with its trace_id and span_id (TraceIdFilter), so an
    error in the log leads to its trace.
    """
    handler = logging.StreamHandler()
    handler.addFilter(TraceIdFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s%(trace)s"))
    # psycopg.pool logs every checkout at INFO: only its warnings (reconnect failures) unless DEBUG.
    quiet = level if level == "DEBUG" else "WARNING"
    levels = {"sample_app": level, "psycopg": quiet, "opentelemetry": quiet}
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
    configure_logging(settings.log_level)
    loader = AppLoader(factory=partial(create_app, settings))
    app = loader.load()
    app.prepare(host=args.host, port=args.port, single_process=True, access_log=False, motd=False,
                protocol=BoundedRequestProtocol)
    Sanic.serve_single(primary=app)
    return 0


if __name__ == "__main__":
    sys.exit(main())
