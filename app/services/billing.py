"""Billing: the plans, the Stripe customer of each user, checkout and portal sessions, and the webhook
events that move subscriptions and grant plan credits.

What this module guarantees
- **Each paid invoice grants its plan's credits exactly once**: the grant is a ledger entry with the
  idempotency key `invoice:<invoice id>`, so whichever of `invoice.paid` / `invoice.payment_succeeded`
  arrives first grants, and every later delivery of either (duplicates, retries, replays, concurrent
  deliveries on other connections) finds the entry and grants nothing.
- **Each event is applied once, atomically**: `process_event` writes the event's `stripe_events` row, its
  subscription and customer changes, `users.plan` and the ledger entry in ONE transaction. The event row
  is inserted first, so a concurrent delivery of the same event waits on its unique index and then sees a
  duplicate; a handler error rolls everything back (nothing stored) and propagates, so the webhook answers
  500 and Stripe retries.
- **Order does not matter**: the user is resolved through the stored customer (created before any
  checkout, so an invoice that arrives before its `checkout.session.completed` still finds its user), the
  subscription row, the objects' metadata, or the customer read back from Stripe. A subscription change
  older than the last one applied (`Subscription.last_event_created`) is ignored; one with the same
  second (Stripe's `created` has one-second resolution) is resolved by reading the subscription from
  Stripe, which is the truth.
- **Lock order**, the same as the ledger's: the event row, then the user's balance row
  (`credits.lock_balance`, which serialises all billing work of one user), then subscription rows, then
  the user row. No deadlock with chat charges, which take the balance first too.
- **`users.plan`** is the best plan among the user's subscriptions whose status keeps the plan in force
  (active, trialing, past_due); anything else is Free. Credits already granted always stay.

Proration (decided here): an invoice with `billing_reason` `subscription_create` or `subscription_cycle`
grants the plan's full monthly credits. A `subscription_update` invoice (a mid-period upgrade charged
immediately) grants credits in proportion to the money actually paid: floor(plan credits x amount_paid /
plan price), never more than the plan's credits. An upgrade from Basic to Pro halfway through the month
thus grants about half the Pro credits at once for about half the price difference, and the next renewal
grants the full Pro amount; a downgrade produces a credit note, not a paid invoice, so it grants nothing,
and switching plans back and forth cannot mint credits that were not paid for. Every other reason (manual
invoices, thresholds) grants nothing and is recorded as ignored.

Prices are read from Stripe's Price objects and cached **per process for `PRICE_CACHE_TTL_S`** (5 min):
the plans page never shows a price older than that, and a failed read is remembered for
`PRICE_FAILURE_TTL_S` so a Stripe outage does not slow every page view.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from app.models import BillingCustomer, StripeEvent, Subscription, User
from app.models.users import PLAN_FREE
from app.providers import stripe_client
from app.providers.stripe_client import HostedSession, InvalidWebhook, StripeGateway, StripePrice
from app.services import credits
from app.services.errors import Conflict, InvalidRequest, NotFound, Unavailable, UpstreamError
from app.services.transactions import is_lock_conflict
from config import Config

log = logging.getLogger(__name__)

PLAN_BASIC = "basic"
PLAN_PRO = "pro"
PAID_PLANS = (PLAN_BASIC, PLAN_PRO)
PLAN_NAMES = {PLAN_FREE: "Free", PLAN_BASIC: "Basic", PLAN_PRO: "Pro"}
PLAN_RANK = {PLAN_FREE: 0, PLAN_BASIC: 1, PLAN_PRO: 2}
# A subscription whose price is not one of the configured plans (and never was, for this row).
PLAN_UNKNOWN = "unknown"

# Stripe statuses in which the plan is in force. past_due keeps it while Stripe retries the payment.
LIVE_STATUSES = ("active", "trialing", "past_due")
# Statuses that block a new checkout: the person fixes payment or changes plan in the portal instead.
BLOCKING_STATUSES = (*LIVE_STATUSES, "unpaid")

GRANTING_BILLING_REASONS = ("subscription_create", "subscription_cycle")
PRORATION_BILLING_REASON = "subscription_update"

PRICE_CACHE_TTL_S = 300
PRICE_FAILURE_TTL_S = 30
# A double click, or a retried API call without an Idempotency-Key, within this window opens one session.
CHECKOUT_DEDUP_WINDOW_S = 600
REQUEST_KEY_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{8,100}$")
EVENT_ATTEMPTS = 3

EVENT_PROCESSED = "processed"
EVENT_IGNORED = "ignored"
EVENT_DUPLICATE = "duplicate"

ZERO_DECIMAL_CURRENCIES = {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx",
                           "vnd", "vuv", "xaf", "xof", "xpf"}
CURRENCY_SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥", "cad": "CA$", "aud": "A$"}


# -- plans and prices -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanOffer:
    """One plan as the plans page shows it."""

    key: str
    name: str
    monthly_credits: int
    price_id: str
    price: StripePrice | None = None

    @property
    def is_paid(self) -> bool:
        return self.key in PAID_PLANS

    @property
    def purchasable(self) -> bool:
        """Stripe would charge this price: it exists, is active and has an amount."""
        return bool(self.price and self.price.active and self.price.unit_amount is not None)

    @property
    def price_label(self) -> str:
        if not self.is_paid:
            return format_money(0, "usd") if self.price is None else format_money(0, self.price.currency)
        if not self.purchasable:
            return ""
        assert self.price is not None and self.price.unit_amount is not None
        return format_money(self.price.unit_amount, self.price.currency)

    @property
    def interval_label(self) -> str:
        if not self.is_paid or self.price is None or not self.price.interval:
            return ""
        if self.price.interval_count == 1:
            return f"per {self.price.interval}"
        return f"every {self.price.interval_count} {self.price.interval}s"


def format_money(amount_minor: int, currency: str) -> str:
    """`900, "usd"` -> `$9.00`; zero-decimal currencies have no minor unit (`500, "jpy"` -> `¥500`)."""
    code = currency.lower()
    symbol = CURRENCY_SYMBOLS.get(code)
    if code in ZERO_DECIMAL_CURRENCIES:
        number = f"{amount_minor:,}"
    else:
        number = f"{amount_minor // 100:,}.{amount_minor % 100:02d}"
    return f"{symbol}{number}" if symbol else f"{number} {code.upper()}"


def plan_price_ids(config: Config) -> dict[str, str]:
    return {PLAN_BASIC: config.STRIPE_PRICE_BASIC, PLAN_PRO: config.STRIPE_PRICE_PRO}


def plan_credits(config: Config, plan: str) -> int:
    return {PLAN_BASIC: config.PLAN_CREDITS_BASIC, PLAN_PRO: config.PLAN_CREDITS_PRO}.get(plan, 0)


def plan_for_price(config: Config, price_id: str | None) -> str | None:
    """The plan a Stripe price id belongs to, or None when it is not one of the configured plans."""
    if not price_id:
        return None
    for plan, configured in plan_price_ids(config).items():
        if configured and configured == price_id:
            return plan
    return None


def plan_name(plan: str) -> str:
    return PLAN_NAMES.get(plan, plan.title())


class PriceCache:
    """Stripe Price objects, cached per process for `ttl_s`; thread-safe.

    Per process is enough: prices change rarely, and every process converges within the TTL. A failed
    read is cached for `failure_ttl_s` as "unknown", so an outage costs one slow request, not every one.
    """

    def __init__(self, ttl_s: float = PRICE_CACHE_TTL_S, failure_ttl_s: float = PRICE_FAILURE_TTL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.failure_ttl_s = failure_ttl_s
        self.clock = clock
        self._entries: dict[tuple[str, str], tuple[float, StripePrice | None]] = {}
        self._lock = threading.Lock()

    def get(self, gateway: StripeGateway, price_id: str) -> StripePrice | None:
        """The price, or None when Stripe cannot tell us (the page then offers no price it cannot show)."""
        key = (gateway.api_base, price_id)
        now = self.clock()
        with self._lock:
            cached = self._entries.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            price: StripePrice | None = gateway.retrieve_price(price_id)
            expires = now + self.ttl_s
        except (UpstreamError, NotFound) as exc:
            log.warning("billing: price %s unavailable: %s", price_id, exc.message)
            price, expires = None, now + self.failure_ttl_s
        with self._lock:
            self._entries[key] = (expires, price)
        return price

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


price_cache = PriceCache()


def list_plans(config: Config, gateway: StripeGateway) -> list[PlanOffer]:
    """Free, Basic and Pro with their monthly credits and their current Stripe prices (cached)."""
    offers = [PlanOffer(PLAN_FREE, plan_name(PLAN_FREE), 0, "")]
    for plan, price_id in plan_price_ids(config).items():
        price = price_cache.get(gateway, price_id) if price_id and gateway.configured else None
        offers.append(PlanOffer(plan, plan_name(plan), plan_credits(config, plan), price_id, price))
    return offers


# -- status shown to the person -------------------------------------------------------------------


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
    def needs_payment_fix(self) -> bool:
        return self.status in ("past_due", "unpaid", "incomplete")

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


def _user_subscriptions(session: Session, user_id: int) -> list[Subscription]:
    return list(session.execute(
        select(Subscription).where(Subscription.user_id == user_id).order_by(Subscription.id)
    ).scalars())


def _best_subscription(subscriptions: list[Subscription]) -> Subscription | None:
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
    best = _best_subscription([sub for _, sub in rows if sub is not None])
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


# -- customers, checkout, portal ------------------------------------------------------------------


def _customer_row(session: Session, user_id: int) -> BillingCustomer | None:
    return session.execute(
        select(BillingCustomer).where(BillingCustomer.user_id == user_id)
    ).scalar_one_or_none()


def ensure_customer(session: Session, gateway: StripeGateway, user: User) -> str:
    """The user's Stripe customer id, created on first need. Commits. Race-safe.

    Two requests racing here send the same Stripe idempotency key, so Stripe creates one customer and
    answers both with it; the unique index on `billing_customers.user_id` then keeps one row and the loser
    reads the winner's. The key includes the account's creation time, so a reused user id on a rebuilt
    database never gets someone else's customer.
    """
    existing = _customer_row(session, user.id)
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
        winner = _customer_row(session, user.id)
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
    config: Config,
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
    price_id = plan_price_ids(config)[plan]
    if not price_id or not gateway.configured:
        raise Unavailable(f"The {plan_name(plan)} plan cannot be bought on this server yet: payments are not configured.")
    subscriptions = _user_subscriptions(session, user.id)
    live = [sub for sub in subscriptions if sub.status in BLOCKING_STATUSES]
    if live:
        current = _best_subscription(live)
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
    customer = _customer_row(session, user.id)
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


INVOICE_ID_PATTERN = re.compile(r"^in_[A-Za-z0-9_]{1,200}$")
CHECKOUT_ID_PATTERN = re.compile(r"^cs_[A-Za-z0-9_]{1,250}$")


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
    invoice = _object_id(checkout.get("invoice"))
    if invoice is None and checkout.get("subscription"):
        try:
            subscription = gateway.retrieve_subscription(_object_id(checkout["subscription"]) or "")
            invoice = _object_id(subscription.get("latest_invoice"))
        except (UpstreamError, NotFound):
            invoice = None
    if invoice is None:
        return CheckoutProgress(granted=False, plan=plan, paid=paid)
    progress = _grant_progress(session, user_id, invoice, plan)
    return CheckoutProgress(progress.granted, invoice, progress.credits_granted, progress.plan or plan, paid)


# -- webhook events -------------------------------------------------------------------------------


def stripe_gateway(config: Config) -> StripeGateway:
    """The process's Stripe gateway for this configuration (key and `STRIPE_API_BASE`)."""
    return stripe_client.gateway_for(config.STRIPE_SECRET_KEY, config.STRIPE_API_BASE)


