"""A wire-level stand-in for CockroachDB's start-up: a TCP proxy in front of the real PostgreSQL that
announces itself the way CockroachDB does, and records the statement texts clients send.

Only the one difference the app keys on is simulated: CockroachDB reports `crdb_version` among its
start-up run-time parameters (cockroachdb/cockroach pkg/sql/pgwire/conn.go statusReportParams,
"crdb_version", // CockroachDB extension), sent as ParameterStatus messages before the first
ReadyForQuery; its value is build.GetInfo().Short() (pkg/build/info.go Info.Short). Everything else,
statements included, is answered by the real PostgreSQL, which refuses AS OF SYSTEM TIME (42601):
so a test sees exactly which text the app sent, and that PostgreSQL got it.

Message framing per the PostgreSQL protocol (frontend/backend protocol, "Message Formats"): a start-up
packet is int32 length + int32 code (80877103 = SSLRequest, 80877104 = GSSENCRequest, answered with one
byte); every later message is a type byte + int32 length (counting itself) + body.
"""

from __future__ import annotations

import asyncio
import struct
import threading

from tests.support.net import free_port

SSL_REQUEST, GSSENC_REQUEST = 80877103, 80877104
# A real build string, as a v25.2.1 server reported it ("Server version:" of `cockroach sql`, shown in
# roachlong/visus-quickstart README.md); its shape is pkg/build/info.go Info.Short.
CRDB_VERSION = (
    "CockroachDB CCL v25.2.1 (x86_64-pc-linux-gnu, built 2025/06/02 23:17:23, go1.23.7 X:nocoverageredesign)"
)


def parameter_status(name: str, value: str) -> bytes:
    body = name.encode() + b"\0" + value.encode() + b"\0"
    return b"S" + struct.pack("!I", len(body) + 4) + body


async def _read_message(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readexactly(5)
    (length,) = struct.unpack("!I", head[1:])
    return head + await reader.readexactly(length - 4)


def _statement_text(message: bytes) -> str | None:
    """The SQL of a Query ('Q') or Parse ('P': statement name, then the text) message."""
    body = message[5:]
    if message[:1] == b"Q":
        return body.split(b"\0", 1)[0].decode()
    if message[:1] == b"P":
        return body.split(b"\0", 2)[1].decode()
    return None


class CrdbStartupProxy:
    """127.0.0.1:<port> -> PostgreSQL; runs its own event loop in a thread for the test's lifetime."""

    def __init__(self, upstream_port: int, crdb_version: str | None = CRDB_VERSION):
        self.upstream_port = upstream_port
        self.crdb_version = crdb_version
        self.port = free_port()
        self.statements: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("proxy did not start")

    def url(self, user: str, password: str) -> str:
        # TLS and GSS negotiation off: the proxy reads the start-up in clear text.
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/app?sslmode=disable&gssencmode=disable"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", self.port))
        self._started.set()
        self._loop.run_forever()

    def close(self) -> None:
        async def stop():
            self._server.close()
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            startup = await self._startup_packet(client_r, client_w)
            server_r, server_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
            server_w.write(startup)
            await asyncio.gather(self._to_server(client_r, server_w), self._to_client(server_r, client_w))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            client_w.close()

    @staticmethod
    async def _startup_packet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
        while True:
            head = await reader.readexactly(8)
            length, code = struct.unpack("!II", head)
            rest = await reader.readexactly(length - 8)
            if code in (SSL_REQUEST, GSSENC_REQUEST):
                writer.write(b"N")  # "not supported here": the client goes on in clear text
                continue
            return head + rest

    async def _to_server(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                message = await _read_message(reader)
                text = _statement_text(message)
                if text is not None:
                    self.statements.append(text)
                writer.write(message)
        finally:
            writer.close()

    async def _to_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        announced = self.crdb_version is None
        while True:
            message = await _read_message(reader)
            if not announced and message[:1] == b"Z":  # the first ReadyForQuery ends the start-up
                writer.write(parameter_status("crdb_version", self.crdb_version))
                announced = True
            writer.write(message)
            await writer.drain()
