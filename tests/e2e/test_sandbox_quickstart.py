"""The README's run command, as a newcomer meets it: no keys, no accounts, SQLite under instance/.

`python -m sandbox run` (what ./scripts/run execs) starts the three emulators and the app; in Chromium the
newcomer sees the Sandbox badge, signs in through the sandbox GitHub consent page and lands on the
dashboard with the signup credits, then does everything the product offers without any real account:
chats in a project, takes a snapshot of the reply, publishes it to (sandbox) GitHub and subscribes to a
plan through the (sandbox) Stripe checkout, watching the credits arrive.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from playwright.sync_api import expect

from tests.e2e.conftest import screenshot

ROOT = Path(__file__).resolve().parents[2]
# Settings a developer's shell might carry that would take the launcher out of the embedded default.
AMBIENT_SETTINGS = (
    "OPENAI_API_KEY", "GITHUB_CLIENT_ID", "STRIPE_SECRET_KEY", "DATABASE_URL", "REDIS_URL", "SECRET_KEY",
    "ENCRYPTION_KEY", "PUBLIC_URL", "SORYA_SANDBOX", "GITHUB_URL", "OPENAI_BASE_URL", "STRIPE_API_BASE",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def sandbox_app(tmp_path_factory) -> Iterator[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in AMBIENT_SETTINGS}
    env.update(
        SORYA_INSTANCE_DIR=str(tmp_path_factory.mktemp("sandbox-instance")),
        SANDBOX_OPENAI_PORT=str(free_port()),
        SANDBOX_GITHUB_PORT=str(free_port()),
        SANDBOX_STRIPE_PORT=str(free_port()),
    )
    log = (tmp_path_factory.mktemp("sandbox-log") / "run.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "run", "--port", str(port), "--latency-ms", "5"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://localhost:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, f"the sandbox exited early; see {log.name}"
        try:
            if requests.get(f"{url}/readyz", timeout=1).status_code == 200:
                break
        except requests.ConnectionError:
            pass
        assert time.monotonic() < deadline, "the sandbox did not become ready within 60 s"
        time.sleep(0.2)
    yield url
    process.terminate()
    process.wait(timeout=15)


def test_a_newcomer_signs_in_through_the_sandbox(browser, sandbox_app):
    context = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=sandbox_app)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto("/")
    expect(page.locator("#sandbox-banner")).to_contain_text("No real AI, GitHub or payment is involved")
    screenshot(page, "sandbox-landing")

    page.get_by_role("button", name="Sign in with GitHub").first.click()
    page.get_by_role("button", name="Continue with GitHub").click()
    expect(page.get_by_role("heading", name="Authorize Sorya (sandbox)")).to_be_visible()
    page.get_by_label("…or a new sandbox user").fill("first-visitor")
    screenshot(page, "sandbox-consent")
    page.get_by_role("button", name="Authorize").click()

    expect(page).to_have_url(f"{sandbox_app}/projects")
    expect(page.locator("#credit-counter")).to_contain_text("5,000")
    expect(page.locator("#sandbox-banner")).to_be_visible()
    screenshot(page, "sandbox-dashboard")

    # A project, and a reply with files in its chat, streamed by the sandbox model.
    page.locator("#project-name").fill("Todo app")
    page.get_by_role("button", name="Create project").click()
    expect(page.get_by_role("heading", name="Todo app")).to_be_visible()
    # The new project opens as its workspace: the chat is right there, no extra click.
    page.locator("#message").fill("Build a small todo app with Flask")
    page.locator("#composer button[type=submit]").click()
    reply = page.locator(".from-assistant .chat-markdown").last
    reply.wait_for(timeout=60_000)
    expect(page.locator(".from-assistant .code-path").first).to_be_visible()
    expect(page.locator("#credit-counter .credit-amount")).not_to_have_text("5,000")
    screenshot(page, "sandbox-chat")

    # The finished reply's files are version 1 by themselves: its chip says so.
    expect(page.locator(".reply-chip__version").last).to_have_text("v1", timeout=30_000)

    # Publish: a new repository on the sandbox GitHub, then a real commit.
    page.locator(".ws-tabs a", has_text="Publish").click()  # the workspace's Publish tab
    page.get_by_role("button", name="Create repository").click()
    # Repositories are asked for only now: the second consent, then back to the creation it finishes.
    page.get_by_role("button", name="Authorize").click()
    expect(page.get_by_text("on GitHub").first).to_be_visible()
    page.get_by_role("button", name="Push to GitHub").click()
    expect(page.locator("#publish-history a.commit-link").first).to_be_visible(timeout=30_000)
    screenshot(page, "sandbox-published")

    # Subscribe through the sandbox Stripe checkout; the webhook grants the plan's credits.
    balance = int(page.locator("#credit-counter").get_attribute("data-balance"))
    page.goto("/plans")
    page.get_by_role("button", name="Subscribe to Basic").click()
    page.get_by_role("button", name="Pay $9.00").click()
    expect(page.get_by_role("heading", name="Payment received")).to_be_visible()
    expect(page.locator("#credit-counter .credit-amount")).to_have_text(f"{balance + 20_000:,}", timeout=30_000)
    screenshot(page, "sandbox-subscribed")
    context.close()
    assert not problems, problems
