"""The Stripe webhook against the emulator: every event, duplicates, every order, forgeries, concurrency,
renewals, cancellations and failed payments. Deliveries are collected from the emulator (signed as
Stripe signs) and posted by the test, so it decides their order, copies and timing."""

from __future__ import annotations

import itertools
import json
import threading
import time
from datetime import UTC

import pytest
from sqlalchemy import select

from app.models import BillingCustomer, LedgerEntry, StripeEvent, Subscription
from app.services import billing, credits
from tests.conftest import sign_in
from tests.integration.billing_helpers import (
    CHECKOUT_TYPES,
    by_type,
    checkout_and_pay,
    count_rows,
    event_of,
    post_delivery,
    post_event,
    post_raw,
    signature,
    state_of,
    take_deliveries,
)

BASIC = 20000
PRO = 100000
START = 5000


@pytest.fixture(autouse=True)
def _fresh_price_cache():
    billing.price_cache.clear()
    yield
    billing.price_cache.clear()


@pytest.fixture
def hook(app):
    """A client without any session: Stripe's side of the webhook."""
    return app.test_client()


@pytest.fixture
def buyer(app, client, make_user):
    user = make_user("buyer", balance=START, email="buyer@example.com")
    sign_in(client, user)
    client.user = user
    return client


def deliver_all(hook, deliveries):
    responses = [post_delivery(hook, d) for d in deliveries]
    assert [r.status_code for r in responses] == [200] * len(deliveries), [r.get_data(as_text=True) for r in responses]
    return [r.get_json() for r in responses]


def subscription_id_of(deliveries) -> str:
    return event_of(by_type(deliveries)["customer.subscription.created"])["data"]["object"]["id"]


# -- end to end -------------------------------------------------------------------------------------


def test_checkout_to_credits_end_to_end(app, buyer, hook, stripe_emulator):
    session_id, deliveries = checkout_and_pay(buyer, stripe_emulator, "basic")
    # Paying alone grants nothing: only verified webhooks do.
    assert state_of(app, buyer.user.id)["balance"] == START
    page = buyer.get(f"/billing/success?session_id={session_id}").get_data(as_text=True)
    assert "Payment received, credits arriving" in page
    assert 'hx-get="/billing/success/status?' in page

    answers = deliver_all(hook, deliveries)
    assert {a["status"] for a in answers} == {"processed"}

    state = state_of(app, buyer.user.id)
    assert state["balance"] == START + BASIC
    assert state["plan"] == "basic"
    assert [status for _, status, *_ in state["subscriptions"]] == ["active"]
    assert len(state["grants"]) == 1 and state["grants"][0][1] == BASIC
    assert count_rows(app, StripeEvent) == 4

    status = buyer.get(f"/billing/success/status?session_id={session_id}&attempt=3").get_data(as_text=True)
    assert "20,000 credits added" in status and "Basic plan" in status
    assert 'hx-swap-oob="true"' in status and "25,000" in status  # the header counter, updated in place
    assert "hx-get" not in status  # polling stops once the credits are in
    plans = buyer.get("/plans").get_data(as_text=True)
    assert 'id="plan-basic"' in plans and "Current plan" in plans.split('id="plan-basic"')[1].split("</article>")[0]
    assert "Renews on" in plans


def test_each_checkout_event_alone(app, buyer, hook, stripe_emulator, db_session):
    _, deliveries = checkout_and_pay(buyer, stripe_emulator, "pro")
    events = by_type(deliveries)
    user_id = buyer.user.id

    # checkout.session.completed: links the subscription (read from Stripe) to the user.
    assert post_delivery(hook, events["checkout.session.completed"]).get_json()["status"] == "processed"
    state = state_of(app, user_id)
    assert state["plan"] == "pro" and state["balance"] == START
    assert [s[:2] for s in state["subscriptions"]] == [("pro", "active")]

    # customer.subscription.created after it: same state, nothing granted.
    assert post_delivery(hook, events["customer.subscription.created"]).status_code == 200
    assert state_of(app, user_id) == state

    # invoice.payment_succeeded grants; invoice.paid for the same invoice then grants nothing.
    assert post_delivery(hook, events["invoice.payment_succeeded"]).get_json()["status"] == "processed"
    assert state_of(app, user_id)["balance"] == START + PRO
    answer = post_delivery(hook, events["invoice.paid"]).get_json()
    assert answer["status"] == "processed"
    final = state_of(app, user_id)
    assert final["balance"] == START + PRO
    invoice_id = event_of(events["invoice.paid"])["data"]["object"]["id"]
    assert final["grants"] == [(f"invoice:{invoice_id}", PRO)]
    entry = db_session.execute(select(LedgerEntry).where(LedgerEntry.reason == "plan_grant")).scalar_one()
    assert entry.meta["plan"] == "pro" and entry.meta["invoice_id"] == invoice_id
    assert entry.meta["billing_reason"] == "subscription_create"


