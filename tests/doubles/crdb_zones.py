"""CockroachDB zone configs for the SQL stand-in: the model, inheritance, validation and SHOW output.

Every rule cites its upstream source (cockroachdb/cockroach unless named otherwise). Messages are
CockroachDB's own, so a test or an operator reading them sees what a real cluster says.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import yaml

# pkg/config/zonepb/zone.go NamedZones: the built-in zones ALTER RANGE may name.
NAMED_ZONES = ("default", "liveness", "meta", "system", "timeseries", "tenants")
MiB = 1 << 20
# pkg/base MinRangeMaxBytes (64 KiB): zone.go Validate "RangeMaxBytes %d less than minimum allowed %d".
MIN_RANGE_MAX_BYTES = 64 << 10


class ZoneError(Exception):
    """A refusal with CockroachDB's SQLSTATE, message and hint."""

    def __init__(self, sqlstate: str, message: str, hint: str | None = None):
        super().__init__(message)
        self.sqlstate, self.message, self.hint = sqlstate, message, hint


@dataclass(frozen=True)
class Constraint:
    type: str  # "+" required, "-" prohibited, "" the deprecated positive form Validate refuses
    key: str
    value: str

    # zonepb/zone.go Constraint.FromString
    @classmethod
    def parse(cls, short: str) -> Constraint:
        short = str(short).strip()
        if not short:
            raise ZoneError("22023", "the empty string is not a valid constraint")
        kind = short[0] if short[0] in "+-" else ""
        body = short[1:] if kind else short
        parts = body.split("=")
        if len(parts) > 2:
            raise ZoneError("22023", f'constraint needs to be in the form "(key=)value", not "{body}"')
        key, value = (parts[0], parts[1]) if len(parts) == 2 else ("", parts[0])
        return cls(kind, key, value)

    def __str__(self) -> str:  # zonepb/zone.go Constraint.String
        return self.type + (f"{self.key}=" if self.key else "") + self.value

    def satisfied_by(self, locality: dict[str, str]) -> bool:
        """zonepb StoreSatisfiesConstraint on locality tiers (our nodes carry no store attributes)."""
        has = bool(self.key) and locality.get(self.key) == self.value
        return not has if self.type == "-" else has


@dataclass(frozen=True)
class Conjunction:
    """zonepb ConstraintsConjunction: num_replicas 0 means 'every replica'."""

    num_replicas: int
    constraints: tuple[Constraint, ...]

    def satisfied_by(self, locality: dict[str, str]) -> bool:
        return all(c.satisfied_by(locality) for c in self.constraints)


@dataclass
class Zone:
    """zonepb.ZoneConfig. None = not set here (inherited). voter_constraints == [] is an explicitly empty
    list (NullVoterConstraintsIsEmpty), None means inherited (zone.go InheritedVoterConstraints)."""

    num_replicas: int | None = None
    num_voters: int | None = None
    range_min_bytes: int | None = None
    range_max_bytes: int | None = None
    gc_ttlseconds: int | None = None
    global_reads: bool | None = None
    constraints: list[Conjunction] | None = None
    voter_constraints: list[Conjunction] | None = None
    lease_preferences: list[tuple[Constraint, ...]] | None = None

    FIELDS = ("num_replicas", "num_voters", "range_min_bytes", "range_max_bytes", "gc.ttlseconds",
              "global_reads", "constraints", "voter_constraints", "lease_preferences")

    def clone(self) -> Zone:
        """A deep copy (copy.deepcopy's result, at a fraction of its cost: the metrics stand-in completes every
        range's zone on each scrape). Only the lists are containers to copy: their Conjunctions, Constraints
        and tuples are frozen, so the copy may share them; anything else goes through deepcopy."""
        out = object.__new__(type(self))
        out.__dict__.update({name: _copied(value) for name, value in self.__dict__.items()})
        return out

    def get(self, name: str):
        return getattr(self, name.replace(".", "_"))

    def set(self, name: str, value) -> None:
        setattr(self, name.replace(".", "_"), value)

    def is_empty(self) -> bool:
        return all(self.get(f) is None for f in self.FIELDS)

    # zone.go InheritFromParent
    def inherit_from(self, parent: Zone) -> Zone:
        out = self.clone()
        for name in self.FIELDS:
            unset = out.get(name) is None or (name in ("num_replicas", "num_voters") and out.get(name) == 0)
            if unset and parent.get(name) is not None:
                out.set(name, _copied(parent.get(name)))
        return out

    # zone.go CopyFromZone
    def copy_fields(self, other: Zone, names: list[str]) -> None:
        for name in names:
            self.set(name, _copied(other.get(name)))

    def voters(self) -> int:
        """roachpb.SpanConfig.GetNumVoters: num_voters, or num_replicas when num_voters is unset/0."""
        return self.num_voters or self.num_replicas or 0

    def non_voters(self) -> int:
        return (self.num_replicas or 0) - self.voters()


