"""The evolution files, the loader and the validator: both shipped files load, every broken file fails with ONE
message naming the file, the phase and the field, and the survival arithmetic reasons as CockroachDB does."""

from __future__ import annotations

import copy

import pytest
import yaml

from evolution_pipeline.evolution import EvolutionError, load_evolution, zone_survivable
from evolution_pipeline.evolution.load import plan_path
from evolution_pipeline.evolution.model import REPO_ROOT
from evolution_pipeline.evolution.survival import diversity_score, place_voters, zone_losses_survivable

DEMO = REPO_ROOT / "evolutions" / "demo.yaml"
THREE_ZONES = REPO_ROOT / "evolutions" / "three-zones.yaml"


def raw(path):
    return yaml.safe_load(path.read_text())


def write(tmp_path, data, name="x.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def load_broken(tmp_path, data) -> str:
    path = write(tmp_path, data)
    with pytest.raises(EvolutionError) as exc:
        load_evolution(path, "evolutions/x.yaml")
    return str(exc.value)


def test_the_demo_file_is_the_demo():
    demo = load_evolution(DEMO, "evolutions/demo.yaml")
    assert [p.nodes for p in demo.phases] == [1, 2, 3]
    assert [p.failures_tolerated for p in demo.phases] == [0, 0, 1]
    assert demo.phases[1].pins_voters and not demo.phases[2].pins_voters
    assert [(p.survives.nodes, p.survives.zones) for p in demo.phases] == [(0, 0), (0, 0), (1, 0)]


def test_three_zones_survives_what_it_claims():
    three = load_evolution(THREE_ZONES, "evolutions/three-zones.yaml")
    a, b = three.phases
    assert (a.nodes, b.nodes) == (3, 6)
    assert b.zones == {"us-east1-a": (1, 4), "us-east1-b": (2, 5), "us-east1-c": (3, 6)}
    assert b.localities[3] == "region=us-east1,zone=us-east1-a"
    assert (a.failures_tolerated, b.failures_tolerated) == (1, 2)
    assert zone_survivable(a) is None and zone_survivable(b) is None
    # 5 voters on 3 zones of 2 nodes: 2/2/1, the allocator's diversity spread.
    voters = place_voters(b, b.data)
    assert sorted(sum(1 for n in voters if n in nodes) for nodes in b.zones.values()) == [1, 2, 2]
    assert zone_survivable(b, zones=2) is not None and zone_losses_survivable(b, b.system) == 1


def test_diversity_score_is_cockroachdbs():
    # pkg/roachpb/metadata.go DiversityScore: the first differing tier decides.
    assert diversity_score("region=r,zone=a", "region=r,zone=b") == 0.5
    assert diversity_score("region=r,zone=a", "region=s,zone=a") == 1.0
    assert diversity_score("region=r,zone=a", "region=r,zone=a") == 0.0


def test_evolution_plan_selects_the_file():
    assert plan_path({})[1] == "evolutions/demo.yaml"
    path, shown = plan_path({"EVOLUTION_PLAN": "evolutions/three-zones.yaml"})
    assert path == THREE_ZONES and shown == "evolutions/three-zones.yaml"
    assert plan_path({"EVOLUTION_PLAN": str(THREE_ZONES)})[0] == THREE_ZONES


def phase_of(data, name):
    return next(p for p in data["phases"] if p["name"] == name)


# (what is broken, how, the message's start after "evolutions/x.yaml: ")
BROKEN = [
    ("num_replicas 2 without num_voters", DEMO,
     lambda d: phase_of(d, "phase1_two_nodes")["zone_configs"].__setitem__("data", {"num_replicas": 2}),
     ("phase phase1_two_nodes: zone_configs.data.num_replicas: at least 3 replicas are required for "
     "multi-replica configurations")),
    ("two node failures on three nodes", THREE_ZONES,
     lambda d: phase_of(d, "zones_a_three_nodes")["survives"].__setitem__("nodes", 2),
     ("phase zones_a_three_nodes: survives.nodes: claims 2 node failure(s), but its ranges have 3 voter(s) on 3 "
     "node(s): a majority of 3 survives 1")),
    ("voter constraints no node satisfies", THREE_ZONES,
     lambda d: phase_of(d, "zones_b_six_nodes")["zone_configs"]["data"].update(
         num_voters=5, voter_constraints=["+zone=us-east1-d"]),
     ("phase zones_b_six_nodes: zone_configs.data.voter_constraints: no node of the phase satisfies "
     "+zone=us-east1-d")),
    ("a zone claim that does not hold", THREE_ZONES,
     lambda d: phase_of(d, "zones_a_three_nodes").__setitem__(
         "nodes", [{"locality": "region=us-east1,zone=us-east1-a"}] * 2 + [{"locality": "region=us-east1,zone=us-east1-b"}]),
     "phase zones_a_three_nodes: survives.zones: claims 1 zone loss(es), which does not hold"),
    ("shrink", THREE_ZONES,
     lambda d: phase_of(d, "zones_b_six_nodes")["nodes"].__delitem__(slice(2, None)),
     "phase zones_b_six_nodes: nodes: 2 node(s) after zones_a_three_nodes's 3: an evolution only grows"),
    ("a node moves", THREE_ZONES,
     lambda d: phase_of(d, "zones_b_six_nodes")["nodes"][1].__setitem__("locality", "region=us-east1,zone=us-east1-c"),
     "phase zones_b_six_nodes: nodes[1].locality: node 2 was region=us-east1,zone=us-east1-b"),
    ("unknown field", THREE_ZONES,
     lambda d: phase_of(d, "zones_a_three_nodes")["zone_configs"]["data"].__setitem__("num_replica", 3),
     "phase zones_a_three_nodes: zone_configs.data.num_replica: unknown field"),
    ("unknown phase field", DEMO,
     lambda d: phase_of(d, "phase0_single_node").__setitem__("replicas", 1),
     "phase phase0_single_node: replicas: unknown field(s) replicas"),
    ("bad locality", THREE_ZONES,
     lambda d: phase_of(d, "zones_a_three_nodes")["nodes"][2].__setitem__("locality", "region=us-east1,zone"),
     "phase zones_a_three_nodes: nodes[2].locality: 'region=us-east1,zone': tier 'zone' must be key=value"),
    ("locality tiers out of order", THREE_ZONES,
     lambda d: [p["nodes"][2].__setitem__("locality", "zone=us-east1-c,region=us-east1") for p in d["phases"]],
     ("phase zones_a_three_nodes: nodes[2].locality: zone=us-east1-c,region=us-east1: tier keys zone,region "
     "differ from node 1's region,zone")),
    ("num_voters 2", DEMO,
     lambda d: phase_of(d, "phase2_three_nodes")["zone_configs"]["data"].update(num_voters=2),
     "phase phase2_three_nodes: zone_configs.data.num_voters: at least 3 voting replicas are required"),
    ("fragile quorum", DEMO,
     lambda d: phase_of(d, "phase1_two_nodes")["zone_configs"].__setitem__("system", {"num_replicas": 3}),
     ("phase phase1_two_nodes: zone_configs.system.num_voters: CockroachDB targets 3 voters for num_voters = 3 "
     "on 2 node(s)")),
    ("a pin shared by node 2", DEMO,
     lambda d: [phase_of(d, n)["nodes"][1].__setitem__("locality", "region=local,zone=local-a")
                for n in ("phase1_two_nodes", "phase2_three_nodes")],
     ("phase phase1_two_nodes: zone_configs.data.voter_constraints: node 1's locality region=local,zone=local-a "
     "is also node(s) [2]'s")),
    ("prohibitive voter constraint", THREE_ZONES,
     lambda d: phase_of(d, "zones_b_six_nodes")["zone_configs"]["data"].update(
         num_voters=5, voter_constraints=["-zone=us-east1-a"]),
     ("phase zones_b_six_nodes: zone_configs.data.voter_constraints: voter_constraints cannot contain "
     "prohibitive constraints")),
    ("missing sql file", DEMO,
     lambda d: phase_of(d, "phase2_three_nodes").__setitem__("sql_files", ["99-nope.sql"]),
     "phase phase2_three_nodes: sql_files[0]: 99-nope.sql is not a file in sql/"),
    ("unknown user", DEMO,
     lambda d: phase_of(d, "phase1_two_nodes").__setitem__("users", ["app_root"]),
     "phase phase1_two_nodes: users[0]: app_root is not a rotation user"),
]


@pytest.mark.parametrize("what, base, breaks, message", BROKEN, ids=[b[0] for b in BROKEN])
def test_a_broken_file_fails_with_one_message(tmp_path, what, base, breaks, message):
    data = copy.deepcopy(raw(base))
    breaks(data)
    text = load_broken(tmp_path, data)
    assert text.startswith("evolutions/x.yaml: " + message), text
    assert "\n" not in text


def test_a_missing_or_unreadable_file_names_itself(tmp_path):
    with pytest.raises(EvolutionError, match=r"^evolutions/none.yaml: no such file"):
        load_evolution(tmp_path / "none.yaml", "evolutions/none.yaml")
    (tmp_path / "bad.yaml").write_text("phases: [\n")
    with pytest.raises(EvolutionError, match=r"^evolutions/bad.yaml: cannot read it as YAML"):
        load_evolution(tmp_path / "bad.yaml", "evolutions/bad.yaml")


def test_constraints_that_hold_are_accepted_and_kept_in_cockroachdbs_words(tmp_path):
    data = raw(THREE_ZONES)
    phase_of(data, "zones_b_six_nodes")["zone_configs"]["data"] = {
        "num_replicas": 5, "num_voters": 5, "constraints": {"+zone=us-east1-a": 1, "+zone=us-east1-b": 1},
        "voter_constraints": ["+region=us-east1"], "lease_preferences": [["+zone=us-east1-a"]]}
    evolution = load_evolution(write(tmp_path, data), "x.yaml")
    r = evolution.phases[1].data
    assert r.constraints == "{+zone=us-east1-a: 1, +zone=us-east1-b: 1}"
    assert (r.voter_constraints, r.lease_preferences) == ("[+region=us-east1]", "[[+zone=us-east1-a]]")
    assert zone_survivable(evolution.phases[1]) is None


def test_the_bottom_imports_nothing_above_it():
    """Checked in a fresh interpreter: loading the package must not pull in ops, drills, rotation, resources or
    Dagster (a one-way house)."""
    import subprocess
    import sys

    code = ("import sys; import evolution_pipeline.evolution as e; e.load_evolution(); "
            "bad = [m for m in sys.modules if m.startswith(('evolution_pipeline.ops', 'evolution_pipeline.drills', "
            "'evolution_pipeline.rotation', 'evolution_pipeline.resources', 'dagster'))]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT,
                         env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"}, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
