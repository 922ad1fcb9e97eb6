"""crdb-live-evolution: a Dagster code location that grows a CockroachDB cluster 1 -> 2 -> 3 nodes.

Data flows one way: the phase table (phases.py) -> graph-backed phase assets (assets.py) -> ops (ops/) ->
resources (resources/) -> the outside world (the Kubernetes operator or local processes, CockroachDB SQL,
Prometheus, the sample app).
"""
