"""Follower reads go to the replica nearest the GATEWAY node, not to node 2 (issue 21, item 3).

CockroachDB's DistSender sends a follower read with RoutingPolicy_NEAREST and orders the replicas by the
gateway node's locality and latency (cockroachdb/cockroach pkg/kv/kvclient/kvcoord/dist_sender.go
sendToReplicas: `case roachpb.RoutingPolicy_NEAREST: replicas.OptimizeReplicaOrder(ds.getNodeDescriptor(),
...)`, the local node's replica first). crdb-reader selects every CockroachDB pod, so a reader connection
that lands on node 1 reads node 1's voter. The docs and the phase table must not promise that node 2's read
replica serves the reader path; they must say the gateway decides.
"""

from __future__ import annotations

import re

from evolution_pipeline.phases import PHASES, REPO_ROOT

PHASE1 = PHASES[1]
DOCS = ["README.md", "context.md", "demo/DEMO.md", "sample_app/README.md"]
# Claims that node 2's non-voter serves the reader path whatever node the connection lands on.
OVERCLAIMS = [
    r"non-voting replica that serves follower reads to the read-only user",
    r"replica on node 2 that serves follower reads",
    r"can be served by the read replica on node 2 without asking node 1",
    r"any replica near the app can answer",
]


def _text(path: str) -> str:
    return " ".join((REPO_ROOT / path).read_text().split())


def test_phase_table_says_the_gateway_picks_the_replica():
    text = " ".join(PHASE1.description.split())
    assert not any(re.search(c, text) for c in OVERCLAIMS), text
    assert "gateway" in text and "node 1" in text


def test_docs_do_not_promise_node_2_serves_every_reader_connection():
    for path in DOCS:
        text = _text(path)
        found = [c for c in OVERCLAIMS if re.search(c, text)]
        assert not found, f"{path} still says {found}"
    for path in ("README.md", "context.md"):
        assert "nearest the gateway" in _text(path), path
