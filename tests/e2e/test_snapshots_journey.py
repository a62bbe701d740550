"""A person takes a snapshot from a reply, previews a file, compares with the previous snapshot, and
downloads the zip. The reply is inserted directly (the chat UI is built elsewhere); the project page lists
recent replies with files and their Take snapshot control."""

from __future__ import annotations

import io
import re
import zipfile

from playwright.sync_api import expect

from tests.e2e.conftest import screenshot, sign_in_browser
from tests.snapshot_helpers import make_project, make_reply, make_snapshot, reply_with

FIRST_FILES = {
    "README.md": "# Recipe tracker\n\nKeep your recipes.\n",
    "app/main.py": "from flask import Flask\n\napp = Flask(__name__)\n\n\n@app.get('/')\ndef index():\n    return 'Hello'\n",
    "app/models.py": "RECIPES = []\n",
    "static/index.html": "<!doctype html><h1 id='t'>Recipes</h1><script>document.getElementById('t').textContent='Recipes (JS ran)';</script>",
    ".env": "SECRET_KEY=supersecretvalue\n",
}


def test_take_preview_diff_and_download(page, app, make_user, live_server, tmp_path):
    user = make_user("cook")
    project_id = make_project(app, user, "Recipe tracker")
    make_snapshot(app, user, project_id, FIRST_FILES, summary="Initial upload")
    reply = reply_with(
        {
            "app/main.py": "from flask import Flask\n\napp = Flask(__name__)\n\n\n@app.get('/')\ndef index():\n"
                           "    return 'Hello, cooks!'\n\n\n@app.get('/recipes')\ndef recipes():\n    return {'recipes': []}\n",
            "app/search.py": "def search(term):\n    return [r for r in RECIPES if term in r]\n",
        },
        intro="I added a search module and a recipes route. <script>alert('xss')</script>",
    )
    make_reply(app, user, project_id, reply)
    sign_in_browser(page, app, user, live_server)

    page.goto(f"/projects/{project_id}")  # the workspace: the reply in its conversation, with its chip
    screenshot(page, "snapshots-1-project-page")
    page.locator(".reply-chip").get_by_role("button", name="Make the version").click()
    page.wait_for_url("**/snapshots/*")
    flash = page.locator("#flash").inner_text()
    assert "Snapshot #2 taken: 2 from this reply" in flash and "4 carried over" in flash
    screenshot(page, "snapshots-2-taken")
    assert page.get_by_role("heading", name="Snapshot #2").is_visible()
    page.locator(".file-tree").get_by_role("link", name="search.py").click()
    page.locator(".file-path", has_text="app/search.py").wait_for()
    assert "search.py" in page.url  # htmx pushed the file's address
    # The tree's selection moves after htmx settles the swap: wait for it rather than read it at once.
    expect(page.locator(".tree-file.selected")).to_have_text(re.compile(r"^\s*search\.py"))
    assert page.locator(".highlight .k", has_text="def").first.is_visible()
    screenshot(page, "snapshots-3-preview-file")

    page.locator(".file-tree").get_by_role("link", name=".env").click()
    page.locator(".file-path", has_text=".env").wait_for()
    assert "supersecretvalue" not in page.content()
    assert page.get_by_text("1 secret hidden in this preview").is_visible()

    page.locator(".file-tree").get_by_role("link", name="index.html").click()
    page.get_by_role("link", name="Rendered").click()
    frame = page.frame_locator("iframe.html-preview")
    assert frame.locator("h1").inner_text() == "Recipes (JS ran)"  # scripts run, in their own origin
    screenshot(page, "snapshots-4-html-preview")

    page.get_by_role("button", name="Changes from previous").click()
    page.wait_for_url("**/diff**")
    assert page.locator(".diff-summary").inner_text().count("1 added") == 1
    assert page.locator("td.ins", has_text="return 'Hello, cooks!'").is_visible()
    screenshot(page, "snapshots-5-diff-inline")
    page.get_by_role("link", name="Side by side").click()
    page.locator("table.diff-split").wait_for()
    assert page.locator("td.del", has_text="return 'Hello'").is_visible()
    screenshot(page, "snapshots-6-diff-split")

    page.goto(f"/projects/{project_id}?tab=files")
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download zip").first.click()
    path = tmp_path / "snapshot.zip"
    download_info.value.save_as(path)
    names = zipfile.ZipFile(io.BytesIO(path.read_bytes())).namelist()
    assert "recipe-tracker-snapshot-2/app/search.py" in names and len(names) == 6
    # The reply's hostile text shows in the conversation as text, never as a script.
    assert page.locator("script", has_text="alert('xss')").count() == 0

    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"/projects/{project_id}?tab=files")
    screenshot(page, "snapshots-7-project-phone")
    page.goto(f"/projects/{project_id}/diff?view=split")
    screenshot(page, "snapshots-8-diff-phone")


def test_dashboard_empty_state_and_list(page, app, make_user, live_server):
    user = make_user("newbie")
    sign_in_browser(page, app, user, live_server)
    page.goto("/projects")
    assert page.get_by_role("heading", name="Start your first project").is_visible()
    screenshot(page, "snapshots-dashboard-empty")
    page.get_by_label("Name").fill("Weather bot")
    page.get_by_role("button", name="Create project").click()
    page.wait_for_url("**/projects/*")
    assert page.get_by_role("heading", name="Weather bot").is_visible()
    assert page.get_by_text("No version yet").is_visible()
    screenshot(page, "snapshots-project-empty")
    project_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
    make_snapshot(app, user, project_id, {"bot.py": "print('sunny')\n"})
    make_project(app, user, "Second idea")
    page.goto("/projects")
    assert page.get_by_role("link", name="Weather bot").is_visible()
    screenshot(page, "snapshots-dashboard-list")
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    screenshot(page, "snapshots-dashboard-phone")
