"""A newcomer signs in with GitHub (through the emulator's consent page), sees their 5,000 credits,
creates an API token on the account page and signs out."""

from __future__ import annotations

import json
import re
from pathlib import Path

from playwright.sync_api import expect

from tests.e2e.conftest import screenshot
from tests.servers import JobsWorker


def sign_in_through_github(page, login: str) -> None:
    page.goto("/auth/login")
    expect(page.get_by_role("heading", name="Sign in to Sorya")).to_be_visible()
    screenshot(page, "sign-in")
    page.get_by_role("button", name="Continue with GitHub").click()

    expect(page.get_by_role("heading", name=re.compile("^Authorize"))).to_be_visible()
    # Sign-in asks who the person is, nothing of their repositories (a second consent does, when needed).
    expect(page.get_by_text("Read all user profile data")).to_be_visible()
    expect(page.get_by_text("Full control of private repositories")).to_have_count(0)
    page.get_by_label("…or a new sandbox user").fill(login)
    screenshot(page, "sign-in-github-consent")
    page.get_by_role("button", name="Authorize").click()


def test_a_newcomer_signs_in_and_sees_their_free_credits(page, app, live_server):
    sign_in_through_github(page, "newcomer")

    # They land on the projects dashboard.
    expect(page).to_have_url(live_server.url + "/projects")
    expect(page.locator("#credit-counter")).to_contain_text("5,000")
    expect(page.locator("#flash")).to_contain_text("Welcome to Sorya, newcomer!")
    expect(page.get_by_role("button", name="Sign out", exact=True)).to_be_visible()
    screenshot(page, "sign-in-landed")

    page.get_by_role("link", name="Account").click()
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    expect(page.locator("#account-login")).to_have_text("newcomer")
    expect(page.locator("#account-balance")).to_contain_text("5,000")
    expect(page.get_by_text("Connected as @newcomer")).to_be_visible()
    expect(page.get_by_text("No tokens yet")).to_be_visible()
    screenshot(page, "account-page")

    # Creating a token swaps the tokens section in place (htmx) and shows the token once.
    page.get_by_label("New token name").fill("CI deploys")
    page.get_by_label("Access").select_option("read")
    page.get_by_label("Expires").select_option("30")
    page.get_by_role("button", name="Create token").click()
    token = page.locator("#new-token")
    expect(token).to_have_text(re.compile(r"^sorya_[A-Za-z0-9_-]{43}$"))
    expect(page.get_by_role("cell", name="CI deploys", exact=True)).to_be_visible()
    row = page.locator(".token-table tbody tr").first
    expect(row).to_contain_text("Read only")
    expect(row).to_contain_text("in 30 days")
    assert page.url.endswith("/account")  # no navigation: the section was swapped
    screenshot(page, "account-token-created")

    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    expect(page.locator("#new-token")).to_have_count(0)  # shown once, never again
    expect(page.get_by_role("cell", name="CI deploys", exact=True)).to_be_visible()
    screenshot(page, "account-page-phone")

    page.set_viewport_size({"width": 1280, "height": 800})
    page.get_by_role("button", name="Sign out", exact=True).click()
    expect(page.locator("#flash")).to_contain_text("You are signed out.")
    expect(page.locator("#credit-counter")).to_have_count(0)


def test_a_token_name_error_shows_next_to_the_field(page, live_server):
    sign_in_through_github(page, "fieldcheck")
    page.goto("/account")
    page.get_by_label("New token name").fill("   ")
    page.get_by_role("button", name="Create token").click()
    expect(page.locator("#token-name-error")).to_have_text(re.compile("Give the token a name"))
    screenshot(page, "account-token-error")


def test_cancelling_on_github_explains_and_offers_to_try_again(page, live_server):
    page.goto("/account")  # a page that needs an account sends the visitor to sign in
    expect(page.get_by_role("heading", name="Sign in to Sorya")).to_be_visible()
    page.get_by_role("button", name="Continue with GitHub").click()
    page.get_by_role("button", name="Cancel").click()

    expect(page.get_by_role("heading", name="Sign-in did not finish")).to_be_visible()
    expect(page.locator("#sign-in-error")).to_contain_text("You cancelled the authorization on GitHub")
    expect(page.get_by_role("button", name="Try again with GitHub")).to_be_visible()
    screenshot(page, "sign-in-cancelled")

    page.get_by_role("button", name="Try again with GitHub").click()
    page.get_by_label("…or a new sandbox user").fill("second-try")
    page.get_by_role("button", name="Authorize").click()
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()  # back where they were going


def test_a_revoked_github_grant_is_shown_with_a_way_to_reconnect(page, app, live_server):
    from app.extensions import db
    from app.models import User
    from app.services import accounts

    sign_in_through_github(page, "revokee")
    with app.app_context():
        user_id = db.session.query(User.id).filter_by(login="revokee").scalar()
        accounts.mark_github_token_revoked(db.session, user_id)  # as a publishing call answered 401 would

    page.goto("/account")
    expect(page.locator("#github-revoked")).to_contain_text("GitHub no longer accepts Sorya's access to @revokee")
    screenshot(page, "account-github-revoked", full_page=False)
    page.get_by_role("button", name="Reconnect GitHub").click()
    page.get_by_label("…or a new sandbox user").fill("revokee")
    page.get_by_role("button", name="Authorize").click()
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    expect(page.get_by_text("Connected as @revokee")).to_be_visible()
    expect(page.locator("#github-revoked")).to_have_count(0)


def test_download_my_data_is_prepared_in_the_background(page, app_config, live_server):
    # With Redis the export is an RQ job: a worker process prepares it while the page polls.
    with JobsWorker(app_config):
        sign_in_through_github(page, "exporter")
        page.goto("/account")
        page.get_by_role("button", name="Prepare my data").click()
        expect(page.locator("#export-status")).to_contain_text(re.compile("Preparing your data…|Your data is ready"))
        screenshot(page, "account-export-preparing")
        download_link = page.get_by_role("button", name="Download my data")
        expect(download_link).to_be_visible(timeout=20_000)
        assert page.url.endswith("/account")  # htmx swapped and polled the section in place
        expect(page.locator("#export-status")).to_contain_text("Your data is ready")
        screenshot(page, "account-export-ready")
        with page.expect_download() as download_info:
            download_link.click()
        download = download_info.value
        assert download.suggested_filename == "sorya-exporter-data.json"
        data = json.loads(Path(download.path()).read_text())
        assert data["account"]["login"] == "exporter"

        page.set_viewport_size({"width": 390, "height": 844})
        page.reload()
        page.locator("#data-export").scroll_into_view_if_needed()
        screenshot(page, "account-export-ready-phone")
