"""Operator repair: re-reading a customer's subscriptions and paid invoices from Stripe."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import NotFound
from app.models import User
from app.providers.stripe_client import StripeGateway
from app.services import credits
from app.services.billing.context import EventContext, Ignored, commit_with_grant, customer_row
from app.services.billing.invoices import grant_for_invoice
from app.services.billing.settings import BillingSettings
from app.services.billing.subscriptions import apply_subscription_object, lock_subscription, refresh_user_plan

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SyncReport:
    login: str
    customer_id: str | None
    subscriptions: list[tuple[str, str, str]]  # (id, plan, status)
    plan: str
    credits_granted: int


def sync_customer(session: Session, gateway: StripeGateway, settings: BillingSettings, login: str) -> SyncReport:
    """Re-read the user's Stripe subscriptions and paid invoices and repair local state. Commits.

    Subscriptions are overwritten with Stripe's current objects (their `last_event_created` is kept, so
    later events still apply); paid invoices whose grant is missing (a lost webhook) are granted through
    the same rules as the webhook, idempotently. Reads from Stripe happen before any lock is taken.
    """
    user = session.execute(select(User).where(User.login == login)).scalar_one_or_none()
    if user is None:
        raise NotFound(f"There is no user {login!r}.")
    user_id = user.id
    customer = customer_row(session, user_id)
    if customer is None:
        plan = refresh_user_plan(session, user_id)
        session.commit()
        return SyncReport(login, None, [], plan, 0)
    customer_id = customer.stripe_customer_id
    stripe_subscriptions = gateway.list_subscriptions(customer_id)
    paid_invoices = gateway.list_paid_invoices(customer_id)
    session.rollback()

    ctx = EventContext(session, gateway, settings, "sync", "sync", 0)
    credits.lock_balance(session, user_id)
    synced = []
    for obj in stripe_subscriptions:
        row = lock_subscription(session, str(obj["id"]))
        stamp = row.last_event_created if row is not None else 0
        row = apply_subscription_object(ctx, row, obj, user_id, stamp=stamp)
        synced.append((row.stripe_subscription_id, row.plan, row.status))
    plan = refresh_user_plan(session, user_id)
    session.commit()
    # Oldest first, one transaction per invoice: each grant commits on its own.
    for invoice in reversed(paid_invoices):
        try:
            grant_for_invoice(ctx, invoice)
        except Ignored as reason:
            log.info("billing: sync %s: %s", login, reason)
        commit_with_grant(ctx)
    log.info("billing: synced user=%s subscriptions=%s granted=%s", user_id, len(synced), ctx.granted)
    return SyncReport(login, customer_id, synced, plan, ctx.granted)
