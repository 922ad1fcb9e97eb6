"""The drills after phase 2 (node loss, zone loss when claimed, backup restore) and the rehearsal report,
with their blocking checks; the live node-loss drill only when EVOLUTION_NODE_LOSS_DRILL=true."""

import dagster as dg

from ..drills import drill_assets, drill_checks


@dg.definitions
def drills() -> dg.Definitions:
    return dg.Definitions(assets=drill_assets(), asset_checks=drill_checks())
