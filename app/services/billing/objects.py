"""Reading Stripe's objects: where each field Sorya needs lives, whichever API version rendered them.

Everything past the webhook's door reads one shape, that of the pinned API version
(`stripe_client.API_VERSION`, 2026-10-28.endive). An event rendered for an older version (its
`api_version` says which: one already in flight when the SDK was upgraded, or a webhook endpoint still
set to an old version) is first brought to that shape by `in_pinned_shape`.

What moved, as the SDK's generated types show (stripe 11.6 for 2025-02-24.acacia, 16.1 for endive):
2025-03-31.basil moved an invoice's `subscription` (and `subscription_details.metadata`) under
`parent.subscription_details`, a line's `price` under `pricing.price_details.price` and its
`subscription_item` under `parent.subscription_item_details`, and a subscription's `current_period_start`
/ `current_period_end` onto each of its items. Between 2025-10-29.clover and 2026-10-28.endive nothing
Sorya reads moved (endive only adds fields: `status_details`, `customer_account`, `billed_until`, ...).
"""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime
from typing import Any

# The first API version with parent details on invoices and billing periods on subscription items.
ITEM_PERIODS_SINCE = "2025-03-31"
_VERSION_DATE = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:\.[a-z]+)?$")


def object_id(value: Any) -> str | None:
    """An expandable field's id, whether Stripe sent the id or the expanded object."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def metadata_user_id(*sources: Any) -> int | None:
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


# -- older API versions -----------------------------------------------------------------------------


def has_legacy_shapes(api_version: Any) -> bool:
    """Whether objects rendered for `api_version` predate 2025-03-31.basil's moves. A missing or
    unreadable version is taken as the pinned one: Stripe always names it, and guessing "old" would
    rewrite a current object."""
    match = _VERSION_DATE.match(api_version) if isinstance(api_version, str) else None
    return bool(match) and match.group(1) < ITEM_PERIODS_SINCE


def in_pinned_shape(obj: dict[str, Any], api_version: Any) -> dict[str, Any]:
    """`obj` as the pinned API version renders it (a copy when it had to change; never mutates `obj`)."""
    if not has_legacy_shapes(api_version):
        return obj
    kind = obj.get("object")
    if kind == "invoice":
        return _upgrade_invoice(obj)
    if kind == "subscription":
        return _upgrade_subscription(obj)
    return obj


def _upgrade_invoice(legacy: dict[str, Any]) -> dict[str, Any]:
    invoice = copy.deepcopy(legacy)
    subscription = invoice.pop("subscription", None)
    details = invoice.pop("subscription_details", None) or {}
    if invoice.get("parent") is None and subscription:
        invoice["parent"] = {"type": "subscription_details", "quote_details": None,
                             "subscription_details": {"metadata": details.get("metadata") or {},
                                                      "subscription": subscription}}
    for line in invoice_lines(invoice):
        _upgrade_invoice_line(line)
    return invoice


def _upgrade_invoice_line(line: dict[str, Any]) -> None:
    price = line.pop("price", None)
    line.pop("plan", None)
    subscription_item = line.pop("subscription_item", None)
    line.pop("type", None)
    proration = bool(line.pop("proration", False))
    if line.get("pricing") is None and price:
        line["pricing"] = {"type": "price_details", "unit_amount_decimal": None,
                           "price_details": {"price": object_id(price),
                                             "product": price.get("product") if isinstance(price, dict) else None}}
    if line.get("parent") is None and line.get("subscription"):
        line["parent"] = {"type": "subscription_item_details", "invoice_item_details": None,
                          "subscription_item_details": {"subscription": line["subscription"],
                                                        "subscription_item": subscription_item,
                                                        "proration": proration}}


def _upgrade_subscription(legacy: dict[str, Any]) -> dict[str, Any]:
    subscription = copy.deepcopy(legacy)
    start = subscription.pop("current_period_start", None)
    end = subscription.pop("current_period_end", None)
    for item in ((subscription.get("items") or {}).get("data")) or []:
        item.setdefault("current_period_start", start)
        item.setdefault("current_period_end", end)
    return subscription


# -- the pinned shapes ------------------------------------------------------------------------------


def subscription_price_id(obj: dict[str, Any]) -> str | None:
    items = ((obj.get("items") or {}).get("data")) or []
    for item in items:
        price = item.get("price") or (item.get("plan") or {})
        price_id = object_id(price)
        if price_id:
            return price_id
    return None


def subscription_period_end(obj: dict[str, Any]) -> datetime | None:
    """The latest `current_period_end` among the subscription's items (where the period lives)."""
    ends = [item.get("current_period_end") for item in ((obj.get("items") or {}).get("data") or [])]
    ends = [end for end in ends if isinstance(end, int)]
    return datetime.fromtimestamp(max(ends), UTC) if ends else None


def invoice_subscription_id(invoice: dict[str, Any]) -> str | None:
    """The subscription an invoice bills: `parent.subscription_details`, else one of its lines' parents."""
    details = ((invoice.get("parent") or {}).get("subscription_details")) or {}
    found = object_id(details.get("subscription"))
    if found:
        return found
    for line in invoice_lines(invoice):
        item_details = ((line.get("parent") or {}).get("subscription_item_details")) or {}
        found = object_id(item_details.get("subscription"))
        if found:
            return found
    return None


def invoice_lines(invoice: dict[str, Any]) -> list[dict[str, Any]]:
    return list(((invoice.get("lines") or {}).get("data")) or [])


def line_price_id(line: dict[str, Any]) -> str | None:
    details = ((line.get("pricing") or {}).get("price_details")) or {}
    return object_id(details.get("price"))
