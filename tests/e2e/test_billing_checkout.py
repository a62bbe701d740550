"""A person subscribes: plans page, the Stripe-hosted checkout (emulator), back to Sorya, credits arrive."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from app.services import billing
from tests.e2e.conftest import screenshot, sign_in_browser


def test_subscribe_through_hosted_checkout_and_watch_the_counter_rise(page, app, make_user, live_server,
                                                                       stripe_emulator):
    billing.price_cache.clear()
    control = stripe_emulator.control
    # Stripe delivers to the live server, a little late, so the success page is already open.
    control.set_webhook(url=live_server.url + "/api/webhooks/stripe", collect=False)
    control.delivery_mode(delay_ms=1200)
    user = make_user("payer", balance=5000, email="payer@example.com")
    sign_in_browser(page, app, user, live_server)

    page.goto("/plans")
    expect(page.get_by_role("heading", name="Plans", exact=True)).to_be_visible()
    expect(page.locator("#plan-basic")).to_contain_text("$9.00")
    expect(page.locator("#plan-pro")).to_contain_text("100,000")
    expect(page.locator("#plan-free")).to_contain_text("Current plan")
    screenshot(page, "billing-plans-desktop")

    page.get_by_role("button", name="Subscribe to Basic").click()
    page.wait_for_url(re.compile(re.escape(stripe_emulator.url) + r"/pay/cs_"))
    expect(page.get_by_role("heading", name="Subscribe to Basic")).to_be_visible()
    screenshot(page, "billing-hosted-checkout")

    page.get_by_role("button", name="Pay $9.00").click()
    page.wait_for_url(re.compile(re.escape(live_server.url) + r"/billing/success\?session_id=cs_"))
    expect(page.get_by_role("heading", name="Payment received")).to_be_visible()
    # A marker on this document: if the page reloaded, it would be gone.
    page.evaluate("window.__soryaNoReload = true")
    counter = page.locator("#credit-counter .credit-amount")
    first_seen = counter.inner_text()
    if first_seen == "5,000":
        expect(page.locator("#checkout-progress")).to_contain_text("credits arriving")
        screenshot(page, "billing-success-waiting")
    expect(counter).to_have_text("25,000", timeout=30_000)
    expect(page.locator("#checkout-progress")).to_contain_text("20,000 credits added")
    assert page.evaluate("window.__soryaNoReload === true")
    assert first_seen == "5,000", "the webhook landed before the page opened; the rise was not watched"
    screenshot(page, "billing-success-granted")

    page.goto("/plans")
    expect(page.locator("#plan-basic")).to_contain_text("Current plan")
    expect(page.locator("#billing-status")).to_contain_text("Renews on")
    screenshot(page, "billing-plans-subscribed")
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    expect(page.locator("#plan-basic")).to_contain_text("Current plan")
    screenshot(page, "billing-plans-phone")


def test_past_due_banner_on_phone(page, app, make_user, live_server, stripe_emulator):
    """The banner a person sees after a failed renewal, at phone width, with its link to fix payment."""
    from app.extensions import db
    from app.models import BillingCustomer, Subscription
    from app.models.base import utcnow

    user = make_user("late", balance=100, plan="basic")
    with app.app_context():
        db.session.add(BillingCustomer(user_id=user.id, stripe_customer_id="cus_late"))
        db.session.add(Subscription(user_id=user.id, stripe_subscription_id="sub_late", stripe_customer_id="cus_late",
                                    plan="basic", price_id="price_basic", status="past_due",
                                    current_period_end=utcnow(), last_event_created=1))
        db.session.commit()
        db.session.remove()
    sign_in_browser(page, app, user, live_server)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/plans")
    banner = page.locator(".billing-banner")
    expect(banner).to_contain_text("Your last payment failed")
    expect(banner.get_by_role("button", name="Fix payment")).to_be_visible()
    screenshot(page, "billing-past-due-phone")
