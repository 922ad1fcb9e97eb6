"""Drills that prove the demo's claims, run by the nightly rehearsal after phase 2, and the report that tells
the story every morning:

- node_loss.py: take one node away under load, prove nothing broke, bring it back (always);
- backup_restore.py: restore the latest backup into a scratch database and compare it with the source;
- report.py: per phase figures, the drills' results, a PASS/FAIL verdict;
- checks.py: their blocking checks.

`evolve` gets the node-loss drill only when EVOLUTION_NODE_LOSS_DRILL=true (off by default), after phase 2.
"""

from __future__ import annotations

import os

import dagster as dg

from ..environments import LIVE, REHEARSAL
from .backup_restore import build_backup_restore_asset
from .checks import build_node_loss_checks, build_report_checks, build_restore_checks
from .node_loss import build_node_loss_asset
from .report_asset import build_report_asset

ENABLE_LIVE_DRILL = "EVOLUTION_NODE_LOSS_DRILL"


def live_drill_enabled(environ=None) -> bool:
    value = (os.environ if environ is None else environ).get(ENABLE_LIVE_DRILL, "false").strip().lower()
    if value not in ("true", "false", "1", "0", "yes", "no", ""):
        raise ValueError(f"{ENABLE_LIVE_DRILL}={value!r}: use true or false")
    return value in ("true", "1", "yes")


def drill_assets(environ=None) -> list[dg.AssetsDefinition]:
    assets = [build_node_loss_asset(REHEARSAL), build_backup_restore_asset(), build_report_asset()]
    if live_drill_enabled(environ):
        assets.append(build_node_loss_asset(LIVE))
    return assets


def drill_checks(environ=None) -> list[dg.AssetChecksDefinition]:
    checks = [*build_node_loss_checks(REHEARSAL), *build_restore_checks(), *build_report_checks()]
    if live_drill_enabled(environ):
        checks += build_node_loss_checks(LIVE)
    return checks
