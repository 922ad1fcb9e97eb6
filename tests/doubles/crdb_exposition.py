"""CockroachDB's `/_status/vars` exposition, rebuilt from CockroachDB's own sources. NOT CockroachDB.

Shared by the two stand-ins that serve it: tests/doubles/crdb_metrics.py (values a test controls) and
tests/doubles/fake_cockroach.py (a stand-in process; it runs as a script, so this module imports nothing
from the tests package).

What is derived from upstream, so a real Prometheus and our PromQL meet the real shapes:
- the metric names, types and HELP texts of the families we use (CATALOGUE), with `node_id` on every series
  and `store` (the store ID) first on store-level series;
- latency histograms with CockroachDB's IOLatencyBuckets: 60 buckets from 10 µs to 10 s in nanoseconds,
  computed the way the source computes them (Go's math.Pow, not libc pow: the last digits differ);
- numbers printed the way Go's Prometheus text encoder prints them (`5e+08`, `1.0680243876372875e+09`).
What is not: any value. The values come from whoever drives the stand-in.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import math
from dataclasses import dataclass
from decimal import Decimal

NODE, STORE = "node", "store"

# What the real handler answers (pkg/server/status.go varsHandler.handleVars: expfmt.Negotiate gives the
# text format to Prometheus' default Accept header).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


# --- numbers as Go prints them ------------------------------------------------------------------------------


def go_float(value: float) -> str:
    """strconv.AppendFloat(f, 'g', -1, 64), which prometheus/common expfmt writeFloat uses for every value:
    the shortest digits that round-trip, in exponent form when the exponent is < -4 or >= 6 (Go uses
    precision 6 for that decision when printing the shortest form: strconv/ftoa.go %g)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "0"
    # Integral values (every counter, histogram count and sum the stand-ins advance) without Decimal: below
    # 2**53 a float holds every integer exactly, so its shortest round-trip digits are the integer's own
    # (repr gives the same); an int's digits are its own as well (Decimal(repr(n)) keeps them all).
    kind = type(value)
    if kind is int or (kind is float and -_EXACT_INTS < value < _EXACT_INTS and value.is_integer()):
        whole = str(int(value))
        negative = whole[0] == "-"
        digits = whole[1:] if negative else whole
        return ("-" if negative else "") + _go_digits(digits.rstrip("0"), len(digits) - 1)
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    mantissa = "".join(map(str, digits))
    point = len(mantissa) + exponent - 1  # exponent of the first digit
    return ("-" if sign else "") + _go_digits(mantissa, point)


_EXACT_INTS = float(2 ** 53)


def _go_digits(mantissa: str, point: int) -> str:
    if point < -4 or point >= 6:
        frac = f".{mantissa[1:]}" if len(mantissa) > 1 else ""
        return f"{mantissa[0]}{frac}e{'-' if point < 0 else '+'}{abs(point):02d}"
    if point < 0:
        return "0." + "0" * (-point - 1) + mantissa
    if len(mantissa) <= point + 1:
        return mantissa + "0" * (point + 1 - len(mantissa))
    return f"{mantissa[:point + 1]}.{mantissa[point + 1:]}"


def go_pow(x: float, y: float) -> float:
    """Go's math.Pow (src/math/pow.go): the fractional part of y through Exp(yf*Log(x)), the integer part by
    repeated squaring of Frexp's mantissa. Bucket bounds depend on it: libc pow gives other last digits.
    Exp and Log here are the C library's, not ports of Go's; for IOLatencyBuckets and
    BatchProcessLatencyBuckets they give Go's bits (checked against the docs' output), not for every config."""
    if y == 0:
        return 1.0
    if y == 1:
        return x
    yf, yi = math.modf(abs(y))
    a1, ae = 1.0, 0
    if yf != 0:
        if yf > 0.5:
            yf, yi = yf - 1, yi + 1
        a1 = math.exp(yf * math.log(x))
    x1, xe = math.frexp(x)
    i = int(yi)
    while i != 0:
        if i & 1:
            a1 *= x1
            ae += xe
        x1 *= x1
        xe <<= 1
        if x1 < 0.5:
            x1 += x1
            xe -= 1
        i >>= 1
    if y < 0:
        a1, ae = 1 / a1, -ae
    return math.ldexp(a1, ae)


