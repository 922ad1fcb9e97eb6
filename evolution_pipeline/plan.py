"""`plan`: what each phase would do, in kubectl and SQL terms, before it does it.

Built from the phase table and the same code the ops run (zones.zone_plan for the zone statements, the
cluster resource for the scale command, the SQL files as the SQL resource splits them), then compared with
the cluster as the same resources read it, read-only. Every step is marked "already done", "will change" or
"runs every time (idempotent)"; without a reachable cluster the plan still prints, marked "not read".

The CLI (`python -m evolution_pipeline plan`), the preflight step's metadata and the manual steps in
demo/DEMO.md and context.md all render this one structure, so what a presenter reads is what the pipeline
does.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from crdb_common import redact

from .phases import SQL_USERS, Phase, previous_phase
from .resources.sql import (
    ZONE_TARGETS_DATA,
    SqlError,
    ZoneConfig,
    backup_statement,
    collection_uri,
    redact_uri,
)
from .roles import GROUPS
from .sqlscript import load_script
from .zones import ZoneSetting, zone_plan

DONE = "already done"
CHANGE = "will change"
ALWAYS = "runs every time (idempotent)"
NOT_READ = "not read (no cluster)"
RUN_ID = "<run id>"


@dataclass(frozen=True)
class Step:
    kind: str  # nodes | zone | user | sql | backup | verify
    summary: str
    status: str
    commands: tuple[str, ...] = ()


@dataclass(frozen=True)
class PhasePlan:
    phase: str
    title: str
    nodes: int
    steps: tuple[Step, ...]
    # What the evolution file claims for the phase (checked before anything runs) and the app's budgets.
    promises: str = ""


@dataclass(frozen=True)
class Plan:
    environment: str
    cluster: str  # the cluster control's own description
    read_error: str | None  # why the cluster could not be read; None when it was
    phases: tuple[PhasePlan, ...] = field(default_factory=tuple)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


@dataclass
class ClusterView:
    """What the plan reads from the cluster, once, through the real resources (read-only statements)."""

    nodes: int
    database: bool = False
    users: frozenset[str] = frozenset()
    zones: dict[str, ZoneConfig | None] = field(default_factory=dict)
    first_node_locality: str | None = None
    locality_problem: str | None = None  # why node 1's locality could not be read (only a pin needs it)
    ranges: dict[str, list] = field(default_factory=dict)  # scope -> [RangeReplicas]
    insecure: bool = False

    @classmethod
    def read(cls, control, crdb) -> ClusterView:
        view = cls(nodes=control.desired_nodes(), insecure=crdb.insecure)
        if view.nodes == 0:
            return view
        from .resources.sql import ZONE_TARGETS_SYSTEM

        view.database = crdb.database_exists()
        view.users = frozenset(u for u in (*SQL_USERS, *GROUPS) if crdb.role_exists(u))
        view.zones = {t: crdb.zone_config(t) for t in ZONE_TARGETS_DATA + ZONE_TARGETS_SYSTEM}
        try:
            view.first_node_locality = crdb.first_node_locality()
        except SqlError as exc:  # only a phase that pins voters needs it: the others are planned as usual
            view.locality_problem = str(exc)
        view.ranges = {"cluster": crdb.range_replicas("cluster")}
        if view.database:
            view.ranges[crdb.database] = crdb.range_replicas(crdb.database)
        return view


def build_plan(phases: list[Phase], *, environment: str, cluster, crdb, unreadable: str | None = None) -> Plan:
    """The plan for `phases`; `cluster` and `crdb` are the environment's resources. With `unreadable` (why
    the cluster is not to be read), or on any error while reading, the plan comes from the phase table alone."""
    view, error = None, unreadable
    if error is None:
        try:
            view = ClusterView.read(cluster.control(), crdb)
        except Exception as exc:  # noqa: BLE001 - any failure to read means "plan without the cluster"
            # libpq quotes what it cannot parse in the admin URL, which may be the password itself.
            error = f"could not read the cluster: {redact.text(str(exc), str(getattr(crdb, 'url', '') or ''))}".strip()
    plans = tuple(_phase_plan(p, cluster, crdb, view) for p in phases)
    return Plan(environment, cluster.describe_offline(), error, plans)


def _phase_plan(phase: Phase, cluster, crdb, view: ClusterView | None) -> PhasePlan:
    # In the order the ops run them: backup -> scale -> apply_sql (zones, users, files) -> verify.
    zones = _zone_steps(phase, view)
    steps = [
        _backup_step(phase, crdb, view),
        _nodes_step(phase, cluster, view),
        *zones,
        *_user_steps(phase, crdb, view),
        *_sql_steps(phase),
        # Ranges on the phase's targets count only once the zones ask for them: before that they may
        # match by chance (a fresh 1-node cluster has 1 voter per range under 3-replica zones).
        _verify_step(phase, crdb, view, zones_done=all(z.status == DONE for z in zones)),
    ]
    return PhasePlan(phase.name, phase.title, phase.nodes, tuple(steps), promises(phase))


def promises(phase: Phase) -> str:
    """'survives 2 node(s) or 1 zone(s); app budget: 5xx <= 0.005, p99 <= 3 x before + setting'."""
    claim = phase.survives
    survives = (f"survives {claim.nodes} node failure(s)" + (f" or {claim.zones} zone loss(es)" if claim.zones else "")
                if claim.nodes or claim.zones else "claims no failure survived")
    b = phase.budgets
    errors = "setting" if b.error_ratio is None else f"{b.error_ratio:g}"
    ratio = "setting" if b.latency_ratio is None else f"{b.latency_ratio:g}"
    slack = "setting" if b.latency_slack_seconds is None else f"{b.latency_slack_seconds * 1000:g} ms"
    return (f"{survives}; app budget: 5xx ratio <= {errors}, p99 <= {ratio} x the p99 before + {slack} "
            "(setting: the Prometheus resource's APP_ERROR_BUDGET / APP_LATENCY_*)")


def _nodes_step(phase: Phase, cluster, view: ClusterView | None) -> Step:
    if view is None:  # from the table: the previous phase left its node count
        before = previous.nodes if (previous := previous_phase(phase)) else 0
        return Step("nodes", f"scale from {before} to {phase.nodes} node(s) (the previous phase's count)",
                    NOT_READ, tuple(cluster.scale_commands(before, phase.nodes)))
    if view.nodes > phase.nodes:
        return Step("nodes", f"the cluster asks for {view.nodes} node(s), more than {phase.nodes}: preflight "
                    "refuses this phase (the evolution never scales down)", CHANGE)
    if view.nodes == phase.nodes:
        return Step("nodes", f"{phase.nodes} node(s)", DONE)
    return Step("nodes", f"scale from {view.nodes} to {phase.nodes} node(s)", CHANGE,
                tuple(cluster.scale_commands(view.nodes, phase.nodes)))


def _zone_steps(phase: Phase, view: ClusterView | None) -> list[Step]:
    locality = view.first_node_locality if view else None
    missing = view.locality_problem if view and phase.pins_voters and not locality else None
    steps = []
    for setting in zone_plan(phase, locality if phase.pins_voters else None):
        current = view.zones.get(setting.target) if view else None
        status = NOT_READ if view is None else DONE if _zone_matches(current, setting) else CHANGE
        summary = f"zone config of {setting.target}"
        if missing:  # the statement keeps its placeholder; apply_sql would refuse to send it
            status, summary = CHANGE, f"{summary}: cannot pin voters yet, {missing}"
        steps.append(Step("zone", summary, status, (setting.sql(),)))
    return steps


def _zone_matches(current: ZoneConfig | None, want: ZoneSetting) -> bool:
    if current is None:
        return False
    return (current.num_replicas == want.num_replicas
            and (want.num_voters is None or current.num_voters == want.num_voters)
            and (want.voter_constraints is None
                 or _constraints(current.voter_constraints) == _constraints(want.voter_constraints)))


def _constraints(text: str | None) -> frozenset[str] | None:
    """'[+region=r, +zone=z]' as a set of tiers: CockroachDB prints constraints back in YAML flow style
    (", " between items, cockroachdb/cockroach pkg/sql/show_zone_config.go), not as zone_sql wrote them."""
    if text is None:
        return None
    return frozenset(t.strip() for t in text.strip().strip("[]").split(",") if t.strip())


def _user_steps(phase: Phase, crdb, view: ClusterView | None) -> list[Step]:
    """Groups, then login users. A user's initial password is set only in its CREATE USER (rotate_credentials
    owns it afterwards), so an existing user is done and nothing is ever set again."""
    def status(name: str) -> str:
        return NOT_READ if view is None else DONE if name in view.users else CHANGE

    steps = [Step("user", f"group {g} (no LOGIN)", status(g), (f"CREATE ROLE {g};",)) for g in phase.groups]
    insecure = view.insecure if view else crdb.insecure
    for user in phase.users:
        env = SQL_USERS[user]
        if env and not insecure:
            what, sql = f"login user {user}, initial password from ${env}", (
                f"CREATE USER {user} WITH PASSWORD '<redacted: ${env}>';")
        else:
            why = "insecure cluster refuses passwords" if env else "standby: rotate_credentials gives it one"
            what, sql = f"login user {user} without a password ({why})", f"CREATE USER {user};"
        steps.append(Step("user", what, status(user), (sql,)))
    return steps


def _sql_steps(phase: Phase) -> list[Step]:
    return [Step("sql", f"sql/{path.name} in database app", ALWAYS,
                 tuple(s.rstrip(";") + ";" for s in load_script(path)))
            for path in phase.sql_paths()]


def _backup_step(phase: Phase, crdb, view: ClusterView | None) -> Step:
    # Shown, never sent: credentials in the destination's query string (s3 keys) are redacted.
    uri = redact_uri(collection_uri(crdb.backup_uri, phase.backup_label, RUN_ID))
    commands = (backup_statement(f"'{uri}'", crdb.backup_as_of_seconds) + ";",
                f"SHOW BACKUP FROM LATEST IN '{uri}' WITH check_files;")
    if view is not None and (view.nodes == 0 or not view.database):
        return Step("backup", "skipped: no application data to protect yet", DONE)
    return Step("backup", f"full backup to {redact_uri(crdb.backup_uri)} (one per phase and run), verified",
                ALWAYS if view else NOT_READ, commands)


def _verify_step(phase: Phase, crdb, view: ClusterView | None, zones_done: bool) -> Step:
    data = f"{phase.expected_data_voters} voter(s) + {phase.expected_data_non_voters} non-voter(s)"
    system = f"{phase.expected_system_voters} voter(s) + {phase.expected_system_non_voters} non-voter(s)"
    want = f"every range has {data} on {phase.nodes} node(s)"
    if system != data:
        want += f" (system ranges may instead have {system}, from the system zones)"
    commands = ("SHOW RANGES FROM DATABASE app;", "SHOW CLUSTER RANGES;")
    if view is None:
        return Step("verify", f"wait until {want}", NOT_READ, commands)
    off = _ranges_off_target(phase, crdb.database, view)
    status = DONE if zones_done and off == 0 and view.nodes == phase.nodes and view.ranges else CHANGE
    return Step("verify", f"wait until {want}; now {off} range(s) off target", status, commands)


def _ranges_off_target(phase: Phase, database: str, view: ClusterView) -> int:
    data = (phase.expected_data_voters, phase.expected_data_non_voters)
    allowed = {data, (phase.expected_system_voters, phase.expected_system_non_voters)}
    app = [r for r in view.ranges.get(database, []) if (len(r.voters), len(r.non_voters)) != data]
    cluster = [r for r in view.ranges.get("cluster", []) if (len(r.voters), len(r.non_voters)) not in allowed]
    return len(app) + len(cluster)


# --- rendering ---------------------------------------------------------------------------------------------


def render(plan: Plan, fmt: str = "text") -> str:
    if fmt == "json":
        return plan.to_json()
    if fmt == "markdown":
        return _markdown(plan)
    if fmt == "text":
        return _text(plan)
    raise ValueError(f"unknown format {fmt!r}: use text, markdown or json")


def _header(plan: Plan) -> str:
    read = f"NOT READ: {plan.read_error}" if plan.read_error else "read from the cluster just now"
    return f"Plan for the {plan.environment} environment, {plan.cluster} ({read})"


def _text(plan: Plan) -> str:
    lines = [_header(plan), ""]
    for p in plan.phases:
        lines.append(f"== {p.title} ({p.phase}): {p.nodes} node(s)")
        if p.promises:
            lines.append(f"  {p.promises}")
        for s in p.steps:
            lines.append(f"  [{s.status}] {s.kind}: {s.summary}")
            lines += [f"      {c}" for c in s.commands]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _markdown(plan: Plan) -> str:
    lines = [f"_{_header(plan)}_", ""]
    for p in plan.phases:
        lines += [f"### {p.title} (`{p.phase}`)", ""] + ([p.promises, ""] if p.promises else [])
        lines += ["| Step | What | Status |", "|---|---|---|"]
        lines += [f"| {s.kind} | {s.summary} | {s.status} |" for s in p.steps]
        lines.append("")
        lines += manual_commands(p)
    return "\n".join(lines).rstrip() + "\n"


def manual_commands(p: PhasePlan, alternatives: dict[str, tuple[str, list[str]]] | None = None,
                    files_by_name: bool = False) -> list[str]:
    """The phase by hand, in the order the ops run it. `alternatives`: kind -> (caption, commands) shown
    after that step's block (the local backend's way to scale, beside the operator's). files_by_name: the
    SQL files as `cockroach sql --file` lines instead of their statements (the docs)."""
    lines = []
    for kind, title in _STEP_TITLES.items():
        if kind == "sql" and files_by_name:
            commands = [f'cockroach sql --url "$CRDB_ADMIN_URL" --database=app --file={s.summary.split()[0]}'
                        for s in p.steps if s.kind == kind]
        else:
            commands = [c for s in p.steps if s.kind == kind for c in s.commands]
        if commands:
            fence = "bash" if kind == "nodes" or (kind == "sql" and files_by_name) else "sql"
            lines += [f"{title}:", "", f"```{fence}", *commands, "```", ""]
        if alternatives and kind in alternatives and alternatives[kind][1]:
            caption, other = alternatives[kind]
            lines += [caption, "", "```bash", *other, "```", ""]
    return lines


_STEP_TITLES = {"backup": "1. Back up (as the admin SQL user)", "nodes": "2. Scale",
                "zone": "3. Zone configs", "user": "4. Users (passwords from the environment, never typed)",
                "sql": "5. The phase's SQL files (in database app)", "verify": "6. Watch until every range is on target"}


def static_markdown(phase: Phase, cluster, crdb) -> str:
    """The phase by hand from the phase table and the configuration alone (each phase asset shows it)."""
    plan = _phase_plan(phase, cluster, crdb, None)
    return "\n".join(manual_commands(plan, files_by_name=True)).rstrip() + "\n"


# --- the manual equivalent in the docs (demo/DEMO.md, context.md) --------------------------------------------

DOCS = ("demo/DEMO.md", "context.md")
DOCS_BEGIN = ("<!-- manual-steps:begin (generated from evolution_pipeline/phases.py by evolution_pipeline/plan.py; "
              "python -m evolution_pipeline docs --write) -->")
DOCS_END = "<!-- manual-steps:end -->"


def manual_section() -> str:
    """Each phase by hand, from the phase table and the default configuration: the kubectl patch for the
    operator backend, the `cockroach start` lines for the local one, then the same SQL the ops send. Through
    the resources' Dagster-free classes (the same defaults and methods), so `docs` never imports Dagster."""
    from .environments import LIVE
    from .phases import PHASES, REPO_ROOT
    from .resources.local.backend import LocalClusterBackend
    from .resources.operator import CrdbOperatorBackend
    from .resources.sql import CrdbSqlClient
    from .settings import DEFAULTS

    operator, local = CrdbOperatorBackend(), LocalClusterBackend()
    crdb = CrdbSqlClient(url="", backup_uri=DEFAULTS[LIVE]["CRDB_BACKUP_URI"])
    lines = [("If Dagster is down, each phase can be done by hand, in this order. Node 1's locality in the "
              "phase-1 statements is what `SHOW CLUSTER RANGES` lists for node 1 (`replica_localities`). "
              "`python -m evolution_pipeline plan` prints the same against the running cluster, marking what "
              "is already done."), ""]
    for phase in PHASES:
        p = _phase_plan(phase, operator, crdb, None)
        before = previous.nodes if (previous := previous_phase(phase)) else 0
        local_start = [c.replace(f"{REPO_ROOT}/", "") for c in local.scale_commands(before, phase.nodes)]
        lines += [f"#### {p.title} (`{p.phase}`)", ""]
        lines += manual_commands(p, {"nodes": ("With the local backend (`make dev`) the same step starts processes:",
                                               local_start)}, files_by_name=True)
    return "\n".join(lines).rstrip() + "\n"


def with_manual_section(text: str, section: str) -> str:
    """`text` with its generated block replaced by `section` (ValueError when the markers are missing)."""
    start, end = text.find(DOCS_BEGIN), text.find(DOCS_END)
    if start < 0 or end < start:
        raise ValueError(f"the markers {DOCS_BEGIN!r} ... {DOCS_END!r} are missing")
    return text[: start + len(DOCS_BEGIN)] + "\n" + section + text[end:]
