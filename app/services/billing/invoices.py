"""Paid invoices and the plan credits they grant.

**Each paid invoice grants its plan's credits exactly once**: the grant is a ledger entry with the
idempotency key `invoice:<invoice id>`, so whichever of `invoice.paid` / `invoice.payment_succeeded`
arrives first grants, and every later delivery of either (duplicates, retries, replays, concurrent
deliveries on other connections) finds the entry and grants nothing.

Proration (decided here): an invoice with `billing_reason` `subscription_create` or `subscription_cycle`
grants the plan's full monthly credits. A `subscription_update` invoice (a mid-period upgrade charged
immediately) grants credits in proportion to the money actually paid: floor(plan credits x amount_paid /
plan price), never more than the plan's credits. An upgrade from Basic to Pro halfway through the month
thus grants about half the Pro credits at once for about half the price difference, and the next renewal
grants the full Pro amount; a downgrade produces a credit note, not a paid invoice, so it grants nothing,
and switching plans back and forth cannot mint credits that were not paid for. Every other reason (manual
invoices, thresholds) grants nothing and is recorded as ignored.
"""

from __future__ import annotations

from typing import Any

from app.models import Subscription
from app.providers.stripe_client import StripeGateway
from app.services import credits
from app.services.billing.context import EventContext, Ignored, invoice_grant_key, resolve_user
from app.services.billing.objects import (
    invoice_lines,
    invoice_subscription_id,
    line_price_id,
    object_id,
    subscription_price_id,
)
from app.services.billing.plans import PAID_PLANS, plan_credits, plan_for_price, plan_price_ids
from app.services.billing.settings import BillingSettings
from app.services.billing.subscriptions import fetch_subscription, lock_subscription, refresh_user_plan

GRANTING_BILLING_REASONS = ("subscription_create", "subscription_cycle")
PRORATION_BILLING_REASON = "subscription_update"


def _invoice_plan(ctx: EventContext, invoice: dict[str, Any], row: Subscription | None,
                  subscription_id: str) -> str | None:
    """The plan an invoice pays for: the price of its largest charged line, else the subscription's."""
    lines = sorted(invoice_lines(invoice), key=lambda line: int(line.get("amount") or 0), reverse=True)
    for line in lines:
        plan = plan_for_price(ctx.settings, line_price_id(line))
        if plan:
            return plan
    if row is not None and row.plan in PAID_PLANS:
        return row.plan
    current = fetch_subscription(ctx, subscription_id)
    if current is not None:
        return plan_for_price(ctx.settings, subscription_price_id(current))
    return None


def credits_for_invoice(settings: BillingSettings, gateway: StripeGateway, invoice: dict[str, Any], plan: str) -> int:
    """How many credits a paid invoice of `plan` grants (the proration policy in the module docstring)."""
    reason = invoice.get("billing_reason")
    full = plan_credits(settings, plan)
    if reason in GRANTING_BILLING_REASONS:
        return full
    if reason != PRORATION_BILLING_REASON:
        return 0
    amount_paid = int(invoice.get("amount_paid") or 0)
    if amount_paid <= 0:
        return 0
    price = gateway.retrieve_price(plan_price_ids(settings)[plan])
    if not price.unit_amount:
        return 0
    return min(full, full * amount_paid // price.unit_amount)


def grant_for_invoice(ctx: EventContext, invoice: dict[str, Any]) -> int:
    """Prepare a paid invoice's grant (ledger key `invoice:<id>`, posted at commit); returns the amount.

    Takes the user's balance lock and checks the key under it, so the post at commit cannot collide.
    """
    invoice_id = str(invoice["id"])
    if invoice.get("status") not in (None, "paid"):
        raise Ignored(f"invoice {invoice_id} is {invoice.get('status')}, not paid")
    subscription_id, user_id, row = lock_invoice_owner(ctx, invoice)
    if credits.find_entry(ctx.session, invoice_grant_key(invoice_id)) is not None:
        ctx.notes.append(f"invoice {invoice_id} already granted")
        _clear_past_due(ctx, row, user_id)
        return 0
    plan = _invoice_plan(ctx, invoice, row, subscription_id)
    if plan not in PAID_PLANS:
        raise Ignored(f"invoice {invoice_id} pays for no Sorya plan")
    amount = credits_for_invoice(ctx.settings, ctx.gateway, invoice, plan)
    _clear_past_due(ctx, row, user_id)
    if amount <= 0:
        raise Ignored(f"invoice {invoice_id} ({invoice.get('billing_reason')}) grants no credits")
    ctx.pending_grant = {
        "user_id": user_id,
        "delta": amount,
        "reason": credits.REASON_PLAN_GRANT,
        "idempotency_key": invoice_grant_key(invoice_id),
        "meta": {"plan": plan, "invoice_id": invoice_id, "subscription_id": subscription_id,
                 "billing_reason": invoice.get("billing_reason"), "event_id": ctx.event_id},
    }
    ctx.notes.append(f"granted {amount} for invoice {invoice_id}")
    return amount


def lock_invoice_owner(ctx: EventContext, invoice: dict[str, Any]) -> tuple[str, int, Subscription | None]:
    """The invoice's subscription id and user, with the user's balance and the subscription row locked
    (in the lock order of `billing.context`). Raises `Ignored` for an invoice that is not for a
    subscription."""
    subscription_id = invoice_subscription_id(invoice)
    if subscription_id is None:
        raise Ignored(f"invoice {invoice.get('id')} is not for a subscription")
    details = ((invoice.get("parent") or {}).get("subscription_details")) or {}
    user_id = resolve_user(
        ctx, customer_id=object_id(invoice.get("customer")), subscription_id=subscription_id,
        metadata=(details.get("metadata"), invoice.get("metadata")),
    )
    credits.lock_balance(ctx.session, user_id)
    return subscription_id, user_id, lock_subscription(ctx.session, subscription_id)


def _clear_past_due(ctx: EventContext, row: Subscription | None, user_id: int) -> None:
    """A newer paid invoice settles a past-due subscription, even before its own update event lands."""
    if row is None or row.status not in ("past_due", "unpaid") or ctx.created <= row.last_event_created:
        return
    row.status = "active"
    row.last_event_created = ctx.created
    refresh_user_plan(ctx.session, user_id)
