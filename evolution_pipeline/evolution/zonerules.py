"""CockroachDB's own rules for a zone config and a locality, ported for the validator (the product's copy).

The test double tests/doubles/crdb_zones.py ports the same rules for the stand-in CockroachDB; the two stay
independent on purpose, so a mistake in one is caught by the other. Messages are CockroachDB's own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import yaml

# A tier key or value: label-like, so the text needs no quoting in SQL or YAML (and cannot inject any).
TIER_TEXT = re.compile(r"[A-Za-z0-9_.-]+")


class RuleError(ValueError):
    """One broken rule: `field` is the path inside the zone ("num_replicas", "voter_constraints")."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field, self.message = field, message


@dataclass(frozen=True)
class Constraint:
    type: str  # "+" required, "-" prohibited, "" the deprecated positive form Validate refuses
    key: str
    value: str

    def __str__(self) -> str:  # pkg/config/zonepb/zone.go Constraint.String
        return self.type + (f"{self.key}=" if self.key else "") + self.value

    def matches(self, tiers: dict[str, str]) -> bool:
        """pkg/roachpb/span_config.go StoreMatchesConstraint on a node's locality tiers (no store attributes
        here): +k=v needs the tier, -k=v needs its absence."""
        has = bool(self.key) and tiers.get(self.key) == self.value
        return not has if self.type == "-" else has


@dataclass(frozen=True)
class Conjunction:
    """zonepb ConstraintsConjunction: num_replicas 0 means every replica."""

    num_replicas: int
    constraints: tuple[Constraint, ...]

    def matches(self, tiers: dict[str, str]) -> bool:
        return all(c.matches(tiers) for c in self.constraints)


def parse_constraint(text: str, field: str) -> Constraint:
    """pkg/config/zonepb/zone.go Constraint.FromString, plus label-like keys and values (see TIER_TEXT)."""
    text = str(text).strip()
    if not text:
        raise RuleError(field, "the empty string is not a valid constraint")
    kind = text[0] if text[0] in "+-" else ""
    parts = (text[1:] if kind else text).split("=")
    if len(parts) != 2 or not all(TIER_TEXT.fullmatch(p) for p in parts):
        raise RuleError(field, f'constraint needs to be in the form "+key=value" or "-key=value", not "{text}"')
    return Constraint(kind, parts[0], parts[1])


def parse_constraints(value, field: str) -> list[Conjunction]:
    """A list (every replica) or a map "constraint[,constraint]: count" (per replica), as ALTER ... CONFIGURE
    ZONE takes them (zonepb ConstraintsList.UnmarshalYAML)."""
    if isinstance(value, list):
        return [Conjunction(0, tuple(parse_constraint(c, field) for c in value))] if value else []
    if isinstance(value, dict):
        out = []
        for key, count in value.items():
            if not isinstance(count, int) or isinstance(count, bool):
                raise RuleError(field, f"the replica count for {key!r} must be a whole number, got {count!r}")
            out.append(Conjunction(count, tuple(parse_constraint(c, field) for c in str(key).split(","))))
        return out
    raise RuleError(field, f"expected a list ([+region=r]) or a map ({{+zone=a: 1}}), got {value!r}")


def parse_lease_preferences(value, field: str = "lease_preferences") -> list[tuple[Constraint, ...]]:
    if not isinstance(value, list) or not all(isinstance(p, list) for p in value):
        raise RuleError(field, f"expected a list of lists ([[+zone=a], [+zone=b]]), got {value!r}")
    return [tuple(parse_constraint(c, field) for c in pref) for pref in value]


def constraints_text(conjs: list[Conjunction]) -> str:
    """CockroachDB's flow YAML for the field, as SHOW ZONE CONFIGURATION prints it (show_zone_config.go)."""
    if not conjs:
        return "[]"
    if len(conjs) == 1 and conjs[0].num_replicas == 0:
        return "[" + ",".join(str(c) for c in conjs[0].constraints) + "]"
    return "{" + ", ".join(",".join(str(c) for c in j.constraints) + f": {j.num_replicas}" for j in conjs) + "}"


def lease_preferences_text(prefs: list[tuple[Constraint, ...]]) -> str:
    return "[" + ", ".join("[" + ",".join(str(c) for c in p) + "]" for p in prefs) + "]"


def load_constraints(text: str | None) -> list[Conjunction]:
    """The inverse of constraints_text, for the survival arithmetic."""
    return parse_constraints(yaml.safe_load(text), "constraints") if text else []


@dataclass(frozen=True)
class ZoneFields:
    """The zone as the file writes it: None = not set (num_voters None: every replica votes)."""

    num_replicas: int
    num_voters: int | None
    constraints: list[Conjunction] | None
    voter_constraints: list[Conjunction] | None
    lease_preferences: list[tuple[Constraint, ...]] | None
    pinned: bool  # voter_constraints follow node 1's locality at run time