def test_a_duplicate_answers_200_and_changes_nothing(app, buyer, hook, stripe_emulator):
    _, deliveries = checkout_and_pay(buyer, stripe_emulator)
    deliver_all(hook, deliveries)
    before = state_of(app, buyer.user.id)
    rows = count_rows(app, StripeEvent)
    for delivery in deliveries:
        response = post_delivery(hook, delivery)
        assert response.status_code == 200
        assert response.get_json()["status"] == "duplicate"
    assert state_of(app, buyer.user.id) == before
    assert count_rows(app, StripeEvent) == rows


def test_emulator_duplicate_and_shuffled_delivery_grants_once(app, buyer, hook, stripe_emulator):
    stripe_emulator.control.delivery_mode(duplicate=2, order="shuffle")
    _, deliveries = checkout_and_pay(buyer, stripe_emulator)
    assert len(deliveries) == 12
    answers = deliver_all(hook, deliveries)
    assert sorted(a["status"] for a in answers).count("duplicate") == 8
    assert state_of(app, buyer.user.id)["balance"] == START + BASIC


def test_every_order_of_the_four_checkout_events_grants_exactly_once(app, client, hook, stripe_emulator,
                                                                     make_user):
    finals = []
    for index, order in enumerate(itertools.permutations(range(4))):
        user = make_user(f"perm{index}", balance=START)
        sign_in(client, user)
        _, deliveries = checkout_and_pay(client, stripe_emulator, "basic")
        deliveries = sorted(deliveries, key=lambda d: CHECKOUT_TYPES.index(d["type"]))
        deliver_all(hook, [deliveries[i] for i in order])
        state = state_of(app, user.id)
        assert state["balance"] == START + BASIC, order
        assert len(state["grants"]) == 1, order
        assert state["plan"] == "basic", order
        finals.append((state["plan"], state["balance"], [s[:3] for s in state["subscriptions"]]))
    assert len(set(map(repr, finals))) == 1
    assert count_rows(app, StripeEvent) == 24 * 4


# -- refused requests -------------------------------------------------------------------------------


def assert_nothing_stored(app):
    assert count_rows(app, StripeEvent) == 0
    assert count_rows(app, Subscription) == 0
    from app.models import LedgerEntry as Entry

    with app.app_context():
        from app.extensions import db

        grants = db.session.execute(select(Entry).where(Entry.reason == "plan_grant")).all()
        db.session.remove()
    assert grants == []


@pytest.mark.parametrize("fault", ["bad_signature", "stale_timestamp"])
def test_emulator_wrong_signature_and_stale_timestamp_are_refused(app, buyer, hook, stripe_emulator, fault):
    mode = {"bad_signature": {"bad_signature": True}, "stale_timestamp": {"stale_timestamp_s": 600}}[fault]
    stripe_emulator.control.delivery_mode(**mode)
    _, deliveries = checkout_and_pay(buyer, stripe_emulator)
    for delivery in deliveries:
        response = post_delivery(hook, delivery)
        assert response.status_code == 400
        error = response.get_json()["error"]
        assert error["code"] == "invalid_request" and "Stripe webhook" in error["message"]
    assert_nothing_stored(app)
    assert state_of(app, buyer.user.id)["balance"] == START