def _frozen(item) -> bool:
    """A zone list's item that no one can change: a Conjunction of Constraints, or a lease preference (a tuple
    of Constraints). Both dataclasses are frozen and hold only strings, ints and tuples."""
    if type(item) is Conjunction:
        item = item.constraints
    return type(item) is tuple and all(type(c) is Constraint for c in item)


def _copied(value):
    """copy.deepcopy(value) for a Zone field: immutable values as they are, a list of frozen items as a new
    list of the same items; anything else through deepcopy."""
    if value is None or type(value) in (int, bool, str, float):
        return value
    if type(value) is list and all(_frozen(item) for item in value):
        return list(value)
    return copy.deepcopy(value)


# RANGE default's gc.ttlseconds on a cluster created since v23.1: 4 h, not zone.go's 25 h. Evidence
# (cockroachdb/cockroach): pkg/sql/catalog/bootstrap/metadata.go InitialZoneConfigKVs gives RANGE timeseries
# the bootstrap default zone's TTL (`timeseriesZoneConf.GC = ...defaultZoneConfig.GC.TTLSeconds`), and the
# upgrade that adds that zone to older clusters, pkg/upgrade/upgrades addTimeseriesZoneConfig, writes
# `gc.ttlseconds = 14400` "to match the zone config that is created during bootstrap"; cockroachdb/docs
# src/current/_includes/v26.2/zone-configs/variables.md: "Default: 14400 (4 hours)". The restore drill's
# AS OF SYSTEM TIME read must stay inside it.
DEFAULT_GC_TTL_SECONDS = 14400
# System zones keep DefaultSystemZoneConfig's 25 h (zone.go; only RANGE default is documented as 4 h).
SYSTEM_GC_TTL_SECONDS = 90000


def default_zone() -> Zone:
    """zone.go DefaultZoneConfig with the bootstrap's 4 h GC TTL (DEFAULT_GC_TTL_SECONDS); fields as
    SHOW ZONE CONFIGURATION prints them on v26.2 (cockroachdb/docs v26.2 configure-replication-zones.md)."""
    return Zone(num_replicas=3, range_min_bytes=128 * MiB, range_max_bytes=512 * MiB,
                gc_ttlseconds=DEFAULT_GC_TTL_SECONDS,
                constraints=[], voter_constraints=[], lease_preferences=[])


def stock_zones() -> dict[str, Zone]:
    """The zones a cluster started with `cockroach start` + `init` has (DefaultSystemZoneConfig = 5 replicas
    for the system database and the meta/system/liveness ranges, zone.go; bootstrap sets the gc TTLs).
    `start-single-node` would lower them to 1 (pkg/server/initial_sql.go); the operator never uses it."""
    def system(ttl: int) -> Zone:
        z = default_zone()
        z.num_replicas, z.gc_ttlseconds = 5, ttl
        return z
    return {"RANGE default": default_zone(), "DATABASE system": system(SYSTEM_GC_TTL_SECONDS),
            "RANGE meta": system(3600), "RANGE system": system(SYSTEM_GC_TTL_SECONDS), "RANGE liveness": system(600)}


def parent_target(target: str) -> str | None:
    """zone inheritance: RANGE default is the root; named ranges and databases inherit from it
    (pkg/sql/zone_config.go completeZoneConfig / GetZoneConfigInTxn)."""
    return None if target == "RANGE default" else "RANGE default"


# --- option values ----------------------------------------------------------------------------------------

def parse_constraints(text: str, field_name: str) -> list[Conjunction]:
    """constraints / voter_constraints: '[+a=b, -c=d]' (all replicas) or '{"+a=b": 1}' (per replica),
    zonepb ConstraintsList.UnmarshalYAML."""
    try:
        data = yaml.safe_load(text) if text.strip() else []
    except yaml.YAMLError as exc:
        raise ZoneError("22023", f"could not parse {field_name}: {exc}") from None
    if data is None:
        return []
    if isinstance(data, list):
        return [Conjunction(0, tuple(Constraint.parse(c) for c in data))] if data else []
    if isinstance(data, dict):
        return [Conjunction(int(n), tuple(Constraint.parse(c) for c in str(k).split(",")))
                for k, n in data.items()]
    raise ZoneError("22023", f"could not parse {field_name}: expected a list or a map, got {text!r}")


