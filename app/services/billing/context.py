"""What one webhook event (or one operator repair) works with: its context, the user its objects belong
to, and the commit that carries its grant.

Lock order (the same as the ledger's): the event row, then the user's balance row
(`credits.lock_balance`, which serialises all billing work of one user), then subscription rows, then the
user row. No deadlock with chat charges, which take the balance first too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import NotFound
from app.models import BillingCustomer, Subscription, User
from app.providers.stripe_client import StripeGateway
from app.services import credits
from app.services.billing.objects import metadata_user_id
from app.services.billing.settings import BillingSettings

log = logging.getLogger(__name__)


@dataclass
class EventContext:
    session: Session
    gateway: StripeGateway
    settings: BillingSettings
    event_id: str
    event_type: str
    created: int
    granted: int = 0
    notes: list[str] = field(default_factory=list)
    # The ledger post an event asks for; made last, because `post_ledger_entry` commits the transaction.
    pending_grant: dict[str, Any] | None = None


class Ignored(Exception):
    """The event is genuine but Sorya has nothing to do with it; recorded as ignored with this reason."""


def invoice_grant_key(invoice_id: str) -> str:
    return f"invoice:{invoice_id}"


def commit_with_grant(ctx: EventContext) -> None:
    """Commit the event's transaction, with its grant when it has one.

    `credits.post_ledger_entry` commits, so the grant is posted last and its commit carries every change
    made before it (event row, subscription, customer link, users.plan). Everything else was flushed and
    the balance row is already locked by this transaction with the key checked under that lock, so the
    post neither finds the key taken (which would roll back) nor fails on its unique index.
    """
    grant = ctx.pending_grant
    ctx.pending_grant = None
    if grant is None:
        ctx.session.commit()
        return
    ctx.session.flush()
    posting = credits.post_ledger_entry(ctx.session, **grant)
    if posting.created:
        ctx.granted += grant["delta"]
    else:  # Unreachable under the balance lock; never report a grant that did not happen.
        log.warning("billing: grant %s already existed at commit", grant["idempotency_key"])


def customer_row(session: Session, user_id: int) -> BillingCustomer | None:
    return session.execute(
        select(BillingCustomer).where(BillingCustomer.user_id == user_id)
    ).scalar_one_or_none()


def user_for_customer(session: Session, customer_id: str | None) -> int | None:
    if not customer_id:
        return None
    return session.execute(
        select(BillingCustomer.user_id).where(BillingCustomer.stripe_customer_id == customer_id)
    ).scalar_one_or_none()


def user_for_subscription(session: Session, subscription_id: str | None) -> int | None:
    if not subscription_id:
        return None
    return session.execute(
        select(Subscription.user_id).where(Subscription.stripe_subscription_id == subscription_id)
    ).scalar_one_or_none()


def resolve_user(ctx: EventContext, *, customer_id: str | None, subscription_id: str | None = None,
                 metadata: tuple[Any, ...] = ()) -> int:
    """The Sorya user an object belongs to, linking the customer when it was not linked yet.

    Stored links first (customer, then subscription), then the user id we put in the objects' metadata,
    then the customer's metadata read back from Stripe. Raises `Ignored` when none names a user of ours
    (a customer of another product on the same Stripe account).
    """
    session = ctx.session
    user_id = user_for_customer(session, customer_id) or user_for_subscription(session, subscription_id)
    if user_id is not None:
        return user_id
    user_id = metadata_user_id(*metadata)
    if user_id is None and customer_id:
        try:
            customer = ctx.gateway.retrieve_customer(customer_id)
        except NotFound:
            customer = {}
        user_id = metadata_user_id(customer.get("metadata"))
    if user_id is None or session.get(User, user_id) is None:
        raise Ignored(f"no Sorya user for customer {customer_id or '-'}")
    if customer_id:
        link_customer(ctx, user_id, customer_id)
    return user_id


def link_customer(ctx: EventContext, user_id: int, customer_id: str) -> None:
    """Store customer -> user when neither side is linked yet. A user keeps their first customer."""
    session = ctx.session
    linked_user = user_for_customer(session, customer_id)
    if linked_user is not None:
        if linked_user != user_id:
            raise Ignored(f"customer {customer_id} belongs to another user")
        return
    if customer_row(session, user_id) is not None:
        ctx.notes.append(f"user already has another customer than {customer_id}")
        return
    session.add(BillingCustomer(user_id=user_id, stripe_customer_id=customer_id))
    session.flush()