def test_forged_missing_and_malformed_webhooks_are_refused(app, buyer, hook, stripe_emulator):
    _, deliveries = checkout_and_pay(buyer, stripe_emulator)
    paid = by_type(deliveries)["invoice.paid"]
    forged = paid["payload"].replace('"amount_paid": 900', '"amount_paid": 9000000')
    assert forged != paid["payload"]
    cases = [
        (forged, paid["signature_header"]),  # body changed after signing
        (paid["payload"], None),  # no signature at all
        (paid["payload"], ""),
        (paid["payload"], "t=1,v1=00"),
        (paid["payload"], paid["signature_header"].replace("v1=", "v0=")),
        ("not json at all", signature("not json at all")),  # genuine signature, body not JSON
        ("[1, 2, 3]", signature("[1, 2, 3]")),
        ('{"id": "evt_x"}', signature('{"id": "evt_x"}')),  # JSON, but not an event
        (paid["payload"], signature(paid["payload"], secret="whsec_someone_else")),
        (paid["payload"], signature(paid["payload"], timestamp=int(time.time()) - 3600)),
    ]
    for payload, header in cases:
        response = post_raw(hook, payload, header)
        assert response.status_code == 400, (payload[:40], header)
        assert response.get_json()["error"]["code"] == "invalid_request"
    assert_nothing_stored(app)


@pytest.mark.parametrize(("offset_s", "words"), [(4000, "in the future"), (-4000, "too old")])
def test_webhooks_signed_outside_the_tolerance_either_way_are_refused(
        app, buyer, hook, stripe_emulator, offset_s, words):
    _, deliveries = checkout_and_pay(buyer, stripe_emulator)
    paid = by_type(deliveries)["invoice.paid"]
    response = post_raw(hook, paid["payload"], signature(paid["payload"], timestamp=int(time.time()) + offset_s))
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "invalid_request" and words in error["message"]
    assert_nothing_stored(app)


def test_a_delivery_signed_ahead_by_the_emulator_is_refused(app, buyer, hook, stripe_emulator):
    stripe_emulator.control.delivery_mode(future_timestamp_s=4000)
    _, deliveries = checkout_and_pay(buyer, stripe_emulator)
    responses = [post_delivery(hook, d) for d in deliveries]
    assert {r.status_code for r in responses} == {400}
    assert "in the future" in responses[0].get_json()["error"]["message"]
    assert_nothing_stored(app)


def test_a_replayed_old_delivery_is_refused_and_a_fresh_copy_grants_nothing_more(app, buyer, hook, stripe_emulator):
    _, deliveries = checkout_and_pay(buyer, stripe_emulator)
    deliver_all(hook, deliveries)
    before = state_of(app, buyer.user.id)
    paid = by_type(deliveries)["invoice.paid"]
    # An attacker who captured the request replays it an hour later, header and all.
    old_header = signature(paid["payload"], timestamp=int(time.time()) - 3600)
    replay = post_raw(hook, paid["payload"], old_header)
    assert replay.status_code == 400 and "too old" in replay.get_json()["error"]["message"]
    # Stripe's own redelivery is signed afresh: accepted, recognised, and it changes nothing.
    again = post_delivery(hook, paid)
    assert again.status_code == 200 and again.get_json()["status"] == "duplicate"
    assert state_of(app, buyer.user.id) == before


def test_webhook_without_a_configured_secret_refuses_everything(app, buyer, hook, stripe_emulator, monkeypatch):
    _, deliveries = checkout_and_pay(buyer, stripe_emulator)
    monkeypatch.setattr(app.extensions["sorya.config"], "STRIPE_WEBHOOK_SECRET", "")
    payload = by_type(deliveries)["invoice.paid"]["payload"]
    response = post_raw(hook, payload, signature(payload, secret=""))  # what anyone could compute
    assert response.status_code == 503
    assert_nothing_stored(app)


def test_oversized_webhook_body_is_refused(app, hook):
    payload = json.dumps({"id": "evt_big", "type": "invoice.paid", "data": {"object": {"pad": "x" * 1_100_000}}})
    response = post_raw(hook, payload, signature(payload))
    assert response.status_code == 413
    assert count_rows(app, StripeEvent) == 0


def test_webhook_needs_no_csrf_but_other_posts_do(app, buyer, hook, stripe_emulator):
    _, deliveries = checkout_and_pay(buyer, stripe_emulator)
    # The signed-in browser client posting without any CSRF token: the webhook route does not ask.
    assert post_delivery(buyer, by_type(deliveries)["invoice.paid"]).status_code == 200
    assert buyer.post("/api/billing/portal", json={}).status_code == 403