def verify_webhook(config: Config, payload: bytes, signature_header: str | None) -> dict[str, Any]:
    """The Stripe event a webhook request carries, once its signature and timestamp are proven.

    Raises `InvalidRequest` (400: Stripe does not retry, nothing is stored) for a missing or wrong
    signature, a timestamp older than five minutes, or a body that is not a JSON event; `Unavailable`
    (503) when no webhook secret is configured, since an empty HMAC key would let anyone sign.
    """
    if not config.STRIPE_WEBHOOK_SECRET:
        raise Unavailable("Stripe webhooks are not configured on this server (STRIPE_WEBHOOK_SECRET is empty).")
    try:
        return stripe_client.verify_webhook(payload, signature_header, config.STRIPE_WEBHOOK_SECRET)
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


@dataclass
class _EventContext:
    session: Session
    gateway: StripeGateway
    config: Config
    event_id: str
    event_type: str
    created: int
    granted: int = 0
    notes: list[str] = field(default_factory=list)
    # The ledger post an event asks for; made last, because `post_ledger_entry` commits the transaction.
    pending_grant: dict[str, Any] | None = None


class _Ignored(Exception):
    """The event is genuine but Sorya has nothing to do with it; recorded as ignored with this reason."""


def invoice_grant_key(invoice_id: str) -> str:
    return f"invoice:{invoice_id}"


