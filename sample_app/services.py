"""Login and search: input validation and the SQL, shared by the HTTP routes and the load engine.

Statements are parameterized and identical on CockroachDB and PostgreSQL. bench/app_throughput.py
imports LOGIN_SQL and SEARCH_SQL so its raw psycopg loop runs exactly these statements.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from .db import Database
from .errors import bad_field
from .settings import SEARCH_LIMIT_CEILING

USER_ID_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
# Seeded terms are lowercase words, spaces and digits: the query alphabet matches, which also
# rules out LIKE wildcards (% and _) so the pattern below needs no escaping.
QUERY_RE = re.compile(r"^[a-z0-9][a-z0-9 -]{0,39}$")

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


def search_sql(follower_reads: bool) -> str:
    return SEARCH_SQL.format(aost=FOLLOWER_READ_CLAUSE if follower_reads else "")


def parse_login(body: Any) -> str:
    if not isinstance(body, dict):
        raise bad_field("body", 'expected a JSON object such as {"user_id": "alice"}')
    unknown = sorted(set(body) - {"user_id"})
    if unknown:
        raise bad_field(unknown[0], "unknown field (only user_id is accepted)")
    user_id = body.get("user_id")
    if user_id is None:
        raise bad_field("user_id", "required")
    if not isinstance(user_id, str) or not USER_ID_RE.match(user_id):
        raise bad_field("user_id", "1-64 characters from A-Z a-z 0-9 _ . @ -")
    return user_id


def parse_search(q: str | None, limit: str | None, default_limit: int) -> tuple[str, int]:
    if q is None:
        raise bad_field("q", "required, e.g. /search?q=amb")
    q = q.strip().lower()
    if not QUERY_RE.match(q):
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


def salted_hash(salt: str, value: str) -> str:
    return hmac.new(salt.encode(), value.encode("utf-8", "replace"), hashlib.sha256).hexdigest()


async def login(db: Database, salt: str, user_id: str, ip: str, user_agent: str, retries: int) -> dict:
    event_id = uuid.uuid4()
    ts = datetime.now(UTC)
    params = (event_id, user_id, ts, salted_hash(salt, ip), salted_hash(salt, user_agent))
    await db.fetch("writer", LOGIN_SQL, params, retries=retries)
    return {"id": str(event_id), "user_id": user_id, "ts": ts.isoformat()}


async def search(db: Database, q: str, limit: int, follower_reads: bool) -> dict:
    lo, hi = prefix_range(q)
    rows = await db.fetch(db.read_pool(), search_sql(follower_reads), (lo, hi, q + "%", limit), retries=2)
    return {"q": q, "count": len(rows), "results": [{"term": t, "popularity": p} for t, p in rows]}