# -- concurrency ------------------------------------------------------------------------------------


def post_together(app, deliveries):
    """Post each delivery from its own thread and connection, released at the same instant."""
    barrier = threading.Barrier(len(deliveries))
    results: list = [None] * len(deliveries)

    def send(index, delivery):
        client = app.test_client()
        barrier.wait()
        response = post_delivery(client, delivery)
        results[index] = (response.status_code, response.get_json())

    threads = [threading.Thread(target=send, args=(i, d)) for i, d in enumerate(deliveries)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def test_same_invoice_on_concurrent_connections_grants_once(app, client, stripe_emulator, make_user):
    for round_ in range(4):
        user = make_user(f"racer{round_}", balance=START)
        sign_in(client, user)
        _, deliveries = checkout_and_pay(client, stripe_emulator, "basic")
        events = by_type(deliveries)
        paid, succeeded = events["invoice.paid"], events["invoice.payment_succeeded"]
        # The same event twice at once, and its twin event for the same invoice, at once.
        results = post_together(app, [paid, paid, succeeded, succeeded])
        assert [code for code, _ in results] == [200, 200, 200, 200], results
        statuses = sorted(body["status"] for _, body in results)
        assert statuses.count("duplicate") == 2 and statuses.count("processed") == 2, statuses
        state = state_of(app, user.id)
        assert state["balance"] == START + BASIC and len(state["grants"]) == 1, (round_, state)


# -- the subscription's life ------------------------------------------------------------------------


def test_renewal_grants_again(app, buyer, hook, stripe_emulator):
    _, deliveries = checkout_and_pay(buyer, stripe_emulator)
    deliver_all(hook, deliveries)
    subscription_id = subscription_id_of(deliveries)
    first_end = state_of(app, buyer.user.id)["subscriptions"][0][3]

    stripe_emulator.control.subscription_command(subscription_id, "renew")
    renewal = take_deliveries(stripe_emulator)
    assert {d["type"] for d in renewal} == {"invoice.paid", "invoice.payment_succeeded",
                                            "customer.subscription.updated"}
    deliver_all(hook, list(reversed(renewal)))
    state = state_of(app, buyer.user.id)
    assert state["balance"] == START + 2 * BASIC
    assert len(state["grants"]) == 2
    assert state["subscriptions"][0][3] > first_end  # renewal date moved a month on
    deliver_all(hook, renewal)  # the renewal again: nothing more
    assert state_of(app, buyer.user.id)["balance"] == START + 2 * BASIC


def test_cancel_at_period_end_resume_and_cancel(app, buyer, hook, stripe_emulator):
    _, deliveries = checkout_and_pay(buyer, stripe_emulator)
    deliver_all(hook, deliveries)
    subscription_id = subscription_id_of(deliveries)
    control = stripe_emulator.control

    # Stripe's `created` counts seconds: each change below is made a second later, so it is a newer event.
    control.advance_clock(1)
    control.subscription_command(subscription_id, "cancel_at_period_end")
    deliver_all(hook, take_deliveries(stripe_emulator))
    state = state_of(app, buyer.user.id)
    assert state["plan"] == "basic" and state["subscriptions"][0][1:3] == ("active", True)
    page = buyer.get("/plans").get_data(as_text=True)
    assert "Cancels at period end" in page and "Ends on" in page

    control.advance_clock(1)
    control.subscription_command(subscription_id, "resume")
    deliver_all(hook, take_deliveries(stripe_emulator))
    assert state_of(app, buyer.user.id)["subscriptions"][0][1:3] == ("active", False)

    control.advance_clock(1)
    control.subscription_command(subscription_id, "cancel")
    deliver_all(hook, take_deliveries(stripe_emulator))
    state = state_of(app, buyer.user.id)
    assert state["plan"] == "free"
    assert state["subscriptions"][0][1] == "canceled"
    assert state["balance"] == START + BASIC  # credits already granted stay
    page = buyer.get("/plans").get_data(as_text=True)
    assert "Subscribe to Basic" in page  # free again: subscribing is offered


def test_payment_failure_marks_past_due_with_a_banner_then_recovery_grants(app, buyer, hook, stripe_emulator):
    _, deliveries = checkout_and_pay(buyer, stripe_emulator)
    deliver_all(hook, deliveries)
    subscription_id = subscription_id_of(deliveries)

    stripe_emulator.control.advance_clock(1)
    stripe_emulator.control.subscription_command(subscription_id, "fail_payment")
    failure = take_deliveries(stripe_emulator)
    assert {d["type"] for d in failure} == {"invoice.payment_failed", "customer.subscription.updated"}
    # Only the failure first: it alone must mark the subscription past due.
    deliver_all(hook, [d for d in failure if d["type"] == "invoice.payment_failed"])
    state = state_of(app, buyer.user.id)
    assert state["subscriptions"][0][1] == "past_due"
    assert state["plan"] == "basic"  # Stripe still retries: the plan stays while past due
    assert state["balance"] == START + BASIC  # no grant for a failed payment
    page = buyer.get("/plans").get_data(as_text=True)
    assert "Your last payment failed" in page and "Fix payment" in page
    deliver_all(hook, failure)

    stripe_emulator.control.advance_clock(1)
    stripe_emulator.control.subscription_command(subscription_id, "renew")
    deliver_all(hook, take_deliveries(stripe_emulator))
    state = state_of(app, buyer.user.id)
    assert state["subscriptions"][0][1] == "active"
    assert state["balance"] == START + 2 * BASIC
    assert "Your last payment failed" not in buyer.get("/plans").get_data(as_text=True)


def test_plan_change_then_the_next_invoice_grants_the_new_plan(app, buyer, hook, stripe_emulator):
    _, deliveries = checkout_and_pay(buyer, stripe_emulator, "basic")
    deliver_all(hook, deliveries)
    subscription_id = subscription_id_of(deliveries)
    stripe_emulator.control.advance_clock(1)
    stripe_emulator.control.subscription_command(subscription_id, "change_plan", price="price_pro")
    deliver_all(hook, take_deliveries(stripe_emulator))
    state = state_of(app, buyer.user.id)
    assert state["plan"] == "pro" and state["balance"] == START + BASIC
    stripe_emulator.control.advance_clock(1)
    stripe_emulator.control.subscription_command(subscription_id, "renew")
    deliver_all(hook, take_deliveries(stripe_emulator))
    assert state_of(app, buyer.user.id)["balance"] == START + BASIC + PRO


# -- API versions ------------------------------------------------------------------------------------

ACACIA = "2025-02-24.acacia"  # before 2025-03-31.basil moved the invoice and subscription fields
ENDIVE = "2026-10-28.endive"  # the version stripe 16.1 pins


def _period_end_s(subscription: dict, api_version: str) -> int:
    if api_version == ACACIA:
        return subscription["current_period_end"]
    return subscription["items"]["data"][0]["current_period_end"]


def _stored_s(moment) -> int:
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp())


