"""The plans Sorya sells, their monthly credits, and their Stripe prices as the plans page shows them.

Prices are read from Stripe's Price objects and cached **per process for `PRICE_CACHE_TTL_S`** (5 min):
the plans page never shows a price older than that, and a failed read is remembered for
`PRICE_FAILURE_TTL_S` so a Stripe outage does not slow every page view.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from app.errors import NotFound, UpstreamError
from app.models.users import PLAN_FREE
from app.providers.stripe_client import StripeGateway, StripePrice
from app.services.billing.settings import BillingSettings

log = logging.getLogger(__name__)

PLAN_BASIC = "basic"
PLAN_PRO = "pro"
PAID_PLANS = (PLAN_BASIC, PLAN_PRO)
PLAN_NAMES = {PLAN_FREE: "Free", PLAN_BASIC: "Basic", PLAN_PRO: "Pro"}
PLAN_RANK = {PLAN_FREE: 0, PLAN_BASIC: 1, PLAN_PRO: 2}
# A subscription whose price is not one of the configured plans (and never was, for this row).
PLAN_UNKNOWN = "unknown"

PRICE_CACHE_TTL_S = 300
PRICE_FAILURE_TTL_S = 30

ZERO_DECIMAL_CURRENCIES = {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx",
                           "vnd", "vuv", "xaf", "xof", "xpf"}
CURRENCY_SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥", "cad": "CA$", "aud": "A$"}


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


def plan_price_ids(settings: BillingSettings) -> dict[str, str]:
    return {PLAN_BASIC: settings.price_basic, PLAN_PRO: settings.price_pro}


def plan_credits(settings: BillingSettings, plan: str) -> int:
    return {PLAN_BASIC: settings.credits_basic, PLAN_PRO: settings.credits_pro}.get(plan, 0)


def plan_for_price(settings: BillingSettings, price_id: str | None) -> str | None:
    """The plan a Stripe price id belongs to, or None when it is not one of the configured plans."""
    if not price_id:
        return None
    for plan, configured in plan_price_ids(settings).items():
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


def list_plans(settings: BillingSettings, gateway: StripeGateway) -> list[PlanOffer]:
    """Free, Basic and Pro with their monthly credits and their current Stripe prices (cached)."""
    offers = [PlanOffer(PLAN_FREE, plan_name(PLAN_FREE), 0, "")]
    for plan, price_id in plan_price_ids(settings).items():
        price = price_cache.get(gateway, price_id) if price_id and gateway.configured else None
        offers.append(PlanOffer(plan, plan_name(plan), plan_credits(settings, plan), price_id, price))
    return offers
