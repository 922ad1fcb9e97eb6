"""The statements the CockroachDB stand-in answers (tests/doubles/crdb_sql.py holds the state).

One regex per statement form; anything else is refused with 42601 so unknown SQL never passes silently.
Result columns and types follow CockroachDB (sources named per statement); messages are CockroachDB's.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING

from .crdb_ranges import Range
from .crdb_zones import (NAMED_ZONES, Zone, ZoneError, new_constraints, parse_constraints,
                         parse_lease_preferences, parent_target, to_sql, validate, validate_no_repeat_keys,
                         validate_tandem)
from .pgwire import Column, PgError, Result, Session

if TYPE_CHECKING:
    from .crdb_sql import CrdbSqlStandIn

IDENT = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
STR = r"(?:[Ee]?'(?:[^']|'')*')"
HANDLERS: list[tuple[re.Pattern, callable]] = []


def statement(pattern: str):
    def register(fn):
        HANDLERS.append((re.compile(r"\s*" + pattern + r"\s*;?\s*$", re.I | re.S), fn))
        return fn
    return register


def dispatch(crdb: CrdbSqlStandIn, session: Session, sql: str) -> Result:
    for rx, fn in HANDLERS:
        m = rx.match(sql)
        if m:
            return fn(crdb, session, m)
    words = " ".join(sql.split())
    raise PgError("42601", f"at or near \"{words.split(' ')[0].lower() if words else ''}\": syntax error: "
                  f"the CockroachDB stand-in does not recognise this statement: {words[:200]}",
                  hint="add the statement to tests/doubles/crdb_statements.py with its upstream evidence")


def ident(token: str) -> str:
    """A SQL identifier: "Quoted" keeps its case, bare ones are lower-cased."""
    return token[1:-1].replace('""', '"') if token.startswith('"') else token.lower()


def literal(token: str) -> str:
    body = token[1:] if token[:1] in "Ee" else token
    text = body[1:-1].replace("''", "'")
    return text.encode().decode("unicode_escape") if token[:1] in "Ee" else text


def idents(text: str) -> list[str]:
    return [ident(t.strip()) for t in text.split(",") if t.strip()]


def rows(columns: list[tuple[str, str]], data: list, tag: str | None = None) -> Result:
    return Result(tag or f"SELECT {len(data)}", [Column(n, t) for n, t in columns], data)


def need_database(crdb: CrdbSqlStandIn, name: str) -> dict:
    # pkg/sql/sqlerrors NewUndefinedDatabaseError: 3D000 database "x" does not exist.
    if name not in crdb.databases:
        raise PgError("3D000", f'database "{name}" does not exist')
    return crdb.databases[name]


def need_user(crdb: CrdbSqlStandIn, name: str) -> None:
    # pkg/sql/sqlerrors NewUndefinedUserError: 42704 role/user "x" does not exist.
    if name != "public" and name not in crdb.users:
        raise PgError("42704", f'role/user "{name}" does not exist')


def need_table(crdb: CrdbSqlStandIn, session: Session, name: str):
    tables = need_database(crdb, session.database)
    if name not in tables:
        raise PgError("42P01", f'relation "{name}" does not exist')
    return tables[name]


# --- catalog probes ----------------------------------------------------------------------------------------

@statement(rf"SELECT\s+1\s+FROM\s+pg_catalog\.pg_database\s+WHERE\s+datname\s*=\s*({STR})")
def _pg_database(crdb, session, m):
    # SELECT 1 names its column "?column?" (PostgreSQL and CockroachDB alike); INT8.
    return rows([("?column?", "INT8")], [(1,)] if literal(m[1]) in crdb.databases else [])


@statement(rf"SELECT\s+1\s+FROM\s+pg_catalog\.pg_roles\s+WHERE\s+rolname\s*=\s*({STR})")
def _pg_roles(crdb, session, m):
    return rows([("?column?", "INT8")], [(1,)] if literal(m[1]) in crdb.users else [])


@statement(r"SELECT\s+version\s*\(\s*\)")
def _version(crdb, session, m):
    return rows([("version", "TEXT")], [(crdb.build_info(),)])


@statement(r"SHOW\s+LOCALITY")
def _show_locality(crdb, session, m):
    # The gateway's locality; every connection lands on node 1 here.
    return rows([("locality", "TEXT")], [(crdb.node_locality(1),)])


# --- databases, users, privileges ---------------------------------------------------------------------------

@statement(rf"CREATE\s+DATABASE\s+(IF\s+NOT\s+EXISTS\s+)?({IDENT})")
def _create_database(crdb, session, m):
    name = ident(m[2])
    if name in crdb.databases:
        if not m[1]:  # pkg/sql/sqlerrors NewDatabaseAlreadyExistsError: 42P04
            raise PgError("42P04", f'database "{name}" already exists')
    else:
        crdb.databases[name] = {}
    return Result("CREATE DATABASE")


@statement(rf"CREATE\s+(?:USER|ROLE)\s+(IF\s+NOT\s+EXISTS\s+)?({IDENT})(.*)")
def _create_user(crdb, session, m):
    name = ident(m[2])
    _refuse_insecure_password(crdb, m[3])
    if name in crdb.users:
        if m[1]:
            return Result("CREATE ROLE")
        # pkg/sql/create_role.go: 42710 "a role/user named %s already exists".
        raise PgError("42710", f"a role/user named {name} already exists")
    crdb.users.add(name)
    # CREATE USER ... WITH PASSWORD sets it in the same statement (pkg/sql/create_role.go).
    if pw := re.search(rf"PASSWORD\s+({STR}|NULL)", m[3], re.I):
        crdb.passwords[name] = "" if pw[1].upper() == "NULL" else literal(pw[1])
    return Result("CREATE ROLE")


@statement(rf"ALTER\s+(?:USER|ROLE)\s+(IF\s+EXISTS\s+)?({IDENT})\s+(?:WITH\s+)?PASSWORD\s+({STR}|NULL)")
def _alter_user_password(crdb, session, m):
    name = ident(m[2])
    if name not in crdb.users:
        if m[1]:
            return Result("ALTER ROLE")
        raise PgError("42704", f'role/user "{name}" does not exist')
    _refuse_insecure_password(crdb, "PASSWORD " + m[3])
    crdb.passwords[name] = "" if m[3].upper() == "NULL" else literal(m[3])
    return Result("ALTER ROLE")


def _refuse_insecure_password(crdb, options: str) -> None:
    """pkg/sql/alter_role.go / create_role.go: in insecure mode any non-NULL password is refused
    (28P01 InvalidPassword); TestSetUserPasswordInsecure allows only WITH PASSWORD NULL."""
    pw = re.search(rf"PASSWORD\s+({STR}|NULL)", options, re.I)
    if crdb.insecure and pw and pw[1].upper() != "NULL":
        raise PgError("28P01", "setting or updating a password is not supported in insecure mode")


GRANT_TARGET = rf"(?:ON\s+(?:(TABLE|DATABASE|SCHEMA)\s+)?((?:{IDENT}(?:\.{IDENT})?\s*,?\s*)+)\s+)?"


@statement(rf"(GRANT|REVOKE)\s+(.+?)\s+{GRANT_TARGET}(?:TO|FROM)\s+((?:{IDENT}\s*,?\s*)+)")
def _grant(crdb, session, m):
    kind, target_kind, targets, grantees = m[1].upper(), (m[3] or "TABLE").upper(), m[4], m[5]
    for user in idents(grantees):
        need_user(crdb, user)
    if targets and target_kind == "DATABASE":
        for db in idents(targets):
            need_database(crdb, db)
    elif targets and target_kind == "TABLE":
        for table in idents(targets):
            need_table(crdb, session, table.split(".")[-1])
    elif not targets:  # GRANT role TO user: the role must exist too
        for role in idents(m[2]):
            need_user(crdb, role)
    else:
        need_database(crdb, session.database)
    return Result(kind)


@statement(rf"ALTER\s+DEFAULT\s+PRIVILEGES\s+(?:FOR\s+(?:ROLE|USER)\s+{IDENT}\s+)?(?:IN\s+SCHEMA\s+{IDENT}\s+)?"
           rf"(?:GRANT|REVOKE)\s+.+?\s+ON\s+(?:TABLES|SEQUENCES|TYPES|SCHEMAS|FUNCTIONS)\s+(?:TO|FROM)\s+"
           rf"((?:{IDENT}\s*,?\s*)+)")
def _default_privileges(crdb, session, m):
    need_database(crdb, session.database)
    for user in idents(m[1]):
        need_user(crdb, user)
    return Result("ALTER DEFAULT PRIVILEGES")


# --- schema and data (semantics tested on PostgreSQL elsewhere: recorded, checked for existence) ------------

@statement(rf"CREATE\s+TABLE\s+(IF\s+NOT\s+EXISTS\s+)?({IDENT})\s*\(.*\)")
def _create_table(crdb, session, m):
    from .crdb_sql import Table
    name = ident(m[2])
    if session.database not in crdb.databases:
        # pkg/sql/sqlerrors NewUndefinedSchemaError-like refusal of CREATE in a missing database.
        raise PgError("3F000", f'cannot create "{name}" because the target database or schema does not exist',
                      hint="verify that the current database and search_path are valid and/or the target "
                           "database exists")
    tables = crdb.databases[session.database]
    if name in tables:
        if not m[1]:
            raise PgError("42P07", f'relation "{name}" already exists')
        return Result("CREATE TABLE")
    table = tables[name] = Table(next(crdb.ids))
    _split_table_range(crdb, session.database, name, table)
    return Result("CREATE TABLE")


def _split_table_range(crdb, database: str, name: str, table) -> None:
    """A new table gets its own range, split off the tail of the keyspace (same replicas as the tail)."""
    tail = crdb.ranges[-1]
    new = Range(max(r.range_id for r in crdb.ranges) + 1, f"/Table/{table.table_id}",
                f"/Table/{table.table_id + 1}", f"DATABASE {database}", database, name,
                voters=list(tail.voters), non_voters=list(tail.non_voters))
    tail.start_key = f"/Table/{table.table_id + 1}"
    crdb.ranges.insert(len(crdb.ranges) - 1, new)


@statement(rf"CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?:IF\s+NOT\s+EXISTS\s+)?(?:{IDENT}\s+)?ON\s+({IDENT})\s*\(.*\)")
def _create_index(crdb, session, m):
    need_table(crdb, session, ident(m[1]))
    return Result("CREATE INDEX")


@statement(rf"INSERT\s+INTO\s+({IDENT})\b(.*)")
def _insert(crdb, session, m):
    table = need_table(crdb, session, ident(m[1]))
    series = re.search(r"generate_series\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)", m[2], re.I)
    added = 0
    if series and table.rows == 0:  # the seed: ON CONFLICT DO NOTHING inserts only on the first run
        added = int(series[2]) - int(series[1]) + 1
    elif not series and re.search(r"\bVALUES\b", m[2], re.I) and not re.search(r"ON\s+CONFLICT", m[2], re.I):
        added = 1
    table.rows += added
    return Result(f"INSERT 0 {added}")


@statement(rf"ALTER\s+TABLE\s+({IDENT})\s+SPLIT\s+AT\s+VALUES\s+(.+)")
def _split_at(crdb, session, m):
    """Returns key, pretty, split_enforced_until (pkg/sql/split.go splitNode columns); a split at an
    existing boundary is a no-op that still reports the key."""
    name = ident(m[1])
    table = need_table(crdb, session, name)
    values = re.findall(STR, m[2])
    out = []
    for value in values:
        pretty = f'/Table/{table.table_id}/1/"{literal(value)}"'
        if pretty not in table.splits:
            table.splits.add(pretty)
            base = next(r for r in crdb.ranges if r.table == name and r.database == session.database)
            crdb.ranges.insert(crdb.ranges.index(base) + 1, Range(
                max(r.range_id for r in crdb.ranges) + 1, pretty, base.end_key, base.zone_target,
                base.database, name, voters=list(base.voters), non_voters=list(base.non_voters)))
            base.end_key = pretty
        out.append((pretty.encode(), pretty, dt.datetime(2262, 4, 11, 23, 47, 16, 854776)))
    return rows([("key", "BYTES"), ("pretty", "TEXT"), ("split_enforced_until", "TIMESTAMP")], out)


@statement(rf"ALTER\s+TABLE\s+({IDENT})\s+SCATTER")
def _scatter(crdb, session, m):
    name = ident(m[1])
    need_table(crdb, session, name)
    mine = [r for r in crdb.ranges if r.table == name and r.database == session.database]
    return rows([("key", "BYTES"), ("pretty", "TEXT")], [(r.start_key.encode(), r.start_key) for r in mine])


@statement(rf"SET\s+CLUSTER\s+SETTING\s+([a-z0-9_.]+)\s*(?:=|TO)\s*({STR}|\S+)")
def _set_cluster_setting(crdb, session, m):
    crdb.cluster_settings[m[1].lower()] = literal(m[2]) if m[2].startswith(("'", "E'", "e'")) else m[2]
    return Result("SET CLUSTER SETTING")


# --- zone configs ---------------------------------------------------------------------------------------------

ZONE_TARGET = rf"(RANGE\s+({IDENT})|DATABASE\s+({IDENT}))"
INT_OPTIONS = {"num_replicas", "num_voters", "range_min_bytes", "range_max_bytes", "gc.ttlseconds"}
# pkg/sql/zone/zone_config_options.go SupportedZoneConfigOptions (global_reads needs an enterprise feature).
STRING_OPTIONS = {"constraints", "voter_constraints", "lease_preferences"}


def zone_target(crdb, m) -> str:
    if m[2]:
        name = ident(m[2])
        if name not in NAMED_ZONES:  # zonepb.ResolveZoneSpecifier
            raise PgError("42704", f'"{name}" is not a built-in zone')
        return f"RANGE {name}"
    name = ident(m[3])
    need_database(crdb, name)
    return f"DATABASE {name}"


@statement(rf"ALTER\s+{ZONE_TARGET}\s+CONFIGURE\s+ZONE\s+DISCARD")
def _zone_discard(crdb, session, m):
    target = zone_target(crdb, m)
    if target == "RANGE default":  # pkg/sql/set_zone_config.go
        raise PgError("23514", "cannot remove default zone")
    crdb.zones.pop(target, None)
    return Result("CONFIGURE ZONE 1")


@statement(rf"ALTER\s+{ZONE_TARGET}\s+CONFIGURE\s+ZONE\s+USING\s+(.+)")
def _zone_using(crdb, session, m):
    target = zone_target(crdb, m)
    try:
        values, copy_fields = parse_zone_options(m[4])
        apply_zone_change(crdb, target, values, copy_fields)
    except ZoneError as err:
        raise PgError(err.sqlstate, err.message, hint=err.hint) from None
    return Result("CONFIGURE ZONE 1")


def split_options(text: str) -> list[str]:
    parts, depth, quote, buf = [], 0, False, []
    for c in text:
        if c == "'":
            quote = not quote
        elif not quote and c in "([{":
            depth += 1
        elif not quote and c in ")]}":
            depth -= 1
        if c == "," and not quote and depth == 0:
            parts.append("".join(buf).strip())
            buf = []
        else:
            buf.append(c)
    parts.append("".join(buf).strip())
    return [p for p in parts if p]


def parse_zone_options(text: str) -> tuple[dict[str, object], list[str]]:
    """pkg/sql/set_zone_config.go getUpdatedZoneConfigOptions + evaluateZoneOptions."""
    values: dict[str, object] = {}
    copy_fields: list[str] = []
    for part in split_options(text):
        name, sep, raw = (s.strip() for s in part.partition("="))
        name = name.lower()
        if not sep:
            raise ZoneError("42601", f'at or near "{part}": syntax error')
        if name in values or name in copy_fields:
            raise ZoneError("22023", f'duplicate zone config parameter: "{name}"')
        if name not in INT_OPTIONS | STRING_OPTIONS | {"global_reads"}:
            raise ZoneError("22023", f'unsupported zone config parameter: "{name}"')
        if re.fullmatch(r"COPY\s+FROM\s+PARENT", raw, re.I):
            copy_fields.append(name)
            continue
        values[name] = _option_value(name, raw)
    return values, copy_fields


def _option_value(name: str, raw: str):
    if raw.upper() == "NULL":
        raise ZoneError("22023", f'unsupported NULL value for "{name}"')
    if name in INT_OPTIONS:
        if not re.fullmatch(r"-?\d+", raw):  # tree.TypeCheckAndRequire
            raise ZoneError("42804", f"argument of {name} must be type int, not type string")
        return int(raw)
    if name == "global_reads":
        return raw.lower() == "true"
    if not re.fullmatch(STR, raw):
        raise ZoneError("42804", f"argument of {name} must be type string, not type int")
    text = literal(raw)
    if name == "lease_preferences":
        return parse_lease_preferences(text)
    return parse_constraints(text, name)


def apply_zone_change(crdb, target: str, values: dict, copy_fields: list[str]) -> None:
    """pkg/sql/set_zone_config.go setZoneConfigNode.startExec, for a zone (not a subzone):
    partial = the stored zone (+ fields copied from the parent), complete = inherited config; the options
    apply to both; new constraints must match a node; Validate(complete) -> 23514, ValidateTandemFields
    (partial) -> 22023 with a hint; then the partial zone is written."""
    current = crdb.zones.get(target) or Zone()
    partial = current.clone()
    if copy_fields:
        if target == "RANGE default":
            # Not modelled: what COPY FROM PARENT means at the root. Stricter than CockroachDB on purpose.
            raise ZoneError("0A000", "the CockroachDB stand-in does not model COPY FROM PARENT on RANGE "
                            "default; set the field explicitly (e.g. voter_constraints = '[]')")
        partial.copy_fields(crdb.complete_zone(parent_target(target))[1], copy_fields)
    complete = partial.inherit_from(crdb.complete_zone(parent_target(target))[1]) \
        if parent_target(target) else partial.clone()
    for name, value in values.items():
        partial.set(name, value)
        complete.set(name, value)
    if (msg := validate_no_repeat_keys(complete)) is not None:
        raise ZoneError("23514", msg)
    _check_localities(crdb, current, complete)
    if (msg := validate(complete)) is not None:
        raise ZoneError("23514", f"could not validate zone config: {msg}")
    if (msg := validate_tandem(partial)) is not None:
        raise ZoneError("22023", f"could not validate zone config: {msg}",
                        hint="try ALTER ... CONFIGURE ZONE USING <field_name> = COPY FROM PARENT [, ...] to "
                             "populate the field")
    crdb.zones[target] = partial


def _check_localities(crdb, current: Zone, new: Zone) -> None:
    """validateZoneAttrsAndLocalitiesForSystemTenant: each new required constraint must match a node
    (prohibited ones are not checked)."""
    nodes = [crdb.locality(n) for n in crdb.known_nodes()]
    for c in new_constraints(current, new):
        if c.type == "-":
            continue
        if not any(c.satisfied_by(loc) for loc in nodes):
            raise ZoneError("23514", f'constraint "{c}" matches no existing nodes within the cluster - '
                            "did you enter it correctly?")


@statement(rf"SHOW\s+ZONE\s+CONFIGURATION\s+(?:FROM|FOR)\s+{ZONE_TARGET}")
def _show_zone(crdb, session, m):
    """pkg/sql/show_zone_config.go: columns target, raw_config_sql (the others are hidden)."""
    applies, zone = crdb.complete_zone(zone_target(crdb, m))
    return rows([("target", "TEXT"), ("raw_config_sql", "TEXT")], [(applies, to_sql(applies, zone))])


@statement(r"SHOW\s+(?:ALL\s+)?ZONE\s+CONFIGURATIONS")
def _show_zones(crdb, session, m):
    order = ["RANGE default", "DATABASE system", "RANGE meta", "RANGE system", "RANGE liveness"]
    targets = [t for t in order if t in crdb.zones] + sorted(t for t in crdb.zones if t not in order)
    return rows([("target", "TEXT"), ("raw_config_sql", "TEXT")],
                [(t, to_sql(t, crdb.zones[t])) for t in targets])


# --- ranges -----------------------------------------------------------------------------------------------------

RANGE_COLUMNS = [("start_key", "TEXT"), ("end_key", "TEXT"), ("range_id", "INT8"), ("replicas", "INT8[]"),
                 ("replica_localities", "TEXT[]"), ("voting_replicas", "INT8[]"),
                 ("non_voting_replicas", "INT8[]"), ("learner_replicas", "INT8[]"),
                 ("split_enforced_until", "TIMESTAMP")]


def range_rows(crdb, ranges: list[Range]) -> Result:
    """SHOW RANGES without DETAILS (cockroachdb/docs src/current/v26.2/show-ranges.md; logic_test/show_ranges),
    built as cockroachdb/cockroach pkg/sql/crdb_internal.go crdbInternalRangesNoLeasesTable builds them: every
    array holds STORE IDs (`replica.StoreID`, never the node ID); `replicas` is voters + non-voters sorted by
    store ID, `replica_localities` follows `replicas` entry by entry, each the locality of the replica's NODE
    (NodeDescs.GetNodeDescriptor(replica.NodeID).Locality; NULL when that node's descriptor is unknown);
    voting_replicas and non_voting_replicas in descriptor order."""
    data = []
    for r in ranges:
        by_store = sorted((crdb.store_of(r, n), n) for n in r.voters + r.non_voters)
        data.append((r.start_key, r.end_key, r.range_id, [s for s, _ in by_store],
                     [crdb.node_locality(n) for _, n in by_store],
                     [crdb.store_of(r, n) for n in r.voters], [crdb.store_of(r, n) for n in r.non_voters],
                     [], None))
    return rows(RANGE_COLUMNS, data)


@statement(rf"SHOW\s+RANGES\s+FROM\s+DATABASE\s+({IDENT})")
def _show_ranges_db(crdb, session, m):
    name = ident(m[1])
    need_database(crdb, name)
    crdb.step()
    return range_rows(crdb, [r for r in crdb.ranges if r.database == name])


@statement(r"SHOW\s+CLUSTER\s+RANGES")
def _show_cluster_ranges(crdb, session, m):
    crdb.step()
    return range_rows(crdb, list(crdb.ranges))


from . import crdb_backup  # noqa: E402,F401  (registers the backup statements)
