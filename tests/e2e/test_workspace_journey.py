"""The workspace's core loop, as a newcomer does it: new project → type, Enter → the reply streams → the
site runs in the Preview tab without another click → ask for a new look → the preview refreshes in place →
Changes shows the diff → Push → commit link. A preview error reaches the console and *Ask Sorya to fix
this* fills the composer. Desktop 1280×800 and phone 390×844; axe-core on every page of the journey."""

from __future__ import annotations

import pytest

from app.services import chat as chat_service
from tests.e2e.axe import assert_accessible
from tests.e2e.conftest import screenshot, sign_in_browser
from tests.integration.publish import conftest as publish_fixtures
from tests.integration.publish.conftest import GITHUB_LOGIN, connect_github, make_project, make_snapshot

github = publish_fixtures.github


@pytest.fixture(autouse=True)
def _replies_finish():
    yield
    assert chat_service.GENERATIONS.wait_idle(20)


def poll(page, condition, timeout_ms: int = 30_000) -> None:
    waited = 0
    while not condition():
        assert waited < timeout_ms, "condition not met in time"
        page.wait_for_timeout(50)
        waited += 50


def preview_frame(page):
    return page.frame_locator("#project-pane iframe[data-preview-frame]")


def frame_style(page, prop: str) -> str:
    return preview_frame(page).locator("body").evaluate(f"b => getComputedStyle(b).getPropertyValue('{prop}').trim()")


def test_the_core_loop_send_see_it_run_restyle_diff_push(page, app, make_user, live_server, github, openai_emulator):
    user = make_user(GITHUB_LOGIN, email="octo@example.com", balance=50_000)
    connect_github(app, user, github)
    sign_in_browser(page, app, user, live_server)
    openai_emulator.control.configure(chunk_delay_ms=15)
    page.goto("/projects")
    page.fill("#project-name", "Counter")
    page.locator("form.create-project-form button[type=submit]").click()
    page.locator("#composer").wait_for()
    assert page.locator("#project-pane").is_visible() and page.locator(".ws-chat").is_visible()
    assert_accessible(page, "workspace empty")
    screenshot(page, "workspace-1-new-project")

    actions = 0
    box = page.locator("#message")
    box.fill("Build a counter page with a button")
    box.press("Enter")  # Enter sends (Shift+Enter would be a new line)
    actions += 1
    live = page.locator("[data-live-text]").last
    poll(page, lambda: page.locator("[data-live-text]").count() and len(live.text_content() or "") > 40)
    first = len(live.text_content() or "")
    page.wait_for_timeout(400)
    if page.locator("[data-live-text]").count():
        assert len(live.text_content() or "") > first  # it grows while streaming
        assert live.locator("p").count() >= 1 and "```" not in (live.text_content() or "")  # HTML, not markdown
        screenshot(page, "workspace-2-mid-stream", full_page=False)
    assert box.input_value() == ""

    # Without another click the Preview shows the generated site, styled and with its script run.
    page.locator(".from-assistant .chat-markdown").last.wait_for(timeout=30_000)
    assert page.locator(".from-assistant .chat-markdown .code-file").count() >= 3  # rendered, not raw markdown
    poll(page, lambda: page.locator("#project-pane[data-version='1'] iframe[data-preview-frame]").count() == 1)
    preview_frame(page).locator("body[data-ready='true']").wait_for()
    assert actions == 1  # first version visible after one action
    assert frame_style(page, "--page") and frame_style(page, "display") == "grid"  # style.css loaded
    assert preview_frame(page).locator("#features li").count() >= 1  # app.js (a module) ran
    first_bg = frame_style(page, "background-color")
    poll(page, lambda: "version 1" in (page.locator("[data-announce]").text_content() or ""))
    assert_accessible(page, "workspace first version")
    screenshot(page, "workspace-3-first-version", full_page=False)

    # A second message changes the CSS: the preview refreshes to the new look without a page load.
    page.evaluate("window.__sameDocument = true")
    box.fill("Make it blue")
    box.press("Enter")
    poll(page, lambda: page.locator("#project-pane[data-version='2']").count() == 1)
    preview_frame(page).locator("body[data-ready='true']").wait_for()
    poll(page, lambda: frame_style(page, "background-color") != first_bg)
    assert page.evaluate("window.__sameDocument") is True
    screenshot(page, "workspace-4-restyled", full_page=False)

    page.locator(".ws-tabs a", has_text="Changes").click()
    page.locator("#project-pane[data-tab='changes'] .diff-summary").wait_for()
    assert "style.css" in page.locator("#project-pane").inner_text()
    assert "tab=changes" in page.url
    assert_accessible(page, "workspace changes")
    screenshot(page, "workspace-5-changes", full_page=False)

    page.locator(".ws-tabs a", has_text="Publish").click()
    page.get_by_role("button", name="Create repository").click()
    page.get_by_role("button", name="Push to GitHub").click()  # once linked, a push is one click
    commit_link = page.locator("#publish-history a.commit-link").first
    commit_link.wait_for()
    assert commit_link.get_attribute("href").startswith(f"{github.url}/octocat/counter/commit/")
    assert_accessible(page, "workspace publish")
    screenshot(page, "workspace-6-pushed", full_page=False)

    page.locator(".ws-tabs a", has_text="Files").click()
    page.locator("#project-pane[data-tab='files'] .file-path").wait_for()
    assert page.locator("#project-pane .file-path").inner_text() == "style.css"  # what the latest reply changed
    screenshot(page, "workspace-7-files", full_page=False)

    # Focus is visible: the ring is a real outline.
    page.keyboard.press("Tab")
    page.locator("#message").focus()
    outline = page.locator("#message").evaluate("e => getComputedStyle(e).outlineStyle + ' ' + getComputedStyle(e).boxShadow")
    assert outline != "none none"


