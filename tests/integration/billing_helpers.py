"""What the billing tests share: subscribing through the API, paying at the Stripe emulator, and posting
its signed webhook deliveries (collected, so a test chooses their order, copies and timing)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

from sqlalchemy import func, select

from tests.conftest import TEST_WEBHOOK_SECRET, csrf_token_for

WEBHOOK_PATH = "/api/webhooks/stripe"
CHECKOUT_TYPES = ("checkout.session.completed", "customer.subscription.created", "invoice.paid",
                  "invoice.payment_succeeded")


def signature(payload: str, *, secret: str = TEST_WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """A `Stripe-Signature` header exactly as Stripe computes it."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def subscribe(client, plan: str = "basic", *, idempotency_key: str | None = None):
    headers = {"X-CSRFToken": csrf_token_for(client)}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    return client.post("/api/billing/subscribe", json={"plan": plan}, headers=headers)


def session_id_of(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def take_deliveries(stripe_emulator, types: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """The signed deliveries collected since the last call (waits until the emulator's queue is idle)."""
    found = stripe_emulator.control.deliveries(clear=True)
    return [d for d in found if types is None or d["type"] in types]


def checkout_and_pay(client, stripe_emulator, plan: str = "basic") -> tuple[str, list[dict[str, Any]]]:
    """Subscribe through the API, press Pay at the emulator; the checkout session id and its four events."""
    response = subscribe(client, plan)
    assert response.status_code == 200, response.get_data(as_text=True)
    session_id = session_id_of(response.get_json()["url"])
    take_deliveries(stripe_emulator)  # drop customer.created from creating the customer
    stripe_emulator.control.complete_checkout(session_id)
    events = take_deliveries(stripe_emulator, CHECKOUT_TYPES)
    assert {d["type"] for d in events} == set(CHECKOUT_TYPES)
    return session_id, events


def post_delivery(client, delivery: dict[str, Any]):
    return post_raw(client, delivery["payload"], delivery["signature_header"])


def post_raw(client, payload: str | bytes, header: str | None):
    headers = {"Content-Type": "application/json"}
    if header is not None:
        headers["Stripe-Signature"] = header
    body = payload.encode() if isinstance(payload, str) else payload
    return client.post(WEBHOOK_PATH, data=body, headers=headers)


def post_event(client, event: dict[str, Any], *, timestamp: int | None = None):
    """Post an event the test built or altered, signed with the right secret."""
    payload = json.dumps(event)
    return post_raw(client, payload, signature(payload, timestamp=timestamp))


def by_type(deliveries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["type"]: d for d in deliveries}


def event_of(delivery: dict[str, Any]) -> dict[str, Any]:
    return json.loads(delivery["payload"])


# -- reading state ----------------------------------------------------------------------------------


def state_of(app, user_id: int) -> dict[str, Any]:
    """Everything billing may change for a user, in one comparable value."""
    from app.extensions import db
    from app.models import BillingCustomer, CreditBalance, LedgerEntry, Subscription, User

    with app.app_context():
        session = db.session
        user = session.get(User, user_id)
        balance = session.get(CreditBalance, user_id)
        grants = session.execute(
            select(LedgerEntry.idempotency_key, LedgerEntry.delta)
            .where(LedgerEntry.user_id == user_id, LedgerEntry.reason == "plan_grant").order_by(LedgerEntry.id)
        ).all()
        subscriptions = session.execute(
            select(Subscription.plan, Subscription.status, Subscription.cancel_at_period_end,
                   Subscription.current_period_end, Subscription.user_id)
            .where(Subscription.user_id == user_id)
        ).all()
        customers = session.execute(
            select(BillingCustomer.stripe_customer_id).where(BillingCustomer.user_id == user_id)
        ).scalars().all()
        result = {
            "plan": user.plan,
            "balance": balance.balance if balance else 0,
            "grants": sorted(grants),
            "subscriptions": sorted((s.plan, s.status, s.cancel_at_period_end, s.current_period_end)
                                    for s in subscriptions),
            "customers": list(customers),
        }
        db.session.remove()
        return result


def count_rows(app, model) -> int:
    from app.extensions import db

    with app.app_context():
        count = db.session.execute(select(func.count()).select_from(model)).scalar_one()
        db.session.remove()
        return count
