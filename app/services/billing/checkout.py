"""Customers, Checkout and the billing portal: how a person starts paying, and the success page's progress.

Nothing here grants credits: only verified webhooks do.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import Conflict, InvalidRequest, NotFound, Unavailable, UpstreamError
from app.models import BillingCustomer, User
from app.providers.stripe_client import HostedSession, StripeGateway
from app.services import credits
from app.services.billing.context import customer_row, invoice_grant_key
from app.services.billing.objects import object_id
from app.services.billing.plans import PAID_PLANS, plan_name, plan_price_ids
from app.services.billing.settings import BillingSettings
from app.services.billing.subscriptions import BLOCKING_STATUSES, best_subscription, user_subscriptions

log = logging.getLogger(__name__)

# A double click, or a retried API call without an Idempotency-Key, within this window opens one session.
CHECKOUT_DEDUP_WINDOW_S = 600
REQUEST_KEY_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{8,100}$")
INVOICE_ID_PATTERN = re.compile(r"^in_[A-Za-z0-9_]{1,200}$")
CHECKOUT_ID_PATTERN = re.compile(r"^cs_[A-Za-z0-9_]{1,250}$")


def ensure_customer(session: Session, gateway: StripeGateway, user: User) -> str:
    """The user's Stripe customer id, created on first need. Commits. Race-safe.

    Two requests racing here send the same Stripe idempotency key, so Stripe creates one customer and
    answers both with it; the unique index on `billing_customers.user_id` then keeps one row and the loser
    reads the winner's. The key includes the account's creation time, so a reused user id on a rebuilt
    database never gets someone else's customer.
    """
    existing = customer_row(session, user.id)
    if existing is not None:
        return existing.stripe_customer_id
    created_s = int(user.created_at.timestamp()) if user.created_at else 0
    customer_id = gateway.create_customer(
        email=user.email,
        name=user.name or user.login,
        metadata={"user_id": str(user.id), "login": user.login},
        idempotency_key=f"sorya-customer-{user.id}-{created_s}",
    )
    session.add(BillingCustomer(user_id=user.id, stripe_customer_id=customer_id))
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        winner = customer_row(session, user.id)
        if winner is None:
            raise
        return winner.stripe_customer_id
    log.info("billing: customer %s created for user=%s", customer_id, user.id)
    return customer_id


def parse_plan(raw: Any) -> str:
    """A paid plan key from user input, or a 400 naming the field."""
    if not isinstance(raw, str) or raw.strip().lower() not in PAID_PLANS:
        raise InvalidRequest("Choose the basic or the pro plan.", fields={"plan": "must be basic or pro"})
    return raw.strip().lower()


def start_checkout(
    session: Session,
    gateway: StripeGateway,
    settings: BillingSettings,
    user: User,
    plan: str,
    *,
    success_url: str,
    cancel_url: str,
    request_key: str | None = None,
    now_s: float | None = None,
) -> HostedSession:
    """A Stripe Checkout Session (subscription mode) for `plan`, on the user's own customer.

    Idempotent: the Stripe idempotency key is derived from the user, the plan, the number of
    subscriptions they already have, and `request_key` (the form's one-time token or the API's
    Idempotency-Key header) or else the current `CHECKOUT_DEDUP_WINDOW_S` window, so a double click or a
    retried call gets the same session back instead of a second one. Grants nothing: only verified
    webhooks do. Raises `Conflict` when the user already has a subscription (plan changes go through the
    portal, so nobody pays twice), `Unavailable` when the plan has no price configured.
    """
    plan = parse_plan(plan)
    price_id = plan_price_ids(settings)[plan]
    if not price_id or not gateway.configured:
        raise Unavailable(f"The {plan_name(plan)} plan cannot be bought on this server yet: payments are not configured.")
    subscriptions = user_subscriptions(session, user.id)
    live = [sub for sub in subscriptions if sub.status in BLOCKING_STATUSES]
    if live:
        current = best_subscription(live)
        assert current is not None
        raise Conflict(
            f"You already have the {plan_name(current.plan)} plan. Change plan, update payment or cancel "
            "in Manage billing."
        )
    customer_id = ensure_customer(session, gateway, user)
    if request_key and REQUEST_KEY_PATTERN.match(request_key):
        nonce = f"req:{request_key}"
    else:
        nonce = f"win:{int((now_s if now_s is not None else time.time()) // CHECKOUT_DEDUP_WINDOW_S)}"
    digest = hashlib.sha256(f"{customer_id}|{plan}|{len(subscriptions)}|{nonce}".encode()).hexdigest()[:40]
    metadata = {"user_id": str(user.id), "login": user.login, "plan": plan}
    params: dict[str, Any] = {
        "mode": "subscription",
        "customer": customer_id,
        "client_reference_id": str(user.id),
        "line_items": [{"price": price_id, "quantity": 1}],
        "success_url": success_url,
        "cancel_url": cancel_url,
        "metadata": metadata,
        # Copied onto the subscription and, through it, onto every invoice's parent details: a webhook
        # can name its user from the object alone.
        "subscription_data": {"metadata": metadata},
    }
    hosted = gateway.create_checkout_session(params, idempotency_key=f"sorya-checkout-{user.id}-{digest}")
    log.info("billing: checkout %s for user=%s plan=%s", hosted.id, user.id, plan)
    return hosted


def open_portal(session: Session, gateway: StripeGateway, user: User, *, return_url: str) -> HostedSession:
    """A Stripe billing portal session for the user's customer (plan changes, payment methods, invoices,
    cancellation). Raises `Conflict` when the user never had a Stripe customer: there is nothing to manage.
    """
    customer = customer_row(session, user.id)
    if customer is None:
        raise Conflict("You have no billing account yet: subscribe to a plan first.")
    return gateway.create_portal_session(customer_id=customer.stripe_customer_id, return_url=return_url)


@dataclass(frozen=True)
class CheckoutProgress:
    """Where a finished checkout stands, for the success page: has its invoice's grant landed?"""

    granted: bool
    invoice_id: str | None = None
    credits_granted: int = 0
    plan: str | None = None
    paid: bool = True

    @property
    def plan_name(self) -> str:
        return plan_name(self.plan) if self.plan else "your plan"


