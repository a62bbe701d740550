"""GitHub both ways in the browser: import a repository, change a file through the chat, someone else
pushes to GitHub, pull (one file merges, one conflicts), resolve, push to a branch with a pull request, and
follow the pull request until it is merged."""

from __future__ import annotations

import requests
from playwright.sync_api import expect

from app.services import chat as chat_service
from tests.e2e.conftest import screenshot, sign_in_browser
from tests.integration.publish import conftest as publish_fixtures
from tests.integration.publish.conftest import GITHUB_LOGIN, connect_github

github = publish_fixtures.github  # the emulator fixture of the publish tests, shared here

FILES = {"README.md": "# Shop\n", "app.py": "import flask\n\nTITLE = 'Shop'\n\n\ndef run():\n    return TITLE\n",
         "style.css": "body { color: black; }\n"}
REPLY = ("Here you go.\n\n```python path=app.py\nimport flask\n\nTITLE = 'My Shop'\n\n\ndef run():\n"
         "    return TITLE\n```\n\n```css path=style.css\nbody { color: navy; }\n```\n")


def wait_for(page, condition, timeout_ms: int = 30_000) -> None:
    waited = 0
    while not condition():
        assert waited < timeout_ms, "condition not met in time"
        page.wait_for_timeout(100)
        waited += 100


def a_minute_later(app, project_id: int) -> None:
    from app.extensions import db
    from app.models import ProjectSync

    with app.app_context():
        row = db.session.get(ProjectSync, project_id)
        if row is not None:
            row.checked_at = None
            db.session.commit()


def test_import_chat_pull_resolve_and_pull_request(page, app, make_user, live_server, github, openai_emulator):
    user = make_user(GITHUB_LOGIN, email="octo@example.com", name="Octo Cat", balance=5000)
    token = connect_github(app, user, github)
    headers = {"Authorization": f"token {token}"}
    requests.post(f"{github.url}/api/v3/user/repos", json={"name": "shop", "private": True}, headers=headers,
                  timeout=5).raise_for_status()
    github.control.push_as_someone_else("octocat", "shop", FILES, message="first")
    sign_in_browser(page, app, user, live_server)

    # Import.
    page.goto("/projects/import")
    assert page.get_by_text("Private").first.is_visible()
    screenshot(page, "github-import-desktop")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "github-import-phone")
    page.set_viewport_size({"width": 1280, "height": 800})
    page.get_by_role("button", name="Import octocat/shop").click()
    page.get_by_role("status").filter(has_text="3 files imported").wait_for()
    project_id = int(page.url.rstrip("/").split("/")[-1])

    # Change two files through the chat: the reply becomes the next version by itself.
    openai_emulator.control.script_reply(REPLY)
    page.goto(f"/projects/{project_id}")
    page.fill("#message", "Rename the shop and make the text navy")
    page.click("#composer button[type=submit]")
    page.locator("[data-reply-chip][data-state=version]").last.wait_for(timeout=30_000)
    assert chat_service.GENERATIONS.wait_idle(20)

    # Someone else pushes three commits: app.py changes elsewhere (merges), style.css on the same line.
    github.control.push_as_someone_else("octocat", "shop", {"README.md": "# Shop\n\nOpen daily.\n"})
    github.control.push_as_someone_else(
        "octocat", "shop", {"app.py": "import flask\n\nTITLE = 'Shop'\n\n\ndef run():\n    return TITLE.upper()\n"})
    github.control.push_as_someone_else("octocat", "shop", {"style.css": "body { color: green; }\n"})
    a_minute_later(app, project_id)  # the page asks GitHub at most once a minute
    page.goto(f"/projects/{project_id}")
    page.get_by_text("3 new commits on GitHub").wait_for()
    screenshot(page, "github-new-commits-desktop")
    page.get_by_role("button", name="Pull changes").click()
    page.locator(".flash").filter(has_text="1 conflict to resolve: style.css").wait_for()
    conflicts = page.get_by_role("region", name="Conflicts to resolve")
    expect(conflicts.get_by_text("style.css")).to_be_visible()  # waits: the pane settles after the flash
    screenshot(page, "github-conflict-desktop")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "github-conflict-phone")
    page.set_viewport_size({"width": 1280, "height": 800})
    page.get_by_role("button", name="Take GitHub’s style.css").click()
    page.locator(".flash").filter(has_text="Resolved style.css").wait_for()
    assert page.get_by_role("region", name="Conflicts to resolve").count() == 0

    # Push to a branch with a pull request.
    page.goto(f"/projects/{project_id}/publish")
    page.get_by_text("Push to a branch or open a pull request").click()
    page.get_by_label("Branch").fill("sorya/rename")
    page.get_by_label("Open a pull request into").check()
    page.get_by_role("button", name="Push to GitHub").click()
    page.get_by_text("opened pull request #1").first.wait_for()
    assert page.locator("[data-pr-state]").first.inner_text() == "Open"
    pushed = github.control.repo_files("octocat", "shop", ref="sorya/rename")
    assert pushed["app.py"] == "import flask\n\nTITLE = 'My Shop'\n\n\ndef run():\n    return TITLE.upper()\n"
    assert pushed["style.css"] == "body { color: green; }\n" and pushed["README.md"] == "# Shop\n\nOpen daily.\n"
    screenshot(page, "github-pr-open-desktop")

    # Merged on GitHub: the state shows once the minute's cache is over.
    github.control.merge_pull("octocat", "shop", 1)
    from app.extensions import db
    from app.models import Push
    with app.app_context():
        push = db.session.query(Push).filter(Push.pull_request.is_not(None)).one()
        push.pull_request = {**push.pull_request, "checked_at": "2000-01-01T00:00:00+00:00"}
        db.session.commit()
    page.reload()
    wait_for(page, lambda: page.locator("[data-pr-state]").first.inner_text() == "Merged")
    screenshot(page, "github-pr-merged-desktop")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "github-pr-merged-phone")
