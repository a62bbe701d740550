"""Billing rules that need no database: plan lookup, prices and their cache, proration, webhook checks."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest

from app.errors import InvalidRequest, UpstreamError
from app.providers.stripe_client import InvalidWebhook, StripePrice, verify_webhook
from app.services import billing
from app.services.billing import objects
from config import Config

SECRET = "whsec_unit"


def make_settings(**overrides) -> billing.BillingSettings:
    """Billing's settings as the routes build them: from a `Config`."""
    values = {"STRIPE_PRICE_BASIC": "price_basic", "STRIPE_PRICE_PRO": "price_pro",
              "PLAN_CREDITS_BASIC": 20000, "PLAN_CREDITS_PRO": 100000, "STRIPE_SECRET_KEY": "sk_test_x",
              "SECRET_KEY": "s" * 40, "ENCRYPTION_KEY": "a" * 44, "DATABASE_URL": "sqlite://"}
    values.update(overrides)
    return billing.BillingSettings.from_config(Config.from_env(env={}, **values))


class FakeGateway:
    """Stands in for StripeGateway where only prices are read."""

    api_base = "http://stripe.invalid"
    configured = True

    def __init__(self, prices: dict[str, StripePrice] | None = None, fail: bool = False) -> None:
        self.prices = prices or {}
        self.fail = fail
        self.reads = 0

    def retrieve_price(self, price_id: str) -> StripePrice:
        self.reads += 1
        if self.fail:
            raise UpstreamError("Stripe", "Stripe is not answering properly (500).")
        return self.prices[price_id]


def price(price_id: str, amount: int | None, *, active: bool = True, currency: str = "usd") -> StripePrice:
    return StripePrice(price_id, amount, currency, "month", 1, active)


