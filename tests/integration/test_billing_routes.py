"""Billing routes and CLI: plans page, checkout (API and form), portal, success page, bad input, failures
of Stripe, and the operators' sync and replay."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from app.models import BillingCustomer, StripeEvent, Subscription
from app.services import billing
from tests.conftest import csrf_token_for, sign_in
from tests.integration.billing_helpers import (
    by_type,
    checkout_and_pay,
    count_rows,
    event_of,
    post_delivery,
    session_id_of,
    state_of,
    subscribe,
    take_deliveries,
)

START = 5000
BASIC = 20000


@pytest.fixture(autouse=True)
def _fresh_price_cache():
    billing.price_cache.clear()
    yield
    billing.price_cache.clear()


@pytest.fixture
def buyer(client, make_user):
    user = make_user("buyer", balance=START, email="buyer@example.com")
    sign_in(client, user)
    client.user = user
    return client


def stripe_calls(stripe_emulator, method: str, pattern: str) -> list[dict]:
    return [c for c in stripe_emulator.control.calls() if c["method"] == method and re.search(pattern, c["path"])]


# -- the plans page ---------------------------------------------------------------------------------


def test_plans_page_shows_prices_from_stripe_and_credits(buyer, stripe_emulator):
    page = buyer.get("/plans")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "$9.00" in html and "$29.00" in html and "per month" in html
    assert "20,000" in html and "100,000" in html and "5,000" in html
    free_card = html.split('id="plan-free"')[1].split("</article>")[0]
    assert "Current plan" in free_card
    assert "Subscribe to Basic" in html and "Subscribe to Pro" in html
    assert "Manage billing</button>" not in html  # no Stripe customer yet: nothing to manage
    assert 'href="/plans"' in buyer.get("/").get_data(as_text=True)  # the nav shows Plans


def test_prices_are_cached_per_process(buyer, stripe_emulator):
    for _ in range(3):
        assert buyer.get("/plans").status_code == 200
    assert len(stripe_calls(stripe_emulator, "GET", r"^/v1/prices/")) == 2  # one per plan, not per view


def test_plans_page_when_stripe_is_down_offers_no_unknown_price(buyer, stripe_emulator):
    stripe_emulator.control.fault("GET", r"^/v1/prices/price_pro$", kind="server_error", count=None)
    html = buyer.get("/plans").get_data(as_text=True)
    assert "$9.00" in html
    assert "Subscribe to Pro" not in html and "Price unavailable right now" in html


def test_plans_page_needs_sign_in(client):
    response = client.get("/plans")
    assert response.status_code == 302 and "/plans" in response.headers["Location"]


def test_plans_page_for_a_subscriber_offers_change_and_manage(app, buyer, stripe_emulator):
    _, deliveries = checkout_and_pay(buyer, stripe_emulator, "pro")
    hook = app.test_client()
    for delivery in deliveries:
        post_delivery(hook, delivery)
    html = buyer.get("/plans").get_data(as_text=True)
    pro_card = html.split('id="plan-pro"')[1].split("</article>")[0]
    basic_card = html.split('id="plan-basic"')[1].split("</article>")[0]
    assert "Current plan" in pro_card and "Manage billing" in pro_card
    assert "Change plan" in basic_card and "Subscribe" not in basic_card
    assert 'data-plan="pro"' in html and "Renews on" in html


# -- checkout ---------------------------------------------------------------------------------------


def test_subscribe_api_opens_a_checkout_session_on_the_users_customer(app, buyer, stripe_emulator, db_session):
    response = subscribe(buyer, "pro")
    assert response.status_code == 200
    url = response.get_json()["url"]
    assert url.startswith(stripe_emulator.url + "/pay/cs_")
    checkout = stripe_emulator.emulator.objects[session_id_of(url)]
    customer = db_session.execute(select(BillingCustomer)).scalar_one()
    assert customer.user_id == buyer.user.id and checkout["customer"] == customer.stripe_customer_id
    assert checkout["client_reference_id"] == str(buyer.user.id)
    assert checkout["metadata"] == {"user_id": str(buyer.user.id), "login": "buyer", "plan": "pro"}
    public = app.extensions["sorya.config"].PUBLIC_URL  # the e2e live server may have moved it
    assert checkout["success_url"] == f"{public}/billing/success?session_id={{CHECKOUT_SESSION_ID}}"
    assert checkout["cancel_url"] == f"{public}/billing/cancel"
    stripe_customer = stripe_emulator.emulator.objects[customer.stripe_customer_id]
    assert stripe_customer["metadata"]["user_id"] == str(buyer.user.id)
    assert stripe_customer["email"] == "buyer@example.com"
    # A second checkout reuses the customer.
    assert subscribe(buyer, "basic").status_code == 200
    assert count_rows(app, BillingCustomer) == 1
    assert len(stripe_calls(stripe_emulator, "POST", r"^/v1/customers$")) == 1


def test_double_submit_makes_one_session(buyer, stripe_emulator):
    first = subscribe(buyer, "basic", idempotency_key="click-0123456789").get_json()["url"]
    second = subscribe(buyer, "basic", idempotency_key="click-0123456789").get_json()["url"]
    assert first == second
    # The form: two posts of the same rendered form (a double click) land on one session too.
    page = buyer.get("/plans").get_data(as_text=True)
    token = re.search(r'name="checkout_token" value="([^"]+-basic)"', page).group(1)
    form = {"csrf_token": csrf_token_for(buyer), "plan": "basic", "checkout_token": token}
    one = buyer.post("/billing/checkout", data=form)
    two = buyer.post("/billing/checkout", data=form)
    assert one.status_code == two.status_code == 303
    assert one.headers["Location"] == two.headers["Location"]
    assert one.headers["Location"].startswith(stripe_emulator.url + "/pay/cs_")
    sessions = {c["id"] for c in stripe_emulator.emulator.objects.values() if c["object"] == "checkout.session"}
    assert len(sessions) == 2  # one per distinct request key, never one per click


def test_concurrent_first_checkouts_create_one_customer(app, make_user, stripe_emulator):
    import threading

    user = make_user("racer", balance=0)
    barrier = threading.Barrier(3)
    codes = []

    def click():
        client = app.test_client()
        sign_in(client, user)
        token = csrf_token_for(client)
        barrier.wait()
        codes.append(client.post("/api/billing/subscribe", json={"plan": "basic"},
                                 headers={"X-CSRFToken": token}).status_code)

    threads = [threading.Thread(target=click) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert codes == [200, 200, 200]
    assert count_rows(app, BillingCustomer) == 1
    customers = [o for o in stripe_emulator.emulator.objects.values() if o["object"] == "customer"]
    assert len(customers) == 1  # Stripe's idempotency key made the racers share one customer


def test_subscribe_when_already_subscribed_is_a_conflict(app, buyer, stripe_emulator):
    _, deliveries = checkout_and_pay(buyer, stripe_emulator, "basic")
    for delivery in deliveries:
        post_delivery(app.test_client(), delivery)
    response = subscribe(buyer, "pro")
    assert response.status_code == 409
    assert "Manage billing" in response.get_json()["error"]["message"]
    form = buyer.post("/billing/checkout", data={"csrf_token": csrf_token_for(buyer), "plan": "pro"})
    assert form.status_code == 303 and form.headers["Location"].endswith("/plans")
    assert "You already have the Basic plan" in buyer.get("/plans").get_data(as_text=True)


@pytest.mark.parametrize("body", [{"plan": "free"}, {"plan": "gold"}, {"plan": ""}, {}, {"plan": 1},
                                  {"plan": ["basic"]}, {"plan": "<script>alert(1)</script>"},
                                  {"plan": "basic\u202e"}])
def test_subscribe_rejects_bad_plans_naming_the_field(buyer, body, stripe_emulator):
    response = buyer.post("/api/billing/subscribe", json=body, headers={"X-CSRFToken": csrf_token_for(buyer)})
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "invalid_request" and "plan" in error["fields"]
    assert stripe_calls(stripe_emulator, "POST", r"^/v1/checkout") == []


def test_subscribe_rejects_malformed_bodies(buyer):
    token = csrf_token_for(buyer)
    not_json = buyer.post("/api/billing/subscribe", data="plan=basic", headers={
        "X-CSRFToken": token, "Content-Type": "application/x-www-form-urlencoded"})
    assert not_json.status_code == 400
    broken = buyer.post("/api/billing/subscribe", data="{not json", headers={
        "X-CSRFToken": token, "Content-Type": "application/json"})
    assert broken.status_code == 400
    array = buyer.post("/api/billing/subscribe", json=["basic"], headers={"X-CSRFToken": token})
    assert array.status_code == 400


def test_billing_api_needs_auth_and_csrf(app, buyer, stripe_emulator):
    anonymous = app.test_client()
    for path in ("/api/billing/subscribe", "/api/billing/portal"):
        response = anonymous.post(path, json={"plan": "basic"})
        assert response.status_code == 403  # no session, no token: CSRF refuses first
        bogus = anonymous.post(path, json={"plan": "basic"}, headers={"Authorization": "Bearer not-a-token"})
        assert bogus.status_code == 401 and bogus.get_json()["error"]["code"] == "unauthenticated"
        no_csrf = buyer.post(path, json={"plan": "basic"})
        assert no_csrf.status_code == 403 and no_csrf.get_json()["error"]["code"] == "forbidden"
    assert buyer.post("/billing/checkout", data={"plan": "basic"}).status_code == 403
    assert buyer.post("/billing/portal", data={}).status_code == 403
    assert stripe_calls(stripe_emulator, "POST", r"^/v1/") == []


def test_stripe_down_at_checkout_answers_502_naming_stripe(app, buyer, stripe_emulator):
    stripe_emulator.control.fault("POST", r"^/v1/checkout/sessions$", kind="server_error", count=None)
    response = subscribe(buyer, "basic")
    assert response.status_code == 502
    error = response.get_json()["error"]
    assert error["code"] == "upstream_error" and "Stripe" in error["message"]
    assert count_rows(app, Subscription) == 0
    assert state_of(app, buyer.user.id)["balance"] == START
    # The form shows the same sentence on the plans page rather than an error page.
    form = buyer.post("/billing/checkout", data={"csrf_token": csrf_token_for(buyer), "plan": "basic"})
    assert form.status_code == 303
    assert "Stripe is not answering properly" in buyer.get("/plans").get_data(as_text=True)


def test_a_refused_stripe_key_is_reported_as_stripes_problem(buyer, stripe_emulator):
    stripe_emulator.control.fault("POST", r"^/v1/customers$", kind="unauthorized", count=None)
    response = subscribe(buyer, "basic")
    assert response.status_code == 502
    assert "Stripe refused our API key" in response.get_json()["error"]["message"]


# -- portal -----------------------------------------------------------------------------------------


def test_portal_needs_a_customer_then_opens(app, buyer, stripe_emulator):
    token = csrf_token_for(buyer)
    none_yet = buyer.post("/api/billing/portal", headers={"X-CSRFToken": token})
    assert none_yet.status_code == 409
    subscribe(buyer, "basic")
    response = buyer.post("/api/billing/portal", headers={"X-CSRFToken": token})
    assert response.status_code == 200
    url = response.get_json()["url"]
    assert url.startswith(stripe_emulator.url + "/portal/bps_")
    portal = stripe_emulator.emulator.objects[url.rsplit("/", 1)[-1]]
    assert portal["return_url"] == app.extensions["sorya.config"].PUBLIC_URL + "/plans"
    form = buyer.post("/billing/portal", data={"csrf_token": token})
    assert form.status_code == 303 and form.headers["Location"].startswith(stripe_emulator.url + "/portal/")


# -- success and cancel pages -----------------------------------------------------------------------


def test_success_page_of_another_users_checkout_is_not_found(app, buyer, make_user, stripe_emulator):
    session_id, _ = checkout_and_pay(buyer, stripe_emulator)
    other = app.test_client()
    sign_in(other, make_user("someone-else"))
    assert other.get(f"/billing/success?session_id={session_id}").status_code == 404
    assert other.get(f"/billing/success/status?session_id={session_id}").status_code == 404
    assert other.get("/billing/success?session_id=cs_test_doesnotexist").status_code == 404
    assert other.get("/billing/success?session_id=../../etc").status_code == 404


def test_success_status_with_someone_elses_invoice_reveals_nothing(app, buyer, make_user, stripe_emulator):
    session_id, deliveries = checkout_and_pay(buyer, stripe_emulator)
    for delivery in deliveries:
        post_delivery(app.test_client(), delivery)
    invoice_id = event_of(by_type(deliveries)["invoice.paid"])["data"]["object"]["id"]
    other = app.test_client()
    sign_in(other, make_user("snoop"))
    html = other.get(f"/billing/success/status?session_id=x&invoice={invoice_id}").get_data(as_text=True)
    assert "credits added" not in html and "credits arriving" in html


def test_success_page_polls_until_the_webhook_lands_and_stops_after_a_while(app, buyer, stripe_emulator):
    session_id, deliveries = checkout_and_pay(buyer, stripe_emulator)
    status = buyer.get(f"/billing/success/status?session_id={session_id}&attempt=5").get_data(as_text=True)
    assert "credits arriving" in status and "attempt=6" in status
    last = buyer.get(f"/billing/success/status?session_id={session_id}&attempt=90").get_data(as_text=True)
    assert "taking longer than usual" in last and "hx-get" not in last
    assert buyer.get(f"/billing/success/status?session_id={session_id}&attempt=-1").status_code == 400
    for delivery in deliveries:
        post_delivery(app.test_client(), delivery)
    done = buyer.get(f"/billing/success/status?session_id={session_id}&attempt=6").get_data(as_text=True)
    assert "20,000 credits added" in done


def test_success_page_when_stripe_is_down_still_reassures(buyer, stripe_emulator):
    session_id, _ = checkout_and_pay(buyer, stripe_emulator)
    stripe_emulator.control.fault("GET", r"^/v1/checkout/sessions/", kind="server_error", count=None)
    page = buyer.get(f"/billing/success?session_id={session_id}")
    assert page.status_code == 200 and "credits arriving" in page.get_data(as_text=True)


def test_cancel_page(buyer):
    html = buyer.get("/billing/cancel").get_data(as_text=True)
    assert "You were not charged" in html and 'href="/plans"' in html


def test_billing_status_partial_renders_for_the_signed_in_user(app, buyer, stripe_emulator):
    from flask import render_template

    from app.extensions import db

    _, deliveries = checkout_and_pay(buyer, stripe_emulator)
    for delivery in deliveries:
        post_delivery(app.test_client(), delivery)
    with app.test_request_context("/account"):
        from app.services import billing

        html = render_template("partials/_billing_status.html",
                               billing_status=billing.billing_status(db.session, buyer.user.id))
        db.session.remove()
    assert 'id="billing-status"' in html and "Basic" in html and "Renews on" in html and "Manage billing" in html


# -- the CLI ----------------------------------------------------------------------------------------


def test_sync_repairs_a_customer_whose_webhooks_were_lost(app, buyer, stripe_emulator):
    checkout_and_pay(buyer, stripe_emulator, "pro")  # paid, but no webhook ever arrives
    runner = app.test_cli_runner()
    result = runner.invoke(args=["billing", "sync", "buyer"])
    assert result.exit_code == 0, result.output
    assert "plan pro" in result.output and "credits granted now 100000" in result.output
    state = state_of(app, buyer.user.id)
    assert state["plan"] == "pro" and state["balance"] == START + 100000
    again = runner.invoke(args=["billing", "sync", "buyer"])
    assert "credits granted now 0" in again.output
    assert state_of(app, buyer.user.id)["balance"] == START + 100000


def test_sync_unknown_user_and_user_without_customer(app, make_user, stripe_emulator):
    runner = app.test_cli_runner()
    missing = runner.invoke(args=["billing", "sync", "nobody"])
    assert missing.exit_code == 1 and "There is no user 'nobody'" in missing.output
    make_user("plain")
    plain = runner.invoke(args=["billing", "sync", "plain"])
    assert plain.exit_code == 0 and "no Stripe customer" in plain.output


def test_replay_processes_an_event_once(app, buyer, stripe_emulator):
    _, deliveries = checkout_and_pay(buyer, stripe_emulator)
    paid_id = event_of(by_type(deliveries)["invoice.paid"])["id"]
    runner = app.test_cli_runner()
    first = runner.invoke(args=["billing", "replay", paid_id])
    assert first.exit_code == 0 and "processed" in first.output and "credits granted now 20000" in first.output
    second = runner.invoke(args=["billing", "replay", paid_id])
    assert second.exit_code == 0 and "credits granted now 0" in second.output
    assert state_of(app, buyer.user.id)["balance"] == START + BASIC
    assert count_rows(app, StripeEvent) == 1
    unknown = runner.invoke(args=["billing", "replay", "evt_missing"])
    assert unknown.exit_code == 1 and "Stripe has no such object" in unknown.output
    take_deliveries(stripe_emulator)


def test_billing_status_reads_customer_and_subscriptions_in_one_query(db_session, make_user):
    from app.models import BillingCustomer, Subscription, User
    from app.services import billing
    from tests.sql_helpers import statements_on

    def status_and_queries(user_id):
        loaded = db_session.get(User, user_id)  # a signed-in request has its user loaded
        assert loaded is not None
        with statements_on(db_session.get_bind()) as statements:
            status = billing.billing_status(db_session, user_id)
        return status, len(statements)

    user = make_user()
    status, queries = status_and_queries(user.id)
    assert (status.has_customer, status.status, queries) == (False, None, 1)

    db_session.add(BillingCustomer(user_id=user.id, stripe_customer_id="cus_one_query"))
    db_session.commit()
    status, _ = status_and_queries(user.id)
    assert (status.has_customer, status.status) == (True, None)

    for sub_id, plan, state in (("sub_old", "pro", "canceled"), ("sub_live", "basic", "active")):
        db_session.add(Subscription(user_id=user.id, stripe_subscription_id=sub_id, stripe_customer_id="cus_one_query",
                                    plan=plan, status=state))
    db_session.commit()
    status, queries = status_and_queries(user.id)
    assert (status.has_customer, status.status, status.subscription_plan, queries) == (True, "active", "basic", 1)
