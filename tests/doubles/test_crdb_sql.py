"""The wire-level CockroachDB stand-in refuses what CockroachDB refuses and converges like its allocator.

Driven through the real psycopg (ClientCursor, autocommit, as the product connects) and through the real
CrdbSqlResource, so the product's SQL text and result parsing run too.
"""

from __future__ import annotations

import threading

import psycopg
import pytest
from psycopg import errors

from evolution_pipeline.phases import PHASES, SQL_DIR
from evolution_pipeline.resources.sql import SqlError
from evolution_pipeline.resources.sql_resource import CrdbSqlResource
from tests.doubles.crdb_sql import CrdbSqlStandIn

SYSTEM = ("DATABASE system", "RANGE meta", "RANGE system", "RANGE liveness")
ALL_ZONES = ("RANGE default", *SYSTEM)


class Nodes:
    """The live node count the stand-in asks for (nodes 1..n are live)."""

    def __init__(self, n: int = 1):
        self.n = n

    def __call__(self) -> int:
        return self.n


@pytest.fixture
def nodes():
    return Nodes(1)


@pytest.fixture
def crdb(nodes):
    with CrdbSqlStandIn(live_nodes=nodes, insecure=True) as standin:
        yield standin


@pytest.fixture
def secure_crdb(nodes):
    with CrdbSqlStandIn(live_nodes=nodes, insecure=False) as standin:
        yield standin


def run(crdb: CrdbSqlStandIn, sql: str, params=None, dbname: str | None = None) -> list[tuple]:
    kwargs = {"dbname": dbname} if dbname else {}
    with psycopg.connect(crdb.url, autocommit=True, **kwargs) as conn, psycopg.ClientCursor(conn) as cur:
        cur.execute(sql, params)
        return cur.fetchall() if cur.description else []


def resource(crdb: CrdbSqlStandIn) -> CrdbSqlResource:
    return CrdbSqlResource(url=crdb.url, retry_base_seconds=0.01, insecure=crdb.insecure)


def set_zones(crdb, targets, using: str) -> None:
    for target in targets:
        run(crdb, f"ALTER {target} CONFIGURE ZONE USING {using}")


def cluster_ranges(crdb) -> list[tuple[list[int], list[int]]]:
    """Voters and non-voters per range BY NODE: SHOW CLUSTER RANGES gives store IDs, mapped back here so the
    allocator tests read in nodes (the stand-in's default topology has store IDs != node IDs)."""
    return [([crdb.node_of_store(s) for s in r[5]], [crdb.node_of_store(s) for s in r[6]])
            for r in run(crdb, "SHOW CLUSTER RANGES")]


def poll_until(crdb, want, polls: int = 30):
    """Read SHOW CLUSTER RANGES (each read is one allocator pass) until every range matches `want`."""
    seen = None
    for _ in range(polls):
        seen = cluster_ranges(crdb)
        if all(want(v, nv) for v, nv in seen):
            return seen
    raise AssertionError(f"ranges never converged: {seen}")


# --- the wire ---------------------------------------------------------------------------------------------

def test_startup_reports_cockroachdb_status_parameters(crdb):
    with psycopg.connect(crdb.url, autocommit=True) as conn:
        assert conn.info.parameter_status("server_version") == "13.0.0"
        assert conn.info.parameter_status("crdb_version").startswith("CockroachDB CCL v26.2.1")
        assert conn.info.parameter_status("standard_conforming_strings") == "on"
        cur = conn.cursor()
        cur.execute("SHOW CLUSTER RANGES")
        oids = {d.name: d.type_code for d in cur.description}
    assert oids["range_id"] == 20 and oids["voting_replicas"] == 1016 and oids["replica_localities"] == 1009
    assert oids["split_enforced_until"] == 1114


def test_server_side_binding_uses_the_extended_protocol(crdb):
    with psycopg.connect(crdb.url, autocommit=True) as conn:
        rows = conn.execute("SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = %s", ("root",)).fetchall()
        none = conn.execute("SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = %s", ("nobody",)).fetchall()
    assert rows == [(1,)] and none == []


def test_concurrent_connections(crdb):
    results, failures = [], []

    def worker():
        try:
            results.append(run(crdb, "SELECT version()")[0][0])
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            failures.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not failures and len(results) == 8


