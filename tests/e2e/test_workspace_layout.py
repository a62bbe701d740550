"""The workspace as a screen: on a phone the header is one row whose links fold into a Menu (also without
JavaScript); on a desktop the two panes fill the viewport, the chat scrolls inside its pane and the
preview fills its own; a reply streams as rendered file cards that grow in place and edit blocks that show
as diffs; sends log no htmx error; the Files tab renders Markdown with Source, Raw and Copy."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from app.services import chat as chat_service
from tests.e2e.axe import assert_accessible
from tests.e2e.conftest import CHROMIUM_FLAGS, screenshot, sign_in_browser  # noqa: F401
from tests.snapshot_helpers import make_project, make_reply, make_snapshot

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
SITE = {
    "index.html": '<!doctype html><html lang="en"><head><title>Counter</title><link rel="stylesheet" href="style.css">'
                  '</head><body><h1>Counter</h1><button>+1</button></body></html>\n',
    "style.css": "body { font-family: sans-serif; background: #eef; }\n",
    "README.md": "# Counter\n\nA **tiny** counter page.\n\n## Run it\n\n- open `index.html`\n- click the button\n\n"
                 "```js path=app.js\nlet n = 0;\n```\n\n<script>window.bad = 1</script>\n",
}
# Collected in the page: htmx's own error events (htmx also logs each one with console.error).
HTMX_ERRORS_JS = """() => {
  window.__htmxErrors = [];
  ['htmx:oobErrorNoTarget', 'htmx:targetError', 'htmx:swapError', 'htmx:responseError', 'htmx:sendError']
    .forEach(name => document.body.addEventListener(name, () => window.__htmxErrors.push(name)));
}"""


@pytest.fixture(autouse=True)
def _replies_finish():
    yield
    assert chat_service.GENERATIONS.wait_idle(20)


@pytest.fixture
def sandbox_mode(app, monkeypatch):
    """The app as the sandbox shows it: the header carries the sandbox label."""
    monkeypatch.setattr(app.extensions["sorya.config"], "SORYA_SANDBOX", True)


def poll(page, condition, timeout_ms: int = 30_000) -> None:
    waited = 0
    while not condition():
        assert waited < timeout_ms, "condition not met in time"
        page.wait_for_timeout(40)
        waited += 40


def header_bottom(page) -> float:
    """Where the page's content starts: under the header and, when shown, the sandbox banner."""
    return page.evaluate("""() => Math.max(...['.site-header', '#sandbox-banner'].map(s => document.querySelector(s))
        .filter(e => e && e.offsetParent !== null).map(e => e.getBoundingClientRect().bottom))""")


def test_the_phone_header_is_one_row_with_a_menu_on_every_page(page, app, make_user, live_server, sandbox_mode):
    user = make_user("phoney", balance=5000)
    project_id = make_project(app, user, "Counter")
    make_snapshot(app, user, project_id, SITE)
    sign_in_browser(page, app, user, live_server)
    page.set_viewport_size(PHONE)
    pages = {"landing": "/", "chat": "/chat", "workspace": f"/projects/{project_id}", "projects": "/projects",
             "account": "/account", "usage": "/usage", "plans": "/plans"}
    for name, url in pages.items():
        page.goto(url)
        assert header_bottom(page) <= 60, f"{name}: the header ends at {header_bottom(page)} px"
        assert page.locator(".sandbox-tag").is_visible() and not page.locator("#sandbox-banner").is_visible()
        assert page.locator("#credit-counter").is_visible()
        assert page.get_by_role("link", name="Usage", exact=True).count() == 0  # folded into the menu
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], f"{name} scrolls sideways"
        assert_accessible(page, f"phone {name}")
        screenshot(page, f"layout-phone-{name}", full_page=False)

    page.goto(f"/projects/{project_id}")
    page.locator(".nav-menu > summary").click()
    usage = page.get_by_role("link", name="Usage", exact=True)
    assert usage.is_visible() and page.get_by_role("button", name="Sign out").is_visible()
    assert page.locator(".nav-menu .nav-links").bounding_box()["y"] >= header_bottom(page) - 1  # drops under the bar
    # The open button's colours ease in (Pico's transition): judge contrast once they have settled.
    expect(page.locator(".nav-menu > summary")).to_have_css("background-color", "rgb(17, 24, 39)")
    assert_accessible(page, "phone menu open")
    screenshot(page, "layout-phone-menu-open", full_page=False)
    usage.click()
    page.wait_for_url("**/usage")
    assert page.locator(".nav-menu").get_attribute("open") is None  # a new page starts with the menu closed

    # On a desktop the links are in the bar, the Menu button is not, and the sandbox banner is back.
    page.set_viewport_size(DESKTOP)
    page.goto("/account")
    assert page.get_by_role("link", name="Usage", exact=True).is_visible()
    assert not page.locator(".nav-menu > summary").is_visible() and page.locator("#sandbox-banner").is_visible()
    assert header_bottom(page) <= 104  # no taller than before the menu (83 px + the 22 px banner)
    screenshot(page, "layout-desktop-header", full_page=False)


