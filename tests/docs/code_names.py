"""Names the docs borrow from the code: Dagster definitions, environment variables, Grafana panels."""

from __future__ import annotations

import json
import re
from bisect import bisect_right
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate

from .md_parse import INLINE_CODE_RE, REPO_ROOT, inline_code, prose_lines


@dataclass(frozen=True)
class DagsterNames:
    jobs: frozenset[str]
    schedules: frozenset[str]
    assets: frozenset[str]
    checks: frozenset[str]
    groups: frozenset[str]
    step_keys: frozenset[str]  # e.g. phase1_two_nodes.scale
    live_ops: tuple[str, ...]  # the op names of a live phase, in graph order


@lru_cache(maxsize=1)
def dagster_names() -> DagsterNames:
    from evolution_pipeline.definitions import defs as load  # the code location the UI loads

    defs = load()  # an @dg.definitions function: Dagster calls it to build the definitions
    repo = defs.get_repository_def()
    graph = repo.asset_graph
    steps, live_ops = set(), ()
    groups = set()
    for asset in defs.assets:
        groups.update(asset.group_names_by_key.values())
        node = asset.node_def
        # A step key is the graph's name and the node's name in it (its alias: the op definition itself is
        # named per phase, ops/common.py op_name), in graph order.
        invoked = getattr(node, "nodes_in_topological_order", [])
        for op in invoked:
            steps.add(f"{node.name}.{op.name}")
        if invoked and not asset.key.has_prefix(["rehearsal"]):
            live_ops = tuple(op.name for op in invoked)
    return DagsterNames(
        jobs=frozenset(j.name for j in repo.get_all_jobs() if not j.name.startswith("__")),
        schedules=frozenset(s.name for s in repo.schedule_defs),
        assets=frozenset(k.to_user_string() for k in graph.get_all_asset_keys()),
        checks=frozenset(c.name for c in graph.asset_check_keys),
        groups=frozenset(groups),
        step_keys=frozenset(steps),
        live_ops=live_ops,
    )


def code_spans(text: str) -> list[tuple[int, str]]:
    return [(n, code) for n, line in prose_lines(text) for code in inline_code(line)]


STEP_KEY_RE = re.compile(r"^(?:rehearsal__)?phase\d+_[a-z0-9_]+\.[a-z_]+$")
ASSET_PATH_RE = re.compile(r"^rehearsal/[a-z0-9_]+$")


def dagster_name_problems(text: str, where: str, names: DagsterNames) -> list[str]:
    """Step keys and asset paths in `code` spans must exist in the code location."""
    problems = []
    for n, code in code_spans(text):
        if STEP_KEY_RE.match(code) and code not in names.step_keys:
            problems.append(f"{where}:{n}: step {code!r} does not exist (steps: {sorted(names.step_keys)[:5]}...)")
        if ASSET_PATH_RE.match(code) and code not in names.assets:
            problems.append(f"{where}:{n}: asset {code!r} does not exist")
    return problems


def table_first_column(text: str, header: str) -> list[str]:
    """The `code` names in the first column of the Markdown table whose first header cell is `header`."""
    rows, inside = [], False
    for _, line in prose_lines(text):
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.strip().startswith("|") else None
        if cells is None:
            inside = False
            continue
        if cells[0] == header:
            inside = True
            continue
        if inside and not set(cells[0]) <= set("-: "):
            rows.append(cells[0].strip("`"))
    return rows


ENV_RE = re.compile(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b")
# Where the product reads its settings; a variable the docs name must be read (or set) somewhere here.
CODE_PLACES = ("evolution_pipeline", "evolutions", "sample_app", "crdb_common", "scripts", "mk", "k8s", "grafana",
               "dagster_home", "sql")


@lru_cache(maxsize=1)
def code_text() -> str:
    parts = [(REPO_ROOT / "Makefile").read_text("utf-8")]
    for place in CODE_PLACES:
        for f in sorted((REPO_ROOT / place).rglob("*")):
            if f.is_file() and f.suffix in {".py", ".sh", ".mk", ".yaml", ".yml", ".json", ".toml", ".env", ".sql", ""}:
                try:
                    parts.append(f.read_text("utf-8"))
                except UnicodeDecodeError:
                    continue
    return "\n".join(parts)


def missing_in_code(text: str, where: str, pattern: re.Pattern, boundary: str, message: str) -> list[str]:
    """Names matching `pattern` in `code` spans that code_text() never contains as a whole name, i.e. with no
    character of the class `boundary` right before or after it. `message` is formatted with `name`."""
    return [
        f"{where}:{n}: " + message.format(name=name)
        for n, span in code_spans(text)
        for name in (m.group(0) for m in pattern.finditer(span))
        if not in_code_as_a_whole_name(name, boundary)
    ]


def in_code_as_a_whole_name(name: str, boundary: str) -> bool:
    # A name made only of `boundary` characters stands whole in the code exactly when it is one of the code's
    # maximal runs of them: a set lookup instead of a regex search through the whole code for every name.
    if re.fullmatch(f"{boundary}+", name):
        return name in _whole_runs(boundary)
    return re.search(rf"(?<!{boundary}){re.escape(name)}(?!{boundary})", code_text()) is not None


@lru_cache(maxsize=4)
def _whole_runs(boundary: str) -> frozenset[str]:
    return frozenset(re.findall(f"{boundary}+", code_text()))


def env_var_problems(text: str, where: str) -> list[str]:
    return missing_in_code(text, where, ENV_RE, r"\w",
                           "{name} is named in the docs but nothing in the code reads it")


SNAKE_IDENTIFIER_RE = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)+$")