def _object_id(value: Any) -> str | None:
    """An expandable field's id, whether Stripe sent the id or the expanded object."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def _metadata_user_id(*sources: Any) -> int | None:
    for source in sources:
        if isinstance(source, dict):
            raw = source.get("user_id")
        else:
            raw = source
        if raw is None:
            continue
        try:
            return int(str(raw))
        except ValueError:
            continue
    return None


def _event_row(session: Session, event_id: str, *, lock: bool = False) -> StripeEvent | None:
    query = select(StripeEvent).where(StripeEvent.event_id == event_id)
    if lock:
        query = query.with_for_update()
    return session.execute(query).scalar_one_or_none()


def is_known_event(session: Session, event_id: str) -> bool:
    return session.execute(select(StripeEvent.id).where(StripeEvent.event_id == event_id)).first() is not None


def process_event(
    session: Session, gateway: StripeGateway, config: Config, event: dict[str, Any], *, reprocess: bool = False,
) -> EventOutcome:
    """Apply one verified Stripe event exactly once. Commits; on error rolls back and raises.

    A known event id answers `duplicate` and changes nothing, unless `reprocess` (operator replay), which
    applies it again: still safe, because grants are idempotent per invoice and subscription changes are
    checked against Stripe's current object. Races (the same event on two connections, two events
    creating one subscription row) end in the unique indexes; the transaction is then retried from the
    start and sees the winner's work. Deadlocks are retried the same way.
    """
    event_id = str(event["id"])
    for attempt in range(1, EVENT_ATTEMPTS + 1):
        try:
            return _apply_event(session, gateway, config, event, reprocess=reprocess)
        except (IntegrityError, OperationalError) as exc:
            session.rollback()
            if not reprocess and is_known_event(session, event_id):
                session.rollback()
                return EventOutcome(event_id, str(event.get("type")), EVENT_DUPLICATE, "delivered concurrently")
            if attempt == EVENT_ATTEMPTS or (isinstance(exc, OperationalError) and not is_lock_conflict(exc)):
                raise
            log.info("billing: event %s retried after %s (attempt %s)", event_id, type(exc).__name__, attempt)
        except BaseException:
            session.rollback()
            raise
    raise AssertionError("unreachable")


def _apply_event(
    session: Session, gateway: StripeGateway, config: Config, event: dict[str, Any], *, reprocess: bool,
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

    ctx = _EventContext(session, gateway, config, event_id, event_type, created)
    handler = EVENT_HANDLERS.get(event_type)
    status, detail = EVENT_PROCESSED, ""
    if handler is None:
        status, detail = EVENT_IGNORED, "not an event Sorya acts on"
    else:
        try:
            handler(ctx, event["data"]["object"])
            detail = "; ".join(ctx.notes)
        except _Ignored as reason:
            status, detail = EVENT_IGNORED, str(reason)
    row.status = status
    row.error = detail[:2000] or None
    _commit_with_grant(ctx)
    log.info("billing: event %s %s %s%s", event_id, event_type, status, f" ({detail})" if detail else "")
    return EventOutcome(event_id, event_type, status, detail, ctx.granted)


def _commit_with_grant(ctx: _EventContext) -> None:
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


def replay_event(session: Session, gateway: StripeGateway, config: Config, event_id: str) -> EventOutcome:
    """Fetch one event from Stripe again and apply it (operator repair). Commits. Idempotent."""
    event = gateway.retrieve_event(event_id)
    return process_event(session, gateway, config, event, reprocess=True)


# -- resolving users and subscriptions ------------------------------------------------------------


def _user_for_customer(session: Session, customer_id: str | None) -> int | None:
    if not customer_id:
        return None
    return session.execute(
        select(BillingCustomer.user_id).where(BillingCustomer.stripe_customer_id == customer_id)
    ).scalar_one_or_none()


def _user_for_subscription(session: Session, subscription_id: str | None) -> int | None:
    if not subscription_id:
        return None
    return session.execute(
        select(Subscription.user_id).where(Subscription.stripe_subscription_id == subscription_id)
    ).scalar_one_or_none()


def _resolve_user(ctx: _EventContext, *, customer_id: str | None, subscription_id: str | None = None,
                  metadata: tuple[Any, ...] = ()) -> int:
    """The Sorya user an object belongs to, linking the customer when it was not linked yet.

    Stored links first (customer, then subscription), then the user id we put in the objects' metadata,
    then the customer's metadata read back from Stripe. Raises `_Ignored` when none names a user of ours
    (a customer of another product on the same Stripe account).
    """
    session = ctx.session
    user_id = _user_for_customer(session, customer_id) or _user_for_subscription(session, subscription_id)
    if user_id is not None:
        return user_id
    user_id = _metadata_user_id(*metadata)
    if user_id is None and customer_id:
        try:
            customer = ctx.gateway.retrieve_customer(customer_id)
        except NotFound:
            customer = {}
        user_id = _metadata_user_id(customer.get("metadata"))
    if user_id is None or session.get(User, user_id) is None:
        raise _Ignored(f"no Sorya user for customer {customer_id or '-'}")
    if customer_id:
        _link_customer(ctx, user_id, customer_id)
    return user_id


def _link_customer(ctx: _EventContext, user_id: int, customer_id: str) -> None:
    """Store customer -> user when neither side is linked yet. A user keeps their first customer."""
    session = ctx.session
    linked_user = _user_for_customer(session, customer_id)
    if linked_user is not None:
        if linked_user != user_id:
            raise _Ignored(f"customer {customer_id} belongs to another user")
        return
    if _customer_row(session, user_id) is not None:
        ctx.notes.append(f"user already has another customer than {customer_id}")
        return
    session.add(BillingCustomer(user_id=user_id, stripe_customer_id=customer_id))
    session.flush()


def _lock_subscription(session: Session, subscription_id: str) -> Subscription | None:
    return session.execute(
        select(Subscription).where(Subscription.stripe_subscription_id == subscription_id).with_for_update()
    ).scalar_one_or_none()


def _subscription_price_id(obj: dict[str, Any]) -> str | None:
    items = ((obj.get("items") or {}).get("data")) or []
    for item in items:
        price = item.get("price") or (item.get("plan") or {})
        price_id = _object_id(price)
        if price_id:
            return price_id
    return _object_id(obj.get("plan"))


def _subscription_period_end(obj: dict[str, Any]) -> datetime | None:
    """Since API 2025-03-31 the period lives on the items; older versions had it on the subscription."""
    ends = [item.get("current_period_end") for item in ((obj.get("items") or {}).get("data") or [])]
    ends = [end for end in ends if isinstance(end, int)]
    end = max(ends) if ends else obj.get("current_period_end")
    return datetime.fromtimestamp(end, UTC) if isinstance(end, int) else None


def _apply_subscription_object(ctx: _EventContext, row: Subscription | None, obj: dict[str, Any],
                               user_id: int, *, stamp: int) -> Subscription:
    """Write Stripe's subscription object onto our row (created when missing), stamped `stamp`."""
    price_id = _subscription_price_id(obj) or ""
    plan = plan_for_price(ctx.config, price_id)
    if row is None:
        row = Subscription(stripe_subscription_id=str(obj["id"]), plan=plan or PLAN_UNKNOWN)
        ctx.session.add(row)
    elif plan is None:
        # A price this server no longer lists (the operator moved the plan to a new price): the
        # subscription keeps the plan it was sold as.
        plan = row.plan
    row.user_id = row.user_id or user_id
    row.stripe_customer_id = _object_id(obj.get("customer")) or row.stripe_customer_id or ""
    row.plan = plan or PLAN_UNKNOWN
    row.price_id = price_id
    row.status = str(obj.get("status") or row.status or "incomplete")
    row.current_period_end = _subscription_period_end(obj) or row.current_period_end
    row.cancel_at_period_end = bool(obj.get("cancel_at_period_end")) or bool(obj.get("cancel_at"))
    row.last_event_created = max(row.last_event_created or 0, stamp)
    ctx.session.flush()
    return row


