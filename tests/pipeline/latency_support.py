"""What the latency tests do to the bench's real app, through its database only, and how they wait for history.

The reader path is slowed in PostgreSQL itself: a row-level-security policy on search_terms for the reader
group app_ro whose condition is an uncorrelated sub-select of pg_sleep(). PostgreSQL plans such a sub-select
as an InitPlan, evaluated once per statement (docs: "Subquery expressions" / EXPLAIN's InitPlan; a qual
without table columns becomes a one-time filter), so every reader query pays the delay once, whatever it
scans, and the writer path (/login, login_events) is untouched. Members of app_ro (app_ro_01/02) are subject
to it, the table owner is not, other roles keep every row through a second policy: RLS with no policy for a
role would hide every row from it (PostgreSQL docs, "Row Security Policies": default deny).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from tests.doubles.pipeline_world import read_world

POLICY, OTHERS = "latency_test_delay", "latency_test_others"


def slow_reader(pg, seconds: float) -> None:
    pg.execute(f"DROP POLICY IF EXISTS {POLICY} ON search_terms")
    pg.execute(f"DROP POLICY IF EXISTS {OTHERS} ON search_terms")
    pg.execute(f"CREATE POLICY {OTHERS} ON search_terms FOR SELECT TO PUBLIC "
               "USING (NOT pg_has_role(current_user, 'app_ro', 'MEMBER'))")
    pg.execute(f"CREATE POLICY {POLICY} ON search_terms FOR SELECT TO app_ro "
               f"USING ((SELECT true FROM pg_sleep({float(seconds)})))")
    pg.execute("ALTER TABLE search_terms ENABLE ROW LEVEL SECURITY")


def reader_at_full_speed(pg) -> None:
    pg.execute("ALTER TABLE search_terms DISABLE ROW LEVEL SECURITY")
    pg.execute(f"DROP POLICY IF EXISTS {POLICY} ON search_terms")
    pg.execute(f"DROP POLICY IF EXISTS {OTHERS} ON search_terms")


@contextmanager
def reader_slowed_once_scaled(pg, world_path, seconds: float) -> Iterator[dict]:
    """Slow the reader path from the moment the phase's scale step asks the cluster for nodes (well inside
    the phase's window, after its preflight set started_at) until the block ends. Yields {"at": time}."""
    when: dict = {}
    stop = threading.Event()

    def watch() -> None:
        before = read_world(world_path)["calls"].get("set_desired_nodes", 0)
        while not stop.is_set():
            if read_world(world_path)["calls"].get("set_desired_nodes", 0) > before:
                slow_reader(pg, seconds)
                when["at"] = time.time()
                return
            stop.wait(0.02)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield when
    finally:
        stop.set()
        thread.join(timeout=5)
        reader_at_full_speed(pg)


def wait_app_history(prometheus, cluster: str, seconds: int, timeout: float = 60.0) -> None:
    """Until Prometheus holds `seconds` of the app's scrapes (1 s interval): a phase's baseline reaches back
    that far, and a bench started a moment ago has less."""
    query = f'count_over_time(up{{job="sample-app",cluster="{cluster}"}}[{seconds}s])'
    deadline = time.monotonic() + timeout
    while True:
        result = prometheus.query(query)
        if result and float(result[0]["value"][1]) >= seconds - 1:
            return
        assert time.monotonic() < deadline, f"Prometheus has not {seconds} s of the {cluster} app within {timeout} s"
        time.sleep(0.5)
