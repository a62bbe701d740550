"""The Stripe emulator, driven through the stripe package, with webhook signatures checked by stripe."""

from __future__ import annotations

import http.server
import json
import re
import threading
import time

import pytest
import requests
import stripe

from tests.emulators.conftest import STRIPE_KEY, WEBHOOK_SECRET

SUCCESS_URL = "http://localhost:5000/billing/done?session={CHECKOUT_SESSION_ID}"
CHECKOUT_EVENTS = ["checkout.session.completed", "customer.subscription.created", "invoice.paid",
                   "invoice.payment_succeeded"]


def start_checkout(client: stripe.StripeClient, price: str = "price_basic", **extra) -> stripe.checkout.Session:
    params = {"mode": "subscription", "line_items": [{"price": price, "quantity": 1}],
              "client_reference_id": "42", "metadata": {"user_id": "42"},
              "subscription_data": {"metadata": {"user_id": "42"}}, "success_url": SUCCESS_URL,
              "cancel_url": "http://localhost:5000/billing", **extra}
    return client.v1.checkout.sessions.create(params=params)


def verified(delivery: dict, tolerance: int = 300) -> stripe.Event:
    return stripe.Webhook.construct_event(delivery["payload"], delivery["signature_header"], WEBHOOK_SECRET,
                                          tolerance=tolerance)


def paid_subscription(client, stripe_ctl, price: str = "price_basic") -> str:
    session = stripe_ctl.complete_checkout(start_checkout(client, price).id)
    stripe_ctl.deliveries(clear=True)
    return session["subscription"]


# --- resources -----------------------------------------------------------------------------------------
def test_customers_create_retrieve_update_list_and_search(stripe_client):
    customer = stripe_client.v1.customers.create(params={"email": "ada@example.com", "name": "Ada",
                                                         "metadata": {"user_id": "7"}})
    assert customer.id.startswith("cus_") and customer.metadata["user_id"] == "7"
    stripe_client.v1.customers.create(params={"email": "bob@example.com", "metadata": {"user_id": "8"}})
    updated = stripe_client.v1.customers.update(customer.id, params={"name": "Ada L"})
    assert updated.name == "Ada L" and stripe_client.v1.customers.retrieve(customer.id).name == "Ada L"
    by_email = stripe_client.v1.customers.list(params={"email": "ada@example.com"})
    assert [c.id for c in by_email.data] == [customer.id]
    found = stripe_client.v1.customers.search(params={"query": "metadata['user_id']:'7'"})
    assert [c.id for c in found.data] == [customer.id]
    found = stripe_client.v1.customers.search(params={"query": "email:'bob@example.com' OR email:'ada@example.com'"})
    assert len(found.data) == 2
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe_client.v1.customers.retrieve("cus_missing")
    assert caught.value.http_status == 404 and caught.value.code == "resource_missing"


def test_seeded_prices(stripe_client):
    basic = stripe_client.v1.prices.retrieve("price_basic")
    assert (basic.unit_amount, basic.nickname, basic.recurring.interval) == (900, "Basic", "month")
    assert {p.id for p in stripe_client.v1.prices.list().data} == {"price_basic", "price_pro"}
    product = stripe_client.v1.products.retrieve(basic.product)
    assert product.name == "Basic"


def test_stripe_version_is_read_and_echoed(stripe_url):
    answer = requests.get(f"{stripe_url}/v1/prices/price_pro", headers={
        "Authorization": f"Bearer {STRIPE_KEY}", "Stripe-Version": "2024-06-20"})
    assert answer.headers["Stripe-Version"] == "2024-06-20" and answer.headers["Request-Id"].startswith("req_")
    default = requests.get(f"{stripe_url}/v1/prices/price_pro", headers={"Authorization": f"Bearer {STRIPE_KEY}"})
    assert default.headers["Stripe-Version"] == stripe.api_version


