"""The manifests fit together and follow the code: Service selectors and the CrdbCluster's pod labels, the
certificates and what references them, the app's env and sample_app.settings.ENV_VARS, the pipeline's Roles
and operator.py's RBAC rules, the kind config and the region code, the phase table."""

from __future__ import annotations

import re
from collections import Counter
from fnmatch import fnmatch
from urllib.parse import parse_qs, urlsplit

import pytest

from evolution_pipeline.evolution import load_evolution
from evolution_pipeline.phases import PHASES, PHASES_BY_NAME, REPO_ROOT, SQL_USERS
from evolution_pipeline.resources.operator import DRILL_RBAC_RULES, REHEARSAL_RBAC_RULES, REQUIRED_RBAC_RULES
from sample_app.settings import ENV_VARS, Settings
from tests.manifests.support import (
    K8S,
    crdb_cluster,
    docs,
    find,
    find_all,
    manifest_docs,
    pod_template_labels,
)

NAMESPACES = {"crdb", "crdb-rehearsal", "crdb-demo"}
BUNDLE_LABEL = "crdb-live-evolution.io/ca-bundle"


def normalise_rules(rules: list[dict]) -> list[tuple]:
    return sorted(
        (tuple(sorted(r.get("apiGroups", []))), tuple(sorted(r["resources"])), tuple(sorted(r["verbs"])))
        for r in rules
    )


def dagster_values() -> dict:
    (values,) = [d.body for d in docs("pipeline/dagster-values.yaml")]
    return values


def code_location() -> dict:
    (deployment,) = dagster_values()["dagster-user-deployments"]["deployments"]
    return deployment


# --- Services and the CrdbCluster ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,namespace,path",
    [
        ("crdb-writer", "crdb", "services.yaml"),
        ("crdb-reader", "crdb", "services.yaml"),
        ("crdb-writer", "crdb-rehearsal", "rehearsal/services.yaml"),
        ("crdb-reader", "crdb-rehearsal", "rehearsal/services.yaml"),
    ],
)
def test_sql_services_select_the_cockroachdb_pods(name, namespace, path):
    """The rehearsal cluster is recreated from crdb-cluster.yaml, so its pods carry the same labels."""
    service = find("Service", name, namespace, path=path)
    selector = service["spec"]["selector"]
    labels = pod_template_labels()
    assert selector, "a Service without selector selects nothing"
    assert selector.items() <= labels.items(), f"{name} selects {selector}, pods carry {labels}"
    (port,) = service["spec"]["ports"]
    assert port["port"] == 26257 and port["targetPort"] == 26257


def test_services_explain_the_split_is_intent():
    text = (K8S / "services.yaml").read_text().lower()
    for phrase in ["any node serves any read", "read-only", "follower read", "intent"]:
        assert phrase in text, phrase


