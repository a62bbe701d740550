"""A person's project changes by edits: a reply of edit blocks shows as a diff and becomes a version; a
reply whose edits fail says so, what it cost, and Fix the edits makes the version."""

from __future__ import annotations

import pytest

from app.services import chat as chat_service
from tests.e2e.conftest import screenshot, sign_in_browser
from tests.e2e.test_chat_journeys import send
from tests.snapshot_helpers import make_project, make_snapshot

APP_PY = "from flask import Flask\n\napp = Flask(__name__)\n\n\n@app.route(\"/\")\ndef index():\n    return \"Hello\"\n"


def edit_reply(search: str, replace: str) -> str:
    return ("I changed the greeting in `app.py`.\n\n```python path=app.py edit\n<<<<<<< SEARCH\n"
            f"{search}=======\n{replace}>>>>>>> REPLACE\n```\n\nReload the page to see it.")


def reload_until(page, condition, timeout_ms: int = 20_000) -> None:
    """Reload the page until `condition()` holds (the version is made just after the reply ends)."""
    waited = 0
    while not condition():
        if waited >= timeout_ms:
            screenshot(page, "edits-timeout")
        assert waited < timeout_ms, "condition not met in time"
        page.wait_for_timeout(400)
        waited += 400
        page.reload()


@pytest.fixture(autouse=True)
def _replies_finish():
    yield
    assert chat_service.GENERATIONS.wait_idle(20)


def test_edit_replies_show_as_diffs_and_failed_edits_are_fixed(page, app, make_user, live_server, openai_emulator):
    user = make_user("editor", balance=5000)
    project_id = make_project(app, user, "Greeter")
    make_snapshot(app, user, project_id, {"app.py": APP_PY, "README.md": "# Greeter\n"})
    sign_in_browser(page, app, user, live_server)
    page.goto(f"/projects/{project_id}/chat")

    openai_emulator.control.script_reply(edit_reply('    return "Hello"\n', '    return "Hello, world"\n'),
                                         chunk_size=12, chunk_delay_ms=15)
    send(page, "Make app.py greet the world")
    page.wait_for_selector(".from-assistant .chat-markdown .code-edit", timeout=30_000)
    reply = page.locator(".from-assistant").last
    assert reply.locator(".diff-del").inner_text().strip().endswith('return "Hello"')
    assert reply.locator(".diff-add").inner_text().strip().endswith('return "Hello, world"')
    assert "SEARCH" not in reply.inner_text()
    reload_until(page, lambda: page.locator("[data-reply-chip][data-version='2']").count() == 1)
    screenshot(page, "edits-diff")

    openai_emulator.control.script_reply(edit_reply('    return "Bye"\n', '    return "Ciao"\n'))
    send(page, "Now say ciao in app.py")
    reload_until(page, lambda: page.locator(".edit-errors").count() == 1)
    box = page.locator(".edit-errors")
    assert "could not be applied, so no version was made" in box.inner_text()
    assert "Block 1, change 1" in box.inner_text() and "not found in the file" in box.inner_text()
    assert "still charged" in box.inner_text() and "at most" in box.inner_text()
    box.scroll_into_view_if_needed()
    screenshot(page, "edits-failed")
    page.set_viewport_size({"width": 390, "height": 844})
    box.scroll_into_view_if_needed()
    screenshot(page, "edits-failed-phone", full_page=False)
    page.set_viewport_size({"width": 1280, "height": 800})

    openai_emulator.control.script_reply(edit_reply('    return "Hello, world"\n', '    return "Ciao"\n'))
    box.locator("button[type=submit]").click()
    reload_until(page, lambda: page.locator("[data-reply-chip][data-version='3']").count() == 1)
    screenshot(page, "edits-fixed")
