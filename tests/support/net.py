"""Loopback helpers shared by every test that starts a server."""

from __future__ import annotations

import random
import socket

# For a server a test stops and starts again (the app tests' PostgreSQL): below Linux's ephemeral range
# (32768-60999), so no client socket is ever given the port while the server is down. There, a connection
# to the stopped port could pick that very port as its own source and connect to itself (TCP simultaneous
# open on loopback): psycopg then read "server closed the connection unexpectedly" where an outage test
# expects "Connection refused" (seen once in a parallel run). Apart from tests/local's 10000-20000 and the
# backend tests' 20000-26000.
RESTARTABLE_PORTS = (7000, 8000)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_restartable_port() -> int:
    """A free port in RESTARTABLE_PORTS, drawn at random so that parallel workers rarely meet."""
    for _ in range(200):
        port = random.randrange(*RESTARTABLE_PORTS)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free port in {RESTARTABLE_PORTS}")
