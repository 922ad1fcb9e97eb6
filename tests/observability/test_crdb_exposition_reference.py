"""The `/_status/vars` page the stand-ins serve (tests/doubles/crdb_exposition.py) prints only the numbers on
each scrape and caches everything else (HELP/TYPE lines, label sets, bucket bounds); it must stay byte for
byte the page the plain rendering gives. The plain rendering is kept here as the reference: each line built
from scratch, every number through Decimal, exactly as crdb_exposition.py printed it before the caches."""

from __future__ import annotations

import math
import random
from decimal import Decimal

import pytest

from tests.doubles.crdb_exposition import (
    IO_LATENCY_BUCKETS,
    NODE_FAMILIES,
    STORE_FAMILIES,
    Histogram,
    exponential_buckets_range,
    go_float,
    render,
)
from tests.doubles.crdb_metrics import CrdbNodeMetrics

# --- the reference: the straightforward rendering ---------------------------------------------------------


def reference_go_float(value: float) -> str:
    """strconv.AppendFloat(f, 'g', -1, 64), digits from Decimal(repr(value)) for every value."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "0"
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    mantissa = "".join(map(str, digits))
    point = len(mantissa) + exponent - 1
    if point < -4 or point >= 6:
        frac = f".{mantissa[1:]}" if len(mantissa) > 1 else ""
        text = f"{mantissa[0]}{frac}e{'-' if point < 0 else '+'}{abs(point):02d}"
    elif point < 0:
        text = "0." + "0" * (-point - 1) + mantissa
    elif len(mantissa) <= point + 1:
        text = mantissa + "0" * (point + 1 - len(mantissa))
    else:
        text = f"{mantissa[:point + 1]}.{mantissa[point + 1:]}"
    return ("-" if sign else "") + text


def reference_histogram_lines(h: Histogram, name: str, labels: str) -> list[str]:
    out, cumulative = [], 0
    for bound, n in zip(h.bounds, h.counts):
        cumulative += n
        out.append(f'{name}_bucket{{{labels},le="{reference_go_float(bound)}"}} {cumulative}')
    out.append(f'{name}_bucket{{{labels},le="+Inf"}} {h.count}')
    out.append(f"{name}_sum{{{labels}}} {reference_go_float(h.sum)}")
    out.append(f"{name}_count{{{labels}}} {h.count}")
    return out


def reference_render(node_id: int, node_values: dict, stores: dict[int, dict]) -> str:
    def family(spec, series):
        out = [f"# HELP {spec.name} {spec.help}", f"# TYPE {spec.name} {spec.kind}"]
        for labels, value in series:
            if spec.kind == "histogram":
                out += reference_histogram_lines(value, spec.name, labels)
            else:
                out.append(f"{spec.name}{{{labels}}} {reference_go_float(value)}")
        return out

    out: list[str] = []
    for spec in NODE_FAMILIES:
        if spec.name in node_values:
            out += family(spec, [(f'node_id="{node_id}"', node_values[spec.name])])
    for spec in STORE_FAMILIES:
        series = [(f'store="{sid}",node_id="{node_id}"', values[spec.name])
                  for sid, values in sorted(stores.items()) if spec.name in values]
        if series:
            out += family(spec, series)
    return "\n".join(out) + "\n"


# --- the pages ---------------------------------------------------------------------------------------------


def scrape_both(node: CrdbNodeMetrics) -> tuple[str, str]:
    """The reference page of the node's values now, then the page the node serves (which advances them)."""
    expected = reference_render(node.node_id, node.node_values, node.stores)
    return expected, node.render()


def test_the_page_is_the_plain_rendering_scrape_after_scrape():
    node = CrdbNodeMetrics(3, live_nodes=6)
    for _ in range(3):  # counters and histogram counts grow on every scrape
        expected, served = scrape_both(node)
        assert served == expected
    node.set(liveness_livenodes=5, ranges_underreplicated=4, ranges_unavailable=1,
             sys_cpu_combined_percent_normalized=0.37, sys_rss=812_345_678.5, capacity_available=7.9e10)
    node.observe("liveness_heartbeatlatency", 1.5e9, times=3)  # between two bounds
    node.observe("sql_exec_latency", IO_LATENCY_BUCKETS[10])  # on a bound (le is inclusive)
    node.observe("sql_service_latency", 20e9, times=2)  # above the last bound: only +Inf
    node.observe("sql_service_latency", 1234.5678)  # below the first bound, a fractional sum
    node.set_store(7, ranges_underreplicated=1, replicas=9, rebalancing_queriespersecond=12.25)
    node.set_store(2, capacity_used=3.5e-05, capacity=1e21)  # sorted before store 3 and 7
    for _ in range(3):
        expected, served = scrape_both(node)
        assert served == expected
    assert 'ranges_underreplicated{store="7",node_id="3"} 1\n' in served
    assert 'sql_service_latency_bucket{node_id="3",le="+Inf"} ' in served


def test_a_page_of_unusual_numbers_is_the_plain_rendering():
    node = CrdbNodeMetrics(1)
    node.set(sql_conns=-3, sys_rss=float(2 ** 53 + 2), sys_uptime=2 ** 70, txn_restarts_serializable=math.nan,
             sql_failure_count=math.inf, ranges=-0.0, replicas=1e-7, capacity=123456.0,
             capacity_used=1234567.0)
    expected, served = scrape_both(node)
    assert served == expected


def test_a_page_with_only_some_families_and_other_bounds():
    """As tests/doubles/fake_cockroach_node.py calls it: its own values, a store without every family."""
    h = Histogram(exponential_buckets_range(500e6, 300e9, 60))
    h.observe(7e8, 4)
    node_values = {"liveness_livenodes": 3, "liveness_heartbeatlatency": h}
    stores = {4: {"ranges": 12, "replicas": 30.0}, 1: {"ranges": 70.0}}
    assert render(2, node_values, stores) == reference_render(2, node_values, stores)
    assert h.lines("x", 'node_id="2"') == reference_histogram_lines(h, "x", 'node_id="2"')


def test_no_page_without_a_node_id():
    node_values = {"liveness_livenodes": 1}
    for bad in (0, -1):
        with pytest.raises(ValueError, match="node has an ID"):
            render(bad, node_values, {})


def test_numbers_are_printed_as_the_plain_rendering_prints_them():
    rng = random.Random(20260501)
    values: list[float] = [0, 0.0, -0.0, 1, -1, 7, 10, 999999, 1_000_000, 2 ** 53, 2 ** 53 - 1, -(2 ** 53),
                           2 ** 64 + 1, -(10 ** 30), 1e15, 1e16, 1e17, 1e22, 1e23, 123456.0, 1234567.0, 5e8,
                           0.1, 0.2, 0.3, 1e-4, 1e-5, 1.234e-05, 5e-324, 1.7976931348623157e308,
                           float(2 ** 53), float(2 ** 53 + 2), -float(2 ** 53 + 2), 2.0 ** 60, math.inf,
                           -math.inf, math.nan, *IO_LATENCY_BUCKETS]
    for _ in range(3000):
        exponent = rng.randint(-12, 24)
        values += [rng.uniform(-1, 1) * 10.0 ** exponent,  # any float
                   float(round(rng.uniform(-1, 1) * 10.0 ** exponent)),  # an integral float
                   rng.randint(-(10 ** 20), 10 ** 20)]  # an int
    for value in values:
        assert go_float(value) == reference_go_float(value), repr(value)
