"""scripts/fetch_tools.py is a script, not a package module: load it once for the tests."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from evolution_pipeline.phases import REPO_ROOT


def load_fetch_tools():
    name = "fetch_tools_under_test"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "scripts" / "fetch_tools.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses resolve their module through sys.modules
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="session")
def fetch_tools():
    return load_fetch_tools()