def test_phone_switches_views_and_a_preview_error_reaches_the_composer(page, app, make_user, live_server):
    user = make_user("phoner", balance=5000)
    project_id = make_project(app, user, "Broken")
    make_snapshot(app, project_id, {
        "index.html": '<!doctype html><html lang="en"><head><title>B</title><script type="module" src="app.js"></script>'
                      "</head><body><h1>Broken</h1></body></html>\n",
        "app.js": "document.body.dataset.ready = 'true';\nnotDefinedAnywhere();\n",
    }, summary="A broken page")
    sign_in_browser(page, app, user, live_server)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"/projects/{project_id}")
    assert page.locator(".ws-switch").is_visible()
    assert page.locator("#composer").is_visible() and not page.locator("#project-pane").is_visible()
    assert page.locator("#composer").bounding_box()["y"] + 40 < 844  # the composer is on screen
    assert_accessible(page, "phone chat")
    screenshot(page, "workspace-phone-1-chat", full_page=False)

    page.locator(".ws-switch button", has_text="Preview").click()
    assert page.locator("#project-pane").is_visible() and not page.locator(".ws-chat").is_visible()
    preview_frame(page).locator("body[data-ready='true']").wait_for()
    error = page.locator("[data-console-list] li").first
    error.wait_for()
    assert "notDefinedAnywhere" in error.inner_text() and "app.js:2" in error.inner_text()
    screenshot(page, "workspace-phone-2-preview-error", full_page=False)
    error.get_by_role("button", name="Ask Sorya to fix this").click()
    assert page.locator("#composer").is_visible()
    draft = page.locator("#message").input_value()
    assert "notDefinedAnywhere" in draft and "app.js:2" in draft
    screenshot(page, "workspace-phone-3-ask-fix", full_page=False)
    # The preview's own error (the point of this test) is not a page error of Sorya's.
    page.problems[:] = [p for p in page.problems if "notDefinedAnywhere" not in p]
