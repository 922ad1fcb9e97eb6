"""No credential anywhere under k8s/ (or in mk/kind.mk) except the one documented demo Secret.

The scanner looks for what credentials look like in YAML and shell: password/secret/token/key fields with a
literal value, user:password@ in URLs, PEM blocks, long base64 `data:` values. Placeholders (REPLACE_WITH_*,
<...>, $VAR, values read from files or Secrets) are not credentials.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

from evolution_pipeline.phases import REPO_ROOT
from tests.manifests.support import K8S, find, manifest_docs

DEMO_SECRET = K8S / "app" / "secret.yaml"
SCANNED = sorted(
    [p for p in K8S.rglob("*") if p.is_file() and p.suffix in {".yaml", ".yml", ".json", ".md", ""}]
    + [REPO_ROOT / "mk" / "kind.mk", K8S / "pipeline" / "Dockerfile"]
)

PLACEHOLDER = re.compile(
    r"^(REPLACE_WITH_[A-Z_]+|<[^>]*>|\$.*|\"?\$\(.*|'?<.*|changeme|\.\.\.|)$", re.IGNORECASE
)
SECRET_FIELD = re.compile(
    r"""(?imx)(?:^|[\s"'{,]|--from-literal=)
        (?P<name>[a-z0-9_-]*(password|passwd|secret|token|api[_-]?key|private[_-]?key|license))
        ["']?[ \t]*[:=][ \t]*(?P<value>["']?[^\s"'#,}]{4,}["']?)"""
)
URL_CREDENTIALS = re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://(?P<user>[^\s:/@'\"]+):(?P<password>[^\s@/'\"]+)@")
PEM = re.compile(r"-----BEGIN [A-Z ]*(PRIVATE KEY|CERTIFICATE)-----")
BASE64_DATA = re.compile(r"^\s+[\w.-]+:\s*\"?([A-Za-z0-9+/]{40,}={0,2})\"?\s*$", re.MULTILINE)


# Fields that name a Secret rather than hold one (bitnami charts' `existingSecret: <Secret name>`).
SECRET_REFERENCE = re.compile(r"(?i)^existingSecret$")
DNS_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def findings(text: str) -> list[str]:
    found = []
    for m in SECRET_FIELD.finditer(text):
        value = m.group("value").strip("\"'")
        if SECRET_REFERENCE.match(m.group("name")) and DNS_NAME.match(value):
            continue
        if (
            PLACEHOLDER.match(value)
            or value.lower() in {"true", "false", "null"}
            or value.startswith(("{", "["))
            or value.endswith(":")
        ):
            continue
        found.append(f"{m.group('name')}={value}")
    for m in URL_CREDENTIALS.finditer(text):
        if not PLACEHOLDER.match(m.group("password")):
            found.append(f"URL with password for {m.group('user')}")
    found += [f"PEM block {m.group(0)}" for m in PEM.finditer(text)]
    for m in BASE64_DATA.finditer(text):
        try:
            base64.b64decode(m.group(1), validate=True)
        except ValueError:
            continue
        found.append(f"base64 blob {m.group(1)[:12]}...")
    return found


@pytest.mark.parametrize(
    "path", [p for p in SCANNED if p != DEMO_SECRET], ids=lambda p: str(p.relative_to(REPO_ROOT))
)
def test_no_credential_outside_the_demo_secret(path: Path):
    assert findings(path.read_text()) == []


def test_the_demo_secret_is_the_documented_exception():
    text = DEMO_SECRET.read_text()
    assert findings(text), "the scanner must see the demo credentials (else it proves nothing)"
    assert text.startswith("# DEMO CREDENTIALS")
    secret = find("Secret", "sample-app-credentials", "crdb-demo", path="app/secret.yaml")
    assert secret["metadata"]["annotations"]["crdb-live-evolution.io/demo-credentials"] == "true"
    for value in secret["stringData"].values():
        if "password" in value or value.startswith("demo"):
            assert "demo" in value, "demo credentials say so in their value"
    readme = (K8S / "README.md").read_text()
    assert "app/secret.yaml" in readme and "demo" in readme.lower()


def test_every_other_secret_holds_placeholders_only():
    for doc in manifest_docs():
        if doc.kind != "Secret" or doc.path == DEMO_SECRET:
            continue
        assert not doc.body.get("data"), f"{doc}: encoded data committed"
        for key, value in (doc.body.get("stringData") or {}).items():
            assert PLACEHOLDER.match(str(value)), f"{doc}: {key} is not a placeholder"


@pytest.mark.parametrize(
    "text",
    [
        "password: hunter2hunter2",
        '  APP_WRITER_PASSWORD: "s3cretvalue"',
        "url: postgresql://app_writer:s3cret@crdb-writer:26257/app",
        "-----BEGIN RSA PRIVATE KEY-----",
        "license: crl-0-ChB1ZXN0LWtleS0xMjM0NTY3OBAB",
        "  tls.key: LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tCk1JSUV2UUlCQURBTkJna3Foa2lHOXcwQkFR",
        "--from-literal=password=topsecretvalue",
    ],
)
def test_the_scanner_catches_credentials(text):
    assert findings(text), text


@pytest.mark.parametrize(
    "text",
    [
        "license: REPLACE_WITH_YOUR_LICENSE_KEY",
        "secretName: cockroachdb-root",
        '--from-literal=APP_WRITER_PASSWORD="$$(kubectl get secret x)"',
        "url: postgresql://root@crdb-writer.crdb.svc.cluster.local:26257/defaultdb?sslmode=verify-full",
        "rootSqlClientSecretName: cockroachdb-root",
        "envSecrets:",
    ],
)
def test_the_scanner_ignores_references_and_placeholders(text):
    assert findings(text) == []