def test_the_menu_opens_without_javascript(browser, app, make_user, live_server):
    user = make_user("nojs", balance=100)
    context = browser.new_context(viewport=PHONE, base_url=live_server.url, java_script_enabled=False)
    page = context.new_page()
    try:
        sign_in_browser(page, app, user, live_server)
        page.goto("/account")
        assert not page.get_by_role("link", name="Plans", exact=True).is_visible()
        page.locator(".nav-menu > summary").click()
        page.get_by_role("link", name="Plans", exact=True).click()
        page.wait_for_url("**/plans")
        screenshot(page, "layout-phone-nojs-plans", full_page=False)
    finally:
        context.close()


def test_two_sends_log_no_htmx_error(page, app, make_user, live_server, openai_emulator):
    user = make_user("sender", balance=50_000)
    project_id = make_project(app, user, "Counter")
    console: list[str] = []
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
    sign_in_browser(page, app, user, live_server)
    page.goto(f"/projects/{project_id}")
    page.evaluate(HTMX_ERRORS_JS)
    for number, text in enumerate(("Build a counter page", "Make it blue"), start=1):
        openai_emulator.control.script_reply(f"Reply {number}: here it is.\n\nAll done.", chunk_size=6, chunk_delay_ms=10)
        page.fill("#message", text)
        page.press("#message", "Enter")
        poll(page, lambda n=number: page.locator(".from-assistant .chat-markdown").count() == n)
    assert page.locator("#chat-empty").is_hidden()
    assert page.evaluate("window.__htmxErrors") == []
    assert not [line for line in console if "htmx" in line.lower()], console


def test_a_reply_streams_as_cards_that_grow_in_place_and_edits_as_diffs(page, app, make_user, live_server, openai_emulator):
    user = make_user("streamer", balance=50_000)
    project_id = make_project(app, user, "Counter")
    make_snapshot(app, user, project_id, {**SITE, "counter.js": "".join(f"const c{i} = {i};\n" for i in range(12))})
    code = "".join(f"export function step{i}(count) {{ return count + {i}; }}\n" for i in range(80))
    search = "".join(f"const c{i} = {i};\n" for i in range(12))
    replace = "".join(f"const c{i} = {i + 100};\n" for i in range(12))
    reply = (f"Here are the steps.\n\n```javascript path=steps.js\n{code}```\n\nAnd the counter:\n\n"
             f"```javascript path=counter.js edit\n<<<<<<< SEARCH\n{search}=======\n{replace}>>>>>>> REPLACE\n```\n\nDone.\n")
    openai_emulator.control.script_reply(reply, chunk_size=10, chunk_delay_ms=12)
    sign_in_browser(page, app, user, live_server)
    page.goto(f"/projects/{project_id}")
    page.fill("#message", "Add the steps")
    page.press("#message", "Enter")

    card = page.locator("[data-live-text] details.code-file--open").first
    card.wait_for(timeout=20_000)
    assert card.locator(".code-path").inner_text() == "steps.js"
    page.evaluate("document.querySelector('[data-live-text] details.code-file--open').dataset.mark = 'same'")
    lines = card.locator("[data-live-lines]")
    first = lines.inner_text()
    poll(page, lambda: lines.inner_text() != first)
    assert card.get_attribute("data-mark") == "same"  # grown in place, not rendered again
    assert "javascript · " in lines.inner_text() and "writing…" in lines.inner_text()
    screenshot(page, "layout-desktop-mid-stream", full_page=False)

    diff = page.locator("[data-live-text] .code-edit.code-file--open")
    poll(page, lambda: diff.count() == 1 and diff.locator(".diff-add").count() >= 1, timeout_ms=20_000)
    live_text = page.locator("[data-live-text]").inner_text()
    assert "SEARCH" not in live_text and "=======" not in live_text and "<<<<<<<" not in live_text
    screenshot(page, "layout-desktop-mid-stream-edit", full_page=False)

    page.locator(".from-assistant .chat-markdown").last.wait_for(timeout=20_000)
    finished = page.locator(".from-assistant").last
    assert finished.locator("figure.code-file .code-path", has_text="steps.js").count() == 1
    assert finished.locator(".code-edit .diff-del").count() == 12 and finished.locator(".code-edit .diff-add").count() == 12
    poll(page, lambda: page.locator("#project-pane[data-version='2']").count() == 1)
    screenshot(page, "layout-desktop-finished", full_page=False)


def test_the_phone_shows_a_reply_streaming_and_finished(page, app, make_user, live_server, openai_emulator):
    user = make_user("phonestream", balance=50_000)
    project_id = make_project(app, user, "Counter")
    code = "".join(f"<p>Line {i} of the page</p>\n" for i in range(60))
    openai_emulator.control.script_reply(f"A page.\n\n```html path=index.html\n{code}```\n\nOpen the preview.\n",
                                         chunk_size=10, chunk_delay_ms=12)
    sign_in_browser(page, app, user, live_server)
    page.set_viewport_size(PHONE)
    page.goto(f"/projects/{project_id}")
    page.fill("#message", "A page")
    page.press("#message", "Enter")
    page.locator("[data-live-text] details.code-file--open").first.wait_for(timeout=20_000)
    assert page.locator("#composer").bounding_box()["y"] + 40 < PHONE["height"]
    screenshot(page, "layout-phone-mid-stream", full_page=False)
    page.locator(".from-assistant .chat-markdown").last.wait_for(timeout=20_000)
    assert page.locator("#composer").bounding_box()["y"] + 40 < PHONE["height"]
    assert_accessible(page, "phone finished reply")
    screenshot(page, "layout-phone-finished", full_page=False)