def sign(payload: str, *, secret: str = SECRET, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


# -- plans and money --------------------------------------------------------------------------------


def test_plan_for_price_maps_only_configured_prices():
    settings = make_settings()
    assert billing.plan_for_price(settings, "price_basic") == "basic"
    assert billing.plan_for_price(settings, "price_pro") == "pro"
    assert billing.plan_for_price(settings, "price_other") is None
    assert billing.plan_for_price(settings, "") is None
    # An unset price id must never match an empty price on an object.
    assert billing.plan_for_price(make_settings(STRIPE_PRICE_PRO=""), "") is None


@pytest.mark.parametrize("raw, expected", [("basic", "basic"), (" Pro ", "pro")])
def test_parse_plan_accepts_paid_plans(raw, expected):
    assert billing.parse_plan(raw) == expected


@pytest.mark.parametrize("raw", ["free", "", None, 3, "enterprise", "basic\x00", ["basic"]])
def test_parse_plan_refuses_anything_else_naming_the_field(raw):
    with pytest.raises(InvalidRequest) as caught:
        billing.parse_plan(raw)
    assert "plan" in caught.value.fields


@pytest.mark.parametrize("amount, currency, label", [
    (900, "usd", "$9.00"), (2900, "usd", "$29.00"), (123456, "eur", "€1,234.56"), (5, "gbp", "£0.05"),
    (500, "jpy", "¥500"), (1999, "chf", "19.99 CHF"),
])
def test_format_money(amount, currency, label):
    assert billing.format_money(amount, currency) == label


def test_offer_without_a_chargeable_price_shows_no_price():
    inactive = billing.PlanOffer("basic", "Basic", 20000, "price_basic", price("price_basic", 900, active=False))
    missing = billing.PlanOffer("pro", "Pro", 100000, "price_pro", None)
    live = billing.PlanOffer("pro", "Pro", 100000, "price_pro", price("price_pro", 2900))
    assert not inactive.purchasable and inactive.price_label == ""
    assert not missing.purchasable and missing.price_label == ""
    assert live.purchasable and live.price_label == "$29.00" and live.interval_label == "per month"


# -- the price cache --------------------------------------------------------------------------------


def test_price_cache_reads_stripe_once_per_ttl():
    now = [1000.0]
    cache = billing.PriceCache(ttl_s=300, failure_ttl_s=30, clock=lambda: now[0])
    gateway = FakeGateway({"price_basic": price("price_basic", 900)})
    assert cache.get(gateway, "price_basic").unit_amount == 900
    now[0] += 299
    gateway.prices["price_basic"] = price("price_basic", 1200)
    assert cache.get(gateway, "price_basic").unit_amount == 900
    assert gateway.reads == 1
    now[0] += 2
    assert cache.get(gateway, "price_basic").unit_amount == 1200
    assert gateway.reads == 2


def test_price_cache_remembers_a_failure_briefly_and_never_serves_a_stale_price():
    now = [0.0]
    cache = billing.PriceCache(ttl_s=300, failure_ttl_s=30, clock=lambda: now[0])
    gateway = FakeGateway({"price_pro": price("price_pro", 2900)})
    assert cache.get(gateway, "price_pro").unit_amount == 2900
    now[0] += 301
    gateway.fail = True
    assert cache.get(gateway, "price_pro") is None  # expired and Stripe down: no price, not the old one
    assert cache.get(gateway, "price_pro") is None
    assert gateway.reads == 2  # the failure is cached: one read per failure window
    now[0] += 31
    gateway.fail = False
    assert cache.get(gateway, "price_pro").unit_amount == 2900


# -- proration ------------------------------------------------------------------------------------


@pytest.mark.parametrize("reason, amount_paid, plan, expected", [
    ("subscription_create", 900, "basic", 20000),
    ("subscription_cycle", 2900, "pro", 100000),
    ("subscription_cycle", 0, "pro", 100000),  # a 100 % coupon still delivers the plan it sells
    ("subscription_update", 1450, "pro", 50000),  # half the Pro price paid: half the Pro credits
    ("subscription_update", 1000, "pro", 34482),  # floor(100000 * 1000 / 2900)
    ("subscription_update", 99999, "pro", 100000),  # never more than the plan's credits
    ("subscription_update", 0, "pro", 0),  # a downgrade's credit: nothing paid, nothing granted
    ("manual", 900, "basic", 0),
    ("subscription_threshold", 900, "basic", 0),
    (None, 900, "basic", 0),
])
def test_credits_for_invoice(reason, amount_paid, plan, expected):
    gateway = FakeGateway({"price_basic": price("price_basic", 900), "price_pro": price("price_pro", 2900)})
    invoice = {"id": "in_1", "billing_reason": reason, "amount_paid": amount_paid}
    assert billing.credits_for_invoice(make_settings(), gateway, invoice, plan) == expected


def test_proration_needs_the_price_and_fails_loudly_without_it():
    gateway = FakeGateway(fail=True)
    invoice = {"id": "in_1", "billing_reason": "subscription_update", "amount_paid": 100}
    with pytest.raises(UpstreamError):
        billing.credits_for_invoice(make_settings(), gateway, invoice, "pro")


# -- reading Stripe objects: the pinned version (2026-10-28.endive) and older ones in flight -----------


def test_invoice_names_its_subscription_under_parent_details():
    invoice = {"parent": {"subscription_details": {"subscription": "sub_new"}}}
    assert objects.invoice_subscription_id(invoice) == "sub_new"
    from_line = {"lines": {"data": [{"parent": {"subscription_item_details": {"subscription": "sub_l"}}}]}}
    assert objects.invoice_subscription_id(from_line) == "sub_l"
    assert objects.invoice_subscription_id({"lines": {"data": []}}) is None


def test_subscription_period_end_lives_on_items():
    subscription = {"items": {"data": [{"current_period_end": 1_700_000_000},
                                       {"current_period_end": 1_800_000_000}]}}
    assert int(objects.subscription_period_end(subscription).timestamp()) == 1_800_000_000
    assert objects.subscription_period_end({}) is None


@pytest.mark.parametrize(("api_version", "legacy"), [
    ("2025-02-24.acacia", True), ("2024-06-20", True), ("2025-03-31.basil", False),
    ("2025-10-29.clover", False), ("2026-10-28.endive", False), (None, False), ("", False), ("nonsense", False),
    (20250224, False),
])
def test_which_api_versions_have_the_old_shapes(api_version, legacy):
    assert objects.has_legacy_shapes(api_version) is legacy


ACACIA_INVOICE = {
    "id": "in_1", "object": "invoice", "subscription": "sub_1", "paid": True, "status": "paid",
    "subscription_details": {"metadata": {"user_id": "7"}},
    "lines": {"data": [{"id": "il_1", "object": "line_item", "amount": 900, "subscription": "sub_1",
                        "subscription_item": "si_1", "type": "subscription", "proration": False,
                        "price": {"id": "price_basic", "object": "price", "product": "prod_basic"},
                        "plan": {"id": "price_basic", "object": "plan"}}]},
}


def test_an_acacia_invoice_is_read_in_the_pinned_shape():
    before = json.dumps(ACACIA_INVOICE, sort_keys=True)
    invoice = objects.in_pinned_shape(ACACIA_INVOICE, "2025-02-24.acacia")
    assert json.dumps(ACACIA_INVOICE, sort_keys=True) == before  # the event's own payload is untouched
    assert invoice["parent"]["subscription_details"] == {"metadata": {"user_id": "7"}, "subscription": "sub_1"}
    assert objects.invoice_subscription_id(invoice) == "sub_1"
    line = objects.invoice_lines(invoice)[0]
    assert objects.line_price_id(line) == "price_basic"
    assert line["parent"]["subscription_item_details"]["subscription_item"] == "si_1"
    assert "subscription" not in invoice and "price" not in line


def test_an_acacia_subscription_gets_its_period_on_the_items():
    legacy = {"id": "sub_1", "object": "subscription", "current_period_start": 1_700_000_000,
              "current_period_end": 1_702_592_000, "items": {"data": [{"id": "si_1", "price": {"id": "price_pro"}}]}}
    subscription = objects.in_pinned_shape(legacy, "2025-02-24.acacia")
    assert int(objects.subscription_period_end(subscription).timestamp()) == 1_702_592_000
    assert objects.subscription_price_id(subscription) == "price_pro"
    assert "current_period_end" in legacy and "current_period_end" not in subscription


def test_objects_of_the_pinned_version_pass_unchanged():
    invoice = {"id": "in_1", "object": "invoice", "parent": {"subscription_details": {"subscription": "sub_1"}}}
    assert objects.in_pinned_shape(invoice, "2026-10-28.endive") is invoice
    assert objects.in_pinned_shape(invoice, "2025-10-29.clover") is invoice


# -- webhook verification ---------------------------------------------------------------------------


def event_body(**extra) -> str:
    return json.dumps({"id": "evt_1", "object": "event", "type": "invoice.paid", "created": 1,
                       "data": {"object": {"id": "in_1"}}, **extra})


def test_verify_webhook_accepts_a_genuine_event():
    body = event_body()
    assert verify_webhook(body.encode(), sign(body), SECRET)["id"] == "evt_1"


@pytest.mark.parametrize("case", ["missing", "garbage", "wrong_secret", "stale", "forged", "not_json",
                                  "not_event", "json_list", "no_data_object", "not_utf8", "no_secret"])
def test_verify_webhook_refuses(case):
    body = event_body()
    header, secret, payload = sign(body), SECRET, body
    if case == "missing":
        header = ""
    elif case == "garbage":
        header = "t=abc,v1=zzz"
    elif case == "wrong_secret":
        header = sign(body, secret="whsec_other")
    elif case == "stale":
        header = sign(body, timestamp=int(time.time()) - 301)
    elif case == "forged":
        payload = body.replace('"in_1"', '"in_2"')
    elif case == "not_json":
        payload = "this is not json"
        header = sign(payload)
    elif case == "not_event":
        payload = json.dumps({"hello": "world"})
        header = sign(payload)
    elif case == "json_list":
        payload = "[1, 2]"
        header = sign(payload)
    elif case == "no_data_object":
        payload = json.dumps({"id": "evt_1", "type": "invoice.paid", "data": 5})
        header = sign(payload)
    elif case == "not_utf8":
        with pytest.raises(InvalidWebhook):
            verify_webhook(b"\xff\xfe" + body.encode(), header, secret)
        return
    elif case == "no_secret":
        secret = ""
    with pytest.raises(InvalidWebhook):
        verify_webhook(payload.encode(), header, secret)


@pytest.mark.parametrize(("offset_s", "words"), [
    (4000, "in the future"), (301, "in the future"), (-301, "too old"), (-3600, "too old")])
def test_verify_webhook_refuses_timestamps_outside_the_tolerance_either_way(offset_s, words):
    body = event_body()
    with pytest.raises(InvalidWebhook) as caught:
        verify_webhook(body.encode(), sign(body, timestamp=int(time.time()) + offset_s), SECRET)
    assert words in caught.value.reason and "300" in caught.value.reason


@pytest.mark.parametrize("offset_s", [-290, -5, 0, 5, 290])
def test_verify_webhook_accepts_clock_skew_within_the_tolerance(offset_s):
    body = event_body()
    assert verify_webhook(body.encode(), sign(body, timestamp=int(time.time()) + offset_s), SECRET)["id"] == "evt_1"