@pytest.mark.parametrize(("checkout_version", "renewal_version"),
                         [(ACACIA, ACACIA), (ACACIA, ENDIVE), (ENDIVE, ENDIVE)])
def test_events_of_an_older_api_version_still_in_flight_act_the_same(
        app, buyer, hook, stripe_emulator, checkout_version, renewal_version):
    control = stripe_emulator.control
    control.set_webhook(api_version=checkout_version)
    _, deliveries = checkout_and_pay(buyer, stripe_emulator)
    paid = event_of(by_type(deliveries)["invoice.paid"])
    assert paid["api_version"] == checkout_version
    assert ("parent" in paid["data"]["object"]) is (checkout_version == ENDIVE)  # really the other shape
    deliver_all(hook, deliveries)
    state = state_of(app, buyer.user.id)
    assert state["plan"] == "basic" and state["balance"] == START + BASIC
    created = event_of(by_type(deliveries)["customer.subscription.created"])["data"]["object"]
    assert _stored_s(state["subscriptions"][0][3]) == _period_end_s(created, checkout_version)

    control.set_webhook(api_version=renewal_version)
    control.advance_clock(1)
    control.subscription_command(created["id"], "renew")
    renewal = take_deliveries(stripe_emulator)
    assert {event_of(d)["api_version"] for d in renewal} == {renewal_version}
    deliver_all(hook, renewal)
    state = state_of(app, buyer.user.id)
    assert state["balance"] == START + 2 * BASIC
    updated = event_of(by_type(renewal)["customer.subscription.updated"])["data"]["object"]
    assert _stored_s(state["subscriptions"][0][3]) == _period_end_s(updated, renewal_version)
    assert _period_end_s(updated, renewal_version) > _period_end_s(created, checkout_version)