def _fetch_subscription(ctx: _EventContext, subscription_id: str) -> dict[str, Any] | None:
    try:
        return ctx.gateway.retrieve_subscription(subscription_id)
    except NotFound:
        return None


def _sync_subscription(ctx: _EventContext, subscription_id: str, user_id: int,
                       proposed: dict[str, Any] | None) -> Subscription | None:
    """Apply a subscription state carried by an event, unless a newer one was applied already.

    `proposed` is the object in the event (None: the event carries none, read it from Stripe). Older
    than the row's `last_event_created`: ignored. Same second: ambiguous, so Stripe's current object
    wins. Newer: applied.
    """
    row = _lock_subscription(ctx.session, subscription_id)
    if row is not None and ctx.created < row.last_event_created:
        ctx.notes.append(f"stale for {subscription_id}: kept the newer state")
        if row.user_id is None:
            row.user_id = user_id
        return row
    if proposed is None or (row is not None and ctx.created == row.last_event_created):
        current = _fetch_subscription(ctx, subscription_id)
        if current is not None:
            proposed = current
        elif proposed is None:
            ctx.notes.append(f"subscription {subscription_id} not found at Stripe")
            return row
    return _apply_subscription_object(ctx, row, proposed, user_id, stamp=ctx.created)


def refresh_user_plan(session: Session, user_id: int) -> str:
    """Set `users.plan` from the user's subscriptions (the best one in force, else Free). Flushes."""
    live = [sub for sub in _user_subscriptions(session, user_id)
            if sub.status in LIVE_STATUSES and sub.plan in PAID_PLANS]
    best = _best_subscription(live)
    plan = best.plan if best is not None else PLAN_FREE
    user = session.get(User, user_id)
    if user is not None and user.plan != plan:
        log.info("billing: user=%s plan %s -> %s", user_id, user.plan, plan)
        user.plan = plan
        session.flush()
    return plan


