"""A stand-in `cockroach` executable for the local-cluster tests. NOT CockroachDB.

No CockroachDB binary can be obtained on this machine or in CI, so the local backend
(evolution_pipeline/resources/local/) is tested against this double. It implements only the parts of
the documented CLI the backend uses, with the documented flags and output formats:

- `version`: a Build Tag block; the tag is the version versions.toml pins with `-standin` appended, and the
  Build Type says stand-in, so nothing can mistake this for the pinned binary.
- `cert create-ca | create-node <host>... | create-client <user>` with --certs-dir and --ca-key: real X.509
  files (ca.crt, node.crt/key with the given hosts as SANs, client.<user>.crt/key with CN=<user>), so the
  backend's TLS checks against the local CA are exercised for real. Existing files are not overwritten.
  Keys are RSA-2048 (the default --key-size; other sizes are not followed). A deliberate deviation, for
  the suite's CPU (a new key was ~55 ms of CPU, and a suite run makes some 125 node and client certificates):
  node and client keys come from a pool of 8 keys (KEY_POOL_SIZE in fake_cockroach_cli.py, where the code
  is) made on first use, rather than a new key each. A certs dir is never given a key that another *.key file in it holds (the one --overwrite replaces
  included), so within a cluster every key differs as with new keys; certs dirs of different clusters share
  keys, and no test compares keys across them. CA keys are always new, so a certificate of another CA is
  refused as before. The pool is $FAKE_COCKROACH_KEY_POOL, else fake-cockroach-keys-<uid> in $TMPDIR or
  /tmp (used only if it is a 0700 directory of this user's); FAKE_COCKROACH_KEY_POOL=off makes every key
  new, like the real binary. Concurrent invocations take keys under the pool's lock.
- `start`: needs --join and --store; without --insecure it needs ca.crt, node.crt and node.key in the
  certs dir (--certs-dir, $COCKROACH_CERTS_DIR or ~/.cockroach-certs) and fails like the real one
  otherwise. It binds --listen-addr (gRPC), --sql-addr and --http-addr on loopback and serves /health,
  /health?ready=1 and /_status/vars as a real node does before and after it joins, over HTTPS with node.crt
  (HTTP with --insecure): see tests/doubles/fake_cockroach_node.py for each rule and its upstream source.
  It writes its store directory and nothing else there. It speaks no SQL and no gRPC: the gRPC and SQL
  ports only answer the private one-line requests of this file's own `init` and `node status`.
- `init --host=<listen addr>`: initializes through the node's gRPC port; a second init fails with
  "ERROR: cluster has already been initialized", like the real one. Pointed at a SQL port it fails.
- `node status` / `node ls` (--format=csv|tsv|table, --host=<sql addr>): the real columns
  (id,address,sql_address,build,started_at,updated_at,locality,is_available,is_live), from the nodes that
  joined; is_live follows the node's liveness record, so a killed node is live until its record expires.

What it proves: that the local backend starts, initializes, grows and watches a cluster through the CLI
and endpoints it would use against CockroachDB, and waits for the readiness CockroachDB reports.
What it does not prove: anything about SQL, ranges or replication (it has none), TLS details beyond
"verified by the local CA", timing of a real node, or that two clusters' node and client keys differ.

Cluster membership and liveness records are shared through a JSON file in $FAKE_COCKROACH_CLUSTER_DIR
(default: the parent of the node's store), which stands in for gossip and the liveness range. Every
invocation appends its argv as one JSON line to $FAKE_COCKROACH_ARGV_LOG (default <cluster dir>/argv.log)
so tests can assert exactly what was run. $FAKE_COCKROACH_FIRST_HEARTBEAT_DELAY (seconds, default 0) is a
testing knob like NodeLiveness' paused heartbeat: the node joins but is not live for that long;
$FAKE_COCKROACH_SHUTDOWN_INITIAL_WAIT (seconds, default 0) stands for the cluster setting
server.shutdown.initial_wait: after SIGTERM the node answers 503 "node is shutting down" that long, then exits.
"""

# The code is in fake_cockroach_cli.py: an imported module is compiled once and cached in __pycache__, while
# this file, run as a script, is compiled on every invocation. tests/doubles is sys.path[0] (this file's folder).
from fake_cockroach_cli import main

if __name__ == "__main__":
    main()
