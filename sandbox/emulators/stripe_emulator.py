"""Stripe emulator: customers, prices, Checkout, billing portal, subscriptions, invoices, events, webhooks.

SDK configuration (stripe 16.x; STRIPE_API_BASE is the server root, without ``/v1``)::

    client = stripe.StripeClient("sk_test_anything", base_addresses={"api": STRIPE_API_BASE},
                                 max_network_retries=0)
    client.v1.customers.create(params={"email": "a@example.com"})
    # or the module-level style: stripe.api_key = "sk_test_..."; stripe.api_base = STRIPE_API_BASE
    event = stripe.Webhook.construct_event(payload, request.headers["Stripe-Signature"], secret)

stripe 16's StripeClient takes ``base_addresses={"api": url}`` (also "connect", "files",
"meter_events"); the module-level client reads ``stripe.api_base``. The client sends
``Stripe-Version: 2026-10-28.endive`` (``stripe.api_version``); objects here have that version's shape
(endive's additions included: ``status_details``, ``customer_account``, items' ``billed_until``, lines'
``subtotal``): an invoice names its subscription under ``parent.subscription_details.subscription``
(there is no top-level ``invoice.subscription``), billing periods live on subscription items
(``items.data[0].current_period_start/end``), and invoice lines carry ``parent.subscription_item_details``
and ``pricing.price_details.price``. Any key starting with ``sk_test_`` is accepted.

Requests are form-encoded as stripe-python sends them (``line_items[0][price]``, ``metadata[user_id]``,
``expand[0]``); ``Idempotency-Key`` on a POST replays the first answer with ``Idempotent-Replayed: true``
for the same parameters and answers 400 ``idempotency_error`` for different ones. Prices are seeded:
``price_basic`` (900 cents a month, "Basic") and ``price_pro`` (2900, "Pro") unless given.

Checkout: ``POST /v1/checkout/sessions`` (mode=subscription) returns ``url`` = ``{base}/pay/{id}``, a
hosted-page stand-in with *Pay* and *Back*. *Pay* creates the customer if needed, the subscription and a
paid invoice, emits ``customer.created`` (when it made one), ``checkout.session.completed``,
``customer.subscription.created``, ``invoice.paid``, ``invoice.payment_succeeded`` and redirects to
``success_url`` (``{CHECKOUT_SESSION_ID}`` substituted). ``POST /v1/billing_portal/sessions`` returns
a page to switch plan, cancel at period end, resume, and return. Plan changes do not produce proration
invoices.

Webhooks: events are rendered in the webhook endpoint's API version (``api_version`` of
``POST /_emulator/webhook``, the emulator's own by default; a version before 2025-03-31.basil gets the
old shapes, see ``render_for_version``). Each batch of events (one action) is delivered in order to the
configured URL, signed as
Stripe signs (``Stripe-Signature: t=<unix>,v1=<hex hmac_sha256(secret, f"{t}.{payload}")>``), retried
on a non-2xx answer (3 attempts, 200 ms then 400 ms apart by default). With no URL, or ``collect``,
signed deliveries are kept for ``GET /_emulator/deliveries``.

Control endpoints (besides those in ``base.py``):

| method and path | body | answer |
| --- | --- | --- |
| ``POST /_emulator/webhook`` | ``{"url"?, "secret"?, "collect"?, "api_version"?}`` | the webhook config |
| ``POST /_emulator/clock`` | ``{"advance_s": n}`` | ``{"now", "offset_s"}``: later ``created`` stamps are n s newer (until reset) |
| ``POST /_emulator/delivery_mode`` | ``{"duplicate": n extra copies, "order": "normal" / "reverse" / "shuffle", "delay_ms", "bad_signature", "stale_timestamp_s", "future_timestamp_s", "max_attempts", "retry_backoff_ms"}`` | the mode (kept until changed or reset) |
| ``GET /_emulator/deliveries`` | ``?clear=1`` | ``{"deliveries": [{"event_id", "type", "payload", "signature_header", "attempts": [{"status", "error"}], "delivered"}]}`` once the queue is idle |
| ``POST /_emulator/deliveries/flush`` | ``{"timeout_s"}`` | ``{"ok": true}`` once every queued delivery has finished |
| ``POST /_emulator/checkout/{session_id}/complete`` | | the session (what *Pay* does) |
| ``POST /_emulator/subscriptions/{id}/{command}`` | ``renew``, ``change_plan`` (``{"price"}``), ``cancel_at_period_end``, ``resume``, ``cancel``, ``fail_payment`` | the subscription |
| ``GET /_emulator/events`` | | ``{"events": [...]}`` oldest first |
| ``POST /_emulator/keys/revoke`` | ``{"key"}`` | ``{"ok": true}`` |

Fault kinds: ``unauthorized`` (401), ``card_declined`` (402), ``forbidden`` (403), ``not_found`` (404),
``rate_limit`` (429), ``lock_timeout`` (429, code lock_timeout), ``server_error`` (500, api_error).
"""

from __future__ import annotations

import asyncio
import calendar
import copy
import hashlib
import hmac
import html
import itertools
import json
import logging
import random
import re
import secrets
import string
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web

from sandbox.emulators.base import Emulator, FaultRule, bearer_token, html_page, json_response

log = logging.getLogger(__name__)

API_VERSION = "2026-10-28.endive"  # stripe 16.1's stripe.api_version
# Before this API version (2025-03-31.basil) invoices named their subscription at the top level, lines
# their price, and subscriptions carried the billing period themselves.
ITEM_PERIODS_SINCE = "2025-03-31"
DEFAULT_PRICES = ({"id": "price_basic", "nickname": "Basic", "unit_amount": 900},
                  {"id": "price_pro", "nickname": "Pro", "unit_amount": 2900})
DEFAULT_WEBHOOK_SECRET = "whsec_sandbox"
CHECKOUT_TTL_S = 24 * 3600
DELIVERY_TIMEOUT_S = 10.0
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_RETRY_BACKOFF_MS = 200
WRONG_SECRET = "whsec_not_the_right_secret"

Handler = Callable[[web.Request, dict[str, Any]], Awaitable[tuple[int, Any]]]


class StripeError(Exception):
    """An answer in Stripe's error shape: ``{"error": {"type", "code", "message", "param", ...}}``."""

    def __init__(self, status: int, message: str, type_: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None, **extra: Any):
        super().__init__(message)
        self.status = status
        self.error = {"message": message, "type": type_, **extra}
        if code:
            self.error["code"] = code
            self.error["doc_url"] = f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}"
        if param:
            self.error["param"] = param


def missing(kind: str, object_id: str, param: str = "id", status: int = 404) -> StripeError:
    return StripeError(status, f"No such {kind}: '{object_id}'", code="resource_missing", param=param)


def new_id(prefix: str, length: int = 24) -> str:
    alphabet = string.ascii_letters + string.digits
    return prefix + "".join(secrets.choice(alphabet) for _ in range(length))


def add_months(moment: int, months: int) -> int:
    when = datetime.fromtimestamp(moment, UTC)
    month_index = when.month - 1 + months
    year, month = when.year + month_index // 12, month_index % 12 + 1
    day = min(when.day, calendar.monthrange(year, month)[1])
    return int(when.replace(year=year, month=month, day=day).timestamp())


