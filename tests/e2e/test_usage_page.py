"""A person checks what they spent: the usage page at desktop and phone widths."""

from __future__ import annotations

from datetime import timedelta

from app.extensions import db
from app.models import LedgerEntry
from app.models.base import utcnow
from app.services import credits
from tests.e2e.conftest import screenshot, sign_in_browser


def spend(app, user, key, amount, model, days_ago, **meta):
    with app.app_context():
        entry = credits.post_ledger_entry(
            db.session, user_id=user.id, delta=-amount, reason="chat", idempotency_key=key, model=model, meta=meta
        ).entry
        db.session.execute(
            LedgerEntry.__table__.update().where(LedgerEntry.id == entry.id)
            .values(created_at=utcnow() - timedelta(days=days_ago, minutes=5))
        )
        db.session.commit()
        db.session.remove()


def test_usage_page_shows_balance_chart_and_ledger_on_desktop_and_phone(page, app, make_user, live_server):
    user = make_user("ada", balance=20_000)
    for days_ago in range(24, -1, -2):  # oldest first, as a real ledger grows
        spend(app, user, f"a{days_ago}", 120 + days_ago * 17, "gpt-5", days_ago, tokens_in=3000, tokens_out=2500)
        if days_ago % 4 == 0:
            spend(app, user, f"b{days_ago}", 40 + days_ago * 3, "gpt-5-mini", days_ago, tokens_in=900, tokens_out=400)
    with app.app_context():
        credits.place_hold(db.session, user_id=user.id, amount=250, idempotency_key="in-progress")
        credits.grant_credits(db.session, user_id=user.id, amount=500, note="Thanks for reporting the <b>bug</b>",
                              idempotency_key="g1")
        db.session.remove()
    sign_in_browser(page, app, user, live_server)

    page.goto("/usage")
    assert page.get_by_role("heading", name="Usage", exact=True).is_visible()
    assert page.locator("#usage-held").inner_text() == "250"
    chart = page.get_by_role("img", name="Credits spent per day over the last 30 days, by model")
    assert chart.is_visible()
    assert page.locator(".chart-legend").inner_text().count("gpt-5") == 2
    assert page.locator(".ledger-title").first.inner_text() == "Credits from Sorya"
    assert page.get_by_text("Thanks for reporting the <b>bug</b>").is_visible()  # shown as text, not markup
    # The header counter shows the same balance as the page.
    assert page.locator("#credit-counter .credit-amount").inner_text() == page.locator("#usage-balance").inner_text()
    screenshot(page, "usage-desktop")

    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    assert chart.is_visible()
    box = chart.bounding_box()
    assert box["width"] <= 390 and box["x"] >= 0
    # Nothing on the page is wider than the phone: no sideways scrolling.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    tick = page.locator(".chart-axis text").last
    assert tick.bounding_box()["height"] >= 10  # labels keep a readable size when the chart shrinks
    screenshot(page, "usage-phone")
    screenshot(page, "usage-phone-top", full_page=False)

    with page.expect_download() as download:
        page.get_by_role("button", name="Export CSV").click()
    assert download.value.suggested_filename.startswith("sorya-ledger-")


def test_ledger_pages_with_htmx_and_the_counter_follows_a_new_balance(page, app, make_user, live_server):
    user = make_user("grace", balance=1000)
    for number in range(credits.LEDGER_PAGE_DEFAULT + 3):
        spend(app, user, f"c{number}", 1, "gpt-5", 0)
    sign_in_browser(page, app, user, live_server)
    page.goto("/usage")
    assert page.locator(".ledger-title").count() == credits.LEDGER_PAGE_DEFAULT
    page.get_by_role("link", name="Older entries →").click()
    page.wait_for_url("**/usage?before=*")
    assert page.locator(".ledger-title").count() == 4  # three charges and the starting credits
    assert page.locator("#usage-balance").is_visible()  # swapped in place: the rest of the page stayed

    # A script that learns a new balance (the chat stream's end) sets the header counter (static/js/app.js).
    page.evaluate("window.Sorya.setCreditBalance(123456)")
    assert page.locator("#credit-counter .credit-amount").inner_text() == "123,456"


def test_a_new_user_sees_what_to_do_next(page, app, make_user, live_server):
    user = make_user("newbie")
    sign_in_browser(page, app, user, live_server)
    page.goto("/usage")
    assert page.get_by_text("No credits spent in the last 30 days.").is_visible()
    assert page.get_by_text("Your ledger is empty.").is_visible()
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    screenshot(page, "usage-empty-phone")
