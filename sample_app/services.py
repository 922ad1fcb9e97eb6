"""Login and search: input validation and the SQL, shared by the HTTP routes and the load engine.

Statements are parameterized and identical on CockroachDB and PostgreSQL. bench/app_throughput.py
imports LOGIN_SQL and SEARCH_SQL so its raw psycopg loop runs exactly these statements.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from .db import Database
from .errors import bad_field
from .settings import SEARCH_LIMIT_CEILING

# Matched with fullmatch: `$` alone also matches before a final newline ("alice\n" would pass).
USER_ID_RE = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
# Seeded terms are lowercase words, spaces and digits: the query alphabet matches, which also
# rules out LIKE wildcards (% and _) so the pattern below needs no escaping.
QUERY_RE = re.compile(r"[a-z0-9][a-z0-9 -]{0,39}")

LOGIN_SQL = (
    "INSERT INTO login_events (id, user_id, ts, ip_hash, ua_hash) VALUES (%s, %s, %s, %s, %s) "
    "ON CONFLICT (id) DO NOTHING"
)
# Prefix search as a key range: both databases turn `term >= lo AND term < hi` into a scan of
# the unique index on term (PostgreSQL only does so for LIKE under the C collation). LIKE then
# guarantees exact prefix semantics whatever the collation.
SEARCH_SQL = (
    "SELECT term, popularity FROM search_terms{aost} "
    "WHERE term >= %s AND term < %s AND term LIKE %s ORDER BY term LIMIT %s"
)
FOLLOWER_READ_CLAUSE = " AS OF SYSTEM TIME follower_read_timestamp()"


_SEARCH_SQL = {flag: SEARCH_SQL.format(aost=FOLLOWER_READ_CLAUSE if flag else "") for flag in (False, True)}


def search_sql(follower_reads: bool) -> str:
    return _SEARCH_SQL[follower_reads]  # built once: this runs on every search


def parse_login(body: Any) -> str:
    if not isinstance(body, dict):
        raise bad_field("body", 'expected a JSON object such as {"user_id": "alice"}')
    unknown = sorted(set(body) - {"user_id"})
    if unknown:
        raise bad_field(unknown[0], "unknown field (only user_id is accepted)")
    user_id = body.get("user_id")
    if user_id is None:
        raise bad_field("user_id", "required")
    if not isinstance(user_id, str) or not USER_ID_RE.fullmatch(user_id):
        raise bad_field("user_id", "1-64 characters from A-Z a-z 0-9 _ . @ -")
    return user_id


def parse_search(q: str | None, limit: str | None, default_limit: int) -> tuple[str, int]:
    if q is None:
        raise bad_field("q", "required, e.g. /search?q=amb")
    q = q.strip().lower()
    if not QUERY_RE.fullmatch(q):
        raise bad_field("q", "1-40 characters from a-z 0-9 space and -, starting with a letter or digit")
    if limit is None:
        return q, default_limit
    try:
        n = int(limit)
    except ValueError:
        raise bad_field("limit", f"an integer from 1 to {SEARCH_LIMIT_CEILING}") from None
    if not 1 <= n <= SEARCH_LIMIT_CEILING:
        raise bad_field("limit", f"an integer from 1 to {SEARCH_LIMIT_CEILING}")
    return q, n


def prefix_range(prefix: str) -> tuple[str, str]:
    """[lo, hi) such that every string starting with prefix sorts inside (byte order)."""
    return prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)


# Clients repeat their IP and user agent on every login: remembering recent hashes saves two HMAC
# computations per request on the hot path. Bounded in entries and in entry size (a user agent can
# be kilobytes long), so the cache stays under ~2 MB; it holds only hashes of what is stored anyway.
HASH_CACHE_ENTRIES = 4096
HASH_CACHE_MAX_CHARS = 256


def _hmac_hex(salt: str, value: str) -> str:
    return hmac.new(salt.encode(), value.encode("utf-8", "replace"), hashlib.sha256).hexdigest()


_cached_hmac_hex = lru_cache(maxsize=HASH_CACHE_ENTRIES)(_hmac_hex)


def salted_hash(salt: str, value: str) -> str:
    if len(value) <= HASH_CACHE_MAX_CHARS:
        return _cached_hmac_hex(salt, value)
    return _hmac_hex(salt, value)


class _EventIds:
    """Random (version 4) UUIDs as strings, 256 per os.urandom call.

    Same randomness as uuid.uuid4() (os.urandom), but one system call per 256 logins and no UUID
    object per request: the id goes to the database and to the JSON reply as text anyway.
    """

    BATCH = 256

    def __init__(self) -> None:
        self._ids: list[str] = []

    def next(self) -> str:
        if not self._ids:
            self._ids = self._generate(self.BATCH)
        return self._ids.pop()

    @staticmethod
    def _generate(n: int) -> list[str]:
        raw = bytearray(os.urandom(16 * n))
        raw[6::16] = bytes((b & 0x0F) | 0x40 for b in raw[6::16])  # version 4
        raw[8::16] = bytes((b & 0x3F) | 0x80 for b in raw[8::16])  # RFC 4122 variant
        h = raw.hex()
        return [
            f"{h[i : i + 8]}-{h[i + 8 : i + 12]}-{h[i + 12 : i + 16]}-{h[i + 16 : i + 20]}-{h[i + 20 : i + 32]}"
            for i in range(0, len(h), 32)
        ]


_event_ids = _EventIds()


async def login(db: Database, salt: str, user_id: str, ip: str, user_agent: str, retries: int) -> dict:
    event_id = _event_ids.next()
    ts = datetime.now(UTC)
    params = (event_id, user_id, ts, salted_hash(salt, ip), salted_hash(salt, user_agent))
    await db.fetch("writer", LOGIN_SQL, params, retries=retries)
    return {"id": event_id, "user_id": user_id, "ts": ts.isoformat()}


async def search(db: Database, q: str, limit: int) -> dict:
    """On the read path; at follower_read_timestamp() when the connection allows (Database.read)."""
    lo, hi = prefix_range(q)
    rows = await db.read(search_sql, (lo, hi, q + "%", limit), retries=2)
    return {"q": q, "count": len(rows), "results": [{"term": t, "popularity": p} for t, p in rows]}