def test_the_desktop_workspace_fills_the_viewport(page, app, make_user, live_server):
    user = make_user("fitter", balance=5000)
    project_id = make_project(app, user, "Counter")
    make_snapshot(app, user, project_id, SITE)
    for i in range(8):
        make_reply(app, user, project_id, f"Reply {i}.\n\n" + "A paragraph with a few words in it. " * 12)
    sign_in_browser(page, app, user, live_server)
    page.goto(f"/projects/{project_id}")
    page.locator("#project-pane iframe[data-preview-frame]").wait_for()
    height = DESKTOP["height"]
    assert page.evaluate("document.scrollingElement.scrollHeight") <= height  # the page itself does not scroll
    conversation = page.locator(".ws-chat .conversation")
    sizes = conversation.evaluate("e => [e.scrollHeight, e.clientHeight, e.scrollTop]")
    assert sizes[0] > sizes[1] + 200 and sizes[2] + sizes[1] >= sizes[0] - 60  # scrolls inside, at the latest
    composer = page.locator("#composer").bounding_box()
    assert composer["y"] + composer["height"] <= height and composer["y"] > height - 200
    pane = page.locator("#project-pane").bounding_box()
    assert pane["y"] + pane["height"] <= height and pane["y"] + pane["height"] > height - 40
    frame = page.locator("#project-pane iframe[data-preview-frame]").bounding_box()
    assert frame["height"] > pane["height"] - 140 and frame["width"] > pane["width"] - 60  # fills its pane
    assert_accessible(page, "desktop workspace")
    screenshot(page, "layout-desktop-workspace", full_page=False)


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_files_shows_markdown_with_source_raw_and_copy(page, app, make_user, live_server, viewport):
    user = make_user(f"reader{viewport['width']}", balance=5000)
    project_id = make_project(app, user, "Counter")
    make_snapshot(app, user, project_id, SITE)
    make_snapshot(app, user, project_id, {"style.css": "body { background: #fee; }\n"}, carry_over=True)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    sign_in_browser(page, app, user, live_server)
    page.set_viewport_size(viewport)
    page.goto(f"/projects/{project_id}?tab=files")
    assert page.locator("#file-view").get_attribute("data-path") == "style.css"  # what the reply changed
    page.locator("#project-pane .tree-file a", has_text="README.md").click()
    markdown = page.locator("#file-view .markdown-file")
    markdown.wait_for()
    assert markdown.locator("h1").inner_text() == "Counter" and markdown.locator("strong").inner_text() == "tiny"
    assert markdown.locator("figure.code-file .code-path").inner_text() == "app.js"
    assert page.evaluate("window.bad") is None and "<script>" in markdown.inner_text()  # shown as text
    copy = page.locator("#file-view .file-copy")
    assert copy.is_visible()
    copy.click()
    poll(page, lambda: copy.inner_text() == "Copied")
    assert page.evaluate("navigator.clipboard.readText()") == SITE["README.md"]
    assert_accessible(page, f"files markdown {viewport['width']}")
    screenshot(page, f"layout-files-markdown-{viewport['width']}", full_page=False)

    page.locator("#file-view .segmented a", has_text="Source").click()
    page.locator("#file-view .highlighttable").wait_for()
    assert page.locator("#file-view .markdown-file").count() == 0
    screenshot(page, f"layout-files-markdown-source-{viewport['width']}", full_page=False)
    raw_url = page.locator("#file-view a.file-raw").get_attribute("href")
    raw = page.request.get(raw_url)
    assert raw.status == 200 and raw.headers["content-type"].startswith("text/plain") and raw.text() == SITE["README.md"]


def test_copy_is_not_shown_without_javascript(browser, app, make_user, live_server):
    user = make_user("nojsfiles", balance=100)
    project_id = make_project(app, user, "Counter")
    make_snapshot(app, user, project_id, SITE)
    context = browser.new_context(viewport=DESKTOP, base_url=live_server.url, java_script_enabled=False)
    page = context.new_page()
    try:
        sign_in_browser(page, app, user, live_server)
        page.goto(f"/projects/{project_id}?tab=files&path=README.md")
        assert page.locator("#file-view .markdown-file h1").is_visible()
        assert page.locator("#file-view .file-copy").count() == 1 and not page.locator("#file-view .file-copy").is_visible()
        assert page.locator("#file-view .code-copy").count() == 1 and not page.locator("#file-view .code-copy").is_visible()
        assert page.locator("#file-view a.file-raw").is_visible()
        page.locator("#file-view .segmented a", has_text="Source").click()
        assert page.locator("#file-view .highlighttable").is_visible()
    finally:
        context.close()