def exponential_buckets_range(low: float, high: float, count: int) -> list[float]:
    """prometheus/client_golang prometheus/histogram.go ExponentialBucketsRange, which CockroachDB's
    staticBucketConfig.GetBucketsFromBucketConfig (pkg/util/metric/histogram_buckets.go) calls for every
    Exponential bucket config. Checked against the 60 `le` values of BatchProcessLatencyBuckets printed in
    cockroachdb/docs src/current/v26.2/multi-dimensional-metrics.md (tests/observability/test_crdb_stand_ins.py)."""
    if low <= 0 or high <= low or count < 1:
        raise ValueError("ExponentialBucketsRange needs 0 < low < high and count >= 1")
    growth = go_pow(high / low, 1.0 / (count - 1))
    return [low * go_pow(growth, float(i)) for i in range(count)]


# pkg/util/metric/histogram_buckets.go: IOLatencyBuckets = {min: 10e3 (10µs), max: 10e9 (10s), count: 60,
# Exponential}. Used by liveness.heartbeatlatency (pkg/kv/kvserver/liveness/liveness.go NewNodeLiveness) and
# sql.service.latency / sql.exec.latency (pkg/sql/conn_executor.go makeMetrics).
IO_LATENCY_BUCKETS = exponential_buckets_range(10e3, 10e9, 60)


# --- the families -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricSpec:
    name: str  # the exported (Prometheus) name: dots and dashes become underscores
    kind: str  # gauge | counter | histogram, as the metric's metadata declares it
    level: str  # node (node/app/sys registries) | store (a store's registry: `store` label)
    help: str  # the metric's Metadata.Help, verbatim
    default: float = 0.0
    # Counters (and histogram counts) grow by this much per scrape, so rate() has something to show.
    per_scrape: float = 0.0


def _spec(name, kind, level, help_text, default=0.0, per_scrape=0.0) -> MetricSpec:
    return MetricSpec(name, kind, level, help_text, default, per_scrape)


