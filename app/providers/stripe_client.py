"""Stripe, through the pinned `stripe` SDK (16.1.0, API version 2026-10-28.endive: `API_VERSION`).

What this module hides from the billing service:
- the client: `stripe.StripeClient` pointed at `STRIPE_API_BASE`, with a connect/read timeout and the
  SDK's own network retries. Every POST the SDK sends carries an `Idempotency-Key` (ours when the caller
  gives one, else a random one the SDK keeps across its retries), so a retried create never creates twice;
  GETs are naturally idempotent.
- the SDK's exceptions: every `stripe.StripeError` becomes `UpstreamError("Stripe", ...)` (retryable for
  connection errors, rate limits and 5xx), or `NotFound` when Stripe says the object does not exist.
- its objects: callers get plain, JSON-shaped dicts (`StripeObject.to_dict(for_json=True)`: since stripe
  15 an SDK object is no longer a dict, and its decimal strings are `Decimal`s) or the small dataclasses
  below, never SDK types.
- webhook verification: `verify_webhook` checks the `Stripe-Signature` header with the SDK's
  `stripe.Webhook.construct_event` and returns the event as a plain dict, or raises `InvalidWebhook`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import stripe

from app.errors import NotFound, UpstreamError
from app.metrics import count_provider_error

log = logging.getLogger(__name__)

PROVIDER = "Stripe"
CONNECT_TIMEOUT_S = 5
READ_TIMEOUT_S = 20
# The SDK backs off 0.5 s, 1 s between attempts: a blip is absorbed without holding a request for long.
MAX_NETWORK_RETRIES = 2
# Stripe's own default: a signature older than five minutes is a replay.
WEBHOOK_TOLERANCE_S = 300
# The API version every request sends and every object we read back has (the SDK pins it).
API_VERSION: str = stripe.api_version


class InvalidWebhook(Exception):
    """A webhook request that is not a genuine, fresh Stripe event; `reason` says what was wrong."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class StripePrice:
    """A Price object as the plans page needs it. `unit_amount` is in the currency's minor unit."""

    id: str
    unit_amount: int | None
    currency: str
    interval: str | None
    interval_count: int
    active: bool


@dataclass(frozen=True)
class HostedSession:
    """A Checkout or billing portal session: where to send the person."""

    id: str
    url: str


def _as_dict(obj: Any) -> dict[str, Any]:
    """A plain, JSON-shaped copy of an SDK object (decimal strings stay strings, as on the wire)."""
    if isinstance(obj, stripe.StripeObject):
        return obj.to_dict(recursive=True, for_json=True)
    return dict(obj)


def _translate(exc: stripe.StripeError, action: str) -> Exception:
    """One SDK error as the domain error the service understands. Never includes the key or the body."""
    count_provider_error(PROVIDER)
    status = getattr(exc, "http_status", None)
    stripe_message = (getattr(exc, "user_message", None) or "").strip()
    if isinstance(exc, stripe.InvalidRequestError) and status == 404:
        return NotFound(f"Stripe has no such object ({action}).")
    if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
        return UpstreamError(PROVIDER, f"Stripe refused our API key while trying to {action}.")
    retryable = isinstance(exc, stripe.APIConnectionError | stripe.RateLimitError) or (status or 0) >= 500
    if isinstance(exc, stripe.APIConnectionError):
        message = f"Stripe could not be reached to {action}; please try again."
    elif retryable:
        message = f"Stripe is not answering properly ({status}) while trying to {action}; please try again."
    else:
        detail = f": {stripe_message}" if stripe_message else ""
        message = f"Stripe refused to {action}{detail}"
    return UpstreamError(PROVIDER, message, retryable=retryable)