# -- order and staleness ----------------------------------------------------------------------------


def test_an_older_subscription_update_arriving_late_is_ignored(app, buyer, hook, stripe_emulator):
    _, deliveries = checkout_and_pay(buyer, stripe_emulator)
    deliver_all(hook, deliveries)
    subscription_id = subscription_id_of(deliveries)
    created = event_of(by_type(deliveries)["customer.subscription.created"])

    stripe_emulator.control.advance_clock(1)
    stripe_emulator.control.subscription_command(subscription_id, "cancel_at_period_end")
    newer = take_deliveries(stripe_emulator)[0]
    stripe_emulator.control.advance_clock(1)
    stripe_emulator.control.subscription_command(subscription_id, "resume")
    newest = take_deliveries(stripe_emulator)[0]
    assert event_of(newest)["created"] > event_of(newer)["created"] > created["created"]

    deliver_all(hook, [newest, newer])  # the resume first, then the older cancellation
    state = state_of(app, buyer.user.id)
    assert state["subscriptions"][0][1:3] == ("active", False)
    with app.app_context():
        from app.extensions import db

        row = db.session.execute(select(StripeEvent).where(StripeEvent.event_id == event_of(newer)["id"])).scalar_one()
        assert row.status == "processed" and "stale" in (row.error or "")
        db.session.remove()

    # A same-second update whose payload disagrees with Stripe: Stripe's current object wins.
    tie = event_of(newer)
    tie["id"] = "evt_same_second"
    tie["created"] = event_of(newest)["created"]
    assert post_event(hook, tie).status_code == 200
    assert state_of(app, buyer.user.id)["subscriptions"][0][1:3] == ("active", False)


def test_an_invoice_before_any_link_finds_its_user_through_metadata(app, buyer, hook, stripe_emulator):
    _, deliveries = checkout_and_pay(buyer, stripe_emulator)
    # As if the customer had been created elsewhere: no stored link at all.
    with app.app_context():
        from app.extensions import db

        db.session.execute(BillingCustomer.__table__.delete())
        db.session.commit()
        db.session.remove()
    events = by_type(deliveries)
    assert post_delivery(hook, events["invoice.paid"]).get_json()["status"] == "processed"
    state = state_of(app, buyer.user.id)
    assert state["balance"] == START + BASIC and len(state["customers"]) == 1
    deliver_all(hook, [events[t] for t in CHECKOUT_TYPES if t != "invoice.paid"])
    assert state_of(app, buyer.user.id)["balance"] == START + BASIC


def test_events_for_someone_elses_customer_are_recorded_and_ignored(app, hook, stripe_emulator):
    customer = stripe_emulator.control  # a customer Sorya never made, with no metadata
    import stripe as stripe_sdk

    sdk = stripe_sdk.StripeClient("sk_test_other", base_addresses={"api": stripe_emulator.url})
    foreign = sdk.v1.customers.create(params={"email": "other@example.com"})
    session = sdk.v1.checkout.sessions.create(params={
        "mode": "subscription", "customer": foreign.id, "success_url": "https://elsewhere.example/ok",
        "line_items": [{"price": "price_basic", "quantity": 1}]})
    take_deliveries(stripe_emulator)
    customer.complete_checkout(session.id)
    answers = deliver_all(hook, take_deliveries(stripe_emulator))
    assert {a["status"] for a in answers} == {"ignored"}
    assert count_rows(app, Subscription) == 0
    assert count_rows(app, BillingCustomer) == 0


# -- proration and other invoices (the emulator's plan changes make no proration invoice) -----------