def validate_zone(z: ZoneFields) -> None:
    """pkg/config/zonepb/zone.go ZoneConfig.Validate and ValidateTandemFields, the replication part."""
    if z.num_replicas <= 0:
        raise RuleError("num_replicas", "at least one replica is required")
    if z.num_replicas == 2 and not (z.num_voters or 0) > 0:
        raise RuleError("num_replicas", "at least 3 replicas are required for multi-replica configurations "
                                        "(CockroachDB accepts num_replicas = 2 only with num_voters set)")
    if z.num_voters is not None:
        if z.num_voters <= 0:
            raise RuleError("num_voters", "at least one voting replica is required")
        if z.num_voters == 2:
            raise RuleError("num_voters", "at least 3 voting replicas are required for multi-replica configurations")
        if z.num_voters > z.num_replicas:
            raise RuleError("num_voters", "num_voters cannot be greater than num_replicas")
    if (z.voter_constraints or z.pinned) and z.num_voters is None:
        raise RuleError("voter_constraints", "when voter_constraints are set, num_voters must be set as well")
    _validate_constraint_types(z)
    _validate_per_replica(z.constraints or [], z.num_replicas, "constraints", "replicas")
    if z.num_voters is not None:
        _validate_per_replica(z.voter_constraints or [], z.num_voters, "voter_constraints", "voters")
    _validate_compatibility(z)
    _validate_lease_preferences(z)


def _validate_constraint_types(z: ZoneFields) -> None:
    for conj in z.constraints or []:
        if any(c.type == "" for c in conj.constraints):
            raise RuleError("constraints", "constraints must either be required (prefixed with a '+') or "
                                           "prohibited (prefixed with a '-')")
    for conj in z.voter_constraints or []:
        for c in conj.constraints:
            if c.type == "":
                raise RuleError("voter_constraints", "voter_constraints must be of type 'required' (prefixed "
                                                     "with a '+')")
            if c.type == "-":
                raise RuleError("voter_constraints", "voter_constraints cannot contain prohibitive constraints")


def _validate_per_replica(conjs: list[Conjunction], limit: int, name: str, what: str) -> None:
    if not (len(conjs) > 1 or (len(conjs) == 1 and conjs[0].num_replicas != 0)):
        return
    total = 0
    for conj in conjs:
        if conj.num_replicas <= 0:
            raise RuleError(name, "constraints must apply to at least one replica")
        total += conj.num_replicas
        if name == "constraints" and any(c.type != "+" for c in conj.constraints) and conj.num_replicas != limit:
            raise RuleError(name, "only required constraints (prefixed with a '+') can be applied to a subset "
                                  "of replicas")
    if total > limit:
        raise RuleError(name, f"the number of replicas specified in {name} ({total}) cannot be greater than the "
                              f"number of {what} configured for the zone ({limit})")


def _validate_compatibility(z: ZoneFields) -> None:
    """zone.go validateVoterConstraintsCompatibility."""
    for conj in z.constraints or []:
        for c in (c for c in conj.constraints if c.type == "-"):
            for vconj in z.voter_constraints or []:
                for v in vconj.constraints:
                    if (v.key, v.value) == (c.key, c.value):
                        raise RuleError("voter_constraints",
                                        f"prohibitive constraint {c} conflicts with voter_constraint {v}")


def _validate_lease_preferences(z: ZoneFields) -> None:
    for pref in z.lease_preferences or []:
        if not pref:
            raise RuleError("lease_preferences", "every lease preference must include at least one constraint")
        if any(c.type == "" for c in pref):
            raise RuleError("lease_preferences", "lease preference constraints must either be required (prefixed "
                                                 "with a '+') or prohibited (prefixed with a '-')")


def parse_locality(text, field: str = "locality") -> tuple[tuple[str, str], ...]:
    """pkg/roachpb/metadata.go Locality.Set: comma-separated key=value tiers, neither empty; a key only once."""
    if not isinstance(text, str) or not text.strip():
        raise RuleError(field, f"want the --locality string, e.g. region=us-east1,zone=us-east1-a; got {text!r}")
    tiers = []
    for tier in text.split(","):
        parts = tier.strip().split("=")
        if len(parts) != 2 or not all(TIER_TEXT.fullmatch(p) for p in parts):
            raise RuleError(field, f"{text!r}: tier {tier.strip()!r} must be key=value (letters, digits, . _ -)")
        tiers.append((parts[0], parts[1]))
    keys = [k for k, _ in tiers]
    if len(set(keys)) != len(keys):
        raise RuleError(field, f"{text!r}: a tier key appears twice")
    return tuple(tiers)
