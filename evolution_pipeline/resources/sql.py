"""CockroachDB SQL through psycopg 3: the one door to the database for the ops.

Retries only what CockroachDB documents as retryable: SQLSTATE 40001 (serialization conflicts) and dropped
connections. Never retries syntax, permission or other errors: they would fail the same way again.

Importing this module never imports Dagster: what the SQL resource does lives here, in CrdbSqlMethods, over the
settings its class holds. Two classes hold them: CrdbSqlResource (the Dagster resource the ops get, in
sql_resource.py, which imports this module and never the other way) and
CrdbSqlClient (the same fields as a plain dataclass), through which `python -m evolution_pipeline plan` reads the
cluster. Importing Dagster costs ~2 CPU-seconds per call (tests/plan/test_plan_imports.py keeps it out).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from ..sqlscript import load_script

# psycopg is imported where a statement is built or sent, not with this module: the import costs ~0.3 CPU-s, and
# `python -m evolution_pipeline plan` without a cluster uses only the helpers below (every op sends SQL anyway).
if TYPE_CHECKING:
    import psycopg
    from psycopg import sql as psql

RETRYABLE_SQLSTATES = {"40001", "40003"}  # 40003: ambiguous result; our statements are idempotent
ZONE_TARGETS_DATA = ("RANGE default",)
# System data has its own zones (defaults 5 replicas); all of them follow the phase's system RF.
ZONE_TARGETS_SYSTEM = ("DATABASE system", "RANGE meta", "RANGE system", "RANGE liveness")


class SqlError(RuntimeError):
    """A statement failed for a reason retrying cannot fix; the message names the statement."""


# The node that bootstrapped the cluster is node 1 and its first store is store 1 (cockroachdb/cockroach
# pkg/kv/kvserver/kvstorage/init.go: FirstNodeID = 1, "FirstStoreID is the StoreID assigned to the first
# store on the node with ID FirstNodeID"). Every other store ID comes from a cluster-wide counter, so it need
# not equal its node's ID (a node with two stores, a node whose store was wiped and rejoined).
FIRST_NODE_ID = 1
FIRST_STORE_ID = 1


@dataclass(frozen=True)
class RangeReplicas:
    """One range's replicas, from SHOW RANGES / SHOW CLUSTER RANGES, by STORE ID.

    The replica arrays hold store IDs, not node IDs (cockroachdb/cockroach pkg/sql/crdb_internal.go,
    crdbInternalRangesNoLeasesTable: "All the values in the `*replicas` columns correspond to store IDs",
    each array built from `replica.StoreID`). What ties a store to its node is `replica_localities`: entry i
    is the locality of the NODE holding `replicas[i]` (NodeDescs.GetNodeDescriptor(replica.NodeID)), NULL
    when that node's descriptor is unknown. No supported statement gives store -> node ID in v26.2:
    crdb_internal.kv_store_status has both, but sits behind allow_unsafe_internals (tests/FIDELITY.md).
    """

    range_id: int
    voters: tuple[int, ...]  # voting_replicas: store IDs
    non_voters: tuple[int, ...]  # non_voting_replicas: store IDs
    localities: tuple[tuple[int, str | None], ...] = ()  # (store ID, its node's locality), from replicas

    def locality_of(self, store: int) -> str | None:
        return dict(self.localities).get(store)


@dataclass(frozen=True)
class ZoneConfig:
    """The replication fields of one zone, as SHOW ZONE CONFIGURATION's raw_config_sql states them."""

    num_replicas: int | None
    num_voters: int | None  # None: not set, so every replica votes (SpanConfig.GetNumVoters)
    voter_constraints: str | None  # None: not set; '[]': explicitly none


@dataclass(frozen=True)
class BackupInfo:
    path: str  # the subdirectory inside the collection, as SHOW BACKUPS IN lists it


@dataclass(frozen=True)
class BackupCheck:
    """SHOW BACKUP FROM LATEST IN <uri> WITH check_files, summed over its objects (every file was found)."""

    objects: int
    size_bytes: int
    rows: int
    file_bytes: int


def collection_uri(base: str, *parts: str) -> str:
    """Append path segments to a backup URI, keeping its query string (s3://b/p?AUTH=implicit).

    Plain string work on purpose: urlunsplit would turn userfile:///x into userfile:/x.
    """
    head, sep, query = base.partition("?")
    return "/".join([head.rstrip("/"), *[p.strip("/") for p in parts]]) + sep + query


