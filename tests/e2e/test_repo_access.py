"""Repository access asked only when needed, in the browser: a person signs in (profile only), imports a
repository by name, GitHub asks for repository access in a second consent, and Sorya brings them back
with the import done."""

from __future__ import annotations

import re

import requests
from playwright.sync_api import expect

from tests.e2e.conftest import screenshot
from tests.e2e.test_sign_in import sign_in_through_github
from tests.integration.publish import conftest as publish_fixtures
from tests.integration.publish import test_github_app as app_fixtures
from tests.integration.publish.test_github_app import APP_ID, SLUG

github = publish_fixtures.github  # the emulator fixture of the publish tests, shared here
app_keys, github_app = app_fixtures.app_keys, app_fixtures.github_app  # GitHub App mode, shared too

FILES = {"README.md": "# Garden\n", "index.html": "<h1>Garden</h1>\n", "app.js": "console.log('grow')\n"}


def test_sign_in_narrow_then_import_asks_for_repositories_and_comes_back_done(page, app, live_server, github):
    owner = github.control.issue_token("octocat", ["repo"])
    requests.post(f"{github.url}/api/v3/user/repos", json={"name": "garden", "private": True},
                  headers={"Authorization": f"token {owner}"}, timeout=5).raise_for_status()
    github.control.push_as_someone_else("octocat", "garden", FILES, message="first")

    sign_in_through_github(page, "octocat")
    expect(page).to_have_url(live_server.url + "/projects")

    # The import page cannot list repositories yet: it offers the consent instead of an error.
    page.goto("/projects/import")
    grant = page.get_by_role("button", name="Allow access to my repositories")
    expect(grant).to_be_visible()
    screenshot(page, "repo-access-import-desktop")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "repo-access-import-phone")
    page.set_viewport_size({"width": 1280, "height": 800})

    # Import by name: GitHub asks for the repository scope this time, then Sorya finishes the import.
    page.get_by_label(re.compile("^Repository")).fill("octocat/garden")
    page.get_by_role("button", name="Import", exact=True).click()
    expect(page.get_by_role("heading", name=re.compile("^Authorize"))).to_be_visible()
    expect(page.get_by_text("Full control of private repositories")).to_be_visible()
    screenshot(page, "repo-access-second-consent")
    page.get_by_label("…or a new sandbox user").fill("octocat")
    page.get_by_role("button", name="Authorize").click()

    expect(page).to_have_url(re.compile(r"/projects/\d+$"))
    done = page.locator("#flash").get_by_text("Imported octocat/garden (main): 3 files imported.")
    expect(done).to_be_visible()
    screenshot(page, "repo-access-import-done-desktop")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "repo-access-import-done-phone")
    page.set_viewport_size({"width": 1280, "height": 800})

    # From now on the list shows their repositories, private ones marked, with no second ask.
    page.goto("/projects/import")
    expect(page.get_by_role("button", name="Import octocat/garden")).to_be_visible()
    expect(page.get_by_text("Private").first).to_be_visible()
    expect(page.get_by_role("button", name="Allow access to my repositories")).to_have_count(0)


def test_with_the_github_app_a_repository_without_it_offers_the_install_link(page, app, live_server, github,
                                                                          github_app):
    owner = github.control.issue_token("octocat", ["repo"])
    requests.post(f"{github.url}/api/v3/user/repos", json={"name": "garden", "private": True},
                  headers={"Authorization": f"token {owner}"}, timeout=5).raise_for_status()
    github.control.push_as_someone_else("octocat", "garden", FILES, message="first")
    sign_in_through_github(page, "octocat")
    expect(page).to_have_url(live_server.url + "/projects")

    page.goto("/projects/import")
    expect(page.get_by_text("You have not given the Sorya app any repository yet.")).to_be_visible()
    page.get_by_label(re.compile("^Repository")).fill("octocat/garden")
    page.get_by_role("button", name="Import", exact=True).click()
    install = page.get_by_role("button", name="Install the app on octocat/garden")
    expect(install).to_be_visible()
    assert install.get_attribute("href") == f"{github.url}/github-apps/{SLUG}/installations/new"
    screenshot(page, "repo-access-app-not-installed-desktop")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "repo-access-app-not-installed-phone")
    page.set_viewport_size({"width": 1280, "height": 800})

    # Installed on that repository (on GitHub): the same import now goes through, no repo scope asked.
    github.control.install_github_app(APP_ID, "octocat", ["octocat/garden"])
    page.get_by_role("button", name="Import", exact=True).click()
    expect(page.locator("#flash").get_by_text("Imported octocat/garden (main): 3 files imported.")).to_be_visible()