def parse_lease_preferences(text: str) -> list[tuple[Constraint, ...]]:
    try:
        data = yaml.safe_load(text) if text.strip() else []
    except yaml.YAMLError as exc:
        raise ZoneError("22023", f"could not parse lease_preferences: {exc}") from None
    if not isinstance(data, list) or not all(isinstance(p, list) for p in data):
        raise ZoneError("22023", f"could not parse lease_preferences: expected a list of lists, got {text!r}")
    return [tuple(Constraint.parse(c) for c in pref) for pref in data]


def constraints_yaml(conjs: list[Conjunction]) -> str:
    """yamlMarshalFlow(ConstraintsList) as pkg/sql/show_zone_config.go zoneConfigToSQL prints it."""
    if not conjs:
        return "[]"
    if len(conjs) == 1 and conjs[0].num_replicas == 0:
        return "[" + ", ".join(str(c) for c in conjs[0].constraints) + "]"
    items = [",".join(str(c) for c in conj.constraints) + f": {conj.num_replicas}" for conj in conjs]
    return "{" + ", ".join(items) + "}"


def lease_preferences_yaml(prefs: list[tuple[Constraint, ...]]) -> str:
    return "[" + ", ".join("[" + ", ".join(str(c) for c in p) + "]" for p in prefs) + "]"


# --- validation (pkg/config/zonepb/zone.go) -------------------------------------------------------------------

def validate(z: Zone) -> str | None:
    """ZoneConfig.Validate on the complete zone; returns the error text or None."""
    if z.num_replicas is not None:
        if z.num_replicas <= 0:
            return "at least one replica is required"
        if z.num_replicas == 2 and not (z.num_voters is not None and z.num_voters > 0):
            return "at least 3 replicas are required for multi-replica configurations"
    if z.num_voters is not None:
        if z.num_voters <= 0:
            return "at least one voting replica is required"
        if z.num_voters == 2:
            return "at least 3 voting replicas are required for multi-replica configurations"
        if z.num_replicas is not None and z.num_voters > z.num_replicas:
            return "num_voters cannot be greater than num_replicas"
    return _validate_bytes_and_gc(z) or _validate_constraints(z)


def _validate_bytes_and_gc(z: Zone) -> str | None:
    if z.range_max_bytes is not None and z.range_max_bytes < MIN_RANGE_MAX_BYTES:
        return f"RangeMaxBytes {z.range_max_bytes} less than minimum allowed {MIN_RANGE_MAX_BYTES}"
    if z.range_min_bytes is not None and z.range_min_bytes < 0:
        return f"RangeMinBytes {z.range_min_bytes} less than minimum allowed 0"
    if (z.range_min_bytes is not None and z.range_max_bytes is not None
            and z.range_min_bytes >= z.range_max_bytes):
        return f"RangeMinBytes {z.range_min_bytes} is greater than or equal to RangeMaxBytes {z.range_max_bytes}"
    if z.gc_ttlseconds is not None and z.gc_ttlseconds < 1:
        return f"GC.TTLSeconds {z.gc_ttlseconds} less than minimum allowed 1"
    return None


def _validate_constraints(z: Zone) -> str | None:
    for conj in z.constraints or []:
        if any(c.type == "" for c in conj.constraints):
            return "constraints must either be required (prefixed with a '+') or prohibited (prefixed with a '-')"
    for conj in z.voter_constraints or []:
        for c in conj.constraints:
            if c.type == "":
                return "voter_constraints must be of type 'required' (prefixed with a '+')"
            if c.type == "-":
                return "voter_constraints cannot contain prohibitive constraints"
    return (_validate_per_replica(z.constraints or [], z.num_replicas, "constraints", "replicas")
            or (_validate_per_replica(z.voter_constraints or [], z.num_voters, "voter_constraints", "voters")
                if z.num_voters is not None else None)
            or _validate_compatibility(z) or _validate_lease_preferences(z))


def _validate_per_replica(conjs: list[Conjunction], limit: int | None, name: str, what: str) -> str | None:
    if not (len(conjs) > 1 or (len(conjs) == 1 and conjs[0].num_replicas != 0)):
        return None
    total = 0
    for conj in conjs:
        if conj.num_replicas <= 0:
            return "constraints must apply to at least one replica"
        total += conj.num_replicas
        if name == "constraints" and any(c.type != "+" for c in conj.constraints) and (
                limit is not None and conj.num_replicas != limit):
            return "only required constraints (prefixed with a '+') can be applied to a subset of replicas"
    if limit is not None and total > limit:
        configured = "replicas" if what == "replicas" else "voters"
        return (f"the number of replicas specified in {name} ({total}) cannot be greater than the number "
                f"of {configured} configured for the zone ({limit})")
    return None