def _is_retryable(exc: Exception) -> bool:
    """40001/40003, connection failures (08xxx or no SQLSTATE at all) and node shutdowns (57P0x)."""
    if isinstance(exc, ConnectionError):
        return True
    sqlstate = getattr(exc, "sqlstate", None)
    if sqlstate is None:
        import psycopg

        return isinstance(exc, psycopg.OperationalError)
    return sqlstate in RETRYABLE_SQLSTATES or sqlstate.startswith(("08", "57P"))


class CrdbSqlMethods:
    """Admin SQL access to the cluster (root or an admin user, over TLS on real clusters), over the settings
    the class holds: CrdbSqlResource (Dagster, sql_resource.py) and CrdbSqlClient (plain) declare the same
    fields.

    No field is declared here: a pydantic model (the resource) would take a base class's annotations for
    fields of its own. The names below are for type checkers only.
    """

    if TYPE_CHECKING:
        url: str
        database: str
        connect_timeout_seconds: int
        max_attempts: int
        retry_base_seconds: float
        backup_uri: str
        insecure: bool
        backup_as_of_seconds: int
        replication_timeout_seconds: float
        replication_poll_seconds: float

    # --- connections and retries -------------------------------------------------------------------------

    @contextmanager
    def connect(self, database: str | None = None) -> Iterator[psycopg.Connection]:
        import psycopg
        from psycopg.rows import dict_row

        kwargs: dict[str, Any] = {"autocommit": True, "connect_timeout": self.connect_timeout_seconds,
                                  "row_factory": dict_row, "application_name": "crdb-evolution-pipeline"}
        if database:
            kwargs["dbname"] = database
        try:
            conn = psycopg.connect(self.url, **kwargs)
        except psycopg.OperationalError as exc:
            message = f"cannot connect to CockroachDB at {_redact(self.url)}: {exc}".strip()
            if _is_retryable(exc):
                raise ConnectionError(message) from exc
            raise SqlError(f"{message} (check the user, password and certificates in CRDB_ADMIN_URL)") from exc
        try:
            yield conn
        finally:
            conn.close()

    def _with_retries(self, what: str, fn, attempts: int | None = None):
        import psycopg

        delay = self.retry_base_seconds
        attempts = attempts or self.max_attempts
        for attempt in range(1, attempts + 1):
            try:
                return fn()
            except (psycopg.Error, ConnectionError) as exc:
                if not _is_retryable(exc):
                    raise SqlError(f"{what} failed: {exc}".strip()) from exc
                if attempt == attempts:
                    raise SqlError(f"{what} still failing after {attempt} attempts: {exc}".strip()) from exc
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def execute(self, statement: str | psql.Composable, params: dict | None = None, *,
                database: str | None = None, retry: bool = True) -> list[dict]:
        """Run one statement (with retries unless retry=False) and return its rows, if any."""
        import psycopg

        def run():
            # ClientCursor binds parameters client-side, so they also work in DDL such as
            # ALTER USER ... WITH PASSWORD, on CockroachDB and PostgreSQL alike.
            with self.connect(database) as conn, psycopg.ClientCursor(conn) as cur:
                cur.execute(statement, params)
                return cur.fetchall() if cur.description else []

        if not retry:
            return self._with_retries(_describe(statement), run, attempts=1)
        return self._with_retries(_describe(statement), run)

    # --- what the ops need ---------------------------------------------------------------------------------

    def database_exists(self, name: str | None = None) -> bool:
        rows = self.execute("SELECT 1 FROM pg_catalog.pg_database WHERE datname = %(db)s",
                            {"db": name or self.database})
        return bool(rows)

    def ensure_database(self) -> None:
        from psycopg import sql as psql

        self.execute(psql.SQL("CREATE DATABASE IF NOT EXISTS {}").format(psql.Identifier(self.database)))

    def role_exists(self, user: str) -> bool:
        return bool(self.execute("SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = %(u)s", {"u": user}))

    def ensure_group(self, group: str) -> bool:
        """Create the group (a role without LOGIN) if missing. True when it created it.

        PostgreSQL has no CREATE ROLE IF NOT EXISTS (CockroachDB has), so a catalog probe keeps it portable.
        CREATE ROLE means NOLOGIN on both (cockroachdb/cockroach pkg/sql/create_role.go: "Using CREATE ROLE
        syntax enables NOLOGIN by default")."""
        from psycopg import sql as psql

        return self._create_role_once(group, psql.SQL("CREATE ROLE {}").format(psql.Identifier(group)))

    def ensure_login_user(self, user: str, password: str | None) -> bool:
        """Create the login user if missing, its initial password in the same statement. True if created.

        An existing user is left alone on purpose: after creation its password belongs to rotate_credentials,
        and re-running a phase must never set one back (that would lock the app out of the user it runs on,
        or revive a retired credential). One statement, so no user exists half-made without its password.
        No password on an insecure cluster (CockroachDB refuses it there: 28P01, pkg/sql/create_role.go) or
        for a standby user (None); without one, no password logs in (CockroachDB and PostgreSQL alike)."""
        from psycopg import sql as psql

        statement = psql.SQL("CREATE USER {}").format(psql.Identifier(user))
        if password and not self.insecure:
            statement = psql.SQL("CREATE USER {} WITH PASSWORD {}").format(psql.Identifier(user),
                                                                         psql.Placeholder("password"))
            return self._create_role_once(user, statement, {"password": password})
        return self._create_role_once(user, statement)

    def _create_role_once(self, name: str, statement, params: dict | None = None) -> bool:
        import psycopg

        if self.role_exists(name):
            return False
        try:
            self.execute(statement, params)
        except SqlError as exc:
            # Already there: an earlier attempt committed but its reply was lost (retried on 40003/08xxx),
            # or another run created it in between. Either way the goal is met.
            if not isinstance(exc.__cause__, psycopg.errors.DuplicateObject):
                raise
        return True

    def run_script(self, path) -> int:
        """Run a phase SQL file inside the app database, statement by statement. Returns the count.

        The files hold no secrets and no parameters: passwords are set by ensure_login_user."""
        statements = load_script(path)
        for statement in statements:
            self.execute(statement, database=self.database)
        return len(statements)

    def set_zone(self, target: str, num_replicas: int, num_voters: int | None = None,
                 voter_constraints: str | None = None) -> None:
        """One ALTER ... CONFIGURE ZONE USING with all the given fields: idempotent, and CockroachDB
        validates the whole zone at once (so num_replicas = 2 arrives together with its num_voters)."""
        if voter_constraints == VOTER_CONSTRAINTS_PLACEHOLDER:
            raise SqlError(f"{target}: node 1's locality was not resolved; refusing to send the placeholder")
        self.execute(zone_sql(target, num_replicas, num_voters, voter_constraints))

    def zone_config(self, target: str) -> ZoneConfig | None:
        _check_target(target)
        rows = self.execute(f"SHOW ZONE CONFIGURATION FROM {target}")
        if not rows:
            return None
        return parse_zone_config(rows[0].get("raw_config_sql") or "")

    def range_replicas(self, scope: str) -> list[RangeReplicas]:
        """Voters and non-voters per range: scope 'cluster' (every range, system ones included) or a database.

        Without WITH DETAILS: voting_replicas and non_voting_replicas are always returned (docs
        show-ranges.md), and DETAILS (sizes, leaseholders) fetches data across nodes, a large overhead for a
        statement polled while the cluster rebalances.
        """
        return [_range_replicas(r) for r in self.execute(_show_ranges(scope))]

    def first_node_locality(self) -> str:
        """Node 1's locality ("region=us-east1,zone=us-east1-a"): the locality of store 1, which is always node
        1's (FIRST_STORE_ID), as replica_localities gives it for a range with a replica there. A supported
        statement (SHOW CLUSTER RANGES), never crdb_internal."""
        for r in self.range_replicas("cluster"):
            if FIRST_STORE_ID in dict(r.localities):
                locality = r.locality_of(FIRST_STORE_ID)
                if not locality:
                    raise SqlError(f"node {FIRST_NODE_ID} has no locality: start the nodes with --locality (the "
                                   "local backend and the operator set region and zone tiers) so voters can be "
                                   f"pinned to node {FIRST_NODE_ID}")
                return locality
        raise SqlError(f"no range has a replica on store {FIRST_STORE_ID}, node {FIRST_NODE_ID}'s first store "
                       f"(SHOW CLUSTER RANGES): cannot read node {FIRST_NODE_ID}'s locality to pin voters to it")

    def backups_in(self, uri: str) -> list[BackupInfo]:
        """The backups in a collection. An empty or new collection lists 0 rows; ANY error is an error (a
        missing bucket or a refused credential must never pass for "no backup yet")."""
        rows = self.execute("SHOW BACKUPS IN %(uri)s", {"uri": uri})
        return [BackupInfo(str(r.get("path", next(iter(r.values()))))) for r in rows]

    def verify_backup(self, uri: str) -> BackupCheck:
        """Check the latest backup in `uri` without restoring it: WITH check_files makes CockroachDB confirm
        that every file the manifest names exists (cockroachdb/cockroach pkg/backup/show.go: columns
        size_bytes, rows, file_bytes; NULL on database and schema rows)."""
        rows = self.execute("SHOW BACKUP FROM LATEST IN %(uri)s WITH check_files", {"uri": uri})
        if not rows:
            raise SqlError(f"SHOW BACKUP FROM LATEST IN {redact_uri(uri)} listed nothing: the backup holds no object")
        return BackupCheck(objects=len(rows), size_bytes=_total(rows, "size_bytes"), rows=_total(rows, "rows"),
                           file_bytes=_total(rows, "file_bytes"))

    def backup_into(self, uri: str) -> None:
        # A consistent snapshot slightly in the past keeps the backup from contending with live writes.
        # Never retried here: BACKUP runs as a job that outlives a broken connection, and a blind retry
        # would start a second full backup. The backup op decides what to do (see ops/backup.py).
        self.execute(backup_statement("%(uri)s", self.backup_as_of_seconds), {"uri": uri}, retry=False)