def test_topology_spread_selects_the_same_pods():
    pod = crdb_cluster()["spec"]["template"]["spec"]["podTemplate"]
    for constraint in pod["spec"]["topologySpreadConstraints"]:
        assert constraint["labelSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()


def test_pod_service_account_exists_with_node_reader_rights():
    account = crdb_cluster()["spec"]["template"]["spec"]["podTemplate"]["spec"]["serviceAccountName"]
    for namespace in ("crdb", "crdb-rehearsal"):
        find("ServiceAccount", account, namespace, path="crdb-rbac.yaml")
    binding = find("ClusterRoleBinding", "crdb-live-evolution-node-reader", path="crdb-rbac.yaml")
    subjects = {(s["namespace"], s["name"]) for s in binding["subjects"]}
    assert {("crdb", account), ("crdb-rehearsal", account)} <= subjects
    role = find("ClusterRole", binding["roleRef"]["name"], path="crdb-rbac.yaml")
    assert normalise_rules(role["rules"]) == [(("",), ("nodes",), ("get", "list", "watch"))]


# --- kind, the region code and the operator's cloudRegion ---------------------------------------------------


def kind_workers() -> list[dict]:
    (config,) = [d.body for d in docs("kind/kind-config.yaml")]
    return [n for n in config["nodes"] if n["role"] == "worker"]


def test_kind_has_two_workers_per_zone_in_one_region_and_three_zones():
    workers = kind_workers()
    regions = {w["labels"]["topology.kubernetes.io/region"] for w in workers}
    zones = Counter(w["labels"]["topology.kubernetes.io/zone"] for w in workers)
    assert len(regions) == 1
    (region,) = regions
    assert zones == {f"{region}-a": 2, f"{region}-b": 2, f"{region}-c": 2}
    # Every evolution file fits: no more nodes than workers, and no zone asked for more nodes than the zone
    # spread (maxSkew 1 over three zones) puts there, one worker each.
    for path in sorted((REPO_ROOT / "evolutions").glob("*.yaml")):
        last = load_evolution(path, path.name).phases[-1]
        assert last.nodes <= len(workers), path.name
        assert max(len(nodes) for nodes in last.zones.values()) <= min(zones.values()), path.name


def test_region_code_matches_kind_labels_and_the_operator_install():
    code = crdb_cluster()["spec"]["regions"][0]["code"]
    assert {w["labels"]["topology.kubernetes.io/region"] for w in kind_workers()} == {code}
    mk = (REPO_ROOT / "mk" / "kind.mk").read_text()
    assert re.search(rf"^CRDB_REGION \?= {re.escape(code)}$", mk, re.MULTILINE), "the operator's cloudRegion"
    assert "--set cloudRegion=$(CRDB_REGION)" in mk


# --- TLS: what the CrdbCluster references exists, with the names clients use --------------------------------


def certificates(namespace: str) -> dict[str, dict]:
    return {
        c["spec"]["secretName"]: c for c in find_all("Certificate") if c["metadata"]["namespace"] == namespace
    }


@pytest.mark.parametrize("namespace", ["crdb", "crdb-rehearsal"])
def test_referenced_secrets_are_issued_by_cert_manager(namespace):
    refs = crdb_cluster()["spec"]["template"]["spec"]["certificates"]["externalCertificates"]
    issued = certificates(namespace)
    for field in ("nodeSecretName", "rootSqlClientSecretName", "httpSecretName"):
        assert refs[field] in issued, f"{field}={refs[field]} has no Certificate in {namespace}"
    assert issued[refs["nodeSecretName"]]["spec"]["commonName"] == "node"
    assert issued[refs["rootSqlClientSecretName"]]["spec"]["commonName"] == "root"
    assert "client auth" in issued[refs["rootSqlClientSecretName"]]["spec"]["usages"]
    assert {"server auth", "client auth"} <= set(issued[refs["nodeSecretName"]]["spec"]["usages"])
    for cert in issued.values():
        ref = cert["spec"]["issuerRef"]
        issuer = find(ref["kind"], ref["name"])
        assert "ca" in issuer["spec"], "leaf certificates come from the CA issuer, not the self-signed one"


def test_ca_chain_and_bundle():
    ca_issuer = find("ClusterIssuer", "crdb-ca")
    ca_cert = find("Certificate", "crdb-ca", "cert-manager")
    assert ca_cert["spec"]["isCA"] is True
    assert ca_issuer["spec"]["ca"]["secretName"] == ca_cert["spec"]["secretName"]
    assert find("ClusterIssuer", ca_cert["spec"]["issuerRef"]["name"])["spec"] == {"selfSigned": {}}
    bundle = find(
        "Bundle",
        crdb_cluster()["spec"]["template"]["spec"]["certificates"]["externalCertificates"]["caConfigMapName"],
    )
    assert bundle["spec"]["target"]["configMap"]["key"] == "ca.crt", "the operator reads ca.crt"
    (source,) = bundle["spec"]["sources"]
    assert source["secret"] == {"name": ca_cert["spec"]["secretName"], "key": "tls.crt"}, (
        "the CA cert, never its key"
    )
    selector = bundle["spec"]["target"]["namespaceSelector"]["matchLabels"]
    labelled = {
        n["metadata"]["name"]
        for n in find_all("Namespace")
        if selector.items() <= (n["metadata"].get("labels") or {}).items()
    }
    assert NAMESPACES <= labelled, f"namespaces without the CA ConfigMap: {NAMESPACES - labelled}"


def dns_names(namespace: str, secret: str = "cockroachdb-node") -> list[str]:
    return certificates(namespace)[secret]["spec"]["dnsNames"]


def covered(host: str, names: list[str]) -> bool:
    # A wildcard covers exactly one label, as in TLS.
    return any(
        host == n or (n.startswith("*.") and fnmatch(host, n) and host.count(".") == n.count("."))
        for n in names
    )


@pytest.mark.parametrize("namespace", ["crdb", "crdb-rehearsal"])
def test_node_certificate_names_every_way_in(namespace):
    names = dns_names(namespace)
    cluster = crdb_cluster()["metadata"]["name"]
    must = [
        "localhost",
        cluster,  # Prometheus verifies the HTTP certificate against this short name (k8s/observability/)
        f"{cluster}.{namespace}.svc.cluster.local",
        # a pod behind the operator's headless Service:
        f"{cluster}-abc12.{cluster}.{namespace}.svc.cluster.local",
        f"crdb-writer.{namespace}.svc.cluster.local",
        f"crdb-reader.{namespace}.svc.cluster.local",
        "crdb-writer",
        "crdb-reader",
    ]
    for host in must:
        assert covered(host, names), f"{host} is not in the node certificate for {namespace}"
    assert "127.0.0.1" in certificates(namespace)["cockroachdb-node"]["spec"]["ipAddresses"]
    assert not covered("crdb-writer.other.svc.cluster.local", names)
    # HTTP serves under the same names, except the join Service: only nodes dial it (26258, node cert).
    join = {n for n in names if n.split(".")[0].endswith("-join")}
    assert set(dns_names(namespace, "cockroachdb-http")) == set(names) - join


def hosts_clients_use() -> list[str]:
    """Every CockroachDB host named in a client URL or --host flag in our manifests and values."""
    text = "\n".join(p.read_text() for p in K8S.rglob("*.yaml") if "observability" not in p.parts)
    return sorted(set(re.findall(r"([a-z0-9-]+\.crdb(?:-rehearsal)?\.svc\.cluster\.local)", text)))


def test_every_host_clients_dial_is_in_the_node_certificate():
    hosts = hosts_clients_use()
    assert "crdb-writer.crdb.svc.cluster.local" in hosts
    for host in hosts:
        namespace = host.split(".")[1]
        assert covered(host, dns_names(namespace)), f"{host}: verify-full would fail"


# --- the app: env names, Secret/ConfigMap keys, URLs the app accepts ----------------------------------------

APPS = [
    ("sample-app", "app/deployment.yaml", "crdb"),
    ("sample-app-rehearsal", "app/rehearsal.yaml", "crdb-rehearsal"),
]


# The database URLs reach the app as files from the Secret volume (APP_DB_*_URL_FILE), which it follows so
# rotate_credentials can move it to another user without a restart: never as plain variables.
FILE_BACKED = {"APP_DB_WRITER_URL", "APP_DB_READER_URL"}


def app_env(name: str = "sample-app", path: str = "app/deployment.yaml") -> list[dict]:
    deployment = find("Deployment", name, "crdb-demo", path=path)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container["env"]


def secret_files(name: str, path: str) -> dict[str, str]:
    """mounted file path -> Secret key, for the Deployment's Secret volumes (whole-volume mounts only: a
    subPath mount of a Secret never receives the kubelet's updates)."""
    pod = find("Deployment", name, "crdb-demo", path=path)["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    files = {}
    for mount in container["volumeMounts"]:
        secret = volumes[mount["name"]].get("secret")
        if secret:
            assert secret["secretName"] == "sample-app-credentials" and "subPath" not in mount
            assert mount.get("readOnly") is True
            files |= {f"{mount['mountPath']}/{i['path']}": i["key"] for i in secret["items"]}
    return files


@pytest.mark.parametrize("name,path,_", APPS)
def test_app_env_names_equal_the_settings_contract(name, path, _):
    names = [e["name"] for e in app_env(name, path)]
    assert len(names) == len(set(names)), "duplicate env entries"
    expected = set(ENV_VARS) - FILE_BACKED
    assert set(names) == expected, (
        f"missing: {sorted(expected - set(names))}, "
        f"unknown to the app: {sorted(set(names) - expected)}"
    )


def resolved_app_env(name: str = "sample-app", path: str = "app/deployment.yaml") -> dict[str, str]:
    secret = find("Secret", "sample-app-credentials", "crdb-demo", path="app/secret.yaml")["stringData"]
    config = find("ConfigMap", "sample-app", "crdb-demo", path="app/configmap.yaml")["data"]
    env = {}
    files = secret_files(name, path)
    for entry in app_env(name, path):
        if entry["name"].removesuffix("_FILE") in FILE_BACKED:  # resolved to what the file holds
            key = files[entry["value"]]
            env[entry["name"].removesuffix("_FILE")] = secret[key]
            continue
        source = entry["valueFrom"]
        if "secretKeyRef" in source:
            ref, data = source["secretKeyRef"], secret
            assert ref["name"] == "sample-app-credentials"
        else:
            ref, data = source["configMapKeyRef"], config
            assert ref["name"] == "sample-app"
        assert ref["key"] in data, f"{entry['name']}: key {ref['key']} is not in {ref['name']}"
        env[entry["name"]] = data[ref["key"]]
    assert set(config) <= set(env), f"ConfigMap keys nobody reads: {sorted(set(config) - set(env))}"
    return env


@pytest.mark.parametrize("name,path,_", APPS)
def test_the_app_accepts_its_kubernetes_configuration(name, path, _):
    settings = Settings.from_env(resolved_app_env(name, path))
    assert settings.allow_insecure is False
    assert settings.hash_salt_from_env


def test_the_settings_parser_rejects_a_broken_configuration():
    env = resolved_app_env()
    env["APP_DB_WRITER_URL"] = env["APP_DB_WRITER_URL"].replace("sslmode=verify-full", "sslmode=disable")
    with pytest.raises(ValueError):
        Settings.from_env(env)


@pytest.mark.parametrize("app,path,namespace", APPS)
@pytest.mark.parametrize(
    "var,user,service",
    [("APP_DB_WRITER_URL", "app_rw_01", "crdb-writer"), ("APP_DB_READER_URL", "app_ro_01", "crdb-reader")],
)
def test_app_urls_use_the_right_user_service_and_verified_tls(var, user, service, app, path, namespace):
    env = resolved_app_env(app, path)
    secret = find("Secret", "sample-app-credentials", "crdb-demo")["stringData"]
    url = urlsplit(env[var])
    assert url.username == user and user in SQL_USERS
    assert url.hostname == f"{service}.{namespace}.svc.cluster.local" and url.port == 26257
    assert url.path == "/app"
    query = parse_qs(url.query)
    assert query["sslmode"] == ["verify-full"]
    assert url.password == secret[SQL_USERS[user]], "the pipeline sets this password on the user"
    deployment = find("Deployment", app, "crdb-demo")
    mounts = {m["mountPath"] for m in deployment["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]}
    assert any(query["sslrootcert"][0].startswith(m + "/") for m in mounts), "the CA file is mounted"


@pytest.mark.parametrize("app,path,_", APPS)
def test_app_deployment_is_hardened_and_probed(app, path, _):
    deployment = find("Deployment", app, "crdb-demo", path=path)
    pod = deployment["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert pod["metadata"]["annotations"]["prometheus.io/path"] == "/metrics"
    port = pod["metadata"]["annotations"]["prometheus.io/port"]
    assert int(port) in {p["containerPort"] for p in container["ports"]}
    assert f"--port', '{port}'" in str(container["command"]).replace('"', "'")
    service = find("Service", app, "crdb-demo")
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()


def test_rehearsal_app_is_never_mistaken_for_the_live_one():
    live = find("Deployment", "sample-app", "crdb-demo")["spec"]["template"]["metadata"]["labels"]
    rehearsal = find("Deployment", "sample-app-rehearsal", "crdb-demo")["spec"]["template"]["metadata"][
        "labels"
    ]
    live_service = find("Service", "sample-app", "crdb-demo")["spec"]["selector"]
    assert not live_service.items() <= rehearsal.items(), (
        "the live Service would send traffic to the rehearsal app"
    )
    assert live["app.kubernetes.io/name"] != rehearsal["app.kubernetes.io/name"], (
        "scrape jobs select on this label"
    )
    env = {e["name"]: e["value"] for e in code_location()["env"]}
    assert (
        urlsplit(env["REHEARSAL_SAMPLE_APP_URL"]).hostname
        == "sample-app-rehearsal.crdb-demo.svc.cluster.local"
    )
    assert urlsplit(env["SAMPLE_APP_URL"]).hostname == "sample-app.crdb-demo.svc.cluster.local"


def test_hpa_is_labelled_optional_and_targets_the_app():
    hpa = find("HorizontalPodAutoscaler", "sample-app", "crdb-demo", path="app/optional/hpa.yaml")
    assert hpa["metadata"]["annotations"]["crdb-live-evolution.io/optional"] == "true"
    assert (K8S / "app" / "optional" / "hpa.yaml").read_text().startswith("# OPTIONAL")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "sample-app"


# --- the pipeline: least privilege, exactly what the cluster control calls ----------------------------------


# Dagster's own namespace: the chart, its Role, the run pods and the pipeline's ServiceAccount live there.
DAGSTER_NS = "dagster"


def roles(namespace: str) -> dict[str, dict]:
    return {
        r["metadata"]["name"]: r
        for r in find_all("Role", path="pipeline/rbac.yaml")
        if r["metadata"]["namespace"] == namespace
    }


def bound_to_pipeline(namespace: str) -> dict[str, dict]:
    account = dagster_values()["global"]["serviceAccountName"]
    bound = {}
    for binding in find_all("RoleBinding", path="pipeline/rbac.yaml"):
        if binding["metadata"]["namespace"] != namespace:
            continue
        if {"kind": "ServiceAccount", "name": account, "namespace": DAGSTER_NS} in binding["subjects"]:
            bound[binding["roleRef"]["name"]] = roles(namespace)[binding["roleRef"]["name"]]
    return bound


def test_live_role_rules_equal_what_the_operator_control_calls():
    bound = bound_to_pipeline("crdb")
    assert len(bound) == 1, f"exactly one Role for the pipeline in crdb, found {sorted(bound)}"
    (role,) = bound.values()
    assert normalise_rules(role["rules"]) == normalise_rules(REQUIRED_RBAC_RULES)


def test_rehearsal_roles_add_the_reset_only_there():
    bound = bound_to_pipeline("crdb-rehearsal")
    assert sorted(normalise_rules(r["rules"]) for r in bound.values()) == sorted(
        [normalise_rules(r) for r in (REQUIRED_RBAC_RULES, REHEARSAL_RBAC_RULES, DRILL_RBAC_RULES)]
    )
    for role in find_all("Role"):
        if role["metadata"]["namespace"] == "crdb":
            for rule in role["rules"]:
                assert (
                    not {"create", "delete", "deletecollection", "*"} & set(rule["verbs"])
                    or "crdbclusters" not in rule["resources"]
                ), f"{role['metadata']['name']} may remove the live cluster"


def test_service_account_is_shared_by_code_server_and_runs():
    values = dagster_values()
    account = values["global"]["serviceAccountName"]
    find("ServiceAccount", account, DAGSTER_NS, path="pipeline/rbac.yaml")
    assert values["serviceAccount"] == {"create": False, "name": account}
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    # Runs go where Dagster is installed, never into a CockroachDB namespace (the chart's Role applies there).
    assert values["runLauncher"]["config"]["k8sRunLauncher"]["jobNamespace"] == DAGSTER_NS
    assert code_location()["includeConfigInLaunchedRuns"]["enabled"] is True


def test_code_location_runs_the_definitions_module():
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    module = re.search(r'^module_name = "([^"]+)"', pyproject, re.MULTILINE).group(1)
    assert code_location()["codeServerArgs"] == ["-m", module]
    dockerfile = (K8S / "pipeline" / "Dockerfile").read_text()
    assert '"code-server", "start"' in dockerfile and f'"-m", "{module}"' in dockerfile


def pipeline_env_names() -> set[str]:
    """Names the pipeline reads from the environment, from its source (configuration.py and friends)."""
    names: set[str] = set()
    for path in (REPO_ROOT / "evolution_pipeline").rglob("*.py"):
        text = path.read_text()
        names |= set(re.findall(r'EnvVar\(\s*"([A-Z0-9_]+)"', text))
        names |= set(re.findall(r'environ(?:\.get)?[\[(]\s*"([A-Z0-9_]+)"', text))
        for name in re.findall(r'setting\(\s*\w+\s*,\s*"([A-Z0-9_]+)"', text):
            names |= {name, f"REHEARSAL_{name}"}
        for name in re.findall(r'_float\(\s*\w+\s*,\s*"([A-Z0-9_]+)"', text):
            names |= {name, f"REHEARSAL_{name}"}
        for name in re.findall(r'"([A-Z0-9_]+)" if env == LIVE else "(REHEARSAL_[A-Z0-9_]+)"', text):
            names |= set(name)
    names |= set(SQL_USERS.values())
    return names


def test_pipeline_env_names_are_ones_the_pipeline_reads():
    known = pipeline_env_names()
    given = {e["name"] for e in code_location()["env"]}
    assert {"CRDB_ADMIN_URL", "REHEARSAL_CRDB_ADMIN_URL"} <= known, "the scan finds the pipeline's variables"
    assert not given - known, f"set but never read (typo?): {sorted(given - known)}"
    assert {"CRDB_ADMIN_URL", "REHEARSAL_CRDB_ADMIN_URL", "CRDB_NAMESPACE", "PROMETHEUS_URL"} <= given


def test_pipeline_secrets_and_certificates_are_wired():
    location = code_location()
    secret_names = {s["name"] for s in location["envSecrets"]}
    assert secret_names == {
        s["name"] for s in dagster_values()["runLauncher"]["config"]["k8sRunLauncher"]["envSecrets"]
    }
    mk = (REPO_ROOT / "mk" / "kind.mk").read_text()
    for variable in filter(None, SQL_USERS.values()):  # None: a standby user, created without a password
        assert f"--from-literal={variable}=" in mk, f"kind-install puts {variable} into the pipeline Secret"
    (secret,) = secret_names
    assert f"create secret generic {secret}" in mk
    mounts = {m["name"]: m["mountPath"] for m in location["volumeMounts"]}
    volumes = {v["name"]: v for v in location["volumes"]}
    env = {e["name"]: e["value"] for e in location["env"]}
    for var in ("CRDB_ADMIN_URL", "REHEARSAL_CRDB_ADMIN_URL"):
        url = urlsplit(env[var])
        query = parse_qs(url.query)
        assert url.username == "root" and url.password is None, "certificate auth, no password in values"
        assert query["sslmode"] == ["verify-full"]
        for key in ("sslrootcert", "sslcert", "sslkey"):
            (path,) = query[key]
            name = next(n for n, m in mounts.items() if path.startswith(m + "/"))
            assert volumes[name]["secret"]["secretName"] == "cockroachdb-root"
            assert volumes[name]["secret"]["defaultMode"] & 0o007 == 0, "libpq refuses world-readable keys"


def test_run_pods_can_read_the_client_key_as_the_image_user():
    """0440 key files are readable through the group only: every pod that mounts them needs that fsGroup."""
    dockerfile = (K8S / "pipeline" / "Dockerfile").read_text()
    uid, gid = re.findall(r"^USER (\d+):(\d+)$", dockerfile, re.MULTILINE)[-1]
    run_pod = dagster_values()["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"]["podSpecConfig"]
    for context in (code_location()["podSecurityContext"], run_pod["securityContext"]):
        assert context["runAsNonRoot"] is True
        assert (str(context["runAsUser"]), str(context["fsGroup"])) == (uid, gid)
    for volume in code_location()["volumes"]:
        assert volume["secret"]["defaultMode"] == 0o440


def test_one_image_for_code_location_and_app_matches_the_kind_build():
    mk = (REPO_ROOT / "mk" / "kind.mk").read_text()
    image = re.search(r"^IMAGE \?= (\S+)$", mk, re.MULTILINE).group(1)
    location = code_location()["image"]
    assert f"{location['repository']}:{location['tag']}" == image
    for app, path, _ in APPS:
        deployment = find("Deployment", app, "crdb-demo", path=path)
        assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == image


def test_dockerfile_copies_what_exists_and_runs_unprivileged():
    dockerfile = (K8S / "pipeline" / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11", dockerfile, re.MULTILINE)
    for line in re.findall(r"^COPY (.+)$", dockerfile, re.MULTILINE):
        *sources, _dest = line.split()
        for source in sources:
            assert (REPO_ROOT / source).exists(), (
                f"COPY {source}: not in the repository (build context = root)"
            )
    user = re.findall(r"^USER (\S+)$", dockerfile, re.MULTILINE)[-1]
    assert user.split(":")[0].isdigit() and int(user.split(":")[0]) != 0
    app_user = find("Deployment", "sample-app", "crdb-demo")["spec"]["template"]["spec"]["securityContext"][
        "runAsUser"
    ]
    assert str(app_user) == user.split(":")[0]
    # What the code reads at run time from next to the package must be in the image.
    for needed in ("sql", "k8s/crdb-cluster.yaml"):
        assert re.search(rf"^COPY {re.escape(needed)} ", dockerfile, re.MULTILINE), needed


# --- images and the phase table -----------------------------------------------------------------------------


def all_images() -> list[str]:
    found = []

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "image" and isinstance(value, str):
                    found.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    for doc in manifest_docs():
        walk(doc.body)
    return found


def test_images_are_pinned_and_cockroach_versions_agree():
    images = all_images()
    assert images
    for image in images:
        assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"), f"{image} is not pinned"
    cockroach = {i for i in images if i.startswith("cockroachdb/cockroach:")}
    assert cockroach == {crdb_cluster()["spec"]["template"]["spec"]["image"]}, (
        "one CockroachDB version everywhere"
    )


def test_phase_names_in_manifests_and_docs_exist():
    texts = [p.read_text() for p in K8S.rglob("*") if p.is_file() and p.suffix in {".yaml", ".md", ".json"}]
    texts.append((REPO_ROOT / "mk" / "kind.mk").read_text())
    used = set(re.findall(r"\bphase\d+_[a-z0-9_]+\b", "\n".join(texts)))
    assert "phase0_single_node" in used, "crdb-cluster.yaml names its phase"
    assert used <= set(PHASES_BY_NAME), f"unknown phase names: {sorted(used - set(PHASES_BY_NAME))}"


def test_only_one_crdbcluster_and_it_starts_at_phase_zero():
    clusters = find_all("CrdbCluster")
    assert len(clusters) == 1
    assert sum(r["nodes"] for r in clusters[0]["spec"]["regions"]) == PHASES[0].nodes


def test_loadgen_is_tpcc_through_the_writer_with_tls_until_stopped():
    job = find("Job", "crdb-loadgen", "crdb", path="loadgen-job.yaml")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    script = " ".join(container["args"])
    assert "workload init tpcc" in script and "workload run tpcc" in script
    assert script.index("workload init tpcc") < script.index("workload run tpcc")
    for flag in ("--tolerate-errors", "--duration=0"):
        assert flag in script
    assert "crdb-writer.crdb.svc.cluster.local" in script and "sslmode=verify-full" in script
    warehouses = {e["name"]: e["value"] for e in container["env"]}["WAREHOUSES"]
    assert 1 <= int(warehouses) <= 10, "small: about 200 MB per warehouse"
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    assert any(v.get("secret", {}).get("secretName") == "cockroachdb-root" for v in volumes.values())
    assert "--drop" not in script, "never destroys data"


def test_license_job_reads_the_secret_and_sets_the_setting():
    job = find("Job", "crdb-license", "crdb", path="license-job.yaml")
    spec = job["spec"]["template"]["spec"]
    script = " ".join(spec["containers"][0]["args"])
    assert "SET CLUSTER SETTING enterprise.license" in script
    secrets = {v["secret"]["secretName"] for v in spec["volumes"] if "secret" in v}
    example = find("Secret", "crdb-license", "crdb", path="license-secret.example.yaml")
    assert example["metadata"]["name"] in secrets
    assert "env" not in spec["containers"][0], "the key never goes into the environment"
    assert set(example["stringData"]) == {"license"}