def _validate_compatibility(z: Zone) -> str | None:
    """zone.go validateVoterConstraintsCompatibility."""
    for conj in z.constraints or []:
        for c in conj.constraints:
            if c.type != "-":
                continue
            for vconj in z.voter_constraints or []:
                for v in vconj.constraints:
                    if (v.key, v.value) == (c.key, c.value):
                        return f"prohibitive constraint {c} conflicts with voter_constraint {v}"
    return None


def _validate_lease_preferences(z: Zone) -> str | None:
    for pref in z.lease_preferences or []:
        if not pref:
            return "every lease preference must include at least one constraint"
        if any(c.type == "" for c in pref):
            return ("lease preference constraints must either be required (prefixed with a '+') or "
                    "prohibited (prefixed with a '-')")
    return None


def validate_tandem(z: Zone) -> str | None:
    """ZoneConfig.ValidateTandemFields on the partial zone being written."""
    voters_explicit = z.num_voters is not None and z.num_voters > 0
    if sum(c.num_replicas for c in z.constraints or []) > 0 and z.num_replicas is None:
        return "when per-replica constraints are set, num_replicas must be set as well"
    constrained_voters = sum(c.num_replicas for c in z.voter_constraints or [])
    if (constrained_voters > 0 and z.num_voters is None) or (not voters_explicit and z.voter_constraints):
        return "when voter_constraints are set, num_voters must be set as well"
    if (z.range_min_bytes is None) != (z.range_max_bytes is None):
        return "range_min_bytes and range_max_bytes must be set together"
    lease_set = z.lease_preferences is not None
    if voters_explicit:
        if lease_set and z.voter_constraints is None:
            return "lease preferences can not be set unless the voter_constraints are explicitly set as well"
    elif lease_set and z.constraints is None:
        return "lease preferences can not be set unless the constraints are explicitly set as well"
    return None


def validate_no_repeat_keys(z: Zone) -> str | None:
    """pkg/sql/set_zone_config.go validateNoRepeatKeysInZone (23514 "incompatible zone constraints"):
    within one conjunction, two required constraints on one key, or +k=v with -k=v, contradict."""
    for conj in (z.constraints or []) + (z.voter_constraints or []):
        cs = conj.constraints
        for i, cur in enumerate(cs):
            for other in cs[i + 1:]:
                if cur.key == "" and other.key == "":
                    clash = cur.value == other.value
                elif cur.type == "+":
                    clash = (other.type == "+" and other.key == cur.key) or (
                        other.type == "-" and (other.key, other.value) == (cur.key, cur.value))
                else:
                    clash = cur.type == "-" and other.type == "+" and (other.key, other.value) == (cur.key, cur.value)
                if clash:
                    return f'incompatible zone constraints: "{cur}" and "{other}"'
    return None


def new_constraints(current: Zone, new: Zone) -> list[Constraint]:
    """pkg/sql/set_zone_config.go accumulateNewUniqueConstraints: constraints not already in the zone."""
    def all_of(z: Zone) -> list[Constraint]:
        out = [c for conj in (z.constraints or []) + (z.voter_constraints or []) for c in conj.constraints]
        return out + [c for pref in z.lease_preferences or [] for c in pref]
    seen = set(all_of(current))
    fresh = []
    for c in all_of(new):
        if c not in seen:
            seen.add(c)
            fresh.append(c)
    return fresh


# --- SHOW ZONE CONFIGURATION ------------------------------------------------------------------------------------

def to_sql(target: str, z: Zone) -> str:
    """pkg/sql/show_zone_config.go zoneConfigToSQL: one tab-indented line per set field, in this order;
    voter_constraints only when explicitly set and num_voters > 0."""
    lines = []
    for name in ("range_min_bytes", "range_max_bytes", "gc.ttlseconds"):
        if z.get(name) is not None:
            lines.append(f"\t{name} = {z.get(name)}")
    if z.global_reads is not None:
        lines.append(f"\tglobal_reads = {str(z.global_reads).lower()}")
    for name in ("num_replicas", "num_voters"):
        if z.get(name) is not None:
            lines.append(f"\t{name} = {z.get(name)}")
    if z.constraints is not None:
        lines.append(f"\tconstraints = '{constraints_yaml(z.constraints)}'")
    if z.voter_constraints is not None and z.num_voters:
        lines.append(f"\tvoter_constraints = '{constraints_yaml(z.voter_constraints)}'")
    if z.lease_preferences is not None:
        lines.append(f"\tlease_preferences = '{lease_preferences_yaml(z.lease_preferences)}'")
    return f"ALTER {target} CONFIGURE ZONE USING\n" + ",\n".join(lines)


@dataclass
class ZoneChange:
    """One parsed CONFIGURE ZONE USING: values to set and fields to copy from the parent."""

    values: dict[str, object] = field(default_factory=dict)
    copy_from_parent: list[str] = field(default_factory=list)