@dataclass(frozen=True)
class CrdbSqlClient(CrdbSqlMethods):
    """Admin SQL access without Dagster (the plan command): CrdbSqlResource's fields and defaults, its methods.

    `url` is a libpq URL such as
    postgresql://root@crdb-writer.crdb:26257/defaultdb?sslmode=verify-full&sslrootcert=...&sslcert=...&sslkey=...
    and comes from the environment (CRDB_ADMIN_URL), never from source.
    """

    url: str
    database: str = "app"
    connect_timeout_seconds: int = 10
    max_attempts: int = 5
    retry_base_seconds: float = 0.2
    # Demo-grade default (node 1's disk, see configuration.DEFAULTS); s3://, gs:// or external:// for real use.
    backup_uri: str = "nodelocal://1/crdb-evolution-backups"
    # An insecure cluster (cockroach start --insecure, the local backend's opt-in) refuses passwords: 28P01
    # "setting or updating a password is not supported in insecure mode" (cockroachdb/cockroach
    # pkg/sql/alter_role.go, pkg/sql/create_role.go). Users are then created without one.
    insecure: bool = False
    # BACKUP ... AS OF SYSTEM TIME '-<n>s': a consistent snapshot slightly in the past, which keeps the backup
    # from contending with live writes (the CockroachDB docs' recommendation, "Take Full and Incremental
    # Backups"); it holds only what existed n seconds before the statement.
    backup_as_of_seconds: int = 10
    replication_timeout_seconds: float = 900.0
    replication_poll_seconds: float = 5.0


