"""What the observability tests share: the dashboards and rules, every PromQL expression in them, Grafana
variable substitution, and the metric names CockroachDB and the sample app really expose."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import promql_parser
import yaml

from tests.doubles.crdb_metrics import CATALOGUE
from tests.support.prometheus import RULE_FILES

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((REPO / "grafana" / "dashboards").glob("*.json"))
RULE_TESTS = sorted((REPO / "grafana" / "alerts" / "tests").glob("*.test.yml"))
K8S = REPO / "k8s" / "observability"

# The sample app's metrics (the brief's contract) and their Prometheus types.
APP_METRICS = {
    "app_requests_total": "counter",
    "app_request_duration_seconds": "histogram",
    "app_db_query_duration_seconds": "histogram",
    "app_db_errors_total": "counter",
    "app_spike_target_rps": "gauge",
    "app_spike_achieved_rps": "gauge",
    "app_spike_active_workers": "gauge",
    "app_db_pool_connections": "gauge",
    "app_db_pool_user": "gauge",
}
# Series Prometheus itself adds to every target (no exporter exposes them).
PROMETHEUS_SYNTHETIC = {"up"}


def exposed_names(families: dict[str, str]) -> set[str]:
    """Series names a family of each type yields in the text format."""
    names: set[str] = set()
    for name, kind in families.items():
        names.add(name)
        if kind == "histogram":
            names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return names


CRDB_NAMES = exposed_names({name: spec.kind for name, spec in CATALOGUE.items()})
APP_NAMES = exposed_names(APP_METRICS)
KNOWN_NAMES = CRDB_NAMES | APP_NAMES | PROMETHEUS_SYNTHETIC


@dataclass(frozen=True)
class Expr:
    where: str  # a human pointer: "sample-app.json panel 3 'Requests per second' A"
    text: str  # with Grafana variables, as stored


def load_dashboard(path: Path) -> dict:
    return json.loads(path.read_text())


def panels(dashboard: dict) -> list[dict]:
    """All panels, including those nested in collapsed rows."""
    out = []
    for p in dashboard.get("panels", []):
        out.append(p)
        out.extend(p.get("panels", []))
    return out


LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>[a-zA-Z_][a-zA-Z0-9_]*)\)$")


def dashboard_exprs(path: Path) -> list[Expr]:
    """Panel targets, Prometheus annotations and the selectors inside label_values() variable queries."""
    d = load_dashboard(path)
    out: list[Expr] = []
    for p in panels(d):
        for t in p.get("targets", []):
            if "expr" in t:
                out.append(Expr(f"{path.name} panel {p['id']} {p.get('title')!r} {t.get('refId')}", t["expr"]))
    for a in d.get("annotations", {}).get("list", []):
        if a.get("expr"):
            out.append(Expr(f"{path.name} annotation {a['name']!r}", a["expr"]))
    for v in d.get("templating", {}).get("list", []):
        if v.get("type") == "query":
            q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
            m = LABEL_VALUES.match(q.strip())
            assert m, f"{path.name} variable {v['name']}: only label_values(selector, label) queries are used"
            out.append(Expr(f"{path.name} variable {v['name']!r}", m["selector"]))
    return out


def rule_exprs() -> list[Expr]:
    out = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                out.append(Expr(f"{path.name} {rule.get('alert') or rule.get('record')}", rule["expr"]))
    return out


def substitute(expr: str, values: dict[str, str] | None = None) -> str:
    """Replace Grafana variables the way Grafana would before sending the query."""
    values = {"cluster": "crdb-live", "node": ".*", "instance": ".*", "__rate_interval": "1m",
              "__interval": "15s", "__range": "1h", **(values or {})}

    def repl(m: re.Match) -> str:
        name = m["braced"] or m["plain"]
        if name not in values:
            raise KeyError(f"unknown Grafana variable ${name} in {expr!r}")
        return values[name]

    return re.sub(r"\$\{(?P<braced>\w+)(?::\w+)?\}|\$(?P<plain>\w+)", repl, expr)


def metric_names(expr: str) -> set[str]:
    """Every metric name a PromQL expression selects (parsed by promql_parser)."""
    names: set[str] = set()

    def visit(node):
        if isinstance(node, promql_parser.VectorSelector):
            if node.name:
                names.add(node.name)
            for m in node.matchers.matchers:
                if m.name == "__name__":
                    names.add(m.value)
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def selectors(expr: str) -> list[promql_parser.VectorSelector]:
    found = []

    def visit(node):
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def matcher_map(sel: promql_parser.VectorSelector) -> dict[str, str]:
    return {m.name: m.value for m in sel.matchers.matchers}
