"""The app follows its URL files (a mounted Secret) without a restart: credential rotation with zero failures.

The files change the way the kubelet changes a Secret volume (tests/app/secret_volume.py). Under continuous
/login and /search load the writer and reader paths move to the other rotation user, the old pools drain,
the retired users' passwords are invalidated, and not one request fails. A file that is unreadable, empty,
invalid or holds a URL that cannot log in leaves the app on its current user, with the reason on /readyz.
"""

from __future__ import annotations

import time

import pytest

from crdb_common import httpc
from sample_app.settings import Settings, SettingsError

from .appproc import AppProcess
from .conftest import app_env
from .load import Load
from .secret_volume import SecretVolume

pytestmark = pytest.mark.slow


def file_env(pg, vol: SecretVolume) -> dict[str, str]:
    env = app_env(pg, APP_DB_WRITER_URL_FILE=vol.path("writer-url"), APP_DB_READER_URL_FILE=vol.path("reader-url"))
    del env["APP_DB_WRITER_URL"], env["APP_DB_READER_URL"]
    return env


def readyz(app: AppProcess) -> dict:
    return httpc.get(app.base_url + "/readyz", timeout=5.0).json()


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout}s: {what}")


def sessions(pg) -> dict[str, int]:
    return dict(pg.execute("SELECT usename, count(*) FROM pg_stat_activity WHERE datname = 'app' "
                           "AND usename LIKE 'app\\_r%%' GROUP BY usename"))


@pytest.fixture
def volume(pg, tmp_path):
    vol = SecretVolume(tmp_path / "secret")
    vol.write({"writer-url": pg.url("app_rw_01"), "reader-url": pg.url("app_ro_01")})
    yield vol
    pg.restore_access()  # passwords back for the other tests


def test_rotation_under_load_fails_no_request_and_drains_the_old_pools(pg, volume, tmp_path):
    app = AppProcess(file_env(pg, volume), tmp_path / "app.log")
    try:
        app.wait_ready()
        assert readyz(app)["db_users"] == {"writer": "app_rw_01", "reader": "app_ro_01"}
        with Load(app.base_url) as load:
            time.sleep(2.0)
            before = load.count
            published = time.monotonic()
            volume.write({"writer-url": pg.url("app_rw_02"), "reader-url": pg.url("app_ro_02")})
            wait_for(lambda: readyz(app)["db_users"] == {"writer": "app_rw_02", "reader": "app_ro_02"}, 10,
                     "both paths on the _02 users")
            switched = time.monotonic() - published
            body = wait_for(lambda: (b := readyz(app)) and all(
                (b["credentials"][p]["last_switch"] or {}).get("drained_seconds") is not None
                for p in ("writer", "reader")) and b, 40, "old pools drained")
            drained = time.monotonic() - published
            # Retire the old users as rotate_credentials does: the app no longer uses them.
            pg.execute("ALTER ROLE app_rw_01 PASSWORD NULL", dbname="postgres")
            pg.execute("ALTER ROLE app_ro_01 PASSWORD NULL", dbname="postgres")
            time.sleep(2.0)
        assert load.failures == [], load.failures[:5]
        assert load.count - before > 100, load.count
        now = sessions(pg)
        assert "app_rw_01" not in now and "app_ro_01" not in now, now  # the old pools hold nothing
        assert now.get("app_rw_02", 0) >= 1 and now.get("app_ro_02", 0) >= 1, now
        assert body["credentials"]["writer"]["last_switch"]["from"] == "app_rw_01"
        assert body["warnings"] == []
        print(f"\nrotation under load: {load.count} requests ({load.count - before} from the swap on), "
              f"{len(load.failures)} failed; both paths switched {switched:.2f}s after the Secret changed, "
              f"old pools closed {drained:.2f}s after (drain "
              f"{body['credentials']['writer']['last_switch']['drained_seconds']}s writer, "
              f"{body['credentials']['reader']['last_switch']['drained_seconds']}s reader)")
        assert "app_rw_01" in app.log() and "draining the old pool" in app.log()
        metrics = httpc.get(app.base_url + "/metrics").text  # what the dashboard counts per replica
        assert 'app_db_pool_user{pool="writer",user="app_rw_02"} 1.0' in metrics
        assert 'user="app_rw_01"' not in metrics
    finally:
        app.stop()


