"""A small PostgreSQL wire-protocol (v3) server for test doubles: the wire only, no SQL semantics.

The semantics live in a handler (tests/doubles/crdb_sql.py answers like CockroachDB); this module frames
messages the way libpq and psycopg 3 expect them, so the product's real client code runs unchanged:

- startup: SSLRequest / GSSENCRequest answered 'N' (the URL says sslmode=disable), StartupMessage ->
  AuthenticationOk, one ParameterStatus per status parameter, BackendKeyData, ReadyForQuery;
- simple query ('Q'): RowDescription with real type OIDs, text-format DataRows, CommandComplete,
  ErrorResponse (S/V/C/M + D/H), EmptyQueryResponse;
- extended query (Parse/Bind/Describe/Execute/Sync/Close/Flush), unnamed or named statements, text
  parameters substituted as SQL literals. psycopg's ClientCursor (what CrdbSqlResource uses) only sends
  'Q' (psycopg/client_cursor.py ClientCursorMixin._execute_send calls PQsendQuery), the extended path is
  for a plain psycopg Cursor;
- Terminate ('X').

Protocol reference: PostgreSQL docs "Frontend/Backend Protocol" (message formats); CockroachDB implements
the same framing in cockroachdb/cockroach pkg/sql/pgwire (conn.go, pgwirebase/encoding.go).
"""

from __future__ import annotations

import datetime as dt
import decimal
import itertools
import json
import secrets
import socket
import socketserver
import struct
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

# Type OIDs (PostgreSQL pg_type.dat; CockroachDB reports the same ones, pkg/sql/types/oid.go).
OID = {
    "BOOL": 16, "BYTES": 17, "INT8": 20, "INT4": 23, "TEXT": 25, "JSONB": 3802, "FLOAT8": 701,
    "TIMESTAMP": 1114, "TIMESTAMPTZ": 1184, "INTERVAL": 1186, "NUMERIC": 1700, "UUID": 2950,
    "INT8[]": 1016, "TEXT[]": 1009,
}
TYPE_SIZE = {16: 1, 20: 8, 23: 4, 701: 8, 1114: 8, 1184: 8, 2950: 16}

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102
PROTOCOL_3 = 196608


class PgError(Exception):
    """An error the server reports to the client as an ErrorResponse (the session carries on)."""

    def __init__(self, sqlstate: str, message: str, *, detail: str | None = None, hint: str | None = None,
                 severity: str = "ERROR"):
        super().__init__(message)
        self.sqlstate, self.message, self.detail, self.hint, self.severity = (
            sqlstate, message, detail, hint, severity)


@dataclass
class Column:
    name: str
    type: str  # a key of OID

    @property
    def oid(self) -> int:
        return OID[self.type]


@dataclass
class Result:
    """One statement's outcome: rows (columns is not None) and/or a CommandComplete tag."""

    tag: str
    columns: list[Column] | None = None
    rows: list[Sequence[Any]] = field(default_factory=list)


@dataclass
class Session:
    user: str
    database: str
    application_name: str = ""
    pid: int = 0


Handler = Callable[[Session, str], Result]


# --- value encoding (text format) ---------------------------------------------------------------------------

def encode_text(value: Any) -> bytes | None:
    """A value in PostgreSQL text format; None is SQL NULL."""
    if value is None:
        return None
    if isinstance(value, bool):
        return b"t" if value else b"f"
    if isinstance(value, (list, tuple)):
        return encode_array(value).encode()
    if isinstance(value, dict):
        return json.dumps(value, separators=(", ", ": ")).encode()
    if isinstance(value, dt.datetime):
        return _encode_timestamp(value).encode()
    if isinstance(value, (bytes, bytearray)):
        return b"\\x" + bytes(value).hex().encode()
    if isinstance(value, (int, float, decimal.Decimal)):
        return str(value).encode()
    return str(value).encode()


def _encode_timestamp(value: dt.datetime) -> str:
    text = value.isoformat(sep=" ")
    # PostgreSQL prints a UTC offset as +00 (not +00:00).
    return text[:-3] if text.endswith(":00") and value.tzinfo is not None else text


def encode_array(values: Sequence[Any]) -> str:
    """PostgreSQL array literal: {1,2} / {"region=a,zone=b",NULL}."""
    parts = []
    for v in values:
        if v is None:
            parts.append("NULL")
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            parts.append(str(v))
        else:
            parts.append(_quote_array_element(str(v)))
    return "{" + ",".join(parts) + "}"