def test_module_level_api_base_works(stripe_url, monkeypatch):
    monkeypatch.setattr(stripe, "api_key", STRIPE_KEY)
    monkeypatch.setattr(stripe, "api_base", stripe_url)
    assert stripe.Price.retrieve("price_pro").unit_amount == 2900


def test_bad_keys_get_401(stripe_url, stripe_ctl):
    for key in ("sk_live_123", "pk_test_123"):
        client = stripe.StripeClient(key, base_addresses={"api": stripe_url}, max_network_retries=0)
        with pytest.raises(stripe.AuthenticationError):
            client.v1.prices.retrieve("price_basic")
    stripe_ctl._call("POST", "keys/revoke", {"key": "sk_test_revoked"})
    revoked = stripe.StripeClient("sk_test_revoked", base_addresses={"api": stripe_url}, max_network_retries=0)
    with pytest.raises(stripe.AuthenticationError):
        revoked.v1.prices.retrieve("price_basic")
    answer = requests.get(f"{stripe_url}/v1/prices")
    assert answer.status_code == 401 and answer.json()["error"]["type"] == "invalid_request_error"


def test_checkout_validation_errors_name_the_param(stripe_client):
    with pytest.raises(stripe.InvalidRequestError) as caught:
        start_checkout(stripe_client, price="price_nope")
    assert caught.value.param == "line_items[0][price]" and caught.value.http_status == 400
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe_client.v1.checkout.sessions.create(params={"success_url": SUCCESS_URL})
    assert caught.value.param == "mode"


# --- checkout and its events ---------------------------------------------------------------------------
def test_hosted_checkout_page_pays_and_emits_signed_events(stripe_client, stripe_ctl):
    session = start_checkout(stripe_client, "price_pro", customer_email="pay@example.com")
    assert session.url.endswith(f"/pay/{session.id}") and session.status == "open"
    page = requests.get(session.url).text
    assert "Pro" in page and "$29.00" in page and "4242 4242 4242 4242" in page and "<script" not in page
    assert 'href="http://localhost:5000/billing"' in page  # Back
    paid = requests.post(session.url, allow_redirects=False)
    assert paid.status_code == 303
    assert paid.headers["Location"] == SUCCESS_URL.replace("{CHECKOUT_SESSION_ID}", session.id)

    deliveries = stripe_ctl.deliveries()
    assert [d["type"] for d in deliveries] == ["customer.created", *CHECKOUT_EVENTS]
    events = [verified(d) for d in deliveries]
    completed = events[1]
    assert completed.object == "event" and completed.api_version == stripe.api_version
    assert completed.livemode is False and completed.id.startswith("evt_")
    checkout = completed.data.object
    assert checkout.client_reference_id == "42" and checkout.payment_status == "paid"
    subscription = events[2].data.object
    assert subscription.metadata["user_id"] == "42" and subscription.customer == checkout.customer
    item = subscription["items"].data[0]
    assert item.price.id == "price_pro" and item.current_period_end > item.current_period_start
    invoice = events[3].data.object
    assert invoice.parent.subscription_details.subscription == subscription.id
    assert invoice.amount_paid == 2900 and invoice.billing_reason == "subscription_create"
    assert invoice.lines.data[0].pricing.price_details.price == "price_pro"
    assert stripe_client.v1.events.retrieve(completed.id).type == "checkout.session.completed"


def test_session_with_existing_customer_expands_and_lists(stripe_client, stripe_ctl):
    customer = stripe_client.v1.customers.create(params={"email": "c@example.com"})
    session = start_checkout(stripe_client, customer=customer.id)
    stripe_ctl.complete_checkout(session.id)
    assert [d["type"] for d in stripe_ctl.deliveries()][-4:] == CHECKOUT_EVENTS
    fetched = stripe_client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["subscription",
                                                                                           "line_items"]})
    assert fetched.subscription.customer == customer.id and fetched.line_items.data[0].price.id == "price_basic"
    (subscription,) = stripe_client.v1.subscriptions.list(params={"customer": customer.id}).data
    (invoice,) = stripe_client.v1.invoices.list(params={"customer": customer.id}).data
    assert invoice.status == "paid" and subscription.latest_invoice == invoice.id
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.checkout.sessions.create(params={"mode": "subscription", "customer": "cus_x",
                                                          "line_items": [{"price": "price_basic"}],
                                                          "success_url": SUCCESS_URL})