# -- handlers -------------------------------------------------------------------------------------


def _on_checkout_completed(ctx: _EventContext, checkout: dict[str, Any]) -> None:
    """Link the customer and the subscription of a finished checkout to the user who started it."""
    if checkout.get("mode") != "subscription":
        raise _Ignored("checkout not in subscription mode")
    customer_id = _object_id(checkout.get("customer"))
    subscription_id = _object_id(checkout.get("subscription"))
    user_id = _resolve_user(
        ctx, customer_id=customer_id, subscription_id=subscription_id,
        metadata=(checkout.get("client_reference_id"), checkout.get("metadata")),
    )
    credits.lock_balance(ctx.session, user_id)
    if subscription_id:
        row = _lock_subscription(ctx.session, subscription_id)
        if row is None:
            _sync_subscription(ctx, subscription_id, user_id, None)
        elif row.user_id is None:
            row.user_id = user_id
    refresh_user_plan(ctx.session, user_id)


def _on_subscription_changed(ctx: _EventContext, subscription: dict[str, Any]) -> None:
    """customer.subscription.created / updated / deleted: plan, status, period end, cancel at period end."""
    subscription_id = str(subscription["id"])
    user_id = _resolve_user(
        ctx, customer_id=_object_id(subscription.get("customer")), subscription_id=subscription_id,
        metadata=(subscription.get("metadata"),),
    )
    credits.lock_balance(ctx.session, user_id)
    _sync_subscription(ctx, subscription_id, user_id, subscription)
    refresh_user_plan(ctx.session, user_id)