class StripeGateway:
    """The Stripe calls Sorya makes. Thread-safe: the SDK keeps one HTTP session per thread."""

    def __init__(self, api_key: str, api_base: str, *, max_network_retries: int = MAX_NETWORK_RETRIES) -> None:
        self.api_base = api_base
        self._client = stripe.StripeClient(
            api_key or "sk_unset",
            base_addresses={"api": api_base},
            max_network_retries=max_network_retries,
            http_client=stripe.RequestsClient(timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S)),
        )
        self.configured = bool(api_key)

    def _call(self, action: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if not self.configured:
            raise UpstreamError(PROVIDER, "Payments are not configured on this server (STRIPE_SECRET_KEY is empty).")
        try:
            return fn(*args, **kwargs)
        except stripe.StripeError as exc:
            log.warning("stripe: %s failed: %s status=%s", action, type(exc).__name__, getattr(exc, "http_status", None))
            raise _translate(exc, action) from exc

    # -- prices -------------------------------------------------------------------------------------

    def retrieve_price(self, price_id: str) -> StripePrice:
        price = _as_dict(self._call("read a price", self._client.v1.prices.retrieve, price_id))
        recurring = price.get("recurring") or {}
        return StripePrice(
            id=price["id"],
            unit_amount=price.get("unit_amount"),
            currency=str(price.get("currency") or "usd"),
            interval=recurring.get("interval"),
            interval_count=int(recurring.get("interval_count") or 1),
            active=bool(price.get("active", True)),
        )

    # -- customers ----------------------------------------------------------------------------------

    def create_customer(
        self, *, email: str | None, name: str, metadata: dict[str, str], idempotency_key: str
    ) -> str:
        params: dict[str, Any] = {"name": name, "metadata": metadata}
        if email:
            params["email"] = email
        customer = self._call(
            "create a customer", self._client.v1.customers.create, params,
            {"idempotency_key": idempotency_key},
        )
        return str(customer["id"])

    def retrieve_customer(self, customer_id: str) -> dict[str, Any]:
        return _as_dict(self._call("read a customer", self._client.v1.customers.retrieve, customer_id))

    # -- checkout and portal ------------------------------------------------------------------------

    def create_checkout_session(self, params: dict[str, Any], *, idempotency_key: str) -> HostedSession:
        session = self._call(
            "open a checkout session", self._client.v1.checkout.sessions.create, params,
            {"idempotency_key": idempotency_key},
        )
        return HostedSession(id=str(session["id"]), url=str(session["url"]))

    def retrieve_checkout_session(self, session_id: str) -> dict[str, Any]:
        return _as_dict(
            self._call("read a checkout session", self._client.v1.checkout.sessions.retrieve, session_id)
        )

    def create_portal_session(self, *, customer_id: str, return_url: str) -> HostedSession:
        session = self._call(
            "open the billing portal", self._client.v1.billing_portal.sessions.create,
            {"customer": customer_id, "return_url": return_url},
        )
        return HostedSession(id=str(session["id"]), url=str(session["url"]))

    # -- subscriptions, invoices, events ------------------------------------------------------------

    def retrieve_subscription(self, subscription_id: str) -> dict[str, Any]:
        return _as_dict(
            self._call("read a subscription", self._client.v1.subscriptions.retrieve, subscription_id)
        )

    def list_subscriptions(self, customer_id: str) -> list[dict[str, Any]]:
        """Every subscription of the customer, canceled ones included (auto-paginated)."""
        page = self._call(
            "list subscriptions", self._client.v1.subscriptions.list,
            {"customer": customer_id, "status": "all", "limit": 100},
        )
        return [_as_dict(item) for item in self._call("list subscriptions", lambda: list(page.auto_paging_iter()))]

    def list_paid_invoices(self, customer_id: str, *, limit: int = 100) -> list[dict[str, Any]]:
        """The customer's most recent paid invoices, newest first."""
        page = self._call(
            "list invoices", self._client.v1.invoices.list,
            {"customer": customer_id, "status": "paid", "limit": limit},
        )
        return [_as_dict(item) for item in page.data]

    def retrieve_event(self, event_id: str) -> dict[str, Any]:
        return _as_dict(self._call("read an event", self._client.v1.events.retrieve, event_id))


_gateways: dict[tuple[str, str], StripeGateway] = {}
_gateways_lock = threading.Lock()


def gateway_for(api_key: str, api_base: str) -> StripeGateway:
    """One gateway per (key, base) per process: the SDK's HTTP sessions and their pools are reused."""
    key = (api_key, api_base)
    with _gateways_lock:
        gateway = _gateways.get(key)
        if gateway is None:
            gateway = _gateways[key] = StripeGateway(api_key, api_base)
        return gateway


def verify_webhook(payload: bytes, signature_header: str | None, secret: str,
                   *, tolerance_s: int = WEBHOOK_TOLERANCE_S) -> dict[str, Any]:
    """The event in `payload` if `signature_header` proves Stripe sent it recently, else `InvalidWebhook`.

    Checks, in this order: a secret is configured (an empty HMAC key would let anyone sign), the header
    is present, one `v1` signature matches HMAC-SHA256(secret, "t.payload"), the signed timestamp is
    within `tolerance_s` of now in EITHER direction, and the body is a JSON event object with an id, a
    type and a data object. The SDK checks only the past side: a request signed ahead of time (a leaked
    secret, or a signer whose clock runs fast) would stay replayable for as long as it is ahead, so the
    future side is checked here, after the signature, so that an unsigned timestamp tells nobody anything.
    """
    if not secret:
        raise InvalidWebhook("STRIPE_WEBHOOK_SECRET is not configured")
    if not signature_header:
        raise InvalidWebhook("missing Stripe-Signature header")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidWebhook("body is not UTF-8") from None
    try:
        # tolerance=None: the SDK checks the signature only; the timestamp is checked both ways below.
        stripe.Webhook.construct_event(text, signature_header, secret, tolerance=None)
    except stripe.SignatureVerificationError as exc:
        raise InvalidWebhook(f"signature rejected: {exc.user_message or exc}") from None
    except ValueError as exc:
        # stripe 16 refuses a thin (v2) event notification here with a ValueError of its own.
        if isinstance(exc, json.JSONDecodeError):
            raise InvalidWebhook("body is not JSON") from None
        raise InvalidWebhook("body is not a snapshot Stripe event") from None
    except (AttributeError, TypeError):  # valid JSON but not an object: the SDK trips on it
        raise InvalidWebhook("body is not a Stripe event") from None
    _check_signed_at(_signed_timestamp(signature_header), tolerance_s, time.time())
    # The SDK has verified and parsed it; keep the plain JSON rather than its Event object.
    data = json.loads(text)
    if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not isinstance(data.get("type"), str):
        raise InvalidWebhook("body is not a Stripe event")
    body = data.get("data")
    if not isinstance(body, dict) or not isinstance(body.get("object"), dict):
        raise InvalidWebhook("event has no data.object")
    return data


def _signed_timestamp(signature_header: str) -> int:
    """The `t=` of a header whose signature the SDK accepted (it signed over this same first `t`)."""
    for item in signature_header.split(","):
        key, _, value = item.partition("=")
        if key == "t":
            return int(value)
    raise InvalidWebhook("Stripe-Signature header has no timestamp")


def _check_signed_at(signed_at: int, tolerance_s: int, now_s: float) -> None:
    """Refuse a signature made more than `tolerance_s` before or after `now_s`."""
    if now_s - signed_at > tolerance_s:
        raise InvalidWebhook(f"its timestamp is too old ({int(now_s - signed_at)} s ago, more than the "
                             f"{tolerance_s} s tolerance): a replayed or long-delayed request")
    if signed_at - now_s > tolerance_s:
        raise InvalidWebhook(f"its timestamp is {int(signed_at - now_s)} s in the future (more than the "
                             f"{tolerance_s} s tolerance): a request signed ahead of time, or this server's "
                             "clock is wrong")