# --- subscription lifecycle ----------------------------------------------------------------------------
def test_renewal_emits_a_new_paid_invoice(stripe_client, stripe_ctl):
    subscription_id = paid_subscription(stripe_client, stripe_ctl)
    before = stripe_client.v1.subscriptions.retrieve(subscription_id)["items"].data[0].current_period_end
    stripe_ctl.subscription_command(subscription_id, "renew")
    deliveries = stripe_ctl.deliveries()
    assert [d["type"] for d in deliveries] == ["invoice.paid", "invoice.payment_succeeded",
                                               "customer.subscription.updated"]
    invoice = verified(deliveries[0]).data.object
    assert invoice.billing_reason == "subscription_cycle" and invoice.period_start == before
    after = stripe_client.v1.subscriptions.retrieve(subscription_id)["items"].data[0]
    assert after.current_period_start == before and after.current_period_end > before


def test_failed_payment_makes_the_subscription_past_due(stripe_client, stripe_ctl):
    subscription_id = paid_subscription(stripe_client, stripe_ctl)
    stripe_ctl.subscription_command(subscription_id, "fail_payment")
    deliveries = stripe_ctl.deliveries()
    assert [d["type"] for d in deliveries] == ["invoice.payment_failed", "customer.subscription.updated"]
    updated = verified(deliveries[1]).data
    assert updated.object.status == "past_due" and updated.previous_attributes["status"] == "active"
    assert stripe_client.v1.invoices.list(params={"status": "open"}).data[0].amount_paid == 0


def test_plan_change_cancel_resume_and_delete(stripe_client, stripe_ctl):
    subscription_id = paid_subscription(stripe_client, stripe_ctl)
    stripe_ctl.subscription_command(subscription_id, "change_plan", price="price_pro")
    sub = stripe_client.v1.subscriptions.retrieve(subscription_id)
    item_id = sub["items"].data[0].id
    assert sub["items"].data[0].price.id == "price_pro"
    changed = stripe_client.v1.subscriptions.update(subscription_id, params={
        "items": [{"id": item_id, "price": "price_basic"}], "proration_behavior": "none"})
    assert changed["items"].data[0].price.id == "price_basic" and changed["items"].data[0].id == item_id
    assert stripe_client.v1.subscriptions.update(subscription_id, params={"cancel_at_period_end": True}
                                                 ).cancel_at_period_end is True
    stripe_ctl.subscription_command(subscription_id, "resume")
    canceled = stripe_client.v1.subscriptions.cancel(subscription_id)
    assert canceled.status == "canceled"
    types = [verified(d).type for d in stripe_ctl.deliveries()]
    assert types == ["customer.subscription.updated"] * 4 + ["customer.subscription.deleted"]
    assert stripe_client.v1.subscriptions.list(params={"status": "all"}).data[0].status == "canceled"


def test_billing_portal_page_switches_cancels_and_resumes(stripe_client, stripe_ctl):
    subscription_id = paid_subscription(stripe_client, stripe_ctl)
    customer = stripe_client.v1.subscriptions.retrieve(subscription_id).customer
    portal = stripe_client.v1.billing_portal.sessions.create(params={"customer": customer,
                                                                     "return_url": "http://localhost:5000/account"})
    page = requests.get(portal.url).text
    assert "Basic" in page and "Pro" in page and 'href="http://localhost:5000/account"' in page
    actions = dict(re.findall(r'action="([^"]+/(plan|cancel))"', page)[::-1])
    action_for = {kind: path for path, kind in actions.items()}
    base = portal.url.split("/portal/")[0]
    requests.post(base + action_for["plan"], data={"price": "price_pro"})
    requests.post(base + action_for["cancel"])
    sub = stripe_client.v1.subscriptions.retrieve(subscription_id)
    assert sub["items"].data[0].price.id == "price_pro" and sub.cancel_at_period_end
    assert "Resume subscription" in requests.get(portal.url).text
    requests.post(base + action_for["cancel"].replace("/cancel", "/resume"))
    assert not stripe_client.v1.subscriptions.retrieve(subscription_id).cancel_at_period_end