def test_unknown_statements_are_refused_with_42601(crdb):
    with pytest.raises(errors.SyntaxError, match="does not recognise this statement: SELECT now"):
        run(crdb, "SELECT now()")
    with pytest.raises(errors.SyntaxError):
        run(crdb, "ALTER TABLE t CONFIGURE ZONE USING num_replicas = 3")


def test_empty_query(crdb):
    assert run(crdb, "  ") == []


# --- zone validation (pkg/config/zonepb/zone.go Validate / ValidateTandemFields) ---------------------------

@pytest.mark.parametrize("using, message", [
    ("num_replicas = 2", "at least 3 replicas are required for multi-replica configurations"),
    ("num_replicas = 3, num_voters = 2", "at least 3 voting replicas are required for multi-replica configurations"),
    ("num_replicas = 1, num_voters = 3", "num_voters cannot be greater than num_replicas"),
    ("num_replicas = 0", "at least one replica is required"),
    ("num_replicas = 3, num_voters = 3, voter_constraints = '[-zone=local-a]'",
     "voter_constraints cannot contain prohibitive constraints"),
    ("constraints = '{\"+zone=local-a\": 4}'", "the number of replicas specified in constraints (4) cannot be "
     "greater than the number of replicas configured for the zone (3)"),
])
def test_validate_refuses_like_cockroachdb(crdb, using, message):
    with pytest.raises(errors.CheckViolation) as exc:
        run(crdb, f"ALTER RANGE default CONFIGURE ZONE USING {using}")
    assert str(exc.value) == f"could not validate zone config: {message}"


@pytest.mark.parametrize("target", SYSTEM)
def test_system_zones_refuse_two_replicas_too(crdb, target):
    with pytest.raises(errors.CheckViolation, match="at least 3 replicas are required"):
        run(crdb, f"ALTER {target} CONFIGURE ZONE USING num_replicas = 2")


def test_voter_constraints_need_an_explicit_num_voters(crdb):
    with pytest.raises(errors.InvalidParameterValue) as exc:
        run(crdb, "ALTER RANGE default CONFIGURE ZONE USING voter_constraints = '[+zone=local-a]'")
    assert exc.value.diag.message_primary == (
        "could not validate zone config: when voter_constraints are set, num_voters must be set as well")
    assert "COPY FROM PARENT" in exc.value.diag.message_hint


def test_constraints_must_match_an_existing_node(crdb):
    with pytest.raises(errors.CheckViolation) as exc:
        run(crdb, "ALTER RANGE default CONFIGURE ZONE USING num_replicas = 2, num_voters = 1, "
                  "voter_constraints = '[+zone=mars]'")
    assert str(exc.value) == ('constraint "+zone=mars" matches no existing nodes within the cluster - did you '
                              "enter it correctly?")


def test_contradicting_constraints_are_refused(crdb, nodes):
    nodes.n = 2
    with pytest.raises(errors.CheckViolation) as exc:
        run(crdb, "ALTER RANGE default CONFIGURE ZONE USING num_replicas = 2, num_voters = 1, "
                  "voter_constraints = '[+zone=local-a, +zone=local-b]'")
    assert str(exc.value) == 'incompatible zone constraints: "+zone=local-a" and "+zone=local-b"'


def test_option_errors(crdb):
    with pytest.raises(errors.InvalidParameterValue, match='unsupported zone config parameter: "replicas"'):
        run(crdb, "ALTER RANGE default CONFIGURE ZONE USING replicas = 3")
    with pytest.raises(errors.InvalidParameterValue, match='duplicate zone config parameter: "num_replicas"'):
        run(crdb, "ALTER RANGE default CONFIGURE ZONE USING num_replicas = 3, num_replicas = 5")
    with pytest.raises(errors.CheckViolation, match="cannot remove default zone"):
        run(crdb, "ALTER RANGE default CONFIGURE ZONE DISCARD")
    with pytest.raises(errors.UndefinedObject, match='"mars" is not a built-in zone'):
        run(crdb, "ALTER RANGE mars CONFIGURE ZONE USING num_replicas = 3")
    with pytest.raises(errors.InvalidCatalogName, match='database "nope" does not exist'):
        run(crdb, "ALTER DATABASE nope CONFIGURE ZONE USING num_replicas = 3")


