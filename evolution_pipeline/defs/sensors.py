"""The failure alert watches every job of this code location, ad-hoc asset runs included; the report sensor
gives a rehearse run that failed before its report a report-only run. Their alert resource is chosen with
the others (definitions.py)."""

import dagster as dg

from ..sensors import build_failure_sensor, build_report_sensor


@dg.definitions
def sensors() -> dg.Definitions:
    return dg.Definitions(sensors=[build_failure_sensor(), build_report_sensor()])
