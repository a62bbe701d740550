"""A newcomer opens Sorya."""

from tests.e2e.conftest import screenshot, sign_in_browser


def test_landing_page_reads_well_on_desktop_and_phone(page, live_server):
    page.goto("/")
    assert page.get_by_role("heading", name="Describe it. Sorya writes the code.").is_visible()
    assert page.locator("text=5,000 free credits").is_visible()
    screenshot(page, "landing-desktop")
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    assert page.get_by_role("heading", name="Describe it. Sorya writes the code.").is_visible()
    screenshot(page, "landing-phone")


def test_signed_in_header_shows_the_credit_counter(page, app, make_user, live_server):
    user = make_user("hubot", balance=4321)
    sign_in_browser(page, app, user, live_server)
    page.goto("/")
    assert page.locator("#credit-counter").inner_text().startswith("4,321")
    screenshot(page, "landing-signed-in")