def test_phase_shapes_are_accepted_and_round_trip(crdb, nodes):
    nodes.n = 2
    phase1 = "num_replicas = 2, num_voters = 1, voter_constraints = '[+region=local, +zone=local-a]'"
    set_zones(crdb, ALL_ZONES, phase1)
    (target, sql), = run(crdb, "SHOW ZONE CONFIGURATION FROM RANGE meta")
    assert target == "RANGE meta"
    assert sql == ("ALTER RANGE meta CONFIGURE ZONE USING\n\trange_min_bytes = 134217728,\n"
                   "\trange_max_bytes = 536870912,\n\tgc.ttlseconds = 3600,\n\tnum_replicas = 2,\n"
                   "\tnum_voters = 1,\n\tconstraints = '[]',\n"
                   "\tvoter_constraints = '[+region=local, +zone=local-a]',\n\tlease_preferences = '[]'")
    run(crdb, sql)  # what SHOW prints is a statement CockroachDB (and the stand-in) accepts back
    assert run(crdb, "SHOW ZONE CONFIGURATION FROM RANGE meta")[0][1] == sql
    nodes.n = 3
    set_zones(crdb, ["RANGE default"], "num_replicas = 3, num_voters = 3, voter_constraints = '[]'")
    set_zones(crdb, SYSTEM, "num_replicas = 5, num_voters = 5, voter_constraints = '[]'")
    assert "voter_constraints = '[]'" in run(crdb, "SHOW ZONE CONFIGURATION FOR RANGE default")[0][1]


def test_a_database_without_its_own_zone_shows_range_default(crdb):
    run(crdb, 'CREATE DATABASE IF NOT EXISTS "app"')
    target, sql = run(crdb, "SHOW ZONE CONFIGURATION FROM DATABASE app")[0]
    assert target == "RANGE default" and sql.startswith("ALTER RANGE default CONFIGURE ZONE USING")
    run(crdb, "ALTER DATABASE app CONFIGURE ZONE USING gc.ttlseconds = 600")
    assert run(crdb, "SHOW ZONE CONFIGURATION FROM DATABASE app")[0][0] == "DATABASE app"


# --- the allocator (GetNeededVoters / GetNeededNonVoters, fragile quorum) ------------------------------------

def test_a_fresh_cluster_is_under_replicated_until_its_zones_say_one(crdb):
    assert crdb.range_health()["under_replicated"] == crdb.range_health()["ranges"]
    set_zones(crdb, ALL_ZONES, "num_replicas = 1")
    assert crdb.range_health() == {"ranges": 15, "under_replicated": 0, "over_replicated": 0, "unavailable": 0}


def test_three_voters_on_two_nodes_never_converge(crdb, nodes):
    nodes.n = 2
    for _ in range(10):
        seen = cluster_ranges(crdb)
    # RF 3 (and 5) on two nodes: the replicate queue refuses 1 -> 2 voters ("avoid up-replicating to
    # fragile quorum"), so every range keeps its single voter and stays under-replicated.
    assert all(v == [1] and nv == [] for v, nv in seen)
    health = crdb.range_health()
    assert health["under_replicated"] == health["ranges"] and health["unavailable"] == 0


def test_one_voter_plus_one_read_replica_then_three_voters(crdb, nodes):
    sql = resource(crdb)
    set_zones(crdb, ALL_ZONES, "num_replicas = 1")
    nodes.n = 2
    set_zones(crdb, ALL_ZONES, "num_replicas = 2, num_voters = 1, voter_constraints = '[+zone=local-a]'")
    seen = poll_until(crdb, lambda v, nv: v == [1] and nv == [2])
    assert len(seen) == 15
    assert crdb.range_health()["under_replicated"] == 0
    # By STORE ID, as CockroachDB answers: node 1's voter sits on its store 1 or 2, node 2's read replica on
    # store 3 (crdb_internal.go: the arrays hold replica.StoreID).
    assert {(r.voters, r.non_voters) for r in sql.range_replicas("cluster")} == {((1,), (3,)), ((2,), (3,))}
    assert sql.first_node_locality() == "region=local,zone=local-a"
    zone = sql.zone_config("RANGE liveness")
    assert (zone.num_replicas, zone.num_voters, zone.voter_constraints) == (2, 1, "[+zone=local-a]")
    nodes.n = 3
    set_zones(crdb, ["RANGE default"], "num_replicas = 3, num_voters = 3, voter_constraints = '[]'")
    set_zones(crdb, SYSTEM, "num_replicas = 5, num_voters = 5, voter_constraints = '[]'")
    poll_until(crdb, lambda v, nv: sorted(v) == [1, 2, 3] and nv == [])
    assert crdb.range_health() == {"ranges": 15, "under_replicated": 0, "over_replicated": 0, "unavailable": 0}