@pytest.mark.parametrize("content, reason", [
    ("", "is empty"),
    ("mysql://app_rw_02:x@127.0.0.1/app", "must be a postgresql:// URL"),
    (None, "cannot read"),  # the key vanished from the Secret: a dangling symlink
    ("WRONG_PASSWORD", "the new URL cannot log in"),
])
def test_a_bad_url_file_keeps_the_current_user(pg, volume, tmp_path, content, reason):
    app = AppProcess(file_env(pg, volume), tmp_path / "app.log")
    try:
        app.wait_ready()
        reader_url = pg.url("app_ro_01")
        if content == "WRONG_PASSWORD":
            content = pg.url("app_rw_02").replace(pg.passwords["app_rw_02"], "not-the-password")
        volume.write({"reader-url": reader_url} if content is None else
                     {"writer-url": content, "reader-url": reader_url})
        body = wait_for(lambda: (b := readyz(app)) and b["credentials"]["writer"]["problem"] and b, 10,
                        "the problem on /readyz")
        assert reason in body["credentials"]["writer"]["problem"], body["credentials"]
        assert any(reason in w and "still on app_rw_01" in w for w in body["warnings"]), body["warnings"]
        assert body["ready"] is True and body["db_users"]["writer"] == "app_rw_01"
        assert httpc.post(app.base_url + "/login", json={"user_id": "still-served"}).status_code == 200
        assert reason in app.log()
        # Fixed: the app takes it and the warning goes away.
        volume.write({"writer-url": pg.url("app_rw_02"), "reader-url": reader_url})
        wait_for(lambda: readyz(app)["db_users"]["writer"] == "app_rw_02", 10, "the fixed URL taken")
        assert readyz(app)["credentials"]["writer"]["problem"] == ""
    finally:
        app.stop()


def test_settings_read_the_url_files(pg, volume):
    s = Settings.from_env(file_env(pg, volume))
    assert s.writer_url == pg.url("app_rw_01") and s.writer_url_file == volume.path("writer-url")
    with pytest.raises(SettingsError, match="not both"):
        Settings.from_env(dict(file_env(pg, volume), APP_DB_WRITER_URL=pg.url("app_rw_01")))
    with pytest.raises(SettingsError, match="APP_DB_READER_URL_FILE: cannot read /nonexistent"):
        Settings.from_env(dict(file_env(pg, volume), APP_DB_READER_URL_FILE="/nonexistent/reader-url"))


SECRET = "s3cr%zzET"  # a stray %: libpq's "invalid percent-encoded token" would quote it


@pytest.mark.parametrize("pool, content, reason", [
    # The reader's URL in the writer's file: every /login would fail (the reader cannot INSERT).
    ("writer", lambda pg: pg.url("app_ro_02"), "cannot INSERT into login_events"),
    # The writer's URL in the reader's file: /readyz would be 503 on every replica (a reader that can write).
    ("reader", lambda pg: pg.url("app_rw_02"), "it can write (holds INSERT on login_events"),
    # Another database of the same server: the app's tables are not there.
    ("writer", lambda pg: pg.url("app_rw_02").removesuffix("/app") + "/postgres", "connects to database 'postgres'"),
    # A password libpq cannot decode: refused, and the password is never shown.
    ("writer", lambda pg: pg.url("app_rw_02").replace(pg.passwords["app_rw_02"], SECRET), "percent-encoded"),
])
def test_a_url_wrong_for_its_path_is_refused_shown_and_counted(pg, volume, tmp_path, pool, content, reason):
    app = AppProcess(file_env(pg, volume), tmp_path / "app.log")
    try:
        app.wait_ready()
        urls = {"writer-url": pg.url("app_rw_01"), "reader-url": pg.url("app_ro_01")}
        urls[f"{pool}-url"] = content(pg)
        volume.write(urls)
        body = wait_for(lambda: (b := readyz(app)) and b["credentials"][pool]["problem"] and b, 10,
                        "the refusal on /readyz")
        assert reason in body["credentials"][pool]["problem"], body["credentials"]
        assert body["ready"] is True, body  # still on the old, right user: no replica goes unready
        assert body["db_users"] == {"writer": "app_rw_01", "reader": "app_ro_01"}
        for _ in range(20):  # and every request is still served
            assert httpc.post(app.base_url + "/login", json={"user_id": "kept"}).status_code == 200
            assert httpc.get(app.base_url + "/search", params={"q": "amb"}).status_code == 200
        metrics = httpc.get(app.base_url + "/metrics").text
        assert f'app_credential_file_refused{{pool="{pool}"}} 1.0' in metrics, metrics
        time.sleep(1.5)  # a few more polls: still one log line for the one reason
        log = app.log()
        assert log.count(reason) == 1, log
        assert SECRET not in log and SECRET not in str(body) and "zzET" not in log + str(body)
        # Fixed: taken, and the gauge goes back to 0.
        urls[f"{pool}-url"] = pg.url("app_rw_02" if pool == "writer" else "app_ro_02")
        volume.write(urls)
        wait_for(lambda: readyz(app)["db_users"][pool] in ("app_rw_02", "app_ro_02"), 10, "the fixed URL taken")
        metrics = httpc.get(app.base_url + "/metrics").text
        assert f'app_credential_file_refused{{pool="{pool}"}} 0.0' in metrics
    finally:
        app.stop()