def backup_statement(uri: str, as_of_seconds: int) -> str:
    """The BACKUP statement the backup op sends and the plan shows (`uri` quoted or a placeholder)."""
    return f"BACKUP INTO {uri} AS OF SYSTEM TIME '-{int(as_of_seconds)}s'"


def zone_sql(target: str, num_replicas: int, num_voters: int | None = None,
             voter_constraints: str | None = None) -> str:
    """The ALTER ... CONFIGURE ZONE USING text for one zone (the docs and the run log show the same)."""
    _check_target(target)
    fields = [f"num_replicas = {int(num_replicas)}"]
    if num_voters is not None:
        fields.append(f"num_voters = {int(num_voters)}")
    if voter_constraints is not None:
        if voter_constraints != VOTER_CONSTRAINTS_PLACEHOLDER and not VOTER_CONSTRAINTS.fullmatch(voter_constraints):
            raise SqlError(f"voter_constraints {voter_constraints!r}: want '[]' or '[+key=value,...]'")
        fields.append(f"voter_constraints = '{voter_constraints}'")
    return f"ALTER {target} CONFIGURE ZONE USING {', '.join(fields)}"


# Required constraints only: ZoneConfig.Validate refuses prohibited ones in voter_constraints. Tier keys and
# values are label-like, so the text needs no quoting inside the SQL string or the YAML list.
_TIER = r"\+[A-Za-z0-9_.-]+=[A-Za-z0-9_.-]+"
VOTER_CONSTRAINTS = re.compile(rf"\[\]|\[{_TIER}(,{_TIER})*\]")
# What the text shows where node 1's locality is not known yet (asset metadata, docs); never sent.
VOTER_CONSTRAINTS_PLACEHOLDER = "[+region=<node 1 region>,+zone=<node 1 zone>]"