def _invoice_subscription_id(invoice: dict[str, Any]) -> str | None:
    """Since API 2025-03-31 an invoice names its subscription under parent.subscription_details."""
    details = ((invoice.get("parent") or {}).get("subscription_details")) or {}
    found = _object_id(details.get("subscription")) or _object_id(invoice.get("subscription"))
    if found:
        return found
    for line in _invoice_lines(invoice):
        item_details = ((line.get("parent") or {}).get("subscription_item_details")) or {}
        found = _object_id(item_details.get("subscription")) or _object_id(line.get("subscription"))
        if found:
            return found
    return None


def _invoice_lines(invoice: dict[str, Any]) -> list[dict[str, Any]]:
    return list(((invoice.get("lines") or {}).get("data")) or [])


def _line_price_id(line: dict[str, Any]) -> str | None:
    details = ((line.get("pricing") or {}).get("price_details")) or {}
    return _object_id(details.get("price")) or _object_id(line.get("price"))


def _invoice_plan(ctx: _EventContext, invoice: dict[str, Any], row: Subscription | None,
                  subscription_id: str) -> str | None:
    """The plan an invoice pays for: the price of its largest charged line, else the subscription's."""
    lines = sorted(_invoice_lines(invoice), key=lambda line: int(line.get("amount") or 0), reverse=True)
    for line in lines:
        plan = plan_for_price(ctx.config, _line_price_id(line))
        if plan:
            return plan
    if row is not None and row.plan in PAID_PLANS:
        return row.plan
    current = _fetch_subscription(ctx, subscription_id)
    if current is not None:
        return plan_for_price(ctx.config, _subscription_price_id(current))
    return None