def _grant_progress(session: Session, user_id: int, invoice_id: str, plan: str | None) -> CheckoutProgress:
    entry = credits.find_entry(session, invoice_grant_key(invoice_id))
    if entry is None or entry.user_id != user_id:
        return CheckoutProgress(granted=False, invoice_id=invoice_id, plan=plan)
    return CheckoutProgress(
        granted=True, invoice_id=invoice_id, credits_granted=entry.delta,
        plan=(entry.meta or {}).get("plan", plan),
    )


def checkout_progress(
    session: Session, gateway: StripeGateway, user_id: int, checkout_session_id: str,
    *, invoice_id: str | None = None,
) -> CheckoutProgress:
    """Whether the credits of this user's checkout have been granted yet. Never grants anything.

    With `invoice_id` (learned on an earlier call) it is one indexed read of the ledger, and only the
    user's own entry counts. Without it, the Checkout Session is read from Stripe (404 when it is not
    this user's) to learn its invoice. A Stripe failure answers "not yet", so the page keeps waiting.
    """
    if invoice_id and INVOICE_ID_PATTERN.match(invoice_id):
        return _grant_progress(session, user_id, invoice_id, None)
    if not CHECKOUT_ID_PATTERN.match(checkout_session_id or ""):
        raise NotFound("There is no such checkout.")
    try:
        checkout = gateway.retrieve_checkout_session(checkout_session_id)
    except NotFound:
        raise NotFound("There is no such checkout.") from None
    except UpstreamError:
        return CheckoutProgress(granted=False)
    owner = checkout.get("client_reference_id") or (checkout.get("metadata") or {}).get("user_id")
    if str(owner) != str(user_id):
        raise NotFound("There is no such checkout.")
    plan = (checkout.get("metadata") or {}).get("plan")
    paid = checkout.get("payment_status") in ("paid", "no_payment_required")
    invoice = object_id(checkout.get("invoice"))
    if invoice is None and checkout.get("subscription"):
        try:
            subscription = gateway.retrieve_subscription(object_id(checkout["subscription"]) or "")
            invoice = object_id(subscription.get("latest_invoice"))
        except (UpstreamError, NotFound):
            invoice = None
    if invoice is None:
        return CheckoutProgress(granted=False, plan=plan, paid=paid)
    progress = _grant_progress(session, user_id, invoice, plan)
    return CheckoutProgress(progress.granted, invoice, progress.credits_granted, progress.plan or plan, paid)
