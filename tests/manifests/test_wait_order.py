"""Every wait of the kind path comes after what it waits for.

The kind workflow (.github/workflows/kind.yml) runs `make kind-install` (mk/kind.mk, mk/observability.mk) and
then the evolve job. A wait placed before the thing it waits for only burns its timeout and fails: e.g. the
sample app's /readyz needs the database and users that phase 0 of the evolve job creates, so a
`rollout status deploy/sample-app` before the evolve job waited 600 s and failed. Here the workflow's
commands, with `make kind-install` expanded by `make -n`, form one timeline; every line that waits is
matched to a rule naming what must come before it, and a wait no rule knows fails the test (a new wait
must say what it waits for).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from evolution_pipeline.phases import REPO_ROOT
from tests.manifests.support import kind_install_commands
from tests.support.workflows import load_workflow, run_commands

WORKFLOW = REPO_ROOT / ".github" / "workflows" / "kind.yml"
JOB = "evolve-on-kind"

# A line waits when it blocks until something else is true.
WAITING = re.compile(r"\bwait --for=|\brollout status\b|\s--wait\b|for i in \$\(seq|run_job\.py\b|until\s")


@dataclass(frozen=True)
class Rule:
    waits: str  # regex on the waiting line (with a loop's body)
    after: tuple[str, ...]  # regexes that must all match somewhere before it


CREATED_CERTS = r"apply -f k8s/tls/10-certificates\.yaml"
RULES = (
    Rule(r"install cert-manager .*--wait", (r"kind create cluster",)),
    Rule(r"install trust-manager .*--wait", (r"install cert-manager",)),
    Rule(r"wait --for=condition=Ready certificate/crdb-ca", (r"apply -f k8s/tls/00-ca\.yaml",)),
    Rule(
        r"-n crdb wait --for=condition=Ready certificate",
        (r"apply -f k8s/00-namespaces\.yaml", CREATED_CERTS),
    ),
    Rule(
        r"-n crdb-rehearsal wait --for=condition=Ready certificate",
        (r"apply -f k8s/00-namespaces\.yaml", r"-f k8s/tls/30-rehearsal-certificates\.yaml"),
    ),
    Rule(
        r"-n dagster wait --for=condition=Ready certificate",
        (r"apply -f k8s/00-namespaces\.yaml", r"-f k8s/tls/40-pipeline-certificates\.yaml"),
    ),
    Rule(
        r"get configmap cockroachdb-ca",
        (r"-f k8s/tls/20-ca-bundle\.yaml", r"apply -f k8s/00-namespaces\.yaml"),
    ),
    Rule(r"install crdb-operator .*--wait", (r"kind create cluster",)),
    Rule(r"get crd crdbclusters\.crdb\.cockroachlabs\.com", (r"install crdb-operator",)),
    Rule(r"wait --for=condition=Established crd/crdbclusters", (r"install crdb-operator",)),
    # The nodes need their certificates (Secrets in crdb) and the CrdbCluster.
    Rule(
        r"get pods -l crdb\.cockroachlabs\.com/cluster=cockroachdb",
        (r"-n crdb wait --for=condition=Ready certificate", r"apply -f k8s/crdb-cluster\.yaml"),
    ),
    Rule(r"wait --for=condition=PodReady crdbnode", (r"apply -f k8s/crdb-cluster\.yaml",)),
    Rule(
        r"wait --for=condition=Ready pod -l crdb\.cockroachlabs\.com", (r"apply -f k8s/crdb-cluster\.yaml",)
    ),
    Rule(r"rollout status deploy/prometheus", (r"apply -f k8s/observability/(\s|$)",)),
    Rule(
        r"rollout status deploy/grafana",
        (r"apply -f k8s/observability/(\s|$)", r"secret generic grafana-admin"),
    ),
    # Dagster's pods mount the image, the ServiceAccount, the run Secrets and the root client certificate,
    # all in namespace dagster; the env Secret is copied from the app's demo Secret.
    Rule(
        r"install dagster dagster/dagster .*--wait",
        (
            r"kind load docker-image",
            r"apply -f k8s/pipeline/rbac\.yaml",
            r"apply -f k8s/app/(\s|$)",
            r"-n dagster create secret generic crdb-pipeline-env",
            r"-n dagster create secret generic dagster-postgresql-secret",
            r"-n dagster wait --for=condition=Ready certificate",
        ),
    ),
    Rule(
        r"curl [^\n]*127\.0\.0\.1:3001/server_info",
        (r"install dagster dagster/dagster", r"port-forward svc/dagster"),
    ),
    # The evolve job waits for the cluster, Prometheus (its checks) and, after phase 0's SQL, the app.
    Rule(
        r"run_job\.py [^\n]*--job evolve",
        (r"curl [^\n]*server_info", r"rollout status deploy/prometheus", r"apply -f k8s/app/(\s|$)"),
    ),
    # The app's /readyz needs the database and users phase 0 creates: only after the evolve job.
    Rule(
        r"rollout status deploy/sample-app", (r"apply -f k8s/app/(\s|$)", r"run_job\.py [^\n]*--job evolve")
    ),
)


def logical_lines(script: str) -> list[str]:
    """Shell lines with backslash continuations joined; comments dropped; a `for` loop carries its body."""
    joined = re.sub(r"\\\n\s*", " ", script)
    lines = [line.strip() for line in joined.splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    out = []
    for i, line in enumerate(lines):
        out.append(" ".join(lines[i : i + 3]) if line.startswith("for i in") else line)
    return out


def misordered(script: str) -> list[str]:
    """What is wrong with the waits of this timeline: unknown waits, or waits before their prerequisites."""
    problems = []
    lines = logical_lines(script)
    for index, line in enumerate(lines):
        if not WAITING.search(line):
            continue
        rule = next((r for r in RULES if re.search(r.waits, line)), None)
        if rule is None:
            problems.append(f"a wait no rule knows (say what it waits for in RULES): {line[:160]}")
            continue
        before = "\n".join(lines[:index])
        for needed in rule.after:
            if not re.search(needed, before, re.MULTILINE):
                problems.append(f"`{line[:100]}` waits before `{needed}` has happened")
    return problems


@pytest.fixture(scope="module")
def install() -> str:
    """`make kind-install`, as make -n prints it (recursive $(MAKE) lines are followed)."""
    return kind_install_commands()


@pytest.fixture(scope="module")
def timeline(install) -> str:
    workflow = run_commands(load_workflow(WORKFLOW), JOB)
    assert "make kind-install" in workflow
    return workflow.replace("make kind-install", install)


def test_every_wait_comes_after_what_it_waits_for(timeline):
    assert misordered(timeline) == []


def test_the_rules_cover_every_wait_of_the_path(timeline):
    """Each rule is used: a rule whose wait disappeared is stale and would hide nothing."""
    lines = [line for line in logical_lines(timeline) if WAITING.search(line)]
    unused = [r.waits for r in RULES if not any(re.search(r.waits, line) for line in lines)]
    assert unused == []


def test_waiting_for_the_app_before_phase_0_is_caught(timeline):
    """The order the workflow had: the app's rollout right after kind-install, before the evolve job."""
    early = "kubectl -n crdb-demo rollout status deploy/sample-app --timeout=600s\n"
    marker = "kubectl -n dagster port-forward"
    broken = timeline.replace(marker, early + marker, 1)
    assert any("deploy/sample-app" in p and "run_job" in p for p in misordered(broken))


def test_a_missing_prerequisite_and_an_unknown_wait_are_caught(timeline):
    without_cert = timeline.replace("-f k8s/tls/40-pipeline-certificates.yaml", "")
    assert any("40-pipeline-certificates" in p for p in misordered(without_cert))
    extra = timeline + "\nkubectl -n dagster wait --for=condition=Ready pod -l app=whatever --timeout=60s\n"
    assert any("no rule knows" in p for p in misordered(extra))


KUBECTL_CALL = re.compile(
    r"\bkubectl\s+(?!--context kind-)(-n \S+ )?(apply|get|wait|create|rollout|delete|logs)\b"
)


def test_observability_uses_the_kind_context(install):
    """Every kubectl call of `make kind-install` talks to the kind cluster, observability included (hints
    printed by echo are text, not calls)."""
    calls = re.sub(r'echo "[^"]*"', "", install)
    assert "rollout status deploy/prometheus" in calls
    assert [m.group(0) for m in KUBECTL_CALL.finditer(calls)] == []
    assert KUBECTL_CALL.search("kubectl -n monitoring rollout status deploy/grafana")  # the check can fail
