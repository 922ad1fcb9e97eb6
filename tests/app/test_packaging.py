"""The app's Dockerfile stays in step with pyproject.toml and the process model."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = (REPO / "sample_app" / "Dockerfile").read_text()


def test_dockerfile_dependencies_match_pyproject():
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    wanted = [d for d in deps if re.match(r"(sanic|psycopg|prometheus-client|opentelemetry-)", d)]
    assert len(wanted) == 5
    for dep in wanted:
        assert f'"{dep}"' in DOCKERFILE, f"sample_app/Dockerfile must pin {dep} like pyproject.toml"


def test_dockerfile_is_slim_non_root_single_process_with_healthcheck():
    assert re.search(r"^FROM python:3\.11-slim", DOCKERFILE, re.MULTILINE)
    assert re.search(r"^USER 10001", DOCKERFILE, re.MULTILINE)
    assert re.search(r"^HEALTHCHECK .*", DOCKERFILE, re.MULTILINE) and "/healthz" in DOCKERFILE
    cmd = re.search(r"^CMD (.*)$", DOCKERFILE, re.MULTILINE).group(1)
    assert "sample_app" in cmd and "--workers" not in cmd and "--fast" not in cmd
    for path in re.findall(r"^COPY (\S+)", DOCKERFILE, re.MULTILINE):
        assert (REPO / path).exists(), f"COPY {path}: the build context is the repo root"
