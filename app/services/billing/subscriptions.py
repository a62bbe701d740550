"""Subscriptions: what a person's plan is, and applying Stripe's subscription objects to our rows.

- **`users.plan`** is the best plan among the user's subscriptions whose status keeps the plan in force
  (active, trialing, past_due); anything else is Free. Credits already granted always stay.
- **Order does not matter**: a subscription change older than the last one applied
  (`Subscription.last_event_created`) is ignored; one with the same second (Stripe's `created` has
  one-second resolution) is resolved by reading the subscription from Stripe, which is the truth.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import NotFound
from app.models import BillingCustomer, Subscription, User
from app.models.users import PLAN_FREE
from app.services.billing.context import EventContext
from app.services.billing.objects import object_id, subscription_period_end, subscription_price_id
from app.services.billing.plans import PAID_PLANS, PLAN_RANK, PLAN_UNKNOWN, plan_for_price, plan_name

log = logging.getLogger(__name__)

# Stripe statuses in which the plan is in force. past_due keeps it while Stripe retries the payment.
LIVE_STATUSES = ("active", "trialing", "past_due")
# Statuses that block a new checkout: the person fixes payment or changes plan in the portal instead.
BLOCKING_STATUSES = (*LIVE_STATUSES, "unpaid")


@dataclass(frozen=True)
class BillingStatus:
    """What the plans and account pages say about a user's plan."""

    plan: str
    status: str | None = None
    renews_at: datetime | None = None
    cancel_at_period_end: bool = False
    subscription_plan: str | None = None
    has_customer: bool = False

    @property
    def plan_name(self) -> str:
        return plan_name(self.plan)

    @property
    def subscription_plan_name(self) -> str:
        return plan_name(self.subscription_plan or self.plan)

    @property
    def past_due(self) -> bool:
        return self.status == "past_due"

    @property
    def lapsed_unpaid(self) -> bool:
        return self.status in ("unpaid", "incomplete_expired")

    @property
    def has_live_subscription(self) -> bool:
        return self.status in BLOCKING_STATUSES

    @property
    def status_label(self) -> str:
        labels = {
            "active": "Active", "trialing": "Trial", "past_due": "Payment failed",
            "unpaid": "Unpaid", "canceled": "Canceled", "incomplete": "Awaiting payment",
            "incomplete_expired": "Expired", "paused": "Paused",
        }
        if self.status == "active" and self.cancel_at_period_end:
            return "Cancels at period end"
        return labels.get(self.status or "", "No subscription")


def user_subscriptions(session: Session, user_id: int) -> list[Subscription]:
    return list(session.execute(
        select(Subscription).where(Subscription.user_id == user_id).order_by(Subscription.id)
    ).scalars())


def best_subscription(subscriptions: list[Subscription]) -> Subscription | None:
    """The subscription a person would call "my plan": live ones first (highest plan), then the newest."""
    if not subscriptions:
        return None
    def rank(sub: Subscription) -> tuple[int, int, int]:
        live = 2 if sub.status in LIVE_STATUSES else (1 if sub.status in BLOCKING_STATUSES else 0)
        return (live, PLAN_RANK.get(sub.plan, 0) if live else 0, sub.id)
    return max(subscriptions, key=rank)


def billing_status(session: Session, user_id: int) -> BillingStatus:
    """The user's plan, subscription status and renewal date. Reads only."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("There is no such user.")
    # One round trip: the user's row, outer-joined to their customer and to each of their subscriptions.
    rows = session.execute(
        select(BillingCustomer.id, Subscription)
        .select_from(User)
        .outerjoin(BillingCustomer, BillingCustomer.user_id == User.id)
        .outerjoin(Subscription, Subscription.user_id == User.id)
        .where(User.id == user_id)
        .order_by(Subscription.id)
    ).all()
    has_customer = any(customer_id is not None for customer_id, _ in rows)
    best = best_subscription([sub for _, sub in rows if sub is not None])
    if best is None:
        return BillingStatus(plan=user.plan or PLAN_FREE, has_customer=has_customer)
    return BillingStatus(
        plan=user.plan or PLAN_FREE,
        status=best.status,
        renews_at=best.current_period_end,
        cancel_at_period_end=best.cancel_at_period_end,
        subscription_plan=best.plan if best.plan in PLAN_RANK else None,
        has_customer=has_customer,
    )


def refresh_user_plan(session: Session, user_id: int) -> str:
    """Set `users.plan` from the user's subscriptions (the best one in force, else Free). Flushes."""
    live = [sub for sub in user_subscriptions(session, user_id)
            if sub.status in LIVE_STATUSES and sub.plan in PAID_PLANS]
    best = best_subscription(live)
    plan = best.plan if best is not None else PLAN_FREE
    user = session.get(User, user_id)
    if user is not None and user.plan != plan:
        log.info("billing: user=%s plan %s -> %s", user_id, user.plan, plan)
        user.plan = plan
        session.flush()
    return plan


def lock_subscription(session: Session, subscription_id: str) -> Subscription | None:
    return session.execute(
        select(Subscription).where(Subscription.stripe_subscription_id == subscription_id).with_for_update()
    ).scalar_one_or_none()


def apply_subscription_object(ctx: EventContext, row: Subscription | None, obj: dict[str, Any],
                              user_id: int, *, stamp: int) -> Subscription:
    """Write Stripe's subscription object onto our row (created when missing), stamped `stamp`."""
    price_id = subscription_price_id(obj) or ""
    plan = plan_for_price(ctx.settings, price_id)
    if row is None:
        row = Subscription(stripe_subscription_id=str(obj["id"]), plan=plan or PLAN_UNKNOWN)
        ctx.session.add(row)
    elif plan is None:
        # A price this server no longer lists (the operator moved the plan to a new price): the
        # subscription keeps the plan it was sold as.
        plan = row.plan
    row.user_id = row.user_id or user_id
    row.stripe_customer_id = object_id(obj.get("customer")) or row.stripe_customer_id or ""
    row.plan = plan or PLAN_UNKNOWN
    row.price_id = price_id
    row.status = str(obj.get("status") or row.status or "incomplete")
    row.current_period_end = subscription_period_end(obj) or row.current_period_end
    row.cancel_at_period_end = bool(obj.get("cancel_at_period_end")) or bool(obj.get("cancel_at"))
    row.last_event_created = max(row.last_event_created or 0, stamp)
    ctx.session.flush()
    return row


def fetch_subscription(ctx: EventContext, subscription_id: str) -> dict[str, Any] | None:
    try:
        return ctx.gateway.retrieve_subscription(subscription_id)
    except NotFound:
        return None


def sync_subscription(ctx: EventContext, subscription_id: str, user_id: int,
                      proposed: dict[str, Any] | None) -> Subscription | None:
    """Apply a subscription state carried by an event, unless a newer one was applied already.

    `proposed` is the object in the event (None: the event carries none, read it from Stripe). Older
    than the row's `last_event_created`: ignored. Same second: ambiguous, so Stripe's current object
    wins. Newer: applied.
    """
    row = lock_subscription(ctx.session, subscription_id)
    if row is not None and ctx.created < row.last_event_created:
        ctx.notes.append(f"stale for {subscription_id}: kept the newer state")
        if row.user_id is None:
            row.user_id = user_id
        return row
    if proposed is None or (row is not None and ctx.created == row.last_event_created):
        current = fetch_subscription(ctx, subscription_id)
        if current is not None:
            proposed = current
        elif proposed is None:
            ctx.notes.append(f"subscription {subscription_id} not found at Stripe")
            return row
    return apply_subscription_object(ctx, row, proposed, user_id, stamp=ctx.created)
