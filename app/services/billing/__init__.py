"""Billing: the plans, the Stripe customer of each user, checkout and portal sessions, and the webhook
events that move subscriptions and grant plan credits.

One concern per module; this package re-exports the public names, so callers write `billing.start_checkout`.
- `settings`: `BillingSettings`, the plain values billing reads from `Config`, and the Stripe gateway.
- `plans`: the plans, their credits and their cached Stripe prices.
- `checkout`: the customer, Checkout and portal sessions, the success page's progress.
- `webhooks`: verifying events and dispatching them to their `_on_*` handlers, exactly once.
- `subscriptions`: the plan a person has, and Stripe's subscription objects applied to our rows.
- `invoices`: paid invoices and the credits they grant (the proration policy).
- `context`: what an event works with (its context, the user it belongs to, the commit with its grant).
- `objects`: where a field lives in Stripe's objects, for each API version Stripe may send.
- `sync`: operator repair from Stripe's current state.

Guarantees (each module's docstring says more): each paid invoice grants its plan's credits exactly once
(ledger key `invoice:<invoice id>`); each event is applied once, atomically, in any order; the lock order
is the event row, the user's balance row, subscription rows, the user row.
"""

from app.services.billing.checkout import (
    CHECKOUT_DEDUP_WINDOW_S,
    CheckoutProgress,
    checkout_progress,
    ensure_customer,
    open_portal,
    parse_plan,
    start_checkout,
)
from app.services.billing.context import invoice_grant_key
from app.services.billing.invoices import credits_for_invoice
from app.services.billing.plans import (
    PAID_PLANS,
    PLAN_BASIC,
    PLAN_NAMES,
    PLAN_PRO,
    PLAN_RANK,
    PLAN_UNKNOWN,
    PRICE_CACHE_TTL_S,
    PRICE_FAILURE_TTL_S,
    PlanOffer,
    PriceCache,
    format_money,
    list_plans,
    plan_credits,
    plan_for_price,
    plan_name,
    plan_price_ids,
    price_cache,
)
from app.services.billing.settings import BillingSettings, stripe_gateway
from app.services.billing.subscriptions import (
    BLOCKING_STATUSES,
    LIVE_STATUSES,
    BillingStatus,
    billing_status,
    refresh_user_plan,
)
from app.services.billing.sync import SyncReport, sync_customer
from app.services.billing.webhooks import (
    EVENT_DUPLICATE,
    EVENT_IGNORED,
    EVENT_PROCESSED,
    EventOutcome,
    is_known_event,
    process_event,
    replay_event,
    verify_webhook,
)

__all__ = [
    "BLOCKING_STATUSES", "CHECKOUT_DEDUP_WINDOW_S", "EVENT_DUPLICATE", "EVENT_IGNORED", "EVENT_PROCESSED",
    "LIVE_STATUSES", "PAID_PLANS", "PLAN_BASIC", "PLAN_NAMES", "PLAN_PRO", "PLAN_RANK", "PLAN_UNKNOWN",
    "PRICE_CACHE_TTL_S", "PRICE_FAILURE_TTL_S", "BillingSettings", "BillingStatus", "CheckoutProgress",
    "EventOutcome", "PlanOffer", "PriceCache", "SyncReport", "billing_status", "checkout_progress",
    "credits_for_invoice", "ensure_customer", "format_money", "invoice_grant_key", "is_known_event",
    "list_plans", "open_portal", "parse_plan", "plan_credits", "plan_for_price", "plan_name", "plan_price_ids",
    "price_cache", "process_event", "refresh_user_plan", "replay_event", "start_checkout", "stripe_gateway",
    "sync_customer", "verify_webhook",
]