def crafted_invoice(invoice_event: dict, *, reason: str, amount_paid: int, lines: list[tuple[str, int]],
                    event_id: str, invoice_id: str) -> dict:
    event = json.loads(json.dumps(invoice_event))
    event["id"] = event_id
    invoice = event["data"]["object"]
    invoice.update(id=invoice_id, billing_reason=reason, amount_paid=amount_paid)
    template = invoice["lines"]["data"][0]
    invoice["lines"]["data"] = []
    for price_id, amount in lines:
        line = json.loads(json.dumps(template))
        line["amount"] = amount
        line["pricing"]["price_details"]["price"] = price_id
        invoice["lines"]["data"].append(line)
    return event


def test_proration_invoice_grants_in_proportion_to_what_was_paid(app, buyer, hook, stripe_emulator):
    _, deliveries = checkout_and_pay(buyer, stripe_emulator)
    deliver_all(hook, deliveries)
    paid = event_of(by_type(deliveries)["invoice.paid"])
    upgrade = crafted_invoice(paid, reason="subscription_update", amount_paid=1000,
                              lines=[("price_basic", -450), ("price_pro", 1450)],
                              event_id="evt_upgrade", invoice_id="in_upgrade")
    assert post_event(hook, upgrade).get_json()["status"] == "processed"
    state = state_of(app, buyer.user.id)
    assert ("invoice:in_upgrade", 34482) in state["grants"]  # floor(100000 * 1000 / 2900)
    assert state["balance"] == START + BASIC + 34482

    downgrade = crafted_invoice(paid, reason="subscription_update", amount_paid=0,
                                lines=[("price_pro", -1450), ("price_basic", 450)],
                                event_id="evt_downgrade", invoice_id="in_downgrade")
    manual = crafted_invoice(paid, reason="manual", amount_paid=900, lines=[("price_basic", 900)],
                             event_id="evt_manual", invoice_id="in_manual")
    for event in (downgrade, manual):
        assert post_event(hook, event).get_json()["status"] == "ignored"
    assert state_of(app, buyer.user.id)["balance"] == START + BASIC + 34482


# -- failures leave nothing half-applied ------------------------------------------------------------


def test_stripe_failing_during_an_event_answers_500_and_stores_nothing(app, buyer, hook, stripe_emulator):
    _, deliveries = checkout_and_pay(buyer, stripe_emulator)
    completed = by_type(deliveries)["checkout.session.completed"]
    # The subscription must be read from Stripe for this event; Stripe fails every time.
    stripe_emulator.control.fault("GET", r"^/v1/subscriptions/", kind="server_error", count=None)
    response = post_delivery(hook, completed)
    assert response.status_code == 500
    assert response.get_json()["error"]["code"] == "internal_error"
    assert count_rows(app, StripeEvent) == 0 and count_rows(app, Subscription) == 0
    stripe_emulator.control.clear_faults()
    # Stripe's retry then succeeds, exactly once.
    assert post_delivery(hook, completed).get_json()["status"] == "processed"
    assert state_of(app, buyer.user.id)["plan"] == "basic"


def test_a_grant_failing_rolls_back_the_whole_event(app, buyer, hook, stripe_emulator, monkeypatch):
    _, deliveries = checkout_and_pay(buyer, stripe_emulator)
    deliver_all(hook, [d for d in deliveries if d["type"] != "invoice.paid"
                       and d["type"] != "invoice.payment_succeeded"])
    before = state_of(app, buyer.user.id)
    rows = count_rows(app, StripeEvent)

    def broken_post(*args, **kwargs):
        raise RuntimeError("database went away mid-grant")

    monkeypatch.setattr(credits, "post_ledger_entry", broken_post)  # the module billing.context calls
    paid = by_type(deliveries)["invoice.paid"]
    assert post_delivery(hook, paid).status_code == 500
    assert state_of(app, buyer.user.id) == before
    assert count_rows(app, StripeEvent) == rows
    monkeypatch.undo()
    assert post_delivery(hook, paid).get_json()["status"] == "processed"
    assert state_of(app, buyer.user.id)["balance"] == START + BASIC


def test_unhandled_event_types_are_recorded_once(app, hook):
    event = {"id": "evt_other", "object": "event", "type": "charge.refunded", "created": int(time.time()),
             "data": {"object": {"id": "ch_1", "object": "charge"}}}
    assert post_event(hook, event).get_json()["status"] == "ignored"
    assert post_event(hook, event).get_json()["status"] == "duplicate"
    assert count_rows(app, StripeEvent) == 1
