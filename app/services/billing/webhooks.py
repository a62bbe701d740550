"""Stripe's webhook events: verifying them, and applying each exactly once through its handler.

- **Each event is applied once, atomically**: `process_event` writes the event's `stripe_events` row, its
  subscription and customer changes, `users.plan` and the ledger entry in ONE transaction. The event row
  is inserted first, so a concurrent delivery of the same event waits on its unique index and then sees a
  duplicate; a handler error rolls everything back (nothing stored) and propagates, so the webhook answers
  500 and Stripe retries.
- **Order does not matter**: the user is resolved through the stored customer (created before any
  checkout, so an invoice that arrives before its `checkout.session.completed` still finds its user), the
  subscription row, the objects' metadata, or the customer read back from Stripe.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from app.errors import InvalidRequest, Unavailable
from app.models import StripeEvent
from app.providers import stripe_client
from app.providers.stripe_client import InvalidWebhook, StripeGateway
from app.services import credits
from app.services.billing.context import EventContext, Ignored, commit_with_grant, resolve_user
from app.services.billing.invoices import grant_for_invoice, lock_invoice_owner
from app.services.billing.objects import in_pinned_shape, object_id
from app.services.billing.settings import BillingSettings
from app.services.billing.subscriptions import lock_subscription, refresh_user_plan, sync_subscription
from app.services.transactions import retry_on_lock_conflict

log = logging.getLogger(__name__)

EVENT_ATTEMPTS = 3

EVENT_PROCESSED = "processed"
EVENT_IGNORED = "ignored"
EVENT_DUPLICATE = "duplicate"


def verify_webhook(settings: BillingSettings, payload: bytes, signature_header: str | None) -> dict[str, Any]:
    """The Stripe event a webhook request carries, once its signature and timestamp are proven.

    Raises `InvalidRequest` (400: Stripe does not retry, nothing is stored) for a missing or wrong
    signature, a timestamp more than five minutes old or ahead, or a body that is not a JSON event;
    `Unavailable` (503) when no webhook secret is configured, since an empty HMAC key would let anyone sign.
    """
    if not settings.webhook_secret:
        raise Unavailable("Stripe webhooks are not configured on this server (STRIPE_WEBHOOK_SECRET is empty).")
    try:
        return stripe_client.verify_webhook(payload, signature_header, settings.webhook_secret)
    except InvalidWebhook as exc:
        log.warning("billing: webhook refused: %s", exc.reason)
        raise InvalidRequest(f"This is not a valid Stripe webhook: {exc.reason}.") from None


@dataclass(frozen=True)
class EventOutcome:
    """What `process_event` did: processed, ignored (recorded, no effect) or duplicate (already known)."""

    event_id: str
    type: str
    status: str
    detail: str = ""
    credits_granted: int = 0


def _event_row(session: Session, event_id: str, *, lock: bool = False) -> StripeEvent | None:
    query = select(StripeEvent).where(StripeEvent.event_id == event_id)
    if lock:
        query = query.with_for_update()
    return session.execute(query).scalar_one_or_none()


def is_known_event(session: Session, event_id: str) -> bool:
    return session.execute(select(StripeEvent.id).where(StripeEvent.event_id == event_id)).first() is not None


def process_event(
    session: Session, gateway: StripeGateway, settings: BillingSettings, event: dict[str, Any], *, reprocess: bool = False,
) -> EventOutcome:
    """Apply one verified Stripe event exactly once. Commits; on error rolls back and raises.

    A known event id answers `duplicate` and changes nothing, unless `reprocess` (operator replay), which
    applies it again: still safe, because grants are idempotent per invoice and subscription changes are
    checked against Stripe's current object. Races (the same event on two connections, two events
    creating one subscription row) end in the unique indexes; the transaction is then retried from the
    start and sees the winner's work. Deadlocks are retried the same way.
    """
    first_attempt = True

    def apply_event() -> EventOutcome:
        nonlocal first_attempt
        # After a lost race: the winner may have been this very event, delivered on another connection.
        if not first_attempt and (concurrent := _delivered_concurrently(session, event, reprocess=reprocess)):
            return concurrent
        first_attempt = False
        return _apply_event(session, gateway, settings, event, reprocess=reprocess)

    try:
        return retry_on_lock_conflict(session, apply_event, attempts=EVENT_ATTEMPTS, also_retry=(IntegrityError,),
                                      label=f"billing: event {event['id']}")
    except (IntegrityError, OperationalError):
        session.rollback()
        if concurrent := _delivered_concurrently(session, event, reprocess=reprocess):
            return concurrent
        raise
    except BaseException:
        session.rollback()
        raise


def _delivered_concurrently(session: Session, event: dict[str, Any], *, reprocess: bool) -> EventOutcome | None:
    """The `duplicate` outcome when another connection has committed this event meanwhile (the session
    is then rolled back: it only read), else None."""
    if reprocess or not is_known_event(session, str(event["id"])):
        return None
    session.rollback()
    return EventOutcome(str(event["id"]), str(event.get("type")), EVENT_DUPLICATE, "delivered concurrently")


def _apply_event(
    session: Session, gateway: StripeGateway, settings: BillingSettings, event: dict[str, Any], *, reprocess: bool,
) -> EventOutcome:
    event_id, event_type = str(event["id"]), str(event["type"])
    created = int(event.get("created") or 0)
    if reprocess:
        row = _event_row(session, event_id, lock=True)
    else:
        if is_known_event(session, event_id):
            session.rollback()
            return EventOutcome(event_id, event_type, EVENT_DUPLICATE, "already processed")
        row = None
    if row is None:
        # Inserted (and flushed) first: a concurrent delivery of the same event now waits on this row's
        # unique index until we commit, then fails with a duplicate key and answers "duplicate".
        row = StripeEvent(event_id=event_id, type=event_type, event_created=created,
                          status=EVENT_PROCESSED, payload=event)
        session.add(row)
        session.flush()

    ctx = EventContext(session, gateway, settings, event_id, event_type, created)
    handler = EVENT_HANDLERS.get(event_type)
    status, detail = EVENT_PROCESSED, ""
    if handler is None:
        status, detail = EVENT_IGNORED, "not an event Sorya acts on"
    else:
        try:
            # The row keeps the payload as Stripe sent it; the handler reads the pinned version's shape.
            handler(ctx, in_pinned_shape(event["data"]["object"], event.get("api_version")))
            detail = "; ".join(ctx.notes)
        except Ignored as reason:
            status, detail = EVENT_IGNORED, str(reason)
    row.status = status
    row.error = detail[:2000] or None
    commit_with_grant(ctx)
    log.info("billing: event %s %s %s%s", event_id, event_type, status, f" ({detail})" if detail else "")
    return EventOutcome(event_id, event_type, status, detail, ctx.granted)


def replay_event(session: Session, gateway: StripeGateway, settings: BillingSettings, event_id: str) -> EventOutcome:
    """Fetch one event from Stripe again and apply it (operator repair). Commits. Idempotent."""
    event = gateway.retrieve_event(event_id)
    return process_event(session, gateway, settings, event, reprocess=True)


def _on_checkout_completed(ctx: EventContext, checkout: dict[str, Any]) -> None:
    """Link the customer and the subscription of a finished checkout to the user who started it."""
    if checkout.get("mode") != "subscription":
        raise Ignored("checkout not in subscription mode")
    customer_id = object_id(checkout.get("customer"))
    subscription_id = object_id(checkout.get("subscription"))
    user_id = resolve_user(
        ctx, customer_id=customer_id, subscription_id=subscription_id,
        metadata=(checkout.get("client_reference_id"), checkout.get("metadata")),
    )
    credits.lock_balance(ctx.session, user_id)
    if subscription_id:
        row = lock_subscription(ctx.session, subscription_id)
        if row is None:
            sync_subscription(ctx, subscription_id, user_id, None)
        elif row.user_id is None:
            row.user_id = user_id
    refresh_user_plan(ctx.session, user_id)


def _on_subscription_changed(ctx: EventContext, subscription: dict[str, Any]) -> None:
    """customer.subscription.created / updated / deleted: plan, status, period end, cancel at period end."""
    subscription_id = str(subscription["id"])
    user_id = resolve_user(
        ctx, customer_id=object_id(subscription.get("customer")), subscription_id=subscription_id,
        metadata=(subscription.get("metadata"),),
    )
    credits.lock_balance(ctx.session, user_id)
    sync_subscription(ctx, subscription_id, user_id, subscription)
    refresh_user_plan(ctx.session, user_id)


def _on_invoice_paid(ctx: EventContext, invoice: dict[str, Any]) -> None:
    grant_for_invoice(ctx, invoice)


def _on_invoice_payment_failed(ctx: EventContext, invoice: dict[str, Any]) -> None:
    """Mark the subscription past due (the banner asks to fix payment). Never grants."""
    subscription_id, user_id, row = lock_invoice_owner(ctx, invoice)
    if row is None or ctx.created == row.last_event_created:
        sync_subscription(ctx, subscription_id, user_id, None)
    elif ctx.created < row.last_event_created:
        ctx.notes.append("stale payment failure: kept the newer state")
    elif row.status in ("active", "trialing"):
        row.status = "past_due"
        row.last_event_created = ctx.created
    refresh_user_plan(ctx.session, user_id)


EVENT_HANDLERS: dict[str, Callable[[EventContext, dict[str, Any]], None]] = {
    "checkout.session.completed": _on_checkout_completed,
    "customer.subscription.created": _on_subscription_changed,
    "customer.subscription.updated": _on_subscription_changed,
    "customer.subscription.deleted": _on_subscription_changed,
    "invoice.paid": _on_invoice_paid,
    "invoice.payment_succeeded": _on_invoice_paid,
    "invoice.payment_failed": _on_invoice_payment_failed,
}
