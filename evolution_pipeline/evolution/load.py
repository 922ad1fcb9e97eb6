"""Read an evolution file (evolutions/*.yaml) into the model, refusing anything CockroachDB would refuse.

EVOLUTION_PLAN=<path> picks the file (default evolutions/demo.yaml; relative paths are relative to the
repository). A wrong file gives ONE error, EvolutionError, naming the file, the phase and the field:

    evolutions/x.yaml: phase phase1_two_nodes: zone_configs.data.num_replicas: at least 3 replicas are ...

The shape of the file is documented in evolutions/demo.yaml's header and README.md "Evolution files".
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import yaml

from .model import REPO_ROOT, Evolution, Phase, Replication, Survives
from .zonerules import (
    RuleError,
    ZoneFields,
    constraints_text,
    lease_preferences_text,
    parse_constraints,
    parse_lease_preferences,
    validate_zone,
)

PLAN_VARIABLE = "EVOLUTION_PLAN"
DEFAULT_PLAN = "evolutions/demo.yaml"
# Asset keys and Dagster op names are built from phase names: letters, digits and underscores.
PHASE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
# The run-time pin: voter_constraints = node 1's locality as the cluster reports it.
PIN = {"locality_of_node": 1}

TOP_FIELDS = {"name", "description", "phases"}
PHASE_FIELDS = {"name", "title", "description", "nodes", "zone_configs", "sql_files", "users", "groups",
                "backup_label", "survives"}
NODE_FIELDS = {"locality"}
ZONE_TARGETS = ("data", "system")
ZONE_FIELDS = {"num_replicas", "num_voters", "constraints", "voter_constraints", "lease_preferences"}
SURVIVES_FIELDS = {"nodes", "zones"}


class EvolutionError(ValueError):
    """The one error a wrong evolution file gives: `<file>: phase <name>: <field>: <what is wrong>`."""

    def __init__(self, source: str, message: str, phase: str | None = None, field: str | None = None):
        self.source, self.phase, self.field, self.detail = source, phase, field, message
        where = [source] + ([f"phase {phase}"] if phase else []) + ([field] if field else [])
        super().__init__(": ".join(where) + ": " + message)


def plan_path(env: dict | None = None) -> tuple[Path, str]:
    """(the file, how to name it in messages) from EVOLUTION_PLAN, relative to the repository."""
    env = os.environ if env is None else env
    given = env.get(PLAN_VARIABLE, "").strip() or DEFAULT_PLAN
    path = Path(given).expanduser()
    return (path if path.is_absolute() else REPO_ROOT / path), given


def load_evolution(path: Path | str | None = None, source: str | None = None) -> Evolution:
    """Load and validate an evolution file (EVOLUTION_PLAN's when `path` is None)."""
    from .validate import validate

    if path is None:
        path, given = plan_path()
        source = source or given
    path = Path(path)
    source = source or str(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise EvolutionError(source, f"no such file ({path}); set {PLAN_VARIABLE} to an evolution file, "
                                     f"e.g. {DEFAULT_PLAN}") from None
    except (OSError, yaml.YAMLError) as exc:
        raise EvolutionError(source, f"cannot read it as YAML: {exc}") from None
    evolution = parse(raw, source)
    validate(evolution)
    return evolution


def parse(raw, source: str) -> Evolution:
    if not isinstance(raw, dict):
        raise EvolutionError(source, "want a mapping with name, description and phases")
    _known(raw, TOP_FIELDS, source, None, "")
    phases_raw = raw.get("phases")
    if not isinstance(phases_raw, list) or not phases_raw:
        raise EvolutionError(source, "want at least one phase", field="phases")
    phases = tuple(_phase(p, i, source) for i, p in enumerate(phases_raw))
    name = raw.get("name") or Path(source).stem
    return Evolution(name=str(name), description=str(raw.get("description", "")).strip(), source=source,
                     phases=phases)


def _known(mapping: dict, allowed: set[str], source: str, phase: str | None, prefix: str) -> None:
    unknown = sorted(set(map(str, mapping)) - allowed)
    if unknown:
        raise EvolutionError(source, f"unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(allowed))}",
                             phase, prefix + unknown[0])


def _phase(raw, index: int, source: str) -> Phase:
    if not isinstance(raw, dict):
        raise EvolutionError(source, "want a mapping", field=f"phases[{index}]")
    name = raw.get("name")
    if not isinstance(name, str) or not PHASE_NAME.fullmatch(name):
        raise EvolutionError(source, f"want a name of letters, digits and _ (it names the asset), got {name!r}",
                             field=f"phases[{index}].name")
    _known(raw, PHASE_FIELDS, source, name, "")

    def fail(field: str, message: str):
        return EvolutionError(source, message, name, field)

    localities = tuple(_node(n, i, fail) for i, n in enumerate(_list(raw, "nodes", fail, required=True)))
    zones = raw.get("zone_configs")
    if not isinstance(zones, dict):
        raise fail("zone_configs", "want data: and system: zone configs (RANGE default; the system ranges)")
    _known(zones, set(ZONE_TARGETS), source, name, "zone_configs.")
    data, system = (_zone(zones.get(t), f"zone_configs.{t}", fail) for t in ZONE_TARGETS)
    survives = raw.get("survives") or {}
    if not isinstance(survives, dict):
        raise fail("survives", f"want nodes: N and zones: N, got {survives!r}")
    _known(survives, SURVIVES_FIELDS, source, name, "survives.")
    claim = Survives(**{k: _count(survives, k, f"survives.{k}", fail, 0) for k in SURVIVES_FIELDS})
    return Phase(
        name=name, index=index, title=str(raw.get("title") or f"Phase {index}: {len(localities)} node(s)"),
        nodes=len(localities), data=data, system=system,
        sql_files=tuple(_strings(raw, "sql_files", fail)), backup_label=str(raw.get("backup_label") or name),
        description=" ".join(str(raw.get("description", "")).split()),
        users=tuple(_strings(raw, "users", fail)), groups=tuple(_strings(raw, "groups", fail)),
        localities=localities, survives=claim)


def _list(raw: dict, field: str, fail, required: bool = False) -> list:
    value = raw.get(field)
    if value is None and not required:
        return []
    if not isinstance(value, list) or (required and not value):
        raise fail(field, f"want a list{' with at least one entry' if required else ''}, got {value!r}")
    return value


def _strings(raw: dict, field: str, fail) -> list[str]:
    values = _list(raw, field, fail)
    for i, v in enumerate(values):
        if not isinstance(v, str) or not v.strip():
            raise fail(f"{field}[{i}]", f"want a name, got {v!r}")
    return values


def _node(raw, i: int, fail) -> str:
    from .zonerules import parse_locality

    field = f"nodes[{i}]"
    if not isinstance(raw, dict) or set(raw) != NODE_FIELDS:
        raise fail(field, f"want {{locality: region=..,zone=..}} (node {i + 1}'s --locality), got {raw!r}")
    try:
        tiers = parse_locality(raw["locality"])
    except RuleError as exc:
        raise fail(f"{field}.locality", exc.message) from None
    return ",".join(f"{k}={v}" for k, v in tiers)


def _count(raw: dict, field: str, path: str, fail, default: int | None) -> int | None:
    value = raw.get(field, default)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise fail(path, f"want a whole number >= 0, got {value!r}")
    return value


def _zone(raw, path: str, fail) -> Replication:
    if not isinstance(raw, dict):
        raise fail(path, f"want num_replicas (and num_voters, constraints, ...), got {raw!r}")
    unknown = sorted(set(map(str, raw)) - ZONE_FIELDS)
    if unknown:
        raise fail(f"{path}.{unknown[0]}", f"unknown field; CockroachDB's zone fields here: {', '.join(sorted(ZONE_FIELDS))}")
    if "num_replicas" not in raw:
        raise fail(f"{path}.num_replicas", "required")
    num_replicas = _count(raw, "num_replicas", f"{path}.num_replicas", fail, None)
    num_voters = _count(raw, "num_voters", f"{path}.num_voters", fail, None)
    try:
        pinned = raw.get("voter_constraints") == PIN
        if isinstance(raw.get("voter_constraints"), dict) and "locality_of_node" in raw["voter_constraints"] \
                and not pinned:
            raise RuleError("voter_constraints", "only {locality_of_node: 1} is supported: the pipeline reads "
                                                 "node 1's locality from the cluster at run time")
        fields = ZoneFields(
            num_replicas=num_replicas, num_voters=num_voters,
            constraints=parse_constraints(raw["constraints"], "constraints") if "constraints" in raw else None,
            voter_constraints=(parse_constraints(raw["voter_constraints"], "voter_constraints")
                               if "voter_constraints" in raw and not pinned else None),
            lease_preferences=parse_lease_preferences(raw["lease_preferences"]) if "lease_preferences" in raw else None,
            pinned=pinned)
        validate_zone(fields)
    except RuleError as exc:
        raise fail(f"{path}.{exc.field}", exc.message) from None
    return Replication(
        num_replicas=num_replicas, num_voters=num_replicas if num_voters is None else num_voters,
        pin_voters_to_first_node=pinned,
        constraints=None if fields.constraints is None else constraints_text(fields.constraints),
        voter_constraints=None if fields.voter_constraints is None else constraints_text(fields.voter_constraints),
        lease_preferences=(None if fields.lease_preferences is None
                           else lease_preferences_text(fields.lease_preferences)))
