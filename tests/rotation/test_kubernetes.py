"""rotate_credentials through the Kubernetes path: the app's Secret in a Kubernetes API stand-in (real
`kubernetes` client), RBAC exactly as k8s/pipeline/rbac.yaml grants it, and a kubelet stand-in that projects
the Secret into the app's volume the way the kubelet does (atomic ..data swap), under load."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import yaml

from evolution_pipeline.resources.sample_app import SampleAppResource
from evolution_pipeline.roles import APP_PATHS, READER, WRITER
from evolution_pipeline.rotation.publish import (
    REQUIRED_SECRET_VERBS,
    CredentialStoreError,
    KubernetesSecretStore,
)
from evolution_pipeline.rotation.rotate import Rotator, login_error
from tests.app.appproc import AppProcess
from tests.app.conftest import app_env
from tests.app.load import Load
from tests.app.secret_volume import SecretVolume
from tests.doubles.k8s_secrets import KubeApiWithSecrets
from tests.plan.test_plan import kubeconfig

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
NAMESPACE, SECRET = "crdb-demo", "sample-app-credentials"
# The Deployment's volume items: Secret key -> file name (k8s/app/deployment.yaml).
ITEMS = {"APP_DB_WRITER_URL": "writer-url", "APP_DB_READER_URL": "reader-url"}


def secret_rules_from_manifest() -> dict[str, list[dict]]:
    """namespace -> rules of every Role in k8s/pipeline/rbac.yaml that mentions secrets."""
    rules: dict[str, list[dict]] = {}
    for doc in yaml.safe_load_all((REPO / "k8s" / "pipeline" / "rbac.yaml").read_text()):
        if doc and doc["kind"] == "Role":
            for rule in doc["rules"]:
                if "secrets" in rule.get("resources", []):
                    rules.setdefault(doc["metadata"]["namespace"], []).append(rule)
    return rules


def test_rbac_grants_exactly_get_and_patch_of_the_app_secret():
    rules = secret_rules_from_manifest()
    assert rules == {NAMESPACE: [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": [SECRET],
                                  "verbs": list(REQUIRED_SECRET_VERBS)}]}


@pytest.fixture
def api(pg):
    with KubeApiWithSecrets(secret_rules=secret_rules_from_manifest(), token="t") as server:
        server.add_secret(NAMESPACE, SECRET, {"APP_DB_WRITER_URL": pg.url("app_rw_01"),
                                              "APP_DB_READER_URL": pg.url("app_ro_01"),
                                              "APP_HASH_SALT": "salt-0123456789abcdef"})
        yield server


@pytest.fixture
def k8s_store(api, tmp_path) -> KubernetesSecretStore:
    return KubernetesSecretStore(kubeconfig=str(kubeconfig(tmp_path / "kubeconfig", api.host)))


def test_publish_patches_one_key_with_a_precondition(api, k8s_store, pg):
    current = k8s_store.read(WRITER)
    assert current == pg.url("app_rw_01")
    k8s_store.publish(WRITER, "postgresql://app_rw_02:x@127.0.0.1:1/app", expected_current=current)
    assert api.secret_value(NAMESPACE, SECRET, "APP_DB_WRITER_URL").startswith("postgresql://app_rw_02:x@")
    assert api.secret_value(NAMESPACE, SECRET, "APP_DB_READER_URL") == pg.url("app_ro_01")  # untouched
    assert api.secret_value(NAMESPACE, SECRET, "APP_HASH_SALT") == "salt-0123456789abcdef"
    # Someone changed it meanwhile: the JSON patch's test op refuses, nothing is overwritten.
    with pytest.raises(CredentialStoreError, match="422"):
        k8s_store.publish(WRITER, "postgresql://app_rw_01:y@127.0.0.1:1/app", expected_current=current)
    assert api.secret_value(NAMESPACE, SECRET, "APP_DB_WRITER_URL").startswith("postgresql://app_rw_02:x@")


def test_a_secret_the_role_does_not_name_is_forbidden(api, tmp_path):
    other = KubernetesSecretStore(kubeconfig=str(kubeconfig(tmp_path / "kc", api.host)), secret_name="other")
    with pytest.raises(CredentialStoreError, match=r"403.*cannot get resource \"secrets\""):
        other.read(WRITER)


class Kubelet(threading.Thread):
    """Projects the Secret into the pod's volume like the kubelet: on change, one atomic write of all items,
    after a sync delay (the real one is the kubelet's sync period plus its cache TTL)."""

    def __init__(self, api: KubeApiWithSecrets, volume: SecretVolume, delay: float = 0.5):
        super().__init__(daemon=True)
        self.api, self.volume, self.delay, self.stop_flag = api, volume, delay, threading.Event()

    def project(self) -> None:
        self.volume.write({f: self.api.secret_value(NAMESPACE, SECRET, k) for k, f in ITEMS.items()})

    def run(self) -> None:
        last = None
        while not self.stop_flag.wait(self.delay):
            current = {k: self.api.secret_value(NAMESPACE, SECRET, k) for k in ITEMS}
            if current != last:
                self.project()
                last = current


def test_rotation_through_the_secret_under_load(api, k8s_store, admin, pg, tmp_path):
    for path in APP_PATHS:  # as the phases leave it: the standby user has no password
        pg.execute(f"ALTER ROLE {path.users[1]} PASSWORD NULL", dbname="postgres")
    volume = SecretVolume(tmp_path / "secret-volume")
    kubelet = Kubelet(api, volume)
    kubelet.project()
    env = app_env(pg, APP_DB_WRITER_URL_FILE=volume.path("writer-url"), APP_DB_READER_URL_FILE=volume.path("reader-url"))
    del env["APP_DB_WRITER_URL"], env["APP_DB_READER_URL"]
    app = AppProcess(env, tmp_path / "app.log")
    kubelet.start()
    try:
        app.wait_ready()
        rotator = Rotator(admin, k8s_store, SampleAppResource(url=app.base_url), lambda m: None,
                          switch_timeout_seconds=30, poll_seconds=0.2, confirmations=3)
        with Load(app.base_url) as load:
            time.sleep(1)
            results = [rotator.rotate(p) for p in (WRITER, READER)]
            time.sleep(1)
        assert load.failures == [], load.failures[:5]
        assert [r.active for r in results] == ["app_rw_02", "app_ro_02"] and all(r.retired_refused for r in results)
        assert login_error(pg.url("app_rw_01"), 3) is not None  # the retired credential
        verbs = {(v, name, code) for v, _, name, code in api.secret_requests}
        assert verbs == {("get", SECRET, 200), ("patch", SECRET, 200)}
        print(f"\nrotation through the Secret: {load.count} requests, {len(load.failures)} failed, switch "
              f"{[r.switch_seconds for r in results]} s (kubelet sync 0.5 s)")
    finally:
        kubelet.stop_flag.set()
        app.stop()
        pg.restore_access()