def test_voters_follow_voter_constraints(crdb, nodes):
    set_zones(crdb, ALL_ZONES, "num_replicas = 1")
    nodes.n = 2
    # Pin the voter to node 2's zone: the voter moves there (via a role swap with the non-voter).
    set_zones(crdb, ALL_ZONES, "num_replicas = 2, num_voters = 1, voter_constraints = '[+zone=local-b]'")
    poll_until(crdb, lambda v, nv: v == [2] and nv == [1])


def test_losing_the_read_replica_leaves_writes_available(crdb, nodes):
    set_zones(crdb, ALL_ZONES, "num_replicas = 1")
    nodes.n = 2
    set_zones(crdb, ALL_ZONES, "num_replicas = 2, num_voters = 1, voter_constraints = '[+zone=local-a]'")
    poll_until(crdb, lambda v, nv: nv == [2])
    nodes.n = 1  # node 2 dies
    health = crdb.range_health()
    assert health["unavailable"] == 0
    # Dead but not decommissioned, node 2 still counts (ClusterNodeCount): its non-voters are missing.
    assert health["under_replicated"] == health["ranges"]
    assert crdb.step() == []  # and nowhere to put them


def test_losing_a_voter_of_three_keeps_quorum_but_under_replicates(crdb, nodes):
    nodes.n = 3
    poll_until(crdb, lambda v, nv: len(v) == 3)
    nodes.n = 2
    health = crdb.range_health()
    assert health["unavailable"] == 0 and health["under_replicated"] == health["ranges"]


# --- users, databases, the product's SQL files ------------------------------------------------------------------

def test_duplicate_user_is_42710(secure_crdb):
    run(secure_crdb, 'CREATE USER "app_reader"')
    with pytest.raises(errors.DuplicateObject, match="a role/user named app_reader already exists"):
        run(secure_crdb, 'CREATE USER "app_reader"')


def test_insecure_mode_refuses_passwords(crdb):
    with pytest.raises(errors.InvalidPassword, match="setting or updating a password is not supported in "
                                                     "insecure mode"):
        run(crdb, "CREATE USER app_reader WITH PASSWORD 's3cret'")
    run(crdb, "CREATE USER app_reader")
    with pytest.raises(errors.InvalidPassword):
        run(crdb, "ALTER USER app_reader WITH PASSWORD %s", ("s3cret",))
    run(crdb, "ALTER USER app_reader WITH PASSWORD NULL")  # clearing one is allowed


def test_a_resource_that_forgets_insecure_mode_fails_on_the_password(crdb):
    wrong = CrdbSqlResource(url=crdb.url, retry_base_seconds=0.01, insecure=False)
    with pytest.raises(SqlError) as exc:
        wrong.ensure_login_user("app_reader", "s3cret")
    assert isinstance(exc.value.__cause__, errors.InvalidPassword)
    assert "app_reader" not in crdb.users  # one statement: no user was left without its password
    assert resource(crdb).ensure_login_user("app_reader", None) is True  # insecure: created, no password


def test_secure_mode_sets_the_initial_password_once(secure_crdb):
    """Created with its password in one statement; a re-run never sets it again (rotate_credentials owns it)."""
    sql = resource(secure_crdb)
    assert sql.ensure_login_user("app_rw_01", "pw") is True
    assert sql.ensure_login_user("app_rw_01", "pw2") is False
    assert secure_crdb.passwords["app_rw_01"] == "pw"
    assert sql.ensure_group("app_rw") is True and sql.ensure_group("app_rw") is False


