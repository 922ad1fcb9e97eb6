"""Dagster's component catalogue, computed once per test process instead of at every definitions build.

`dg.load_from_defs_folder` (evolution_pipeline/definitions.py) ends each build by listing every component
type the installed packages register and rendering each one's JSON schema and sample YAML into the
Definitions' metadata (dagster/components/core/load_defs.py: get_library_json_enriched_defs), for the `dg`
tooling. That listing depends only on the installed packages, yet costs ~0.4 CPU-s per build, about half of
a build; a pytest-xdist worker builds the code location some dozens of times. A code server builds it once
per process, so the product keeps Dagster's function as it is: only the test processes use this.
"""

from __future__ import annotations

import sys

_original = None  # Dagster's get_library_json_enriched_defs
_catalogue: dict | None = None  # its metadata, rendered once


def _enriched(tree):
    """The same metadata as Dagster's function renders, tied to this build's component tree."""
    global _catalogue
    from dagster import Definitions

    if _catalogue is None:
        _catalogue = dict(_original(None).metadata)
    return Definitions(metadata=dict(_catalogue), component_tree=tree)


def memoize() -> None:
    """Put _enriched in place of Dagster's function (idempotent). defs_module.py imports the function from
    load_defs at each build, so replacing the module's attribute is enough."""
    global _original
    from dagster.components.core import load_defs

    if load_defs.get_library_json_enriched_defs is not _enriched:
        _original = load_defs.get_library_json_enriched_defs
        load_defs.get_library_json_enriched_defs = _enriched


def memoize_if_dagster_loaded() -> None:
    """At collection's end: only in a process whose tests imported Dagster (tests/app never pays for it)."""
    if "dagster" in sys.modules:
        memoize()