def credits_for_invoice(config: Config, gateway: StripeGateway, invoice: dict[str, Any], plan: str) -> int:
    """How many credits a paid invoice of `plan` grants (the proration policy in the module docstring)."""
    reason = invoice.get("billing_reason")
    full = plan_credits(config, plan)
    if reason in GRANTING_BILLING_REASONS:
        return full
    if reason != PRORATION_BILLING_REASON:
        return 0
    amount_paid = int(invoice.get("amount_paid") or 0)
    if amount_paid <= 0:
        return 0
    price = gateway.retrieve_price(plan_price_ids(config)[plan])
    if not price.unit_amount:
        return 0
    return min(full, full * amount_paid // price.unit_amount)


def _grant_for_invoice(ctx: _EventContext, invoice: dict[str, Any]) -> int:
    """Prepare a paid invoice's grant (ledger key `invoice:<id>`, posted at commit); returns the amount.

    Takes the user's balance lock and checks the key under it, so the post at commit cannot collide.
    """
    invoice_id = str(invoice["id"])
    if invoice.get("status") not in (None, "paid"):
        raise _Ignored(f"invoice {invoice_id} is {invoice.get('status')}, not paid")
    subscription_id, user_id, row = _lock_invoice_owner(ctx, invoice)
    if credits.find_entry(ctx.session, invoice_grant_key(invoice_id)) is not None:
        ctx.notes.append(f"invoice {invoice_id} already granted")
        _clear_past_due(ctx, row, user_id)
        return 0
    plan = _invoice_plan(ctx, invoice, row, subscription_id)
    if plan not in PAID_PLANS:
        raise _Ignored(f"invoice {invoice_id} pays for no Sorya plan")
    amount = credits_for_invoice(ctx.config, ctx.gateway, invoice, plan)
    _clear_past_due(ctx, row, user_id)
    if amount <= 0:
        raise _Ignored(f"invoice {invoice_id} ({invoice.get('billing_reason')}) grants no credits")
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


def _lock_invoice_owner(ctx: _EventContext, invoice: dict[str, Any]) -> tuple[str, int, Subscription | None]:
    """The invoice's subscription id and user, with the user's balance and the subscription row locked
    (in the module's lock order). Raises `_Ignored` for an invoice that is not for a subscription."""
    subscription_id = _invoice_subscription_id(invoice)
    if subscription_id is None:
        raise _Ignored(f"invoice {invoice.get('id')} is not for a subscription")
    details = ((invoice.get("parent") or {}).get("subscription_details")) or {}
    user_id = _resolve_user(
        ctx, customer_id=_object_id(invoice.get("customer")), subscription_id=subscription_id,
        metadata=(details.get("metadata"), invoice.get("metadata")),
    )
    credits.lock_balance(ctx.session, user_id)
    return subscription_id, user_id, _lock_subscription(ctx.session, subscription_id)


def _clear_past_due(ctx: _EventContext, row: Subscription | None, user_id: int) -> None:
    """A newer paid invoice settles a past-due subscription, even before its own update event lands."""
    if row is None or row.status not in ("past_due", "unpaid") or ctx.created <= row.last_event_created:
        return
    row.status = "active"
    row.last_event_created = ctx.created
    refresh_user_plan(ctx.session, user_id)


def _on_invoice_paid(ctx: _EventContext, invoice: dict[str, Any]) -> None:
    _grant_for_invoice(ctx, invoice)


def _on_invoice_payment_failed(ctx: _EventContext, invoice: dict[str, Any]) -> None:
    """Mark the subscription past due (the banner asks to fix payment). Never grants."""
    subscription_id, user_id, row = _lock_invoice_owner(ctx, invoice)
    if row is None or ctx.created == row.last_event_created:
        _sync_subscription(ctx, subscription_id, user_id, None)
    elif ctx.created < row.last_event_created:
        ctx.notes.append("stale payment failure: kept the newer state")
    elif row.status in ("active", "trialing"):
        row.status = "past_due"
        row.last_event_created = ctx.created
    refresh_user_plan(ctx.session, user_id)


EVENT_HANDLERS: dict[str, Callable[[_EventContext, dict[str, Any]], None]] = {
    "checkout.session.completed": _on_checkout_completed,
    "customer.subscription.created": _on_subscription_changed,
    "customer.subscription.updated": _on_subscription_changed,
    "customer.subscription.deleted": _on_subscription_changed,
    "invoice.paid": _on_invoice_paid,
    "invoice.payment_succeeded": _on_invoice_paid,
    "invoice.payment_failed": _on_invoice_payment_failed,
}


# -- operator repair ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyncReport:
    login: str
    customer_id: str | None
    subscriptions: list[tuple[str, str, str]]  # (id, plan, status)
    plan: str
    credits_granted: int


def sync_customer(session: Session, gateway: StripeGateway, config: Config, login: str) -> SyncReport:
    """Re-read the user's Stripe subscriptions and paid invoices and repair local state. Commits.

    Subscriptions are overwritten with Stripe's current objects (their `last_event_created` is kept, so
    later events still apply); paid invoices whose grant is missing (a lost webhook) are granted through
    the same rules as the webhook, idempotently. Reads from Stripe happen before any lock is taken.
    """
    user = session.execute(select(User).where(User.login == login)).scalar_one_or_none()
    if user is None:
        raise NotFound(f"There is no user {login!r}.")
    user_id = user.id
    customer = _customer_row(session, user_id)
    if customer is None:
        plan = refresh_user_plan(session, user_id)
        session.commit()
        return SyncReport(login, None, [], plan, 0)
    customer_id = customer.stripe_customer_id
    stripe_subscriptions = gateway.list_subscriptions(customer_id)
    paid_invoices = gateway.list_paid_invoices(customer_id)
    session.rollback()

    ctx = _EventContext(session, gateway, config, "sync", "sync", 0)
    credits.lock_balance(session, user_id)
    synced = []
    for obj in stripe_subscriptions:
        row = _lock_subscription(session, str(obj["id"]))
        stamp = row.last_event_created if row is not None else 0
        row = _apply_subscription_object(ctx, row, obj, user_id, stamp=stamp)
        synced.append((row.stripe_subscription_id, row.plan, row.status))
    plan = refresh_user_plan(session, user_id)
    session.commit()
    # Oldest first, one transaction per invoice: each grant commits on its own.
    for invoice in reversed(paid_invoices):
        try:
            _grant_for_invoice(ctx, invoice)
        except _Ignored as reason:
            log.info("billing: sync %s: %s", login, reason)
        _commit_with_grant(ctx)
    log.info("billing: synced user=%s subscriptions=%s granted=%s", user_id, len(synced), ctx.granted)
    return SyncReport(login, customer_id, synced, plan, ctx.granted)