def parse_form(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's bracketed form keys -> nested values: ``a[b][0][c]=v`` -> ``{"a": {"b": [{"c": "v"}]}}``."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = re.findall(r"\[\]|[^\[\]]+", key)
        node: Any = root
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            if part == "[]":
                part = str(len(node))
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
    return _listify(root)


def _listify(node: Any, parent: str = "") -> Any:
    if not isinstance(node, dict):
        return node
    converted = {k: _listify(v, k) for k, v in node.items()}
    if parent != "metadata" and converted and all(k.isdigit() for k in converted):
        return [converted[k] for k in sorted(converted, key=int)]
    return converted


def has_legacy_shapes(api_version: str) -> bool:
    return api_version.split(".", 1)[0] < ITEM_PERIODS_SINCE


# Fields that endive added and that an object rendered for an older version does not have.
ENDIVE_ADDITIONS = {
    "invoice": ("amount_paid_off_stripe", "customer_account", "status_details"),
    "subscription": ("billing_schedules", "customer_account", "managed_payments", "presentment_details",
                     "status_details"),
    "subscription_item": ("billed_until", "current_trial"),
    "line_item": ("quantity_decimal", "subtotal"),
}


def render_for_version(obj: dict[str, Any], api_version: str, objects: dict[str, dict]) -> dict[str, Any]:
    """``obj`` (an object of the emulator's own version) as Stripe renders it for ``api_version``.

    Before 2025-03-31.basil (the SDK's types for 2025-02-24.acacia, stripe 11.6): an invoice has a
    top-level ``subscription`` and ``subscription_details.metadata`` and no ``parent``; a line has
    ``price``, ``plan``, ``subscription_item``, ``type`` and ``proration`` instead of ``pricing`` and
    ``parent``; a subscription has ``current_period_start`` / ``current_period_end`` and its items do not.
    Other versions render as the emulator's own.
    """
    if not has_legacy_shapes(api_version):
        return obj
    kind = obj.get("object")
    if kind == "invoice":
        parent = obj.pop("parent", None) or {}
        details = parent.get("subscription_details") or {}
        obj["subscription"] = details.get("subscription")
        obj["subscription_details"] = {"metadata": details.get("metadata") or {}}
        obj["paid"] = obj.get("status") == "paid"
        for line in obj["lines"]["data"]:
            _legacy_line(line, objects)
    elif kind == "subscription":
        first = obj["items"]["data"][0] if obj["items"]["data"] else {}
        obj["current_period_start"] = first.get("current_period_start")
        obj["current_period_end"] = first.get("current_period_end")
        for item in obj["items"]["data"]:
            item.pop("current_period_start", None)
            item.pop("current_period_end", None)
            for name in ENDIVE_ADDITIONS["subscription_item"]:
                item.pop(name, None)
    for name in ENDIVE_ADDITIONS.get(kind or "", ()):
        obj.pop(name, None)
    return obj


def _legacy_line(line: dict[str, Any], objects: dict[str, dict]) -> None:
    pricing = line.pop("pricing", None) or {}
    parent = line.pop("parent", None) or {}
    item_details = parent.get("subscription_item_details") or {}
    price = objects.get((pricing.get("price_details") or {}).get("price") or "")
    line["price"] = copy.deepcopy(price)
    line["plan"] = None
    line["subscription_item"] = item_details.get("subscription_item")
    line["proration"] = bool(item_details.get("proration"))
    line["type"] = "subscription"
    for name in ENDIVE_ADDITIONS["line_item"]:
        line.pop(name, None)


def truthy(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def money(cents: int, currency: str = "usd") -> str:
    symbol = "$" if currency == "usd" else currency.upper() + " "
    return f"{symbol}{cents // 100}.{cents % 100:02d}"


@dataclass
class DeliveryMode:
    duplicate: int = 0
    order: str = "normal"
    delay_ms: float = 0
    bad_signature: bool = False
    stale_timestamp_s: int = 0
    future_timestamp_s: int = 0
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    retry_backoff_ms: float = DEFAULT_RETRY_BACKOFF_MS


class StripeEmulator(Emulator):
    name = "stripe"
    sdk_path = ""

    def __init__(self, prices: list[dict[str, Any]] | tuple[dict[str, Any], ...] = DEFAULT_PRICES,
                 webhook_url: str | None = None, webhook_secret: str = DEFAULT_WEBHOOK_SECRET,
                 api_version: str = API_VERSION):
        super().__init__()
        self.seed_prices = [dict(p) for p in prices]
        self.seed_webhook = (webhook_url, webhook_secret)
        self.api_version = api_version
        self._queue: asyncio.Queue[list[dict]] | None = None
        self._worker: asyncio.Task | None = None
        self._http: aiohttp.ClientSession | None = None
        self._counter = itertools.count()
        self.reset_state()

    # --- state -----------------------------------------------------------------------------------------
    def reset_state(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}  # every object by id
        self.order: dict[str, int] = {}  # id -> creation sequence, for stable newest-first lists
        self.session_extras: dict[str, dict[str, Any]] = {}  # checkout session id -> line items etc.
        self.events: list[dict[str, Any]] = []
        self.idempotency: dict[tuple[str, str], tuple[str, int, Any, str]] = {}
        self.revoked_keys: set[str] = set()
        self.webhook_url, self.webhook_secret = self.seed_webhook
        self.webhook_api_version = self.api_version
        self.collect = self.webhook_url is None
        self.clock_offset_s = 0
        self.mode = DeliveryMode()
        self.deliveries: list[dict[str, Any]] = []
        self._generation = getattr(self, "_generation", 0) + 1  # batches queued before a reset are dropped
        for spec in self.seed_prices:
            self._seed_price(spec)

    def _seed_price(self, spec: dict[str, Any]) -> None:
        nickname = spec.get("nickname") or spec["id"]
        product_id = spec.get("product") or "prod_" + re.sub(r"[^A-Za-z0-9]", "", spec["id"].removeprefix("price_"))
        now = self.now()
        self._store({"id": product_id, "object": "product", "active": True, "created": now,
                     "default_price": spec["id"], "description": None, "images": [], "livemode": False,
                     "marketing_features": [], "metadata": {}, "name": nickname, "package_dimensions": None,
                     "shippable": None, "statement_descriptor": None, "tax_code": None, "type": "service",
                     "unit_label": None, "updated": now, "url": None})
        amount = int(spec["unit_amount"])
        self._store({"id": spec["id"], "object": "price", "active": True, "billing_scheme": "per_unit",
                     "created": now, "currency": spec.get("currency", "usd"), "custom_unit_amount": None,
                     "livemode": False, "lookup_key": spec.get("lookup_key") or nickname.lower(),
                     "metadata": {}, "nickname": nickname, "product": product_id,
                     "recurring": {"interval": spec.get("interval", "month"), "interval_count": 1,
                                   "meter": None, "trial_period_days": None, "usage_type": "licensed"},
                     "tax_behavior": "unspecified", "tiers_mode": None, "transform_quantity": None,
                     "type": "recurring", "unit_amount": amount, "unit_amount_decimal": str(amount)})

    def now(self) -> int:
        """The emulator's clock: the wall clock plus however far ``POST /_emulator/clock`` stepped it."""
        return int(time.time()) + self.clock_offset_s

    def _store(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.objects[obj["id"]] = obj
        self.order.setdefault(obj["id"], next(self._counter))
        return obj

    def _get(self, kind: str, object_id: str, label: str, param: str = "id", status: int = 404) -> dict:
        obj = self.objects.get(object_id)
        if obj is None or obj.get("object") != kind:
            raise missing(label, object_id, param, status)
        return obj

    # --- lifecycle -------------------------------------------------------------------------------------
    async def on_started(self) -> None:
        self._queue = asyncio.Queue()
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=DELIVERY_TIMEOUT_S))
        self._worker = asyncio.create_task(self._deliver_forever())

    async def on_stopping(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
        if self._http is not None:
            await self._http.close()

    # --- routes ----------------------------------------------------------------------------------------
    def add_routes(self, app: web.Application) -> None:
        add = app.router.add_route
        add("POST", "/_emulator/webhook", self._control_webhook)
        add("POST", "/_emulator/clock", self._control_clock)
        add("POST", "/_emulator/delivery_mode", self._control_delivery_mode)
        add("GET", "/_emulator/deliveries", self._control_deliveries)
        add("POST", "/_emulator/deliveries/flush", self._control_flush)
        add("POST", "/_emulator/checkout/{id}/complete", self._control_complete)
        add("POST", "/_emulator/subscriptions/{id}/{command}", self._control_subscription)
        add("GET", "/_emulator/events", self._control_events)
        add("POST", "/_emulator/keys/revoke", self._control_revoke)

        api: list[tuple[str, str, Handler]] = [
            ("POST", "/v1/customers", self.create_customer),
            ("GET", "/v1/customers", self.list_customers),
            ("GET", "/v1/customers/search", self.search_customers),
            ("GET", "/v1/customers/{id}", self.get_customer),
            ("POST", "/v1/customers/{id}", self.update_customer),
            ("DELETE", "/v1/customers/{id}", self.delete_customer),
            ("GET", "/v1/products", self.list_of("product")),
            ("GET", "/v1/products/{id}", self.get_of("product", "product")),
            ("GET", "/v1/prices", self.list_prices),
            ("GET", "/v1/prices/{id}", self.get_of("price", "price")),
            ("POST", "/v1/checkout/sessions", self.create_checkout_session),
            ("GET", "/v1/checkout/sessions", self.list_checkout_sessions),
            ("GET", "/v1/checkout/sessions/{id}", self.get_of("checkout.session", "checkout.session")),
            ("GET", "/v1/checkout/sessions/{id}/line_items", self.checkout_line_items),
            ("POST", "/v1/checkout/sessions/{id}/expire", self.expire_checkout_session),
            ("POST", "/v1/billing_portal/sessions", self.create_portal_session),
            ("GET", "/v1/subscriptions", self.list_subscriptions),
            ("GET", "/v1/subscriptions/{id}", self.get_of("subscription", "subscription")),
            ("POST", "/v1/subscriptions/{id}", self.update_subscription),
            ("DELETE", "/v1/subscriptions/{id}", self.cancel_subscription),
            ("GET", "/v1/invoices", self.list_invoices),
            ("GET", "/v1/invoices/{id}", self.get_of("invoice", "invoice")),
            ("GET", "/v1/events", self.list_events),
            ("GET", "/v1/events/{id}", self.get_of("event", "event")),
        ]
        for method, path, handler in api:
            add(method, path, self._api_call(handler))
        add("*", "/v1/{tail:.*}", self._api_call(self.unknown_route))

        add("GET", "/pay/{id}", self.pay_page)
        add("POST", "/pay/{id}", self.pay_submit)
        add("GET", "/portal/{id}", self.portal_page)
        add("POST", "/portal/{id}/subscriptions/{sub}/{action}", self.portal_action)

    # --- API plumbing ----------------------------------------------------------------------------------
    def _headers(self, request: web.Request) -> dict[str, str]:
        return {"Request-Id": request["request_id"],
                "Stripe-Version": request.headers.get("Stripe-Version") or self.api_version}

    def fault_preset(self, rule: FaultRule) -> tuple[int, Any, dict[str, str]]:
        presets = {
            "unauthorized": StripeError(401, "Invalid API Key provided: sk_test_****"),
            "card_declined": StripeError(402, "Your card was declined.", "card_error", "card_declined",
                                         decline_code="generic_decline"),
            "forbidden": StripeError(403, "The provided key does not have the required permissions.",
                                     code="secret_key_required"),
            "not_found": StripeError(404, "Unrecognized request URL.", code="resource_missing"),
            "rate_limit": StripeError(429, "Request rate limit exceeded. Learn more about rate limits here "
                                      "https://stripe.com/docs/rate-limits.", code="rate_limit"),
            "lock_timeout": StripeError(429, "This object cannot be accessed right now because another API "
                                        "request or Stripe process is currently accessing it.",
                                        code="lock_timeout"),
        }
        error = presets.get(rule.kind or "") or StripeError(
            rule.status or 500, "An unknown error occurred. Please try again.", "api_error")
        headers = {"Request-Id": new_id("req_", 14), "Stripe-Version": self.api_version}
        return error.status, {"error": error.error}, headers

    def _check_key(self, request: web.Request) -> str:
        key = bearer_token(request)
        if key is None:
            raise StripeError(401, "You did not provide an API key. You need to provide your API key in the "
                              "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
                              "YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, "
                              "or we can help at https://support.stripe.com/.")
        if not key.startswith("sk_test_") or key in self.revoked_keys:
            raise StripeError(401, f"Invalid API Key provided: {key[:8]}{'*' * 4}{key[-4:]}")
        return key

    def _api_call(self, handler: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def wrapped(request: web.Request) -> web.Response:
            request["request_id"] = new_id("req_", 14)
            request["idempotency_key"] = request.headers.get("Idempotency-Key")
            try:
                key = self._check_key(request)
                if request.method == "POST":
                    params = parse_form(list((await request.post()).items()))  # type: ignore[arg-type]
                else:
                    params = parse_form(list(request.query.items()))
                replay = self._idempotent_replay(request, key, params)
                if replay is not None:
                    return replay
                status, body = await handler(request, params)
                if isinstance(body, dict) and params.get("expand"):
                    body = self._expand(copy.deepcopy(body), params["expand"])
            except StripeError as error:
                status, body = error.status, {"error": error.error}
            headers = self._headers(request)
            if request.method == "POST" and request["idempotency_key"]:
                headers["Idempotency-Key"] = request["idempotency_key"]
                if status < 500:
                    self._remember(request, key, params, status, body)
            return json_response(body, status=status, headers=headers)
        return wrapped

    @staticmethod
    def _fingerprint(request: web.Request, params: dict[str, Any]) -> str:
        raw = json.dumps([request.method, request.path, params], sort_keys=True)
        return hashlib.sha256(raw.encode()).hexdigest()

    def _idempotent_replay(self, request: web.Request, key: str, params: dict) -> web.Response | None:
        idem = request["idempotency_key"]
        if request.method != "POST" or not idem:
            return None
        stored = self.idempotency.get((key, idem))
        if stored is None:
            return None
        fingerprint, status, body, original_request = stored
        if fingerprint != self._fingerprint(request, params):
            raise StripeError(400, "Keys for idempotent requests can only be used with the same parameters they "
                              f"were first used with. Try using a key other than '{idem}' if you meant to "
                              "execute a different request.", "idempotency_error")
        headers = {**self._headers(request), "Idempotency-Key": idem, "Idempotent-Replayed": "true",
                   "Original-Request": original_request}
        return json_response(body, status=status, headers=headers)

    def _remember(self, request: web.Request, key: str, params: dict, status: int, body: Any) -> None:
        self.idempotency.setdefault((key, request["idempotency_key"]),
                                    (self._fingerprint(request, params), status, body, request["request_id"]))

    def _expand(self, body: dict[str, Any], paths: list[str] | str) -> dict[str, Any]:
        for path in [paths] if isinstance(paths, str) else paths:
            self._expand_path(body, path.split("."))
        return body

    def _expand_path(self, node: Any, parts: list[str]) -> None:
        if not parts or not isinstance(node, dict):
            return
        head, rest = parts[0], parts[1:]
        if head == "data" and isinstance(node.get("data"), list):
            for item in node["data"]:
                self._expand_path(item, rest)
            return
        if head == "line_items" and node.get("object") == "checkout.session":
            node["line_items"] = self._line_items_list(node["id"])
            return
        value = node.get(head)
        if isinstance(value, str) and value in self.objects:
            node[head] = copy.deepcopy(self.objects[value])
        self._expand_path(node.get(head), rest)

    def _list(self, request: web.Request, params: dict, items: list[dict], url: str) -> tuple[int, dict]:
        items = sorted(items, key=lambda o: (o.get("created", 0), self.order.get(o["id"], 0)), reverse=True)
        if params.get("starting_after"):
            ids = [o["id"] for o in items]
            if params["starting_after"] in ids:
                items = items[ids.index(params["starting_after"]) + 1:]
        elif params.get("ending_before"):
            ids = [o["id"] for o in items]
            if params["ending_before"] in ids:
                items = items[:ids.index(params["ending_before"])]
        limit = max(1, min(int(params.get("limit") or 10), 100))
        return 200, {"object": "list", "data": items[:limit], "has_more": len(items) > limit, "url": url}

    def _of_kind(self, kind: str) -> list[dict]:
        return [o for o in self.objects.values() if o.get("object") == kind]

    def get_of(self, kind: str, label: str) -> Handler:
        async def handler(request: web.Request, params: dict) -> tuple[int, Any]:
            return 200, self._get(kind, request.match_info["id"], label)
        return handler

    def list_of(self, kind: str) -> Handler:
        async def handler(request: web.Request, params: dict) -> tuple[int, Any]:
            return self._list(request, params, self._of_kind(kind), request.path)
        return handler

    async def unknown_route(self, request: web.Request, params: dict) -> tuple[int, Any]:
        raise StripeError(404, f"Unrecognized request URL ({request.method}: {request.path}). Please see "
                          "https://stripe.com/docs or we can help at https://support.stripe.com/.")

    # --- events ----------------------------------------------------------------------------------------
    def _emit(self, batch: list[dict], type_: str, obj: dict, request: web.Request | None = None,
              previous: dict | None = None) -> dict:
        # Stripe renders an event's object in the webhook endpoint's API version, and says which.
        version = self.webhook_api_version
        data: dict[str, Any] = {"object": render_for_version(copy.deepcopy(obj), version, self.objects)}
        if previous is not None:
            data["previous_attributes"] = previous
        event = {
            "id": new_id("evt_"), "object": "event", "api_version": version, "created": self.now(),
            "data": data, "livemode": False, "pending_webhooks": 0 if self.collect else 1,
            "request": {"id": request["request_id"] if request else None,
                        "idempotency_key": request["idempotency_key"] if request else None},
            "type": type_,
        }
        self._store(event)
        self.events.append(event)
        batch.append(event)
        return event

    def _send(self, batch: list[dict]) -> None:
        if batch and self._queue is not None:
            self._queue.put_nowait([self._generation, batch])  # type: ignore[arg-type]

    # --- customers -------------------------------------------------------------------------------------
    def _new_customer(self, email: str | None, name: str | None = None, metadata: dict | None = None,
                      description: str | None = None) -> dict:
        return self._store({
            "id": new_id("cus_", 14), "object": "customer", "address": None, "balance": 0,
            "created": self.now(), "currency": None, "default_source": None, "delinquent": False,
            "description": description, "discount": None, "email": email,
            "invoice_prefix": secrets.token_hex(4).upper(),
            "invoice_settings": {"custom_fields": None, "default_payment_method": None, "footer": None,
                                 "rendering_options": None},
            "livemode": False, "metadata": metadata or {}, "name": name, "next_invoice_sequence": 1,
            "phone": None, "preferred_locales": [], "shipping": None, "tax_exempt": "none", "test_clock": None,
        })

    async def create_customer(self, request: web.Request, params: dict) -> tuple[int, Any]:
        customer = self._new_customer(params.get("email"), params.get("name"), params.get("metadata"),
                                      params.get("description"))
        if params.get("phone"):
            customer["phone"] = params["phone"]
        batch: list[dict] = []
        self._emit(batch, "customer.created", customer, request)
        self._send(batch)
        return 200, customer

    async def get_customer(self, request: web.Request, params: dict) -> tuple[int, Any]:
        customer = self.objects.get(request.match_info["id"])
        if customer is None or customer.get("object") != "customer":
            raise missing("customer", request.match_info["id"])
        return 200, customer

    async def update_customer(self, request: web.Request, params: dict) -> tuple[int, Any]:
        customer = self._get("customer", request.match_info["id"], "customer")
        previous: dict[str, Any] = {}
        for field_name in ("email", "name", "description", "phone"):
            if field_name in params:
                previous[field_name] = customer[field_name]
                customer[field_name] = params[field_name] or None
        if isinstance(params.get("metadata"), dict):
            previous["metadata"] = dict(customer["metadata"])
            for key, value in params["metadata"].items():
                if value == "":
                    customer["metadata"].pop(key, None)  # Stripe unsets a metadata key set to ""
                else:
                    customer["metadata"][key] = value
        batch: list[dict] = []
        self._emit(batch, "customer.updated", customer, request, previous)
        self._send(batch)
        return 200, customer

    async def delete_customer(self, request: web.Request, params: dict) -> tuple[int, Any]:
        customer = self._get("customer", request.match_info["id"], "customer")
        del self.objects[customer["id"]]
        batch: list[dict] = []
        self._emit(batch, "customer.deleted", customer, request)
        self._send(batch)
        return 200, {"id": customer["id"], "object": "customer", "deleted": True}

    async def list_customers(self, request: web.Request, params: dict) -> tuple[int, Any]:
        customers = self._of_kind("customer")
        if params.get("email"):
            customers = [c for c in customers if (c.get("email") or "").lower() == params["email"].lower()]
        return self._list(request, params, customers, "/v1/customers")

    async def search_customers(self, request: web.Request, params: dict) -> tuple[int, Any]:
        query = params.get("query")
        if not query:
            raise StripeError(400, "Missing required param: query.", code="parameter_missing", param="query")
        matches = [c for c in self._of_kind("customer") if self._search_match(c, query)]
        matches.sort(key=lambda o: self.order.get(o["id"], 0), reverse=True)
        limit = max(1, min(int(params.get("limit") or 10), 100))
        return 200, {"object": "search_result", "data": matches[:limit], "has_more": len(matches) > limit,
                     "next_page": None, "url": "/v1/customers/search"}

    @staticmethod
    def _search_match(obj: dict, query: str) -> bool:
        """Stripe's search language, the part a product needs: ``field:'v'``, ``metadata['k']:'v'``,
        ``field~'substring'``, joined by AND or OR (not both)."""
        joiner = any if re.search(r"\sOR\s", query) else all
        clauses = re.split(r"\s+(?:AND|OR)\s+", query.strip())
        results = []
        for clause in clauses:
            match = re.match(r"""^(-)?(metadata\[['"](.+?)['"]\]|\w+)\s*([:~])\s*['"](.*)['"]$""", clause.strip())
            if match is None:
                raise StripeError(400, f"Invalid search query: {clause}", code="parameter_invalid_string",
                                  param="query")
            negate, field_name, meta_key, operator, wanted = match.groups()
            actual = (obj.get("metadata") or {}).get(meta_key) if meta_key else obj.get(field_name)
            actual_text = "" if actual is None else str(actual)
            hit = actual_text == wanted if operator == ":" else wanted.lower() in actual_text.lower()
            results.append(hit != bool(negate))
        return joiner(results)

    # --- prices ----------------------------------------------------------------------------------------
    async def list_prices(self, request: web.Request, params: dict) -> tuple[int, Any]:
        prices = self._of_kind("price")
        if "active" in params:
            prices = [p for p in prices if p["active"] == truthy(params["active"])]
        if params.get("product"):
            prices = [p for p in prices if p["product"] == params["product"]]
        if params.get("lookup_keys"):
            keys = params["lookup_keys"] if isinstance(params["lookup_keys"], list) else [params["lookup_keys"]]
            prices = [p for p in prices if p.get("lookup_key") in keys]
        return self._list(request, params, prices, "/v1/prices")

    # --- checkout --------------------------------------------------------------------------------------
    async def create_checkout_session(self, request: web.Request, params: dict) -> tuple[int, Any]:
        mode = params.get("mode")
        if not mode:
            raise StripeError(400, "Missing required param: mode.", code="parameter_missing", param="mode")
        if mode != "subscription":
            raise StripeError(400, "This emulator supports mode=subscription only.", code="parameter_invalid_string",
                              param="mode")
        if not params.get("success_url"):
            raise StripeError(400, "Missing required param: success_url.", code="parameter_missing",
                              param="success_url")
        items = params.get("line_items")
        if not isinstance(items, list) or not items:
            raise StripeError(400, "You must provide at least one recurring price in `subscription` mode when "
                              "using prices.", code="parameter_missing", param="line_items")
        lines = []
        for index, item in enumerate(items):
            price = self._get("price", str(item.get("price", "")), "price", f"line_items[{index}][price]", 400)
            lines.append((price, int(item.get("quantity") or 1)))
        customer_id = params.get("customer")
        if customer_id:
            self._get("customer", customer_id, "customer", "customer", 400)
        total = sum(p["unit_amount"] * q for p, q in lines)
        now = self.now()
        session_id = new_id("cs_test_", 58)
        session = self._store({
            "id": session_id, "object": "checkout.session", "adaptive_pricing": None, "after_expiration": None,
            "allow_promotion_codes": None, "amount_subtotal": total, "amount_total": total,
            "automatic_tax": {"enabled": False, "liability": None, "provider": None, "status": None},
            "billing_address_collection": None, "cancel_url": params.get("cancel_url"),
            "client_reference_id": params.get("client_reference_id"), "client_secret": None,
            "collected_information": None, "consent": None, "consent_collection": None, "created": now,
            "currency": lines[0][0]["currency"], "custom_fields": [], "customer": customer_id,
            "customer_creation": None if customer_id else "always", "customer_details": None,
            "customer_email": params.get("customer_email"), "discounts": [], "expires_at": now + CHECKOUT_TTL_S,
            "invoice": None, "invoice_creation": None, "livemode": False, "locale": None,
            "metadata": params.get("metadata") or {}, "mode": mode, "payment_intent": None, "payment_link": None,
            "payment_method_collection": "always", "payment_method_types": ["card"], "payment_status": "unpaid",
            "recovered_from": None, "setup_intent": None, "shipping_address_collection": None,
            "shipping_cost": None, "shipping_options": [], "status": "open", "submit_type": None,
            "subscription": None, "success_url": params["success_url"],
            "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0}, "ui_mode": "hosted",
            "url": f"{self.base_url}/pay/{session_id}",
        })
        self.session_extras[session_id] = {
            "lines": [(p["id"], q) for p, q in lines],
            "subscription_metadata": (params.get("subscription_data") or {}).get("metadata") or {},
        }
        return 200, session

    def _line_items_list(self, session_id: str) -> dict[str, Any]:
        data = []
        for price_id, quantity in self.session_extras.get(session_id, {}).get("lines", []):
            price = self.objects[price_id]
            amount = price["unit_amount"] * quantity
            data.append({"id": "li_" + hashlib.sha1(f"{session_id}{price_id}".encode()).hexdigest()[:24],
                         "object": "item", "amount_discount": 0, "amount_subtotal": amount, "amount_tax": 0,
                         "amount_total": amount, "currency": price["currency"], "description": price["nickname"],
                         "price": copy.deepcopy(price), "quantity": quantity})
        return {"object": "list", "data": data, "has_more": False,
                "url": f"/v1/checkout/sessions/{session_id}/line_items"}

    async def checkout_line_items(self, request: web.Request, params: dict) -> tuple[int, Any]:
        session = self._get("checkout.session", request.match_info["id"], "checkout.session")
        return 200, self._line_items_list(session["id"])

    async def list_checkout_sessions(self, request: web.Request, params: dict) -> tuple[int, Any]:
        sessions = self._of_kind("checkout.session")
        for field_name in ("customer", "subscription", "status"):
            if params.get(field_name):
                sessions = [s for s in sessions if s.get(field_name) == params[field_name]]
        return self._list(request, params, sessions, "/v1/checkout/sessions")

    async def expire_checkout_session(self, request: web.Request, params: dict) -> tuple[int, Any]:
        session = self._get("checkout.session", request.match_info["id"], "checkout.session")
        if session["status"] != "open":
            raise StripeError(400, f"Only Checkout Sessions with a status in [\"open\"] can be expired. This "
                              f"Checkout Session has a status of \"{session['status']}\".")
        session["status"] = "expired"
        batch: list[dict] = []
        self._emit(batch, "checkout.session.expired", session, request)
        self._send(batch)
        return 200, session

    def complete_checkout(self, session_id: str) -> dict[str, Any]:
        """What *Pay* does: customer (if needed), subscription, paid invoice, and their events."""
        session = self._get("checkout.session", session_id, "checkout.session")
        if session["status"] != "open":
            raise StripeError(400, f"This Checkout Session is {session['status']}.", code="checkout_session_inactive")
        batch: list[dict] = []
        customer_created = None
        if session["customer"]:
            customer = self.objects[session["customer"]]
        else:
            email = session["customer_email"] or "customer@example.com"
            customer = self._new_customer(email, "Sandbox Customer")
            customer_created = customer
        extras = self.session_extras[session_id]
        subscription = self._new_subscription(customer["id"], extras["lines"], extras["subscription_metadata"])
        invoice = self._new_invoice(subscription, "subscription_create", paid=True)
        subscription["latest_invoice"] = invoice["id"]
        session.update({
            "status": "complete", "payment_status": "paid", "customer": customer["id"],
            "subscription": subscription["id"], "invoice": invoice["id"],
            "customer_details": {"address": None, "email": customer["email"], "name": customer["name"],
                                 "phone": None, "tax_exempt": "none", "tax_ids": []},
        })
        if customer_created is not None:
            self._emit(batch, "customer.created", customer_created)
        self._emit(batch, "checkout.session.completed", session)
        self._emit(batch, "customer.subscription.created", subscription)
        self._emit(batch, "invoice.paid", invoice)
        self._emit(batch, "invoice.payment_succeeded", invoice)
        self._send(batch)
        return session

    # --- subscriptions and invoices --------------------------------------------------------------------
    def _item(self, subscription_id: str, price_id: str, quantity: int, start: int) -> dict[str, Any]:
        price = self.objects[price_id]
        plan = {"id": price["id"], "object": "plan", "active": True, "amount": price["unit_amount"],
                "amount_decimal": price["unit_amount_decimal"], "billing_scheme": "per_unit",
                "created": price["created"], "currency": price["currency"],
                "interval": price["recurring"]["interval"], "interval_count": 1, "livemode": False,
                "metadata": {}, "meter": None, "nickname": price["nickname"], "product": price["product"],
                "tiers_mode": None, "transform_usage": None, "trial_period_days": None, "usage_type": "licensed"}
        return {"id": new_id("si_", 14), "object": "subscription_item", "billing_thresholds": None,
                "billed_until": add_months(start, 1), "created": start, "current_period_start": start,
                "current_period_end": add_months(start, 1), "current_trial": None, "discounts": [],
                "metadata": {}, "plan": plan, "price": copy.deepcopy(price), "quantity": quantity,
                "subscription": subscription_id, "tax_rates": []}

    def _new_subscription(self, customer_id: str, lines: list[tuple[str, int]], metadata: dict) -> dict:
        now = self.now()
        subscription_id = new_id("sub_")
        items = [self._item(subscription_id, price_id, quantity, now) for price_id, quantity in lines]
        return self._store({
            "id": subscription_id, "object": "subscription", "application": None,
            "application_fee_percent": None, "automatic_tax": {"disabled_reason": None, "enabled": False,
                                                                "liability": None},
            "billing_cycle_anchor": now, "billing_cycle_anchor_config": None,
            "billing_mode": {"flexible": None, "type": "classic"}, "billing_schedules": [],
            "billing_thresholds": None, "cancel_at": None,
            "cancel_at_period_end": False, "canceled_at": None,
            "cancellation_details": {"comment": None, "feedback": None, "reason": None},
            "collection_method": "charge_automatically", "created": now, "currency": "usd",
            "customer": customer_id, "customer_account": None, "days_until_due": None, "default_payment_method": new_id("pm_"),
            "default_source": None, "default_tax_rates": [], "description": None, "discounts": [],
            "ended_at": None, "invoice_settings": {"account_tax_ids": None, "issuer": {"type": "self"}},
            "items": {"object": "list", "data": items, "has_more": False, "total_count": len(items),
                      "url": f"/v1/subscription_items?subscription={subscription_id}"},
            "latest_invoice": None, "livemode": False, "managed_payments": {"enabled": False}, "metadata": metadata,
            "next_pending_invoice_item_invoice": None,
            "on_behalf_of": None, "pause_collection": None, "payment_settings": {
                "payment_method_options": None, "payment_method_types": None,
                "save_default_payment_method": "off"},
            "pending_invoice_item_interval": None, "pending_setup_intent": None, "pending_update": None,
            "presentment_details": None, "schedule": None, "start_date": now, "status": "active",
            "status_details": None, "test_clock": None, "transfer_data": None,
            "trial_end": None, "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
            "trial_start": None,
        })

    def _new_invoice(self, subscription: dict, billing_reason: str, paid: bool) -> dict[str, Any]:
        now = self.now()
        invoice_id = new_id("in_")
        customer = self.objects.get(subscription["customer"]) or {}
        lines = []
        for item in subscription["items"]["data"]:
            price = item["price"]
            amount = price["unit_amount"] * item["quantity"]
            lines.append({
                "id": new_id("il_"), "object": "line_item", "amount": amount, "currency": price["currency"],
                "description": f"{item['quantity']} × {price['nickname']} (at {money(price['unit_amount'])} / "
                               f"{price['recurring']['interval']})",
                "discount_amounts": [], "discountable": True, "discounts": [], "invoice": invoice_id,
                "livemode": False, "metadata": {},
                "parent": {"type": "subscription_item_details", "invoice_item_details": None,
                           "subscription_item_details": {"invoice_item": None, "proration": False,
                                                         "proration_details": {"credited_items": None},
                                                         "subscription": subscription["id"],
                                                         "subscription_item": item["id"]}},
                "period": {"start": item["current_period_start"], "end": item["current_period_end"]},
                "pretax_credit_amounts": [], "pricing": {
                    "price_details": {"price": price["id"], "product": price["product"]},
                    "type": "price_details", "unit_amount_decimal": price["unit_amount_decimal"]},
                "quantity": item["quantity"], "quantity_decimal": str(item["quantity"]),
                "subscription": subscription["id"], "subtotal": amount, "taxes": []})
        total = sum(line["amount"] for line in lines)
        first = subscription["items"]["data"][0]
        number = f"{customer.get('invoice_prefix', 'SANDBOX')}-{customer.get('next_invoice_sequence', 1):04d}"
        if customer:
            customer["next_invoice_sequence"] = customer.get("next_invoice_sequence", 1) + 1
        return self._store({
            "id": invoice_id, "object": "invoice", "account_country": "US", "account_name": "Sorya (sandbox)",
            "account_tax_ids": None, "amount_due": total, "amount_overpaid": 0, "amount_paid": total if paid else 0,
            "amount_paid_off_stripe": 0,
            "amount_remaining": 0 if paid else total, "amount_shipping": 0, "application": None,
            "attempt_count": 1, "attempted": True, "auto_advance": not paid,
            "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None, "provider": None,
                              "status": None},
            "automatically_finalizes_at": None, "billing_reason": billing_reason,
            "collection_method": "charge_automatically", "confirmation_secret": None, "created": now,
            "currency": "usd", "custom_fields": None, "customer": subscription["customer"], "customer_account": None,
            "customer_address": None, "customer_email": customer.get("email"), "customer_name": customer.get("name"),
            "customer_phone": None, "customer_shipping": None, "customer_tax_exempt": "none",
            "customer_tax_ids": [], "default_payment_method": None, "default_source": None, "default_tax_rates": [],
            "description": None, "discounts": [], "due_date": None, "effective_at": now, "ending_balance": 0,
            "footer": None, "from_invoice": None, "hosted_invoice_url": f"{self.base_url}/invoice/{invoice_id}",
            "invoice_pdf": f"{self.base_url}/invoice/{invoice_id}/pdf", "issuer": {"type": "self"},
            "last_finalization_error": None, "latest_revision": None,
            "lines": {"object": "list", "data": lines, "has_more": False, "total_count": len(lines),
                      "url": f"/v1/invoices/{invoice_id}/lines"},
            "livemode": False, "metadata": {},
            "next_payment_attempt": None if paid else now + 3 * 24 * 3600, "number": number,
            "on_behalf_of": None,
            "parent": {"type": "subscription_details", "quote_details": None,
                       "subscription_details": {"metadata": dict(subscription["metadata"]),
                                                "subscription": subscription["id"]}},
            "payment_settings": {"default_mandate": None, "payment_method_options": None,
                                 "payment_method_types": None},
            "period_end": first["current_period_end"] if billing_reason != "subscription_create" else now,
            "period_start": first["current_period_start"] if billing_reason != "subscription_create" else now,
            "post_payment_credit_notes_amount": 0, "pre_payment_credit_notes_amount": 0, "receipt_number": None,
            "rendering": None, "shipping_cost": None, "shipping_details": None, "starting_balance": 0,
            "statement_descriptor": None, "status": "paid" if paid else "open", "status_details": None,
            "status_transitions": {"finalized_at": now, "marked_uncollectible_at": None,
                                   "paid_at": now if paid else None, "voided_at": None},
            "subtotal": total, "subtotal_excluding_tax": total, "test_clock": None, "threshold_reason": None,
            "total": total, "total_discount_amounts": [], "total_excluding_tax": total,
            "total_pretax_credit_amounts": [], "total_taxes": [], "webhooks_delivered_at": now,
        })

    def run_command(self, subscription_id: str, command: str, params: dict, request: web.Request | None = None
                    ) -> dict[str, Any]:
        """Apply a lifecycle change to a subscription and emit the events Stripe would."""
        subscription = self._get("subscription", subscription_id, "subscription")
        if subscription["status"] == "canceled" and command != "cancel":
            raise StripeError(400, "A canceled subscription can only update its cancellation_details and "
                              "metadata.", code="resource_missing")
        batch: list[dict] = []
        if command == "renew":
            self._renew(subscription, batch, paid=True)
        elif command == "fail_payment":
            self._renew(subscription, batch, paid=False)
        elif command == "change_plan":
            self._change_plan(subscription, str(params.get("price", "")), batch, request)
        elif command in ("cancel_at_period_end", "resume"):
            self._set_cancel_at_period_end(subscription, command == "cancel_at_period_end", batch, request)
        elif command == "cancel":
            if subscription["status"] == "canceled":
                raise StripeError(400, f"No such subscription: '{subscription_id}'", code="resource_missing")
            now = self.now()
            subscription.update({"status": "canceled", "canceled_at": now, "ended_at": now,
                                 "cancellation_details": {"comment": None, "feedback": None,
                                                          "reason": "cancellation_requested"}})
            self._emit(batch, "customer.subscription.deleted", subscription, request)
        else:
            raise StripeError(404, f"Unknown command {command}")
        self._send(batch)
        return subscription

    def _renew(self, subscription: dict, batch: list[dict], paid: bool) -> None:
        previous_items = copy.deepcopy(subscription["items"])
        previous = {"items": previous_items, "latest_invoice": subscription["latest_invoice"]}
        for item in subscription["items"]["data"]:
            item["current_period_start"] = item["current_period_end"]
            item["current_period_end"] = add_months(item["current_period_start"], 1)
        invoice = self._new_invoice(subscription, "subscription_cycle", paid=paid)
        subscription["latest_invoice"] = invoice["id"]
        if paid:
            if subscription["status"] != "active":
                previous["status"] = subscription["status"]
                subscription["status"] = "active"
            self._emit(batch, "invoice.paid", invoice)
            self._emit(batch, "invoice.payment_succeeded", invoice)
        else:
            previous["status"] = subscription["status"]
            subscription["status"] = "past_due"
            self._emit(batch, "invoice.payment_failed", invoice)
        self._emit(batch, "customer.subscription.updated", subscription, previous=previous)

    def _change_plan(self, subscription: dict, price_id: str, batch: list[dict],
                     request: web.Request | None) -> None:
        self._get("price", price_id, "price", "items[0][price]", 400)
        item = subscription["items"]["data"][0]
        if item["price"]["id"] == price_id:
            return
        previous = {"items": copy.deepcopy(subscription["items"]), "plan": copy.deepcopy(item["plan"])}
        replacement = self._item(subscription["id"], price_id, item["quantity"], item["current_period_start"])
        replacement.update({"id": item["id"], "created": item["created"],
                            "current_period_end": item["current_period_end"]})
        subscription["items"]["data"][0] = replacement
        self._emit(batch, "customer.subscription.updated", subscription, request, previous)

    def _set_cancel_at_period_end(self, subscription: dict, cancel: bool, batch: list[dict],
                                  request: web.Request | None) -> None:
        if subscription["cancel_at_period_end"] == cancel:
            return
        previous = {"cancel_at_period_end": subscription["cancel_at_period_end"],
                    "cancel_at": subscription["cancel_at"],
                    "cancellation_details": copy.deepcopy(subscription["cancellation_details"])}
        period_end = subscription["items"]["data"][0]["current_period_end"]
        subscription.update({
            "cancel_at_period_end": cancel, "cancel_at": period_end if cancel else None,
            "canceled_at": self.now() if cancel else None,
            "cancellation_details": {"comment": None, "feedback": None,
                                     "reason": "cancellation_requested" if cancel else None}})
        self._emit(batch, "customer.subscription.updated", subscription, request, previous)

    async def list_subscriptions(self, request: web.Request, params: dict) -> tuple[int, Any]:
        subscriptions = self._of_kind("subscription")
        if params.get("customer"):
            subscriptions = [s for s in subscriptions if s["customer"] == params["customer"]]
        if params.get("price"):
            subscriptions = [s for s in subscriptions if s["items"]["data"][0]["price"]["id"] == params["price"]]
        status = params.get("status")
        if status and status != "all":
            subscriptions = [s for s in subscriptions if s["status"] == status]
        elif not status:
            subscriptions = [s for s in subscriptions if s["status"] != "canceled"]  # Stripe's default
        return self._list(request, params, subscriptions, "/v1/subscriptions")

    async def update_subscription(self, request: web.Request, params: dict) -> tuple[int, Any]:
        subscription_id = request.match_info["id"]
        subscription = self._get("subscription", subscription_id, "subscription")
        items = params.get("items")
        if isinstance(items, list) and items and items[0].get("price"):
            self.run_command(subscription_id, "change_plan", {"price": items[0]["price"]}, request)
        if "cancel_at_period_end" in params:
            command = "cancel_at_period_end" if truthy(params["cancel_at_period_end"]) else "resume"
            self.run_command(subscription_id, command, {}, request)
        if isinstance(params.get("metadata"), dict):
            previous = {"metadata": dict(subscription["metadata"])}
            subscription["metadata"].update(params["metadata"])
            batch: list[dict] = []
            self._emit(batch, "customer.subscription.updated", subscription, request, previous)
            self._send(batch)
        return 200, subscription

    async def cancel_subscription(self, request: web.Request, params: dict) -> tuple[int, Any]:
        return 200, self.run_command(request.match_info["id"], "cancel", params, request)

    async def list_invoices(self, request: web.Request, params: dict) -> tuple[int, Any]:
        invoices = self._of_kind("invoice")
        if params.get("customer"):
            invoices = [i for i in invoices if i["customer"] == params["customer"]]
        if params.get("subscription"):
            invoices = [i for i in invoices
                        if i["parent"]["subscription_details"]["subscription"] == params["subscription"]]
        if params.get("status"):
            invoices = [i for i in invoices if i["status"] == params["status"]]
        return self._list(request, params, invoices, "/v1/invoices")

    async def list_events(self, request: web.Request, params: dict) -> tuple[int, Any]:
        events = list(self.events)
        if params.get("type"):
            wanted = params["type"]
            pattern = re.compile("^" + re.escape(wanted).replace(r"\*", ".*") + "$")
            events = [e for e in events if pattern.match(e["type"])]
        if params.get("types"):
            events = [e for e in events if e["type"] in params["types"]]
        return self._list(request, params, events, "/v1/events")

    # --- billing portal --------------------------------------------------------------------------------
    async def create_portal_session(self, request: web.Request, params: dict) -> tuple[int, Any]:
        if not params.get("customer"):
            raise StripeError(400, "Missing required param: customer.", code="parameter_missing", param="customer")
        self._get("customer", params["customer"], "customer", "customer", 400)
        session_id = new_id("bps_")
        return 200, self._store({
            "id": session_id, "object": "billing_portal.session", "configuration": "bpc_sandbox",
            "created": self.now(), "customer": params["customer"], "flow": None, "livemode": False,
            "locale": None, "on_behalf_of": None, "return_url": params.get("return_url"),
            "url": f"{self.base_url}/portal/{session_id}",
        })

    # --- hosted pages ----------------------------------------------------------------------------------
    def _price_label(self, price: dict) -> str:
        return f"{money(price['unit_amount'], price['currency'])} per {price['recurring']['interval']}"

    async def pay_page(self, request: web.Request) -> web.Response:
        esc = html.escape
        session = self.objects.get(request.match_info["id"])
        if session is None or session.get("object") != "checkout.session":
            return html_page("Not found", "<div class=card><h1>This payment page does not exist</h1></div>", 404)
        if session["status"] != "open":
            link = self._success_url(session) if session["status"] == "complete" else session.get("cancel_url")
            return html_page("Checkout", f"<div class=card><h1>This checkout is {esc(session['status'])}</h1>"
                             f'<p><a class=button href="{esc(link or "/")}">Continue</a></p></div>')
        rows = ""
        for price_id, quantity in self.session_extras[session["id"]]["lines"]:
            price = self.objects[price_id]
            product = self.objects.get(price["product"], {}).get("name", price["nickname"])
            rows += (f"<h1>Subscribe to {esc(product)}</h1><p class=price>{esc(money(price['unit_amount']))}</p>"
                     f"<p class=muted>per {esc(price['recurring']['interval'])}"
                     f"{f' × {quantity}' if quantity > 1 else ''}</p>")
        email = session["customer_email"] or (self.objects.get(session["customer"] or "", {}).get("email"))
        back = session.get("cancel_url") or "/"
        body = (f"<div class=card>{rows}"
                + (f"<p>Billed to <strong>{esc(email)}</strong></p>" if email else "")
                + "<p class=notice>Test mode: no card is charged. Paying here behaves like the test card "
                "4242 4242 4242 4242.</p>"
                f'<form method=post action="/pay/{esc(session["id"])}"><div class=actions>'
                f"<button class=primary type=submit>Pay {esc(money(session['amount_total']))}</button>"
                f'<a class=button href="{esc(back)}">Back</a></div></form></div>')
        return html_page("Checkout (sandbox)", body)

    @staticmethod
    def _success_url(session: dict) -> str:
        return session["success_url"].replace("{CHECKOUT_SESSION_ID}", session["id"])

    async def pay_submit(self, request: web.Request) -> web.Response:
        try:
            session = self.complete_checkout(request.match_info["id"])
        except StripeError as error:
            return html_page("Checkout", f"<div class=card><h1>Cannot pay</h1><p>{html.escape(error.error['message'])}"
                             "</p></div>", 400)
        raise web.HTTPSeeOther(self._success_url(session))

    async def portal_page(self, request: web.Request) -> web.Response:
        esc = html.escape
        portal = self.objects.get(request.match_info["id"])
        if portal is None or portal.get("object") != "billing_portal.session":
            return html_page("Not found", "<div class=card><h1>This portal link does not exist</h1></div>", 404)
        customer = self.objects.get(portal["customer"], {})
        subscriptions = [s for s in self._of_kind("subscription") if s["customer"] == portal["customer"]]
        prices = self._of_kind("price")
        sections = []
        for sub in sorted(subscriptions, key=lambda s: self.order[s["id"]], reverse=True):
            item = sub["items"]["data"][0]
            ends = datetime.fromtimestamp(item["current_period_end"], UTC).strftime("%d %b %Y")
            state = (f"Cancels on {ends}" if sub["cancel_at_period_end"] else
                     "Canceled" if sub["status"] == "canceled" else f"Renews on {ends}")
            action = f"/portal/{esc(portal['id'])}/subscriptions/{esc(sub['id'])}"
            controls = ""
            if sub["status"] != "canceled":
                options = "".join(
                    f'<label><input type=radio name=price value="{esc(p["id"])}"'
                    f'{" checked" if p["id"] == item["price"]["id"] else ""}> {esc(p["nickname"])} · '
                    f"{esc(self._price_label(p))}</label>" for p in prices)
                controls = (f'<form method=post action="{action}/plan"><fieldset><legend>Change plan</legend>'
                            f"{options}</fieldset><div class=actions><button class=primary type=submit>"
                            "Update plan</button></div></form>")
                toggle = ("resume", "Resume subscription") if sub["cancel_at_period_end"] else (
                    "cancel", "Cancel at period end")
                controls += (f'<form method=post action="{action}/{toggle[0]}"><div class=actions>'
                             f"<button type=submit>{toggle[1]}</button></div></form>")
            sections.append(f"<h2>{esc(item['price']['nickname'])} · {esc(self._price_label(item['price']))}</h2>"
                            f"<p class=muted>Status: {esc(sub['status'])} · {esc(state)}</p>{controls}")
        back = portal.get("return_url") or "/"
        body = ("<div class=card><h1>Billing</h1>"
                f"<p class=muted>{esc(customer.get('email') or customer.get('name') or portal['customer'])}</p>"
                + ("".join(sections) or "<p>No subscriptions yet.</p>")
                + f'<div class=actions><a class=button href="{esc(back)}">Return</a></div></div>')
        return html_page("Billing portal (sandbox)", body)

    async def portal_action(self, request: web.Request) -> web.Response:
        portal = self.objects.get(request.match_info["id"])
        subscription = self.objects.get(request.match_info["sub"])
        if (portal is None or portal.get("object") != "billing_portal.session" or subscription is None
                or subscription.get("customer") != portal["customer"]):
            raise web.HTTPNotFound(text="Not found")
        form = await request.post()
        commands = {"plan": "change_plan", "cancel": "cancel_at_period_end", "resume": "resume"}
        command = commands.get(request.match_info["action"])
        if command is None:
            raise web.HTTPNotFound(text="Unknown action")
        try:
            self.run_command(subscription["id"], command, {"price": form.get("price", "")})
        except StripeError as error:
            return html_page("Billing", f"<div class=card><p>{html.escape(error.error['message'])}</p></div>", 400)
        raise web.HTTPSeeOther(f"/portal/{portal['id']}")

    # --- webhook delivery ------------------------------------------------------------------------------
    def sign(self, payload: str, timestamp: int, secret: str) -> str:
        signature = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256).hexdigest()
        return f"t={timestamp},v1={signature}"

    def _arrange(self, batch: list[dict]) -> list[dict]:
        events = list(batch)
        if self.mode.order == "reverse":
            events.reverse()
        elif self.mode.order == "shuffle":
            random.shuffle(events)
        duplicated = []
        for event in events:
            duplicated.extend([event] * (1 + int(self.mode.duplicate)))
        return duplicated

    async def _deliver_forever(self) -> None:
        assert self._queue is not None
        while True:
            generation, batch = await self._queue.get()
            try:
                if generation == self._generation:
                    for event in self._arrange(batch):
                        await self._deliver(event)
            except Exception:  # a delivery bug must not stop every later delivery
                log.exception("stripe emulator: webhook delivery failed")
            finally:
                self._queue.task_done()

    async def _deliver(self, event: dict) -> None:
        if self.mode.delay_ms:
            await asyncio.sleep(self.mode.delay_ms / 1000)
        payload = json.dumps(event, indent=2)  # Stripe sends pretty-printed JSON
        # Stripe signs when it sends, by the wall clock: the emulator's stepped clock moves `created` only.
        timestamp = int(time.time()) - int(self.mode.stale_timestamp_s) + int(self.mode.future_timestamp_s)
        secret = WRONG_SECRET if self.mode.bad_signature else self.webhook_secret
        record = {"event_id": event["id"], "type": event["type"], "payload": payload,
                  "signature_header": self.sign(payload, timestamp, secret), "attempts": [], "delivered": False}
        self.deliveries.append(record)
        if self.collect or not self.webhook_url:
            return
        assert self._http is not None
        for attempt in range(max(1, int(self.mode.max_attempts))):
            if attempt:
                await asyncio.sleep(self.mode.retry_backoff_ms * (2 ** (attempt - 1)) / 1000)
            try:
                async with self._http.post(self.webhook_url, data=payload.encode(), headers={
                        "Content-Type": "application/json; charset=utf-8", "User-Agent":
                        "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
                        "Stripe-Signature": record["signature_header"]}) as response:
                    await response.read()
                    record["attempts"].append({"status": response.status, "error": None})
                    if 200 <= response.status < 300:
                        record["delivered"] = True
                        return
            except (TimeoutError, aiohttp.ClientError) as exc:
                record["attempts"].append({"status": None, "error": type(exc).__name__})

    async def _idle(self, timeout_s: float) -> None:
        if self._queue is not None:
            await asyncio.wait_for(self._queue.join(), timeout_s)

    # --- control ---------------------------------------------------------------------------------------
    async def _control_webhook(self, request: web.Request) -> web.Response:
        body = await request.json()
        if "url" in body:
            self.webhook_url = body["url"] or None
        if body.get("secret"):
            self.webhook_secret = body["secret"]
        if "collect" in body:
            self.collect = bool(body["collect"])
        elif "url" in body:
            self.collect = self.webhook_url is None
        if body.get("api_version"):
            if not re.match(r"^\d{4}-\d{2}-\d{2}(\.[a-z]+)?$", str(body["api_version"])):
                return json_response({"error": "api_version looks like 2026-10-28.endive"}, status=400)
            self.webhook_api_version = str(body["api_version"])
        return json_response({"url": self.webhook_url, "secret": self.webhook_secret, "collect": self.collect,
                              "api_version": self.webhook_api_version})

    async def _control_clock(self, request: web.Request) -> web.Response:
        """Step the emulator's clock forward (``{"advance_s": n}``): later objects and events are that much
        newer, without a test sleeping. Webhook signatures keep the wall clock, as Stripe's do."""
        body = await request.json() if request.can_read_body else {}
        advance = body.get("advance_s", 0) if isinstance(body, dict) else None
        if not isinstance(advance, int) or isinstance(advance, bool) or advance < 0:
            return json_response({"error": "advance_s must be a whole number of seconds, 0 or more"}, status=400)
        self.clock_offset_s += advance
        return json_response({"now": self.now(), "offset_s": self.clock_offset_s})

    async def _control_delivery_mode(self, request: web.Request) -> web.Response:
        body = await request.json()
        changes = {k: v for k, v in body.items() if k in DeliveryMode.__dataclass_fields__}
        if changes.get("order", "normal") not in ("normal", "reverse", "shuffle"):
            return json_response({"error": "order must be normal, reverse or shuffle"}, status=400)
        self.mode = DeliveryMode(**{**asdict(self.mode), **changes})
        return json_response(asdict(self.mode))

    async def _control_deliveries(self, request: web.Request) -> web.Response:
        await self._idle(30)
        deliveries = list(self.deliveries)
        if request.query.get("clear") in ("1", "true"):
            self.deliveries.clear()
        return json_response({"deliveries": deliveries})

    async def _control_flush(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else {}
        try:
            await self._idle(float((body or {}).get("timeout_s", 10)))
        except TimeoutError:
            return json_response({"ok": False, "error": "deliveries still pending"}, status=504)
        return json_response({"ok": True})

    async def _control_complete(self, request: web.Request) -> web.Response:
        try:
            return json_response(self.complete_checkout(request.match_info["id"]))
        except StripeError as error:
            return json_response({"error": error.error}, status=error.status)

    async def _control_subscription(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else {}
        try:
            subscription = self.run_command(request.match_info["id"], request.match_info["command"], body or {})
        except StripeError as error:
            return json_response({"error": error.error}, status=error.status)
        return json_response(subscription)

    async def _control_events(self, request: web.Request) -> web.Response:
        return json_response({"events": self.events})

    async def _control_revoke(self, request: web.Request) -> web.Response:
        self.revoked_keys.add((await request.json())["key"])
        return json_response({"ok": True})