def test_the_products_phase_sql_runs(secure_crdb):
    sql = resource(secure_crdb)
    assert not sql.database_exists()
    sql.ensure_database()
    assert sql.database_exists()
    for phase in PHASES:  # the role model, as apply_sql creates it before the files grant to it
        for group in phase.groups:
            sql.ensure_group(group)
        for user in phase.users:
            sql.ensure_login_user(user, "pw")
    for name in sorted(p.name for p in SQL_DIR.glob("*.sql")):
        assert sql.run_script(SQL_DIR / name) > 0
    tables = {r["table"] for r in secure_crdb.range_state() if r["database"] == "app"}
    assert tables == {"login_events", "search_terms"}
    assert len(sql.range_replicas("app")) == 2 + 3  # one range per table, three more after SPLIT AT


def test_statements_against_missing_objects(crdb):
    with pytest.raises(errors.InvalidCatalogName, match='database "app" does not exist'):
        run(crdb, 'SHOW RANGES FROM DATABASE "app"')
    run(crdb, 'CREATE DATABASE "app"')
    with pytest.raises(errors.DuplicateDatabase):
        run(crdb, 'CREATE DATABASE "app"')
    with pytest.raises(errors.UndefinedTable, match='relation "login_events" does not exist'):
        run(crdb, "GRANT SELECT ON TABLE login_events TO root", dbname="app")
    with pytest.raises(errors.UndefinedObject, match='role/user "ghost" does not exist'):
        run(crdb, "GRANT CONNECT ON DATABASE app TO ghost")


# --- backups ------------------------------------------------------------------------------------------------------

def test_backups(secure_crdb):
    crdb, uri = secure_crdb, "nodelocal://1/crdb-evolution-backups"
    sql = resource(crdb)
    assert sql.backups_in(uri) == []  # an empty collection lists 0 rows
    with pytest.raises(errors.UndefinedFile, match="path does not contain a completed latest backup"):
        run(crdb, "SHOW BACKUP FROM LATEST IN %s WITH check_files", (uri,))
    sql.ensure_database()
    sql.run_script(SQL_DIR / "00-bootstrap.sql")
    sql.backup_into(uri)
    (backup,) = sql.backups_in(uri)
    assert backup.path.startswith("/20") and len(backup.path) == len("/2026/11/30-021500.00")
    with psycopg.connect(crdb.url, autocommit=True) as conn, psycopg.ClientCursor(conn) as cur:
        cur.execute("SHOW BACKUP FROM LATEST IN %s WITH check_files", (uri,))
        names = [d.name for d in cur.description]
        found = {(r[0], r[2]): r for r in cur.fetchall()}
    assert names[-2:] == ["regions", "file_bytes"] and names[:4] == [
        "database_name", "parent_schema_name", "object_name", "object_type"]
    assert found["app", "search_terms"][8] == 12000 and found["app", "search_terms"][9] is True
    check = sql.verify_backup(uri)
    assert check.rows == 12000 and check.file_bytes > 0 and check.objects == len(found)


def test_backup_uri_and_restore_rules(secure_crdb):
    crdb, uri = secure_crdb, "nodelocal://1/b"
    for bad in ("ftp://host/x", "/tmp/relative", "nodelocal:///no-node"):
        with pytest.raises(psycopg.Error, match="unsupported storage scheme|must be a node ID"):
            run(crdb, "BACKUP INTO %s AS OF SYSTEM TIME '-10s'", (bad,))
    run(crdb, 'CREATE DATABASE "app"')
    run(crdb, "CREATE TABLE t (id INT PRIMARY KEY)", dbname="app")
    run(crdb, "BACKUP INTO %s AS OF SYSTEM TIME '-10s'", (uri,))
    job = run(crdb, "RESTORE DATABASE app FROM LATEST IN %s WITH new_db_name = 'app_drill'", (uri,))
    assert job[0][1] == "succeeded"
    assert len(run(crdb, "SHOW RANGES FROM DATABASE app_drill")) == 1
    with pytest.raises(errors.DuplicateDatabase):
        run(crdb, "RESTORE DATABASE app FROM LATEST IN %s WITH new_db_name = 'app_drill'", (uri,))
    run(crdb, "DROP DATABASE app_drill CASCADE")
    with pytest.raises(psycopg.Error, match="refuses DROP DATABASE app"):
        run(crdb, "DROP DATABASE app")