# Names, types and HELP texts: cockroachdb/docs src/current/_data/v26.2/metrics/metrics.yaml (generated from
# the v26.2 metric metadata by `cockroach gen metric-list`); levels: store-level families are the ones
# registered in StoreMetrics (pkg/kv/kvserver/metrics.go), liveness.* in the node registry
# (pkg/kv/kvserver/liveness/liveness.go), sql.* in the app registry, sys.* in the sys registry.
CATALOGUE: dict[str, MetricSpec] = {s.name: s for s in [
    _spec("liveness_livenodes", "gauge", NODE,
          "Number of live nodes in the cluster (will be 0 if this node is not itself live)"),
    _spec("liveness_heartbeatlatency", "histogram", NODE, "Node liveness heartbeat latency", per_scrape=1),
    _spec("ranges", "gauge", STORE, "Number of ranges", 70),
    _spec("ranges_underreplicated", "gauge", STORE,
          "Number of ranges with fewer live replicas than the replication target"),
    _spec("ranges_unavailable", "gauge", STORE, "Number of ranges with fewer live replicas than needed for quorum"),
    _spec("ranges_overreplicated", "gauge", STORE,
          "Number of ranges with more live replicas than the replication target"),
    _spec("replicas", "gauge", STORE, "Number of replicas", 70),
    _spec("replicas_leaseholders", "gauge", STORE, "Number of lease holders", 23),
    _spec("replicas_leaders", "gauge", STORE, "Number of raft leaders", 23),
    _spec("replicas_leaders_not_leaseholders", "gauge", STORE,
          "Number of replicas that are Raft leaders whose range lease is held by another store"),
    _spec("replicas_quiescent", "gauge", STORE, "Number of quiesced replicas", 50),
    _spec("range_adds", "counter", STORE, "Number of range additions", per_scrape=1),
    _spec("range_removes", "counter", STORE, "Number of range removals", per_scrape=1),
    _spec("range_splits", "counter", STORE, "Number of range splits", per_scrape=1),
    _spec("range_merges", "counter", STORE, "Number of range merges"),
    _spec("range_snapshots_generated", "counter", STORE, "Number of generated snapshots", per_scrape=1),
    _spec("range_snapshots_applied_voter", "counter", STORE, "Number of snapshots applied by voter replicas",
          per_scrape=1),
    _spec("range_snapshots_applied_non_voter", "counter", STORE,
          "Number of snapshots applied by non-voter replicas", per_scrape=1),
    _spec("range_snapshots_applied_initial", "counter", STORE,
          "Number of snapshots applied for initial upreplication", per_scrape=1),
    _spec("rebalancing_range_rebalances", "counter", STORE,
          "Number of range rebalance operations motivated by store-level load imbalances", per_scrape=1),
    _spec("rebalancing_lease_transfers", "counter", STORE,
          "Number of lease transfers motivated by store-level load imbalances", per_scrape=1),
    _spec("leases_transfers_success", "counter", STORE, "Number of successful lease transfers", per_scrape=1),
    _spec("queue_replicate_addreplica", "counter", STORE,
          "Number of replica additions attempted by the replicate queue", per_scrape=1),
    _spec("queue_replicate_removereplica", "counter", STORE,
          "Number of replica removals attempted by the replicate queue (typically in response to a "
          "rebalancer-initiated addition)", per_scrape=1),
    _spec("queue_replicate_rebalancereplica", "counter", STORE,
          "Number of replica rebalancer-initiated additions attempted by the replicate queue", per_scrape=1),
    _spec("queue_replicate_pending", "gauge", STORE, "Number of pending replicas in the replicate queue"),
    _spec("rebalancing_queriespersecond", "gauge", STORE,
          "Number of kv-level requests received per second by the store, considering the last 30 minutes, "
          "as used in rebalancing decisions.", 120),
    _spec("capacity", "gauge", STORE, "Total storage capacity", 100e9),
    _spec("capacity_available", "gauge", STORE, "Available storage capacity", 80e9),
    _spec("capacity_used", "gauge", STORE, "Used storage capacity", 2e9),
    _spec("sql_select_count", "counter", NODE, "Number of SQL SELECT statements successfully executed",
          per_scrape=50),
    _spec("sql_insert_count", "counter", NODE, "Number of SQL INSERT statements successfully executed",
          per_scrape=20),
    _spec("sql_update_count", "counter", NODE, "Number of SQL UPDATE statements successfully executed",
          per_scrape=5),
    _spec("sql_delete_count", "counter", NODE, "Number of SQL DELETE statements successfully executed",
          per_scrape=1),
    _spec("sql_query_count", "counter", NODE,
          "Number of SQL operations started including queries, and transaction control statements",
          per_scrape=80),
    _spec("sql_failure_count", "counter", NODE, "Number of statements resulting in a planning or runtime error"),
    _spec("sql_txn_commit_count", "counter", NODE,
          "Number of SQL transaction COMMIT statements successfully executed", per_scrape=20),
    _spec("txn_restarts_serializable", "counter", NODE,
          "Number of restarts due to a forwarded commit timestamp and isolation=SERIALIZABLE"),
    _spec("sql_conns", "gauge", NODE, "Number of open SQL connections", 12),
    _spec("sql_service_latency", "histogram", NODE, "Latency of SQL request execution", per_scrape=50),
    _spec("sql_exec_latency", "histogram", NODE, "Latency of SQL statement execution", per_scrape=50),
    _spec("sys_cpu_combined_percent_normalized", "gauge", NODE,
          "Current user+system cpu percentage consumed by the CRDB process, normalized 0-1 by number of cores",
          0.2),
    _spec("sys_cpu_user_ns", "counter", NODE, "Total user cpu time consumed by the CRDB process", per_scrape=1e8),
    _spec("sys_cpu_sys_ns", "counter", NODE, "Total system cpu time consumed by the CRDB process",
          per_scrape=2e7),
    _spec("sys_rss", "gauge", NODE, "Current process RSS", 800e6),
    _spec("sys_uptime", "counter", NODE, "Process uptime", 3600),
]}
NODE_FAMILIES = [s for s in CATALOGUE.values() if s.level == NODE]
STORE_FAMILIES = [s for s in CATALOGUE.values() if s.level == STORE]


def known(name: str, level: str | None = None) -> MetricSpec:
    spec = CATALOGUE.get(name)
    if spec is None:
        raise KeyError(f"{name} is not a CockroachDB metric this stand-in knows")
    if level and spec.level != level:
        raise KeyError(f"{name} is a {spec.level}-level metric, not a {level}-level one")
    return spec