def identifier_problems(text: str, where: str) -> list[str]:
    """snake_case names in `code` spans (ops, users, tables, metrics, metadata keys) must exist in the code."""
    return missing_in_code(text, where, SNAKE_IDENTIFIER_RE, r"\w",
                           "`{name}` appears nowhere in the code, manifests, dashboards or SQL")


PANEL_REF_RE = re.compile(r"\*(?P<dashboard>[^*\n]+?)\*\s*›\s*\*\*(?P<panel>[^*\n]+?)\*\*")


@lru_cache(maxsize=1)
def dashboards() -> dict[str, set[str]]:
    """Dashboard title -> panel titles (rows included), from grafana/dashboards/*.json."""
    out: dict[str, set[str]] = {}
    for f in sorted((REPO_ROOT / "grafana" / "dashboards").glob("*.json")):
        data = json.loads(f.read_text("utf-8"))
        titles: set[str] = set()
        stack = list(data.get("panels", []))
        while stack:
            panel = stack.pop()
            titles.add(panel.get("title", ""))
            stack.extend(panel.get("panels", []))
        out[data["title"]] = titles
    return out


# A line break inside a paragraph or list item: the next line starts no list item, table row or heading.
WRAP_RE = re.compile(r"\n(?!\s*(?:[-*+]\s|\d+\.\s|\||#|$))\s*")


def blank(m: re.Match) -> str:
    """Spaces as long as the match, so offsets (and so line numbers) survive the substitution."""
    return " " * len(m.group(0))


def panel_refs(text: str, join_wrapped: bool = False) -> list[tuple[int, str, str]]:
    """(line number, dashboard, panel) of every "*Dashboard* › **Panel**" outside code. With `join_wrapped`,
    the wrapped lines of a paragraph or list item are joined first, so "*Dashboard* ›\n**Panel**" is one
    reference (numbered by the line it starts on)."""
    lines = prose_lines(text)
    prose = "\n".join(line for _, line in lines)
    if join_wrapped:
        prose = WRAP_RE.sub(blank, prose)
    starts = list(accumulate((len(line) + 1 for _, line in lines[:-1]), initial=0))  # offset of each line
    refs, offset = [], 0
    for line in prose.split("\n"):
        for m in PANEL_REF_RE.finditer(INLINE_CODE_RE.sub(blank, line)):
            n = lines[bisect_right(starts, offset + m.start()) - 1][0]
            refs.append((n, " ".join(m["dashboard"].split()), " ".join(m["panel"].split())))
        offset += len(line) + 1
    return refs


def panel_problems(text: str, where: str, boards: dict[str, set[str]]) -> list[str]:
    problems = []
    for n, dashboard, panel in panel_refs(text, join_wrapped=True):
        if dashboard not in boards:
            problems.append(
                f"{where}:{n}: dashboard {dashboard!r} does not exist (dashboards: {sorted(boards)})"
            )
        elif panel not in boards[dashboard]:
            problems.append(f"{where}:{n}: panel {panel!r} is not on dashboard {dashboard!r}")
    return problems


ROUTE_DECORATOR_RE = re.compile(r"""@\w+\.(get|post|put|delete|patch|websocket)\(\s*["']([^"']+)["']""")
HTTP_MENTION_RE = re.compile(r"\b((?:GET|POST|PUT|DELETE|PATCH)(?:\|(?:GET|POST|PUT|DELETE|PATCH))*) (/[\w/<>{}:.-]*)")


@lru_cache(maxsize=1)
def app_routes() -> dict[str, set[str]]:
    """Sanic route template (as a regex) -> methods, read from the sample app's route decorators."""
    routes: dict[str, set[str]] = {}
    for f in sorted((REPO_ROOT / "sample_app").rglob("*.py")):
        for method, path in ROUTE_DECORATOR_RE.findall(f.read_text("utf-8")):
            pattern = "^" + re.sub(r"<[^>]+>", "[^/]+", path) + "$"
            routes.setdefault(pattern, set()).add("GET" if method == "websocket" else method.upper())
    return routes


def http_route_problems(text: str, where: str, routes: dict[str, set[str]]) -> list[str]:
    """`METHOD /path` in the docs must be a route the sample app serves with that method."""
    problems = []
    for n, line in prose_lines(text):
        for m in HTTP_MENTION_RE.finditer(line):
            path = m.group(2).rstrip(".,:")
            allowed = {meth for pattern, meths in routes.items() if re.match(pattern, path) for meth in meths}
            for method in m.group(1).split("|"):
                if method not in allowed:
                    problems.append(f"{where}:{n}: the sample app serves no {method} {path}")
    return problems


CRDB_NAME_RE = re.compile(r"^crdb-[a-z0-9-]+(?:/[a-z0-9-]+)?$")


def resource_name_problems(text: str, where: str) -> list[str]:
    """Names like `crdb-writer` or `crdb-evolution/environment` must exist in manifests or code."""
    return missing_in_code(text, where, CRDB_NAME_RE, r"[\w-]",
                           "{name!r} appears nowhere in the manifests or the code")