# --- idempotency ----------------------------------------------------------------------------------------
def test_idempotency_key_replays_and_rejects_other_params(stripe_client, stripe_ctl):
    first = stripe_client.v1.customers.create(params={"email": "i@example.com"}, options={"idempotency_key": "k-1"})
    again = stripe_client.v1.customers.create(params={"email": "i@example.com"}, options={"idempotency_key": "k-1"})
    assert again.id == first.id and again.last_response.headers["Idempotent-Replayed"] == "true"
    with pytest.raises(stripe.IdempotencyError):
        stripe_client.v1.customers.create(params={"email": "x@example.com"}, options={"idempotency_key": "k-1"})
    assert len(stripe_client.v1.customers.list(params={"email": "i@example.com"}).data) == 1


def test_sdk_retry_after_a_500_reuses_its_idempotency_key(stripe_url, stripe_ctl):
    client = stripe.StripeClient(STRIPE_KEY, base_addresses={"api": stripe_url}, max_network_retries=1)
    stripe_ctl.fault("POST", r"^/v1/customers$", kind="server_error", headers={"Stripe-Should-Retry": "true"})
    mark = stripe_ctl.mark()
    client.v1.customers.create(params={"email": "retry@example.com"})
    assert [c["status"] for c in stripe_ctl.calls(since=mark)] == [500, 200]
    assert len(client.v1.customers.list(params={"email": "retry@example.com"}).data) == 1


# --- faults -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("kind", "error", "status"), [
    ("unauthorized", stripe.AuthenticationError, 401),
    ("card_declined", stripe.CardError, 402),
    ("forbidden", stripe.PermissionError, 403),
    ("not_found", stripe.InvalidRequestError, 404),
    ("rate_limit", stripe.RateLimitError, 429),
    ("lock_timeout", stripe.RateLimitError, 429),
    ("server_error", stripe.APIError, 500),
])
def test_scripted_faults_reach_the_sdk(stripe_client, stripe_ctl, kind, error, status):
    stripe_ctl.fault("POST", "/v1/checkout/sessions", kind=kind)
    with pytest.raises(error) as caught:
        start_checkout(stripe_client)
    assert caught.value.http_status == status
    assert start_checkout(stripe_client).status == "open"


def test_latency_and_hang_faults(stripe_url, stripe_client, stripe_ctl):
    stripe_ctl.fault("GET", "/v1/prices", latency_ms=150)
    started = time.monotonic()
    stripe_client.v1.prices.retrieve("price_basic")
    assert time.monotonic() - started >= 0.14
    stripe_ctl.fault("GET", "/v1/prices", hang=True, hang_s=5)
    impatient = stripe.StripeClient(STRIPE_KEY, base_addresses={"api": stripe_url}, max_network_retries=0,
                                    http_client=stripe.RequestsClient(timeout=0.5))
    with pytest.raises(stripe.APIConnectionError):
        impatient.v1.prices.retrieve("price_basic")


# --- webhook delivery modes -------------------------------------------------------------------------------
def test_duplicate_and_reversed_delivery(stripe_client, stripe_ctl):
    stripe_ctl.delivery_mode(duplicate=1, order="reverse")
    customer = stripe_client.v1.customers.create(params={"email": "d@example.com"})
    stripe_ctl.deliveries(clear=True)
    stripe_ctl.complete_checkout(start_checkout(stripe_client, customer=customer.id).id)
    types = [verified(d).type for d in stripe_ctl.deliveries()]
    assert types == [t for t in reversed(CHECKOUT_EVENTS) for _ in range(2)]


