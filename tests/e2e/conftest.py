"""Browser tests: the app served by a real threaded WSGI server, Playwright driving Debian Chromium.

Each journey saves screenshots under test-artifacts/ (ignored by git): look at them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from tests.conftest import session_cookie_id

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


class LiveServer:
    def __init__(self, app) -> None:
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> LiveServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()


@pytest.fixture(scope="session")
def live_server(app) -> Iterator[LiveServer]:
    server = LiveServer(app).start()
    # OAuth callbacks and Stripe return URLs are built from PUBLIC_URL: point it at this server.
    app.config["PUBLIC_URL"] = server.url
    app.extensions["sorya.config"].PUBLIC_URL = server.url
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is missing: ./scripts/test installs it (apt-get install chromium).")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, live_server) -> Iterator:
    """A fresh browser context at 1280x800 that fails the test on any CSP violation or page error."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=live_server.url)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on(
        "console",
        lambda message: problems.append(f"console: {message.text}")
        if message.type == "error" and "Content Security Policy" in message.text
        else None,
    )
    page.on("dialog", lambda dialog: problems.append(f"dialog raised: {dialog.message}") or dialog.dismiss())
    page.problems = problems
    yield page
    context.close()
    assert not problems, problems


def screenshot(page, name: str, *, full_page: bool = True) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    # caret="initial": Playwright's default caret hiding injects a style the page's CSP then reports
    # (as a violation on the next input), failing journeys that type after a screenshot.
    page.screenshot(path=str(path), full_page=full_page, caret="initial")
    return path


def sign_in_browser(page, app, user, live_server: LiveServer) -> None:
    """Give the browser a signed session for `user`, as a finished sign-in would.

    Journeys about signing in go through the GitHub consent page instead; this is for the others.
    """
    from flask import session as flask_session

    cookie_id = session_cookie_id(app, user.id)
    with app.test_request_context():
        flask_session["_user_id"] = cookie_id
        flask_session["_fresh"] = True
        serializer = app.session_interface.get_signing_serializer(app)
        cookie = serializer.dumps(dict(flask_session))
    page.context.add_cookies(
        [{"name": app.config.get("SESSION_COOKIE_NAME", "session"), "value": cookie, "url": live_server.url}]
    )