# --- fault injection ----------------------------------------------------------------------------------------------

def test_fail_next_injects_errors_the_resource_sees(crdb):
    sql = resource(crdb)
    crdb.fail_next(r"^SHOW CLUSTER RANGES", "40001", "restart transaction: injected")
    assert len(sql.range_replicas("cluster")) == 15  # retried once (40001 is retryable)
    assert len(crdb.statements_matching(r"^SHOW CLUSTER RANGES")) == 2
    crdb.fail_next(r"^BACKUP", "XXUUU", "injected backup failure", times=1)
    with pytest.raises(SqlError, match="injected backup failure"):
        sql.backup_into("nodelocal://1/x")
    assert len(crdb.statements_matching(r"^BACKUP")) == 1  # BACKUP is never blindly retried


# --- the product's phase table, applied the way apply_sql applies it ------------------------------------------

def test_every_phase_of_the_product_is_accepted_and_reachable(crdb, nodes):
    """Each phase's zone plan (evolution_pipeline.zones) passes CockroachDB's validation at the phase's node
    count and the allocator reaches the voters and non-voters the phase table expects, system ranges
    included. Put RF 2 back in the phase table and this fails."""
    from evolution_pipeline.phases import PHASES
    from evolution_pipeline.zones import zone_plan

    sql = resource(crdb)
    for phase in PHASES:
        nodes.n = phase.nodes
        locality = sql.first_node_locality() if phase.pins_voters else None
        for z in zone_plan(phase, locality):
            sql.set_zone(z.target, z.num_replicas, z.num_voters, z.voter_constraints)
        want = {"DATABASE system": (phase.expected_system_voters, phase.expected_system_non_voters)}
        for _ in range(20):
            seen = {(r["zone"], len(r["voters"]), len(r["non_voters"])) for r in crdb.range_state()}
            crdb.step()
        for zone, voters, non_voters in seen:
            expected = want.get(zone) or (
                (phase.expected_system_voters, phase.expected_system_non_voters) if zone in SYSTEM
                else (phase.expected_data_voters, phase.expected_data_non_voters))
            assert (voters, non_voters) == expected, (phase.name, zone)
        assert crdb.range_health()["under_replicated"] == 0, phase.name
        if phase.pins_voters:
            assert all(r["voters"] == [1] for r in crdb.range_state()), phase.name


def test_losing_node_1_in_phase_1_makes_every_range_unavailable(crdb, nodes):
    set_zones(crdb, ALL_ZONES, "num_replicas = 1")
    nodes.n = 2
    set_zones(crdb, ALL_ZONES, "num_replicas = 2, num_voters = 1, voter_constraints = '[+zone=local-a]'")
    poll_until(crdb, lambda v, nv: v == [1] and nv == [2])
    crdb.kill(1)
    assert crdb.range_health()["unavailable"] == 15
    assert crdb.step() == []  # no quorum: nothing can move, the non-voter is not promoted
    crdb.revive(1)
    assert crdb.range_health()["unavailable"] == 0


def test_health_is_counted_by_the_leaseholder_or_first_live_replica(crdb, nodes):
    nodes.n = 3
    poll_until(crdb, lambda v, nv: len(v) == 3)
    assert {n: c["ranges"] for n, c in crdb.range_health_by_node().items()} == {1: 15, 2: 0, 3: 0}
    crdb.kill(1)  # the leaseholder's node: the first live replica counts the range instead
    by_node = crdb.range_health_by_node()
    assert by_node[1]["ranges"] == 0 and by_node[2]["ranges"] == 15 and by_node[2]["under_replicated"] == 15
    assert crdb.range_health()["unavailable"] == 0


def test_a_dead_voter_is_replaced_only_when_a_live_node_can_take_it(crdb, nodes):
    nodes.n = 3
    poll_until(crdb, lambda v, nv: len(v) == 3)
    crdb.kill(3)
    assert crdb.step() == []  # nodes 1 and 2 already hold voters: the range waits, it does not shrink
    assert all(len(r["voters"]) == 3 for r in crdb.range_state())
    nodes.n = 4  # a fourth node joins: the dead voter moves there
    crdb.settle()
    assert all(sorted(r["voters"]) == [1, 2, 4] for r in crdb.range_state())