def test_shuffled_delivery_keeps_every_event(stripe_client, stripe_ctl):
    stripe_ctl.delivery_mode(order="shuffle")
    stripe_ctl.complete_checkout(start_checkout(stripe_client).id)
    assert sorted(d["type"] for d in stripe_ctl.deliveries()) == sorted(["customer.created", *CHECKOUT_EVENTS])


def test_bad_signature_and_stale_timestamp_are_rejected_by_stripe(stripe_client, stripe_ctl):
    stripe_ctl.delivery_mode(bad_signature=True)
    stripe_client.v1.customers.create(params={"email": "s@example.com"})
    (forged,) = stripe_ctl.deliveries(clear=True)
    with pytest.raises(stripe.SignatureVerificationError):
        verified(forged)
    stripe_ctl.delivery_mode(bad_signature=False, stale_timestamp_s=900)
    stripe_client.v1.customers.create(params={"email": "t@example.com"})
    (stale,) = stripe_ctl.deliveries()
    with pytest.raises(stripe.SignatureVerificationError, match="tolerance"):
        verified(stale)
    assert verified(stale, tolerance=0).type == "customer.created"  # the HMAC itself is right


def test_delayed_delivery(stripe_client, stripe_ctl):
    stripe_ctl.delivery_mode(delay_ms=150)
    started = time.monotonic()
    stripe_client.v1.customers.create(params={"email": "late@example.com"})
    assert len(stripe_ctl.deliveries()) == 1  # waits for the queue to drain
    assert time.monotonic() - started >= 0.14


