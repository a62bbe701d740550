"""A person chats: the reply grows while it streams, the counter drops, Stop works, a reload continues the
reply, and hostile model text is shown as text."""

from __future__ import annotations

import pytest

from app.services import chat as chat_service
from tests.e2e.conftest import screenshot, sign_in_browser

REPLY = (
    "Here is a tiny app.\n\n```python path=app/main.py\nfrom flask import Flask\n\napp = Flask(__name__)\n\n\n"
    '@app.route("/")\ndef index():\n    return "Hello"\n```\n\nRun it with `flask --app app.main run`. '
    + " ".join(f"Detail{i}." for i in range(60))
)


@pytest.fixture(autouse=True)
def _replies_finish():
    yield
    assert chat_service.GENERATIONS.wait_idle(20)


@pytest.fixture
def chatting(page, app, make_user, live_server):
    user = make_user("streamer", balance=5000)
    sign_in_browser(page, app, user, live_server)
    page.goto("/chat")
    return page


def send(page, text):
    page.fill("#message", text)
    page.click("#composer button[type=submit]")


def poll(page, condition, timeout_ms: int = 30_000) -> None:
    """Wait until `condition()` holds (wait_for_function would evaluate a string, which the CSP forbids)."""
    waited = 0
    while not condition():
        assert waited < timeout_ms, "condition not met in time"
        page.wait_for_timeout(50)
        waited += 50


def live_length(page) -> int:
    live = page.locator("[data-live-text]")
    return len(live.last.text_content() or "") if live.count() else 0


def counter_value(page) -> int:
    return int(page.locator("#credit-counter").get_attribute("data-balance"))


def test_the_reply_grows_while_streaming_and_the_counter_drops_without_reload(chatting, openai_emulator):
    page = chatting
    openai_emulator.control.script_reply(REPLY, chunk_size=6, chunk_delay_ms=40)
    assert page.get_by_text("Start the conversation").is_visible()
    before = counter_value(page)
    send(page, "Build me a tiny Flask app")

    assert page.locator(".from-user .chat-text").last.inner_text() == "Build me a tiny Flask app"
    live = page.locator("[data-live-text]").last
    poll(page, lambda: live_length(page) > 20)
    first_length = len(live.inner_text())
    page.wait_for_timeout(600)
    second_length = len(live.inner_text())
    assert second_length > first_length
    assert page.locator("textarea#message").input_value() == ""  # the box is emptied after sending
    screenshot(page, "chat-streaming")

    page.wait_for_selector(".from-assistant .chat-markdown", timeout=30_000)
    assert page.locator("[data-stream-url]").count() == 0
    reply = page.locator(".from-assistant").last
    assert reply.locator(".code-path").inner_text() == "app/main.py"
    assert reply.locator(".code-copy").is_visible()
    assert "Detail59." in reply.inner_text()
    poll(page, lambda: counter_value(page) < before)
    after = counter_value(page)
    cost = int(reply.locator(".reply-cost").inner_text().split()[0].replace(",", ""))
    assert after == before - cost and cost > 0
    assert page.locator("#credit-counter .credit-amount").inner_text() == f"{after:,}"
    screenshot(page, "chat-finished")
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    screenshot(page, "chat-finished-phone")


def test_stop_button_stops_the_reply(chatting, openai_emulator):
    page = chatting
    openai_emulator.control.script_reply(REPLY * 3, chunk_size=6, chunk_delay_ms=40)
    send(page, "Write a lot")
    poll(page, lambda: live_length(page) > 10)
    page.click(".stop-button")
    note = page.locator(".reply-note")
    note.wait_for(timeout=30_000)  # the stop travels through the stream and its end: slow under a loaded CI
    assert "Stopped" in note.inner_text()
    text = page.locator(".from-assistant .chat-markdown").last.inner_text()
    assert 0 < len(text) < len(REPLY)
    screenshot(page, "chat-stopped")


def test_a_reload_mid_stream_continues_the_reply(chatting, openai_emulator):
    page = chatting
    openai_emulator.control.script_reply(REPLY, chunk_size=6, chunk_delay_ms=30)
    send(page, "Stream something")
    poll(page, lambda: live_length(page) > 30)
    page.reload()
    # After the reload the reply is still live and picks up where it is, from its stream.
    assert page.locator("[data-stream-url]").count() == 1
    page.wait_for_selector(".from-assistant .chat-markdown", timeout=30_000)
    final = page.locator(".from-assistant").last.inner_text()
    assert "Here is a tiny app." in final and "Detail59." in final
    assert final.count("Here is a tiny app.") == 1
    screenshot(page, "chat-after-reload")


def test_hostile_model_text_is_shown_as_text_and_never_runs(chatting, openai_emulator):
    page = chatting
    hostile = 'Careful: <img src=x onerror=alert(1)> and <script>alert("xss")</script> [link](javascript:alert(3))'
    openai_emulator.control.script_reply(hostile, chunk_size=5, chunk_delay_ms=20)
    send(page, "<b>bold?</b> <img src=y onerror=alert(2)>")
    page.wait_for_selector(".from-assistant .chat-markdown", timeout=30_000)
    reply = page.locator(".from-assistant").last
    assert "<img src=x onerror=alert(1)>" in reply.inner_text()
    assert '<script>alert("xss")</script>' in reply.inner_text()
    assert reply.locator("img, script").count() == 0
    assert page.locator(".from-user").last.inner_text().count("<b>bold?</b>") == 1
    assert page.locator("main img").count() == 0
    page.reload()
    assert page.locator("main img, main script").count() == 0
    assert not page.problems  # no dialog was raised, no CSP violation
    screenshot(page, "chat-hostile-text")