# --- histograms ---------------------------------------------------------------------------------------------


class Histogram:
    """A cumulative histogram over fixed bounds, exported like pkg/util/metric Histogram.ToPrometheusMetric:
    one `_bucket` per bound, then `+Inf`, `_sum` and `_count` (the +Inf bucket is added by expfmt)."""

    def __init__(self, bounds: list[float] = IO_LATENCY_BUCKETS):
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last slot: above every bound
        self.sum = 0.0

    def observe(self, value: float, times: int = 1) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += times
        self.sum += value * times

    @property
    def count(self) -> int:
        return sum(self.counts)

    def lines(self, name: str, labels: str) -> list[str]:
        prefixes, inf, total, count = _histogram_prefixes(name, labels, tuple(self.bounds))
        cumulative = itertools.accumulate(self.counts, initial=0)
        next(cumulative)
        out = [f"{prefix}{n}" for prefix, n in zip(prefixes, cumulative)]
        n = self.count
        out += (f"{inf}{n}", f"{total}{go_float(self.sum)}", f"{count}{n}")
        return out


@functools.lru_cache(maxsize=1024)
def _histogram_prefixes(name: str, labels: str,
                        bounds: tuple[float, ...]) -> tuple[tuple[str, ...], str, str, str]:
    """Everything of a histogram's lines but the numbers: the bucket bounds never change, so each `le` is
    printed once per series, not on every scrape."""
    return (tuple(f'{name}_bucket{{{labels},le="{go_float(bound)}"}} ' for bound in bounds),
            f'{name}_bucket{{{labels},le="+Inf"}} ', f"{name}_sum{{{labels}}} ", f"{name}_count{{{labels}}} ")


# --- the page -----------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1024, typed=True)
def node_labels(node_id: int) -> str:
    # pkg/server/status/recorder.go AddNode: node_id is only added when the ID is not 0.
    if not node_id or node_id < 1:
        raise ValueError("no metrics before the node has an ID (recorder.go AddNode never labels node_id=0)")
    return f'node_id="{node_id}"'


@functools.lru_cache(maxsize=1024, typed=True)
def store_labels(store_id: int, node_id: int) -> str:
    # AddStore labels the store's registry with `store` first; AddNode then adds node_id to it
    # (docs v26.2 multi-dimensional-metrics.md: `sysbytes{store="1",node_id="1"}`).
    return f'store="{store_id}",{node_labels(node_id)}'


def family_lines(spec: MetricSpec, series: list[tuple[str, float | Histogram]]) -> list[str]:
    """One family: HELP and TYPE once, then every series of it (one per store for store-level families)."""
    out = list(_header(spec))
    for labels, value in series:
        if spec.kind == "histogram":
            out += value.lines(spec.name, labels)
        else:
            out.append(f"{_series_prefix(spec.name, labels)}{go_float(value)}")
    return out


@functools.cache
def _header(spec: MetricSpec) -> tuple[str, str]:
    return f"# HELP {spec.name} {spec.help}", f"# TYPE {spec.name} {spec.kind}"


@functools.lru_cache(maxsize=4096)
def _series_prefix(name: str, labels: str) -> str:
    return f"{name}{{{labels}}} "


def render(node_id: int, node_values: dict, stores: dict[int, dict]) -> str:
    """The page of one node: node-level families, then the store-level ones with a series per store.
    Values are floats, or Histograms for histogram families; a family without a value is left out.
    Only the numbers are printed on each scrape: HELP/TYPE lines, label sets and bucket bounds are printed
    once (tests/observability/test_crdb_exposition_reference.py holds the page to the plain rendering)."""
    out: list[str] = []
    for spec in NODE_FAMILIES:
        if spec.name in node_values:
            out += family_lines(spec, [(node_labels(node_id), node_values[spec.name])])
    by_store = sorted(stores.items())
    for spec in STORE_FAMILIES:
        series = [(store_labels(sid, node_id), values[spec.name])
                  for sid, values in by_store if spec.name in values]
        if series:
            out += family_lines(spec, series)
    return "\n".join(out) + "\n"
