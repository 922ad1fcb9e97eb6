"""The zone-loss drill (evolution_pipeline/drills/zone_loss.py) against the stand-ins, with a real Prometheus
scraping the stand-in nodes and the real sample app under load: on the three-zones plan's six nodes it stops
zone us-east1-c's two nodes, sees them gone and back, and no range unavailable. It is refused, before anything
is stopped, on the demo (no zone claimed), on a layout where one zone holds a voter majority (by the plan's
arithmetic and, when the plan looks fine but the cluster does not, by the cluster's own ranges)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time

import dagster as dg
import pytest

from evolution_pipeline.drills import checks as drill_checks
from evolution_pipeline.drills import zone_loss
from evolution_pipeline.drills.zone_loss import (
    ZoneLossConfig,
    choose_zone,
    refuse_unless_claimed,
    run_zone_loss,
)
from evolution_pipeline.environments import REHEARSAL
from evolution_pipeline.evolution import load_evolution
from evolution_pipeline.evolution.model import REPO_ROOT
from evolution_pipeline.phases import SQL_DIR
from evolution_pipeline.resources.sql import ZONE_TARGETS_DATA, ZONE_TARGETS_SYSTEM, zone_sql
from tests.doubles.pipeline_world import read_world, world

# Small outage and polls: the drill's own waits are what this costs (a real run holds the zone 30 s).
FAST = {"outage_seconds": 3.0, "detect_timeout_seconds": 20.0, "recover_timeout_seconds": 20.0,
        "poll_seconds": 0.5}
THREE_ZONES = load_evolution(REPO_ROOT / "evolutions/three-zones.yaml").phases[-1]
DEMO = load_evolution(REPO_ROOT / "evolutions/demo.yaml").phases[-1]


def majority_in(zone_letters: str):
    """The three-zones last phase with node i in zone us-east1-<zone_letters[i - 1]>."""
    return dataclasses.replace(THREE_ZONES, localities=tuple(
        f"region=us-east1,zone=us-east1-{z}" for z in zone_letters))


class Log:
    def __init__(self):
        self.lines = []

    def info(self, text):
        self.lines.append(text)

    warning = info


def _grown(resources, worlds, crdbs, phase, actual_localities=None):
    """The rehearsal world at the end of `phase`: its nodes ready with their localities, its zones applied
    (num_replicas for data and system, as the three-zones file asks), every range settled."""
    with world(worlds["rehearsal"]) as s:
        s["desired"] = s["ready"] = phase.nodes
    localities = actual_localities or phase.localities
    crdbs["rehearsal"].node_locality = lambda n: localities[n - 1]
    sql = resources["rehearsal_crdb"]
    sql.ensure_database()
    sql.run_script(SQL_DIR / "00-bootstrap.sql")
    for target in ZONE_TARGETS_DATA:
        sql.execute(zone_sql(target, phase.data.num_replicas))
    for target in ZONE_TARGETS_SYSTEM:
        sql.execute(zone_sql(target, phase.system.num_replicas))
    crdbs["rehearsal"].settle()
    resources["rehearsal_sample_app"].set_background_load(True)  # what the rehearsal's preflight does
    return resources["rehearsal_cluster"].control(), resources["rehearsal_prometheus"], sql


def _run(resources, worlds, crdbs, phase=THREE_ZONES, actual=None, **cfg):
    control, prom, sql = _grown(resources, worlds, crdbs, phase, actual)
    return run_zone_loss(control, prom, sql, phase, ZoneLossConfig(**{**FAST, **cfg}), REHEARSAL, Log())


# --- refusals that need no cluster ----------------------------------------------------------------------------


def test_refused_on_the_demo_which_claims_no_zone():
    with pytest.raises(dg.Failure, match=r"phase2_three_nodes claims to survive 1 node failure\(s\) and 0 zone"):
        run_zone_loss(None, None, None, DEMO, ZoneLossConfig(**FAST), REHEARSAL, Log())


def test_refused_when_one_zone_holds_a_voter_majority():
    phase = majority_in("abbbbc")  # four of six nodes in zone b: the allocator puts 3 of 5 voters there
    with pytest.raises(dg.Failure) as refused:
        refuse_unless_claimed(phase)
    assert "claims to survive 2 node failure(s) and 1 zone loss(es), but its layout does not" in str(refused.value)
    assert "us-east1-b: 3" in str(refused.value)
    refuse_unless_claimed(THREE_ZONES)  # the real file's layout holds its claim


def test_the_zone_is_never_node_1s_and_defaults_to_the_highest_nodes():
    assert choose_zone(THREE_ZONES) == ("us-east1-c", (3, 6))  # node 6's zone, as node-loss takes node 6
    assert choose_zone(THREE_ZONES, "us-east1-b") == ("us-east1-b", (2, 5))
    # Node 6 in node 1's zone: the last other zone by name instead.
    assert choose_zone(majority_in("abcbca"))[0] == "us-east1-c"
    with pytest.raises(dg.Failure, match="zone us-east1-a holds node 1"):
        choose_zone(THREE_ZONES, "us-east1-a")
    with pytest.raises(dg.Failure, match="has no zone 'us-east1-d'; its zones are us-east1-a"):
        choose_zone(THREE_ZONES, "us-east1-d")


# --- against the stand-ins --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_zone_lost_under_load_leaves_every_range_available(resources, worlds, crdbs):
    """Two nodes stopped, seen gone by Prometheus, a 3 s outage, both back and on target: ~10-20 s of real
    waiting (1 s scrapes, the checks' settle time) is what proves it through a real Prometheus."""
    started = time.monotonic()
    result = _run(resources, worlds, crdbs)
    print(f"\nzone-loss drill: {time.monotonic() - started:.1f}s, detect {result.detect_seconds}s, "
          f"recover {result.recover_seconds}s, outage {result.duration_seconds}s")
    assert result.recovered and result.zone == "us-east1-c" and result.stopped_nodes == (3, 6)
    assert result.max_unavailable_seen == 0 and result.ranges_off_target_after == 0
    assert result.sql_reads_during_outage >= 2 and result.sql_errors_during_outage == ()
    calls = read_world(worlds["rehearsal"])["calls"]
    assert calls["stop_node"] == 2 and calls["restart_node"] == 2
    prom = resources["rehearsal_prometheus"]
    verdicts = {s.name: drill_checks.judge_window(s, prom, result) for s in drill_checks.ZONE_LOSS_CHECKS}
    assert all(v.passed for v in verdicts.values()), [v.description for v in verdicts.values() if not v.passed]
    assert verdicts["live_nodes_dropped_during_drill"].metadata["value"].value == 4
    assert verdicts["live_nodes_back_after_drill"].metadata["value"].value == 6
    assert drill_checks.judge_recovered(result).passed
    # Judged while the zone was away, the window is NOT healthy: the checks can fail.
    mid = dataclasses.replace(result, ended_at=result.detected_at + 1)
    assert not drill_checks.judge_window(drill_checks.ZONE_LOSS_CHECKS[2], prom, mid).passed


@pytest.mark.slow
def test_a_cluster_whose_ranges_keep_a_majority_in_the_zone_is_refused(resources, worlds, crdbs):
    """The plan says two nodes per zone, the nodes run with four in zone b: the ranges say no."""
    with pytest.raises(dg.Failure, match="keep a voter majority in zone us-east1-b") as refused:
        _run(resources, worlds, crdbs, actual=majority_in("abbbbc").localities, zone="us-east1-b")
    assert "nothing was stopped" in str(refused.value)
    assert "stop_node" not in read_world(worlds["rehearsal"])["calls"]
    # What the drill would have caused: the stand-in's ranges lose quorum with zone b's nodes gone.
    for node in (2, 3, 4, 5):
        crdbs["rehearsal"].kill(node)
    health = crdbs["rehearsal"].range_health()
    assert health["unavailable"] == health["ranges"] > 0


@pytest.mark.slow
def test_a_crash_mid_drill_still_brings_every_node_back(resources, worlds, crdbs, monkeypatch):
    def crash(drill):
        raise RuntimeError("run interrupted")

    monkeypatch.setattr(zone_loss, "_hold_outage", crash)
    with pytest.raises(RuntimeError, match="interrupted"):
        _run(resources, worlds, crdbs)
    state = read_world(worlds["rehearsal"])
    assert state["calls"]["restart_node"] == 2 and "held_down" not in state


# --- wiring ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("plan", "drilled"), [("evolutions/three-zones.yaml", True), ("evolutions/demo.yaml", False)])
def test_the_rehearsal_drills_a_zone_only_for_a_plan_that_claims_one(plan, drilled):
    """A fresh interpreter per plan: EVOLUTION_PLAN is read once, at import (evolution_pipeline/phases.py)."""
    code = ("import json\nfrom evolution_pipeline.definitions import defs\n"
            "g = defs().resolve_asset_graph()\n"  # an @dg.definitions function, as Dagster calls it
            "key = lambda s: next(k for k in g.get_all_asset_keys() if k.to_user_string() == s)\n"
            "keys = {k.to_user_string() for k in g.get_all_asset_keys()}\n"
            "zone = 'rehearsal/zone_loss_drill'\n"
            "deps = sorted(p.to_user_string() for p in g.get(key(zone)).parent_keys) if zone in keys else []\n"
            "report = sorted(p.to_user_string() for p in g.get(key('rehearsal/rehearsal_report')).parent_keys)\n"
            "print(json.dumps({'zone': zone in keys, 'deps': deps, 'report': report}))\n")
    env = {**os.environ, "EVOLUTION_PLAN": plan, "PYTHONPATH": str(REPO_ROOT)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                         check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    facts = json.loads(out.stdout.strip().splitlines()[-1])
    assert facts["zone"] is drilled
    assert ("rehearsal/zone_loss_drill" in facts["report"]) is drilled
    if drilled:  # after the node-loss drill, never beside it
        assert "rehearsal/node_loss_drill" in facts["deps"]
