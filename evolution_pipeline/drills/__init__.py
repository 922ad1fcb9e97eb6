"""Drills that prove the demo's claims, run by the nightly rehearsal after phase 2, and the report that tells
the story every morning:

- node_loss.py: take one node away under load, prove nothing broke, bring it back (always);
- zone_loss.py: the same with every node of one zone, for a last phase that claims to survive a zone
  (`survives: {zones: 1}` in the evolution file): in `rehearse` only then, after the node-loss drill;
- backup_restore.py: restore the latest backup into a scratch database and compare it with the source;
- report.py: per phase figures, the drills' results, a PASS/FAIL verdict;
- checks.py: their blocking checks.

`evolve` gets the node-loss drill only when EVOLUTION_NODE_LOSS_DRILL=true (off by default), after phase 2.
"""

from __future__ import annotations

import os

import dagster as dg

from ..environments import LIVE, REHEARSAL
from ..phases import LAST_PHASE
from .backup_restore import build_backup_restore_asset
from .checks import build_node_loss_checks, build_report_checks, build_restore_checks, build_zone_loss_checks
from .node_loss import build_node_loss_asset
from .report_asset import build_report_asset
from .zone_loss import build_zone_loss_asset

ENABLE_LIVE_DRILL = "EVOLUTION_NODE_LOSS_DRILL"


def live_drill_enabled(environ=None) -> bool:
    value = (os.environ if environ is None else environ).get(ENABLE_LIVE_DRILL, "false").strip().lower()
    if value not in ("true", "false", "1", "0", "yes", "no", ""):
        raise ValueError(f"{ENABLE_LIVE_DRILL}={value!r}: use true or false")
    return value in ("true", "1", "yes")


def zone_drill_planned(phase=None) -> bool:
    """Whether the rehearsal drills a zone: only when the last phase claims to survive one. A demo that
    claims none gets no zone-loss step at all (the drill would refuse it and fail every night's verdict)."""
    return (phase or LAST_PHASE).survives.zones >= 1


def drill_assets(environ=None) -> list[dg.AssetsDefinition]:
    assets = [build_node_loss_asset(REHEARSAL), build_backup_restore_asset(), build_report_asset()]
    if zone_drill_planned():
        assets.append(build_zone_loss_asset(REHEARSAL))
    if live_drill_enabled(environ):
        assets.append(build_node_loss_asset(LIVE))
    return assets


def drill_checks(environ=None) -> list[dg.AssetChecksDefinition]:
    checks = [*build_node_loss_checks(REHEARSAL), *build_restore_checks(), *build_report_checks()]
    if zone_drill_planned():
        checks += build_zone_loss_checks(REHEARSAL)
    if live_drill_enabled(environ):
        checks += build_node_loss_checks(LIVE)
    return checks
