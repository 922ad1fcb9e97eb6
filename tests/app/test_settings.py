"""Settings: every variable validated once, named in errors, listed in ENV_VARS."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sample_app.settings import ENV_VARS, Settings, SettingsError

LOCAL = {
    "APP_DB_WRITER_URL": "postgresql://app_rw_01:pw@127.0.0.1:5432/app",
    "APP_DB_READER_URL": "postgresql://app_ro_01:pw@127.0.0.1:5432/app",
}
PACKAGE = Path(__file__).resolve().parents[2] / "sample_app"


def test_defaults_are_safe():
    s = Settings.from_env(LOCAL)
    assert s.follower_reads == "auto"  # on exactly when the reader's server is CockroachDB
    assert s.search_limit <= 50
    assert 0 < s.spike_max_rps <= 10000 and 0 < s.spike_max_seconds <= 3600
    assert len(s.hash_salt) >= 16 and s.hash_salt_from_env is False


def test_random_salt_differs_per_process_when_unset():
    assert Settings.from_env(LOCAL).hash_salt != Settings.from_env(LOCAL).hash_salt


def test_everything_read_from_env():
    env = dict(
        LOCAL,
        APP_FOLLOWER_READS="true",
        APP_HASH_SALT="x" * 20,
        APP_SEARCH_LIMIT="50",
        APP_DB_READER_POOL_MAX="3",
        APP_SPIKE_MAX_RPS="700",
        APP_BACKGROUND_RPS="2.5",
    )
    s = Settings.from_env(env)
    assert (
        s.follower_reads,
        s.hash_salt,
        s.search_limit,
        s.reader_pool_max,
        s.spike_max_rps,
        s.background_rps,
    ) == ("true", "x" * 20, 50, 3, 700, 2.5)


@pytest.mark.parametrize(
    "env, named",
    [
        ({}, "APP_DB_WRITER_URL"),
        ({"APP_DB_WRITER_URL": LOCAL["APP_DB_WRITER_URL"]}, "APP_DB_READER_URL"),
        (dict(LOCAL, APP_DB_WRITER_URL="mysql://x@127.0.0.1/app"), "APP_DB_WRITER_URL"),
        (dict(LOCAL, APP_DB_READER_URL="postgresql://u@127.0.0.1:5432"), "APP_DB_READER_URL"),
        (dict(LOCAL, APP_SEARCH_LIMIT="51"), "APP_SEARCH_LIMIT"),
        (dict(LOCAL, APP_SPIKE_MAX_RPS="lots"), "APP_SPIKE_MAX_RPS"),
        (dict(LOCAL, APP_FOLLOWER_READS="maybe"), "APP_FOLLOWER_READS"),
        (dict(LOCAL, APP_HASH_SALT="short"), "APP_HASH_SALT"),
        (dict(LOCAL, APP_DB_WRITER_POOL_MIN="5", APP_DB_WRITER_POOL_MAX="2"), "APP_DB_WRITER_POOL_MIN"),
        (dict(LOCAL, APP_LOG_LEVEL="LOUD"), "APP_LOG_LEVEL"),
    ],
)
def test_bad_values_name_the_variable(env, named):
    with pytest.raises(SettingsError, match=named):
        Settings.from_env(env)


@pytest.mark.parametrize("value, mode", [("auto", "auto"), ("AUTO", "auto"), ("on", "true"), ("0", "false")])
def test_follower_reads_mode(value, mode):
    assert Settings.from_env(dict(LOCAL, APP_FOLLOWER_READS=value)).follower_reads == mode


def test_remote_database_without_tls_is_refused():
    remote = dict(LOCAL, APP_DB_WRITER_URL="postgresql://app_rw_01:pw@crdb-writer:26257/app")
    with pytest.raises(SettingsError, match="without TLS"):
        Settings.from_env(remote)
    tls = dict(
        LOCAL,
        APP_DB_WRITER_URL="postgresql://app_rw_01:pw@crdb-writer:26257/app"
        "?sslmode=verify-full&sslrootcert=/certs/ca.crt",
    )
    assert Settings.from_env(tls).writer_url.endswith("ca.crt")
    assert Settings.from_env(dict(remote, APP_DB_ALLOW_INSECURE="true")).allow_insecure


def test_env_vars_lists_exactly_what_the_code_reads():
    """ENV_VARS is what the Kubernetes Deployment is checked against: it must match the code."""
    read = set()
    for path in PACKAGE.rglob("*.py"):
        read |= set(re.findall(r'"(APP_[A-Z_]+)"', path.read_text()))
    assert isinstance(ENV_VARS, tuple) and all(isinstance(v, str) for v in ENV_VARS)
    assert read == set(ENV_VARS)


def test_readme_documents_every_variable():
    readme = (PACKAGE / "README.md").read_text()
    missing = [v for v in ENV_VARS if f"`{v}`" not in readme]
    assert not missing, f"sample_app/README.md does not document {missing}"


def test_no_secret_in_source():
    for path in PACKAGE.rglob("*"):
        if path.is_file() and path.suffix in {".py", ".js", ".html", ".md", ""}:
            text = path.read_text(errors="replace")
            assert not re.search(r"postgres(ql)?://\w+:(?!PASSWORD|pw@|\$)[^@\s]+@", text), path
