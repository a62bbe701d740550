"""Reading Stripe's objects: where each field Sorya needs lives, whichever API version rendered them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


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


def subscription_price_id(obj: dict[str, Any]) -> str | None:
    items = ((obj.get("items") or {}).get("data")) or []
    for item in items:
        price = item.get("price") or (item.get("plan") or {})
        price_id = object_id(price)
        if price_id:
            return price_id
    return object_id(obj.get("plan"))


def subscription_period_end(obj: dict[str, Any]) -> datetime | None:
    """Since API 2025-03-31 the period lives on the items; older versions had it on the subscription."""
    ends = [item.get("current_period_end") for item in ((obj.get("items") or {}).get("data") or [])]
    ends = [end for end in ends if isinstance(end, int)]
    end = max(ends) if ends else obj.get("current_period_end")
    return datetime.fromtimestamp(end, UTC) if isinstance(end, int) else None


def invoice_subscription_id(invoice: dict[str, Any]) -> str | None:
    """Since API 2025-03-31 an invoice names its subscription under parent.subscription_details."""
    details = ((invoice.get("parent") or {}).get("subscription_details")) or {}
    found = object_id(details.get("subscription")) or object_id(invoice.get("subscription"))
    if found:
        return found
    for line in invoice_lines(invoice):
        item_details = ((line.get("parent") or {}).get("subscription_item_details")) or {}
        found = object_id(item_details.get("subscription")) or object_id(line.get("subscription"))
        if found:
            return found
    return None


def invoice_lines(invoice: dict[str, Any]) -> list[dict[str, Any]]:
    return list(((invoice.get("lines") or {}).get("data")) or [])


def line_price_id(line: dict[str, Any]) -> str | None:
    details = ((line.get("pricing") or {}).get("price_details")) or {}
    return object_id(details.get("price")) or object_id(line.get("price"))
