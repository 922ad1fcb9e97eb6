"""The drills' bench: the pipeline bench (tests/pipeline/conftest.py: a real Prometheus scraping stand-in
nodes and the real sample app) with a CockroachDB stand-in that also answers the restore drill's reads AS OF
SYSTEM TIME (crdb_rows.py), and a cluster control that can take a node away (world_nodes.py)."""

from __future__ import annotations

import pytest

from tests.drills.crdb_rows import RowHistory
from tests.drills.world_nodes import DrillWorldClusterResource
from tests.pipeline.conftest import _passwords, bench, worlds  # noqa: F401  (fixtures, reused as they are)
from tests.pipeline.crdb_stand_in import PipelineCrdb
from tests.pipeline.stand_ins import replaced, stand_in_resources


class DrillCrdb(RowHistory, PipelineCrdb):
    def recreate(self) -> None:
        with self.lock:
            super().recreate()
            self.row_history = {}  # a recreated cluster starts its table IDs again


@pytest.fixture
def crdbs(worlds, bench):  # noqa: F811
    stand_ins = {name: DrillCrdb(path).start() for name, path in worlds.items()}
    for name, crdb in stand_ins.items():
        bench.metrics[name].crdb = crdb
    yield stand_ins
    for name, crdb in stand_ins.items():
        bench.metrics[name].crdb = None
        crdb.stop()


@pytest.fixture
def resources(worlds, crdbs, bench):  # noqa: F811
    res = stand_in_resources(
        worlds,
        bench.prometheus.url,
        {k: a.url for k, a in bench.apps.items()},
        {k: c.url for k, c in crdbs.items()},
    )
    for env, key in (("live", "cluster"), ("rehearsal", "rehearsal_cluster")):
        old = res[key]
        res[key] = DrillWorldClusterResource(
            world_path=old.world_path,
            environment=old.environment,
            ready_timeout_seconds=old.ready_timeout_seconds,
            poll_interval_seconds=old.poll_interval_seconds,
        )
    # BACKUP INTO ... AS OF SYSTEM TIME '-<n>s' holds only tables older than n seconds (the stand-in keeps row
    # history like CockroachDB's MVCC). A real run backs up 10 s in the past and judges at least 60 s per
    # phase; here the backup looks back 1 s, so phases 0 and 1 (5 s of checks each) always leave the app
    # database old enough for phase 2's backup, however fast the stand-ins converge, without 12 s windows.
    for key in ("crdb", "rehearsal_crdb"):
        res[key] = replaced(res[key], backup_as_of_seconds=1)
    return res
