"""A person creates a GitHub repository for a project and pushes a snapshot from the browser."""

from __future__ import annotations

from tests.e2e.conftest import screenshot, sign_in_browser
from tests.integration.publish import conftest as publish_fixtures
from tests.integration.publish.conftest import GITHUB_LOGIN, connect_github, make_project, make_snapshot

github = publish_fixtures.github  # the emulator fixture of the publish tests, shared here


def test_create_repository_and_push_from_the_project_page(page, app, make_user, live_server, github):
    user = make_user(GITHUB_LOGIN, email="octo@example.com", name="Octo Cat")
    connect_github(app, user, github)
    project_id = make_project(app, user, "Todo App", description="A small todo list")
    make_snapshot(app, project_id, {"index.html": "<h1>Todo</h1>\n", "app.js": "console.log('todo');\n"},
                  summary="First todo list")
    sign_in_browser(page, app, user, live_server)

    page.goto(f"/projects/{project_id}/publish")
    assert page.locator("#publish-name").input_value() == "todo-app"
    screenshot(page, "publish-create-desktop")
    page.get_by_role("button", name="Create repository").click()
    page.locator("text=Created octocat/todo-app on GitHub.").wait_for()
    assert page.get_by_role("link", name="octocat/todo-app").is_visible()

    page.get_by_role("button", name="Push to GitHub").click()
    commit_link = page.locator("#publish-history a.commit-link").first
    commit_link.wait_for()
    assert page.locator("text=Pushed 2 changed files").is_visible()
    href = commit_link.get_attribute("href")
    assert href.startswith(f"{github.url}/octocat/todo-app/commit/")
    assert github.control.repo_files("octocat", "todo-app") == {"index.html": "<h1>Todo</h1>\n",
                                                                "app.js": "console.log('todo');\n"}
    screenshot(page, "publish-pushed-desktop")
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    assert page.locator("#publish-history a.commit-link").first.is_visible()
    screenshot(page, "publish-pushed-phone")


def test_conflict_offer_in_the_browser(page, app, make_user, live_server, github):
    user = make_user(GITHUB_LOGIN, email="octo@example.com")
    connect_github(app, user, github)
    project_id = make_project(app, user, "Clash")
    make_snapshot(app, project_id, {"a.py": "a = 1\n"})
    sign_in_browser(page, app, user, live_server)
    page.goto(f"/projects/{project_id}/publish")
    page.get_by_role("button", name="Create repository").click()
    page.get_by_role("button", name="Push to GitHub").click()
    page.locator("#publish-history a.commit-link").first.wait_for()
    github.control.push_as_someone_else("octocat", "clash", {"a.py": "a = 'theirs'\n"})
    make_snapshot(app, project_id, {"a.py": "a = 2\n"})
    page.reload()
    page.get_by_role("button", name="Push to GitHub").click()
    page.locator("#publish-conflict").wait_for()
    screenshot(page, "publish-conflict-desktop")
    page.get_by_role("button", name="Push to a new branch").click()
    offer = page.locator("#publish-pr-offer a", has_text="Open a pull request")
    offer.wait_for()
    assert offer.get_attribute("href").endswith("/octocat/clash/compare/main...sorya/snapshot-2?expand=1")
    assert page.locator("text=Pushed snapshot #2 to the new branch sorya/snapshot-2").is_visible()
    screenshot(page, "publish-branch-desktop")