def parse_zone_config(raw_config_sql: str) -> ZoneConfig:
    def number(field: str) -> int | None:
        m = re.search(rf"\b{field}\s*=\s*(\d+)", raw_config_sql)
        return int(m.group(1)) if m else None

    m = re.search(r"\bvoter_constraints\s*=\s*'([^']*)'", raw_config_sql)
    return ZoneConfig(number("num_replicas"), number("num_voters"), m.group(1) if m else None)


def _check_target(target: str) -> None:
    if target not in ZONE_TARGETS_DATA + ZONE_TARGETS_SYSTEM:
        raise SqlError(f"unknown zone target {target!r}; known: {', '.join(ZONE_TARGETS_DATA + ZONE_TARGETS_SYSTEM)}")


def _show_ranges(scope: str):
    if scope == "cluster":
        return "SHOW CLUSTER RANGES"
    from psycopg import sql as psql

    return psql.SQL("SHOW RANGES FROM DATABASE {}").format(psql.Identifier(scope))


def _store_ids(value) -> tuple[int, ...]:
    return tuple(int(n) for n in (value or []))


def _range_replicas(row: dict) -> RangeReplicas:
    """`replicas` and `replica_localities` are built from the same sorted replica list, entry by entry
    (crdb_internal.go crdbInternalRangesNoLeasesTable), so zipping them maps each store to its node's locality."""
    stores = _store_ids(row.get("replicas"))
    localities = tuple(zip(stores, list(row.get("replica_localities") or [None] * len(stores)), strict=False))
    return RangeReplicas(int(row["range_id"]), _store_ids(row["voting_replicas"]),
                         _store_ids(row["non_voting_replicas"]), localities)


def _total(rows: list[dict], column: str) -> int:
    return sum(int(r[column]) for r in rows if r.get(column) is not None)


def _describe(statement) -> str:
    text = statement if isinstance(statement, str) else statement.as_string(None)
    text = " ".join(text.split())
    return f"SQL `{text[:120]}`"


# Query parameters of a backup destination that carry credentials (s3 AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN,
# gs CREDENTIALS, azure AZURE_ACCOUNT_KEY, ...): CockroachDB redacts the same ones in SHOW JOBS
# (cockroachdb/cockroach pkg/cloud, SanitizeExternalStorageURI with each provider's RedactedParams).
_SECRET_PARAM = re.compile(r"(SECRET|KEY|TOKEN|CREDENTIALS|PASSWORD|SIGNATURE)", re.IGNORECASE)


def redact_uri(uri: str) -> str:
    """A backup destination as it may appear in logs, metadata and messages: credentials in its query
    string or user info replaced by ***; scheme, host, path and harmless options (AUTH=implicit) kept."""
    head, sep, query = uri.partition("?")
    head = re.sub(r"//([^/@:]+):[^/@]*@", r"//\1:***@", head)
    params = [(k, "***" if _SECRET_PARAM.search(k) else v)
              for k, _, v in (p.partition("=") for p in query.split("&") if p)]
    return head + sep + "&".join(f"{k}={v}" for k, v in params)


def scrub(text: str, uri: str) -> str:
    """`text` (an error from CockroachDB, say) with `uri` and its secret values replaced by the redacted form."""
    text = text.replace(uri, redact_uri(uri))
    for part in uri.partition("?")[2].split("&"):
        key, _, value = part.partition("=")
        if value and _SECRET_PARAM.search(key):
            text = text.replace(value, "***")
    return text


def _redact(url: str) -> str:
    u = urlsplit(url)
    if u.password:
        netloc = u.netloc.replace(f":{u.password}@", ":***@")
        return urlunsplit((u.scheme, netloc, u.path, "", ""))
    return urlunsplit((u.scheme, u.netloc, u.path, "", ""))