class Receiver(http.server.BaseHTTPRequestHandler):
    """A webhook endpoint that fails the first attempt of every event and verifies signatures."""

    seen: list[tuple[str, int]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        payload = self.rfile.read(int(self.headers["Content-Length"])).decode()
        event = stripe.Webhook.construct_event(payload, self.headers["Stripe-Signature"], WEBHOOK_SECRET)
        first_time = all(event_id != event.id for event_id, _ in self.seen)
        status = 500 if first_time else 200
        self.seen.append((event.id, status))
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver():
    Receiver.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/api/webhooks/stripe"
    server.shutdown()
    server.server_close()


def test_delivery_to_a_url_retries_until_2xx(stripe_client, stripe_ctl, receiver):
    stripe_ctl.set_webhook(url=receiver, secret=WEBHOOK_SECRET)
    stripe_ctl.delivery_mode(retry_backoff_ms=20)
    customer = stripe_client.v1.customers.create(params={"email": "hook@example.com"})
    stripe_ctl.flush_deliveries()
    (delivery,) = stripe_ctl.deliveries()
    assert delivery["delivered"] and [a["status"] for a in delivery["attempts"]] == [500, 200]
    assert [status for _, status in Receiver.seen] == [500, 200]
    assert json.loads(delivery["payload"])["data"]["object"]["id"] == customer.id


def test_delivery_gives_up_after_max_attempts(stripe_client, stripe_ctl):
    stripe_ctl.set_webhook(url="http://127.0.0.1:9/unreachable")
    stripe_ctl.delivery_mode(max_attempts=2, retry_backoff_ms=10)
    stripe_client.v1.customers.create(params={"email": "nobody@example.com"})
    (delivery,) = stripe_ctl.deliveries()
    assert not delivery["delivered"] and len(delivery["attempts"]) == 2
    assert all(a["status"] is None and a["error"] for a in delivery["attempts"])


def test_events_list_filters_by_type(stripe_client, stripe_ctl):
    stripe_ctl.complete_checkout(start_checkout(stripe_client).id)
    listed = stripe_client.v1.events.list(params={"type": "invoice.*"})
    assert {e.type for e in listed.data} == {"invoice.paid", "invoice.payment_succeeded"}
    assert len(stripe_ctl.events()) == 5


# --- API versions, clock, signature timestamps ---------------------------------------------------------
def test_objects_have_the_pinned_versions_shape_with_endives_additions(stripe_client, stripe_ctl):
    assert stripe.api_version == "2026-10-28.endive"
    session = stripe_ctl.complete_checkout(start_checkout(stripe_client).id)
    deliveries = stripe_ctl.deliveries()
    assert {verified(d).api_version for d in deliveries} == {"2026-10-28.endive"}
    subscription = stripe_client.v1.subscriptions.retrieve(session["subscription"])
    item = subscription["items"].data[0]
    assert item.billed_until == item.current_period_end and item.current_trial is None
    assert subscription.status_details is None and subscription.customer_account is None
    invoice = stripe_client.v1.invoices.retrieve(session["invoice"])
    assert invoice.amount_paid_off_stripe == 0 and invoice.status_details is None
    line = invoice.lines.data[0]
    assert line.subtotal == 900 and line.parent.subscription_item_details.subscription_item == item.id
    raw = requests.get(f"{stripe_ctl.base_url}/_emulator/events").json()["events"]
    assert "subscription" not in next(e for e in raw if e["type"] == "invoice.paid")["data"]["object"]


def test_webhook_endpoint_on_an_old_api_version_gets_the_old_shapes(stripe_client, stripe_ctl):
    assert stripe_ctl.set_webhook(api_version="2025-02-24.acacia")["api_version"] == "2025-02-24.acacia"
    session = stripe_ctl.complete_checkout(start_checkout(stripe_client).id)
    events = {d["type"]: json.loads(d["payload"]) for d in stripe_ctl.deliveries()}
    assert {e["api_version"] for e in events.values()} == {"2025-02-24.acacia"}
    invoice = events["invoice.paid"]["data"]["object"]
    assert invoice["subscription"] == session["subscription"] and "parent" not in invoice
    assert invoice["subscription_details"]["metadata"] == {"user_id": "42"} and invoice["paid"] is True
    line = invoice["lines"]["data"][0]
    assert line["price"]["id"] == "price_basic" and "pricing" not in line and "subtotal" not in line
    subscription = events["customer.subscription.created"]["data"]["object"]
    item = subscription["items"]["data"][0]
    assert subscription["current_period_end"] > subscription["current_period_start"]
    assert "current_period_end" not in item and "billed_until" not in item
    # The API itself still answers in the pinned version, as Stripe does for the SDK's requests.
    assert stripe_client.v1.invoices.retrieve(session["invoice"]).parent.subscription_details.subscription
    bad = requests.post(f"{stripe_ctl.base_url}/_emulator/webhook", json={"api_version": "soon"})
    assert bad.status_code == 400


def test_the_clock_steps_forward_without_sleeping(stripe_client, stripe_ctl):
    first = stripe_client.v1.customers.create(params={"email": "a@example.com"})
    now = stripe_ctl.advance_clock(3600)
    assert now >= int(time.time()) + 3600 - 1
    second = stripe_client.v1.customers.create(params={"email": "b@example.com"})
    assert second.created - first.created >= 3600
    (_, later) = stripe_ctl.deliveries()
    assert verified(later).created == second.created  # events use the stepped clock ...
    t = int(re.match(r"t=(\d+),", later["signature_header"]).group(1))
    assert abs(t - time.time()) < 60  # ... while signatures keep the wall clock
    for bad in ({"advance_s": -1}, {"advance_s": "1"}, {"advance_s": 1.5}, []):
        assert requests.post(f"{stripe_ctl.base_url}/_emulator/clock", json=bad).status_code == 400
    stripe_ctl.reset()
    assert abs(stripe_ctl.advance_clock(0) - time.time()) < 60  # reset puts the clock back


def test_future_timestamp_delivery_mode_signs_ahead(stripe_client, stripe_ctl):
    stripe_ctl.delivery_mode(future_timestamp_s=4000)
    stripe_client.v1.customers.create(params={"email": "f@example.com"})
    (ahead,) = stripe_ctl.deliveries()
    t = int(re.match(r"t=(\d+),", ahead["signature_header"]).group(1))
    assert t - time.time() > 3900
    assert verified(ahead).type == "customer.created"  # the HMAC is right; only the time is off