def _quote_array_element(text: str) -> str:
    if text == "" or text.upper() == "NULL" or any(c in text for c in ',{}"\\ \t\n'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


# --- framing ------------------------------------------------------------------------------------------------

def _msg(kind: bytes, payload: bytes = b"") -> bytes:
    return kind + struct.pack("!i", len(payload) + 4) + payload


def _cstr(text: str) -> bytes:
    return text.encode() + b"\x00"


def _row_description(columns: list[Column]) -> bytes:
    body = struct.pack("!h", len(columns))
    for col in columns:
        size = TYPE_SIZE.get(col.oid, -1)
        body += _cstr(col.name) + struct.pack("!ihihih", 0, 0, col.oid, size, -1, 0)
    return _msg(b"T", body)


def _data_row(values: Sequence[Any]) -> bytes:
    body = struct.pack("!h", len(values))
    for v in values:
        raw = encode_text(v)
        body += struct.pack("!i", -1) if raw is None else struct.pack("!i", len(raw)) + raw
    return _msg(b"D", body)


def _error(err: PgError) -> bytes:
    fields = [(b"S", err.severity), (b"V", err.severity), (b"C", err.sqlstate), (b"M", err.message)]
    if err.detail:
        fields.append((b"D", err.detail))
    if err.hint:
        fields.append((b"H", err.hint))
    return _msg(b"E", b"".join(k + _cstr(v) for k, v in fields) + b"\x00")


def _ready(status: bytes = b"I") -> bytes:
    return _msg(b"Z", status)


def result_messages(result: Result, *, describe: bool = True) -> bytes:
    out = b""
    if result.columns is not None and describe:
        out += _row_description(result.columns)
    for row in result.rows:
        out += _data_row(row)
    return out + _msg(b"C", _cstr(result.tag))


# --- statements -----------------------------------------------------------------------------------------------

def split_statements(text: str) -> list[str]:
    """Split a simple-query string on semicolons outside quotes and comments (CockroachDB runs each)."""
    out, buf, i, quote = [], [], 0, None
    while i < len(text):
        c = text[i]
        if quote:
            buf.append(c)
            if c == quote:
                quote = None
        elif c in ("'", '"'):
            quote = c
            buf.append(c)
        elif text.startswith("--", i):
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
            continue
        elif c == ";":
            out.append("".join(buf).strip())
            buf = []
        else:
            buf.append(c)
        i += 1
    out.append("".join(buf).strip())
    return [s for s in out if s]


def substitute_params(sql: str, params: list[bytes | None]) -> str:
    """Replace $1..$n with text parameters as SQL literals (quotes doubled), highest index first."""
    for index in range(len(params), 0, -1):
        raw = params[index - 1]
        literal = "NULL" if raw is None else "'" + raw.decode().replace("'", "''") + "'"
        sql = sql.replace(f"${index}", literal)
    return sql


# --- the server -----------------------------------------------------------------------------------------------

class _Connection(socketserver.BaseRequestHandler):
    server: PgWireServer

    def handle(self) -> None:
        sock = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.rfile = sock.makefile("rb")
        try:
            session = self._startup()
            if session is not None:
                self._serve(session)
        except (ConnectionError, EOFError, OSError):
            pass  # the client went away: nothing to answer

    # startup ---------------------------------------------------------------------------------------------
    def _read_exact(self, n: int) -> bytes:
        data = self.rfile.read(n)
        if len(data) < n:
            raise EOFError
        return data

    def _startup(self) -> Session | None:
        while True:
            (length,) = struct.unpack("!i", self._read_exact(4))
            body = self._read_exact(length - 4)
            (code,) = struct.unpack("!i", body[:4])
            if code in (SSL_REQUEST, GSSENC_REQUEST):
                self.request.sendall(b"N")  # no TLS here: the URL says sslmode=disable
                continue
            if code == CANCEL_REQUEST:
                return None
            if code != PROTOCOL_3:
                self.request.sendall(_error(PgError("08P01", f"unsupported protocol version {code}",
                                                    severity="FATAL")))
                return None
            return self._accept(self._startup_params(body[4:]))

    @staticmethod
    def _startup_params(raw: bytes) -> dict[str, str]:
        items = raw.rstrip(b"\x00").split(b"\x00")
        return {items[i].decode(): items[i + 1].decode() for i in range(0, len(items) - 1, 2)}

    def _accept(self, params: dict[str, str]) -> Session:
        user = params.get("user", "")
        session = Session(user=user, database=params.get("database", user),
                          application_name=params.get("application_name", ""), pid=next(self.server.pids))
        out = _msg(b"R", struct.pack("!i", 0))  # AuthenticationOk
        for name, value in self.server.status_params(session).items():
            out += _msg(b"S", _cstr(name) + _cstr(value))
        out += _msg(b"K", struct.pack("!ii", session.pid, secrets.randbits(31)))
        self.request.sendall(out + _ready())
        return session

    # messages --------------------------------------------------------------------------------------------
    def _serve(self, session: Session) -> None:
        prepared: dict[str, str] = {}
        portals: dict[str, str] = {}
        self.described: dict[str, Result] = {}  # a portal Describe ran already; Execute sends its rows
        failed = False  # in the extended protocol, an error skips messages until Sync
        while True:
            kind = self._read_exact(1)
            (length,) = struct.unpack("!i", self._read_exact(4))
            body = self._read_exact(length - 4)
            if kind == b"X":
                return
            if kind == b"Q":
                self.request.sendall(self._simple(session, body[:-1].decode()) + _ready())
            elif kind == b"S":
                failed = False
                self.request.sendall(_ready())
            elif kind == b"H":
                continue
            elif failed:
                continue
            else:
                try:
                    self.request.sendall(self._extended(session, kind, body, prepared, portals))
                except PgError as err:
                    failed = True
                    self.request.sendall(_error(err))

    def _simple(self, session: Session, text: str) -> bytes:
        statements = split_statements(text)
        if not statements:
            return _msg(b"I")  # EmptyQueryResponse
        out = b""
        for stmt in statements:
            try:
                out += result_messages(self.server.handler(session, stmt))
            except PgError as err:
                return out + _error(err)
        return out

    def _extended(self, session, kind, body, prepared, portals) -> bytes:
        if kind == b"P":
            name, rest = body.split(b"\x00", 1)
            query, _ = rest.split(b"\x00", 1)
            prepared[name.decode()] = query.decode()
            return _msg(b"1")
        if kind == b"B":
            return self._bind(body, prepared, portals)
        if kind == b"D":
            return self._describe(session, body, prepared, portals)
        if kind == b"E":
            portal = body.split(b"\x00", 1)[0].decode()
            return self._execute(session, portal, portals.pop(portal, ""))
        if kind == b"C":
            (prepared if body[:1] == b"S" else portals).pop(body[1:-1].decode(), None)
            return _msg(b"3")
        raise PgError("08P01", f"unsupported message type {kind!r}")

    @staticmethod
    def _bind(body: bytes, prepared: dict, portals: dict) -> bytes:
        portal, rest = body.split(b"\x00", 1)
        stmt, rest = rest.split(b"\x00", 1)
        (nfmt,) = struct.unpack("!h", rest[:2])
        formats = struct.unpack(f"!{nfmt}h", rest[2:2 + 2 * nfmt])
        if any(formats):
            raise PgError("0A000", "binary parameters are not supported by this stand-in; use text format")
        pos = 2 + 2 * nfmt
        (nparams,) = struct.unpack("!h", rest[pos:pos + 2])
        pos += 2
        params: list[bytes | None] = []
        for _ in range(nparams):
            (n,) = struct.unpack("!i", rest[pos:pos + 4])
            pos += 4
            params.append(None if n < 0 else rest[pos:pos + n])
            pos += max(n, 0)
        portals[portal.decode()] = substitute_params(prepared[stmt.decode()], params)
        return _msg(b"2")

    def _describe(self, session, body, prepared, portals) -> bytes:
        name = body[1:-1].decode()
        if body[:1] == b"S":
            # Parameter types unknown (0): the client sends text and we substitute literals.
            sql = prepared.get(name, "")
            count = len({tok for tok in sql.split() if tok.startswith("$")})
            return _msg(b"t", struct.pack("!h", count) + struct.pack("!i", 0) * count) + _msg(b"n")
        sql = portals.get(name, "")
        if not sql.strip():
            return _msg(b"n")
        result = self.described[name] = self.server.handler(session, sql)
        return _row_description(result.columns) if result.columns is not None else _msg(b"n")

    def _execute(self, session, portal: str, sql: str) -> bytes:
        if portal in self.described:
            return result_messages(self.described.pop(portal), describe=False)
        if not sql.strip():
            return _msg(b"I")
        return result_messages(self.server.handler(session, sql), describe=False)


class PgWireServer(socketserver.ThreadingTCPServer):
    """Threaded server on 127.0.0.1:<free port>; `handler(session, sql) -> Result` answers statements."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, handler: Handler, status_params: Callable[[Session], dict[str, str]],
                 host: str = "127.0.0.1", port: int = 0):
        super().__init__((host, port), _Connection)
        self.handler = handler
        self.status_params = status_params
        self.pids = itertools.count(1000)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.server_address[1]

    def start(self) -> PgWireServer:
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, name="pgwire",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
