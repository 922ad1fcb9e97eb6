"""The topology checks of an evolution, after each zone passed CockroachDB's own zone rules (load.py):

- grow only: no phase has fewer nodes than the one before, and a node keeps its locality;
- localities: every node lists the same tier keys in the same order (DiversityScore compares tiers by
  position, cockroachdb/cockroach pkg/roachpb/metadata.go; stricter than its "we recommend");
- the voters and non-voters the allocator targets (GetNeededVoters / GetNeededNonVoters) fit on the nodes
  the zone's constraints admit (pkg/roachpb/span_config.go StoreMatchesConstraint), and a pin to node 1's
  locality singles node 1 out;
- what the phase claims to survive holds (survival.py), for data and system ranges alike;
- the SQL files exist, and the users and groups are the role model's (roles.py).

The first problem found raises EvolutionError naming the file, the phase and the field.
"""

from __future__ import annotations

from .load import EvolutionError
from .model import SQL_DIR, Evolution, Phase, Replication, locality_tiers
from .roles import APP_PATHS, GROUPS
from .survival import place_voters, zone_survivable
from .zonerules import load_constraints

KNOWN_USERS = {u for p in APP_PATHS for u in p.users}


def validate(evolution: Evolution) -> None:
    seen: set[str] = set()
    previous: Phase | None = None
    for phase in evolution.phases:

        def fail(field: str, message: str, phase=phase):
            return EvolutionError(evolution.source, message, phase.name, field)

        if phase.name in seen:
            raise fail("name", "another phase has this name already")
        seen.add(phase.name)
        _grow_only(phase, previous, fail)
        _tier_keys(phase, evolution.phases[0], fail)
        _files_and_roles(phase, fail)
        for kind, r in (("data", phase.data), ("system", phase.system)):
            _placeable(phase, r, f"zone_configs.{kind}", fail)
        _claims(phase, fail)
        previous = phase


def _grow_only(phase: Phase, previous: Phase | None, fail) -> None:
    if previous is None:
        return
    if phase.nodes < previous.nodes:
        raise fail("nodes", f"{phase.nodes} node(s) after {previous.name}'s {previous.nodes}: an evolution only "
                            "grows (the pipeline never scales down; decommission nodes by hand)")
    for i, (before, now) in enumerate(zip(previous.localities, phase.localities), start=1):
        if before != now:
            raise fail(f"nodes[{i - 1}].locality", f"node {i} was {before} in {previous.name}, now {now}: a node "
                                                   "keeps its locality (--locality is fixed when it starts)")


def _tier_keys(phase: Phase, first: Phase, fail) -> None:
    want = [k for k, _ in locality_tiers(first.localities[0])]
    for i, locality in enumerate(phase.localities):
        keys = [k for k, _ in locality_tiers(locality)]
        if keys != want:
            raise fail(f"nodes[{i}].locality", f"{locality}: tier keys {','.join(keys)} differ from node 1's "
                                               f"{','.join(want)}; give every node the same keys in the same order")


def _files_and_roles(phase: Phase, fail) -> None:
    for i, name in enumerate(phase.sql_files):
        if not (SQL_DIR / name).is_file():
            raise fail(f"sql_files[{i}]", f"{name} is not a file in {SQL_DIR.name}/")
    for i, user in enumerate(phase.users):
        if user not in KNOWN_USERS:
            raise fail(f"users[{i}]", f"{user} is not a rotation user of the role model: {', '.join(sorted(KNOWN_USERS))}")
    for i, group in enumerate(phase.groups):
        if group not in GROUPS:
            raise fail(f"groups[{i}]", f"{group} is not a group of the role model: {', '.join(GROUPS)}")


def _admitted(phase: Phase, text: str | None) -> list[int]:
    """Nodes (1-based) on which every all-replica conjunction of `text` holds."""
    conjs = [c for c in load_constraints(text) if c.num_replicas == 0]
    return [i for i, loc in enumerate(phase.localities, 1)
            if all(c.matches(dict(locality_tiers(loc))) for c in conjs)]


def _placeable(phase: Phase, r: Replication, path: str, fail) -> None:
    voters, non_voters = r.expected_voters(phase.nodes), r.expected_non_voters(phase.nodes)
    if voters > phase.nodes:
        raise fail(f"{path}.num_voters", f"CockroachDB targets {voters} voters for num_voters = {r.num_voters} on "
                                         f"{phase.nodes} node(s) (GetNeededVoters never goes below 3 once it has "
                                         "to round down), which cannot be placed: one replica per node")
    replicas_ok = _admitted(phase, r.constraints)
    for conj in load_constraints(r.constraints) + load_constraints(r.voter_constraints):
        matching = [i for i, loc in enumerate(phase.localities, 1) if conj.matches(dict(locality_tiers(loc)))]
        field = "constraints" if conj in load_constraints(r.constraints) else "voter_constraints"
        if not matching:
            shown = ",".join(str(c) for c in conj.constraints)
            raise fail(f"{path}.{field}", f"no node of the phase satisfies {shown} (its localities: "
                                          f"{'; '.join(phase.localities)})")
    if len(replicas_ok) < voters + non_voters:
        raise fail(f"{path}.constraints", f"{voters + non_voters} replica(s) targeted but only node(s) "
                                          f"{replicas_ok} satisfy the constraints")
    if r.pin_voters_to_first_node:
        shared = [i for i, loc in enumerate(phase.localities[1:], 2) if loc == phase.localities[0]]
        if shared:
            raise fail(f"{path}.voter_constraints", f"node 1's locality {phase.localities[0]} is also node(s) "
                                                    f"{shared}'s: the pin would not keep the voters on node 1")
    if place_voters(phase, r) is None:
        raise fail(f"{path}.voter_constraints", f"{voters} voter(s) targeted, but the nodes the voter "
                                                "constraints admit cannot hold them all")


def _claims(phase: Phase, fail) -> None:
    claim = phase.survives
    if claim.nodes > phase.failures_tolerated:
        voters = min(phase.expected_data_voters, phase.expected_system_voters)
        raise fail("survives.nodes", f"claims {claim.nodes} node failure(s), but its ranges have {voters} voter(s) "
                                     f"on {phase.nodes} node(s): a majority of {voters} survives "
                                     f"{phase.failures_tolerated} (maxFailuresBeforeUnavailability, "
                                     "pkg/sql/region_util.go)")
    if claim.zones and (why := zone_survivable(phase, claim.zones)):
        raise fail("survives.zones", f"claims {claim.zones} zone loss(es), which does not hold: {why}")
