"""Headless Chromium opens the dashboard, presses "Start spike", and sees the timeline react."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from .appproc import AppProcess
from .conftest import app_env

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def test_dashboard_start_spike(app, client):
    """A real Chromium on the app's page: its start, then five of the timeline's 1 s points during the spike
    (the point of the test): ~8-12 s."""
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is installed by scripts/setup.sh")
    ARTIFACTS.mkdir(exist_ok=True)
    client.post("/control/background/start")
    external = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 950})
            page.on(
                "request",
                lambda r: (
                    r.url.startswith(app.base_url)
                    or r.url.startswith("ws://127.0.0.1")
                    or external.append(r.url)
                ),
            )
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(app.base_url + "/", timeout=15000)
            expect(page.locator("#ws-state")).to_have_attribute("data-state", "open", timeout=10000)
            expect(page.locator("#ready-state")).to_have_attribute("data-ready", "true", timeout=10000)
            expect(page.locator("#follower-reads")).to_have_attribute("data-on", "false")
            expect(page.locator("#follower-reads")).to_contain_text("off (PostgreSQL")
            # The rotation user each path logs in as (rotate_credentials moves them).
            expect(page.locator("#db-users")).to_have_attribute("data-users", "writer app_rw_01 · reader app_ro_01")
            expect(page.locator("#spike-state")).to_have_attribute("data-active", "false")
            expect(page.locator(".toggle[data-target=background]")).to_have_class(
                "toggle running", timeout=5000
            )
            points_before = int(page.locator("#stat-points").inner_text())

            page.fill("#spike-seconds", "12")
            page.fill("#spike-rps", "60")
            page.click("#spike-start")
            expect(page.locator("#spike-state")).to_have_attribute("data-active", "true", timeout=5000)
            expect(page.locator("#spike-state")).to_contain_text("60 req/s")
            page.wait_for_function(
                f"Number(document.getElementById('stat-points').textContent) >= {points_before + 5}",
                timeout=15000,
            )
            achieved = page.locator("#stat-spike").inner_text()
            assert "/ 60" in achieved, achieved
            # The charts carry a start marker (drawn as a dashed line at the spike's start).
            assert page.evaluate("state.markers.map(m => m.kind)") == ["spike_start"]
            page.screenshot(path=str(ARTIFACTS / "sample-app-dashboard.png"), full_page=True)

            # Stop from the page: the state flips back and the stop marker arrives with the next point.
            page.click("#spike-stop")
            expect(page.locator("#spike-state")).to_have_attribute("data-active", "false", timeout=5000)
            page.wait_for_function("state.markers.some(m => m.kind === 'spike_stop')", timeout=5000)

            # The load buttons are real API calls: readers start, show as running, and stop.
            readers = page.locator(".toggle[data-target=readers]")
            readers.locator("button[data-action=start]").click()
            expect(readers).to_have_class("toggle running", timeout=5000)
            assert client.get("/control").json()["readers"]["running"] is True
            readers.locator("button[data-action=stop]").click()
            expect(readers).to_have_class("toggle", timeout=5000)
            assert client.get("/control").json()["readers"]["running"] is False
            assert not errors, errors
            browser.close()
    finally:
        client.post("/control/background/stop")
        client.delete("/spike")
    assert not external, f"the page fetched from outside the app: {external}"


def test_page_reconnects_when_the_app_restarts(pg, tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is installed by scripts/setup.sh")
    first = AppProcess(app_env(pg), tmp_path / "first.log")
    second = None
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page()
            page.goto(first.base_url + "/", timeout=15000)
            ws_state = page.locator("#ws-state")
            expect(ws_state).to_have_attribute("data-state", "open", timeout=10000)
            first.stop()
            expect(ws_state).to_have_attribute("data-state", "closed", timeout=10000)
            # The same address comes back (a restarted pod behind its Service): the page reconnects alone.
            second = AppProcess(app_env(pg), tmp_path / "second.log", port=first.port)
            expect(ws_state).to_have_attribute("data-state", "open", timeout=15000)
            expect(page.locator("#ready-state")).to_have_attribute("data-ready", "true", timeout=10000)
            browser.close()
    finally:
        first.stop()
        if second:
            second.stop()
