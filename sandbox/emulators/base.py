"""What every emulator shares: the request log, scripted faults and the ``/_emulator/`` control routes.

Control endpoints (same on every emulator; each emulator adds its own, see its module docstring):

| method and path | body / query | answer |
| --- | --- | --- |
| ``GET /_emulator/health`` | | ``{"name", "ok": true}`` |
| ``POST /_emulator/reset`` | | ``{"ok": true}``: clears state, scripts, faults and the call log; keeps seeded data |
| ``GET /_emulator/calls`` | ``?since=SEQ`` (only later calls), ``&clear=1`` | ``{"calls": [{"seq", "method", "path", "query", "status", "time", "duration_ms"}], "next_since"}`` |
| ``DELETE /_emulator/calls`` | | ``{"ok": true}`` |
| ``POST /_emulator/faults`` | one rule, or ``{"rules": [rule, ...]}`` | ``{"ids": [...]}`` |
| ``GET /_emulator/faults`` / ``DELETE /_emulator/faults`` | | the pending rules / ``{"ok": true}`` |
| ``POST /_emulator/config`` | ``{"request_latency_ms"}`` plus per-emulator keys | the config after the change |

A fault rule: ``{"method": "POST" | "*", "path": "<regex searched in the path>", "count": 1 (null =
forever), "kind": "<preset>", "status": 500, "body": {...} | "text", "headers": {...},
"latency_ms": 0, "hang": false, "hang_s": 300}``. ``kind`` fills status, body and headers in the
provider's own dialect (``unauthorized``, ``forbidden``, ``rate_limit``, ``not_found``,
``unprocessable``, ``server_error``, plus per-emulator ones); explicit ``status``/``body``/``headers``
override it. ``latency_ms`` alone delays the request and then serves it normally; ``hang`` holds the
request without sending a byte (the client times out) and answers 504 after ``hang_s``.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

CONTROL_PREFIX = "/_emulator/"
MAX_LOGGED_CALLS = 20_000  # a bench makes ~10^4 requests; older entries fall off the log
DEFAULT_HANG_S = 300.0

EMULATOR_CSS = """
:root { color-scheme: light; --ink: #1f2328; --muted: #59636e; --line: #d1d9e0; --accent: #1f6feb;
  --ok: #1a7f37; --bg: #f6f8fa; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink);
  background: var(--bg); }
main { max-width: 34rem; margin: 3rem auto; padding: 0 1rem; }
main.wide { max-width: 60rem; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 12px; padding: 1.5rem 1.75rem;
  box-shadow: 0 1px 3px rgba(0,0,0,.04); }
h1 { font-size: 1.4rem; margin: 0 0 .5rem; }
h2 { font-size: 1.05rem; margin: 1.5rem 0 .5rem; }
p.muted, .muted { color: var(--muted); font-size: .92rem; }
ul.scopes { padding-left: 1.2rem; }
fieldset { border: 1px solid var(--line); border-radius: 8px; padding: .75rem 1rem; margin: 1rem 0; }
legend { padding: 0 .3rem; font-weight: 600; }
label { display: block; margin: .35rem 0; }
input[type=text] { width: 100%; padding: .5rem .6rem; border: 1px solid var(--line); border-radius: 6px;
  font: inherit; }
.actions { display: flex; gap: .75rem; margin-top: 1.25rem; flex-wrap: wrap; }
button, a.button { font: inherit; font-weight: 600; padding: .55rem 1.2rem; border-radius: 6px;
  border: 1px solid var(--line); background: #fff; color: var(--ink); cursor: pointer; text-decoration: none; }
button.primary { background: var(--ok); border-color: var(--ok); color: #fff; }
.price { font-size: 2rem; font-weight: 700; margin: .25rem 0; }
.notice { background: #fff8c5; border: 1px solid #d4a72c66; border-radius: 8px; padding: .6rem .8rem;
  font-size: .92rem; }
table { width: 100%; border-collapse: collapse; font-size: .95rem; }
th, td { text-align: left; padding: .4rem .5rem; border-bottom: 1px solid var(--line); }
pre { background: var(--bg); border: 1px solid var(--line); border-radius: 8px; padding: .75rem;
  overflow: auto; font-size: .85rem; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; }
.add { color: var(--ok); } .del { color: #cf222e; }
header.bar { background: #24292f; color: #fff; padding: .6rem 1rem; font-weight: 600; }
@media (max-width: 480px) { main { margin: 1rem auto; } .card { padding: 1rem; } }
"""


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None,
                  content_type: str = "application/json") -> web.Response:
    """A JSON answer; compact, UTF-8, with the exact content type the providers send."""
    return web.Response(body=json.dumps(data).encode(), status=status, headers=headers or {},
                        content_type=content_type, charset="utf-8")


def html_page(title: str, body: str, status: int = 200, wide: bool = False) -> web.Response:
    """A small standalone HTML page with the shared emulator stylesheet (no inline styles or scripts)."""
    main_class = ' class="wide"' if wide else ""
    page = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>{title}</title>"
        '<link rel=stylesheet href="/_emulator/assets/emulator.css"></head>'
        f"<body><main{main_class}>{body}</main></body></html>"
    )
    return web.Response(text=page, status=status, content_type="text/html")


@dataclass
class Call:
    seq: int
    method: str
    path: str
    query: str
    time: float
    status: int | None = None
    duration_ms: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "method": self.method, "path": self.path, "query": self.query,
                "status": self.status, "time": self.time, "duration_ms": self.duration_ms}


class CallLog:
    """Requests the emulator saw, in arrival order, numbered so a reader can ask for 'since N'."""

    def __init__(self) -> None:
        self._calls: collections.deque[Call] = collections.deque(maxlen=MAX_LOGGED_CALLS)
        self._last_seq = 0  # keeps counting across clears, so 'since' marks stay valid
        self._lock = threading.Lock()

    def record(self, method: str, path: str, query: str) -> Call:
        with self._lock:
            self._last_seq += 1
            call = Call(self._last_seq, method, path, query, time.time())
            self._calls.append(call)
            return call

    def since(self, seq: int) -> list[Call]:
        with self._lock:
            return [c for c in self._calls if c.seq > seq]

    def last_seq(self) -> int:
        with self._lock:
            return self._last_seq

    def clear(self) -> None:
        with self._lock:
            self._calls.clear()


@dataclass
class FaultRule:
    id: int
    method: str = "*"
    path: str = ".*"
    count: int | None = 1
    kind: str | None = None
    status: int | None = None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    latency_ms: float = 0
    hang: bool = False
    hang_s: float = DEFAULT_HANG_S
    options: dict[str, Any] = field(default_factory=dict)  # kind-specific extras, e.g. retry_after

    def matches(self, method: str, path: str) -> bool:
        if self.method not in ("*", method.upper()):
            return False
        return re.search(self.path, path) is not None

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "method": self.method, "path": self.path, "count": self.count,
                "kind": self.kind, "status": self.status, "body": self.body, "headers": self.headers,
                "latency_ms": self.latency_ms, "hang": self.hang, "hang_s": self.hang_s,
                "options": self.options}


# The fault rule that answered (or None), kept on the request for handlers; aiohttp 3.14 wants typed keys.
FAULT_KEY: web.RequestKey[FaultRule | None] = web.RequestKey("fault")


_RULE_FIELDS = {"method", "path", "count", "kind", "status", "body", "headers", "latency_ms", "hang", "hang_s"}


class FaultBook:
    """Scripted fault rules; the first pending rule that matches a request is used (and counted down)."""

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def add(self, spec: dict[str, Any]) -> FaultRule:
        known = {k: v for k, v in spec.items() if k in _RULE_FIELDS}
        options = {k: v for k, v in spec.items() if k not in _RULE_FIELDS}
        known["method"] = str(known.get("method") or "*").upper()
        re.compile(known.get("path", ".*"))  # reject a bad pattern now, not on the next request
        with self._lock:
            rule = FaultRule(id=next(self._ids), options=options, **known)
            self._rules.append(rule)
            return rule

    def take(self, method: str, path: str) -> FaultRule | None:
        with self._lock:
            for rule in self._rules:
                if rule.matches(method, path):
                    if rule.count is not None:
                        rule.count -= 1
                        if rule.count <= 0:
                            self._rules.remove(rule)
                    return rule
        return None

    def pending(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()


class Emulator:
    """Base of the three emulators: subclasses add routes, state, and their dialect of errors."""

    name = "emulator"
    sdk_path = ""  # appended to the server root to form the URL an SDK is configured with

    def __init__(self) -> None:
        self.base_url = ""  # set by the server once the port is known
        self.calls = CallLog()
        self.faults = FaultBook()
        self.request_latency_ms = 0.0

    # --- what subclasses provide -------------------------------------------------------------------
    def add_routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def reset_state(self) -> None:
        """Clear the emulator's own state, keeping what was seeded at construction."""

    def fault_preset(self, rule: FaultRule) -> tuple[int, Any, dict[str, str]]:
        """Status, body and headers of a fault ``kind`` in this provider's dialect."""
        return rule.status or 500, {"message": rule.kind or "fault"}, {}

    def configure(self, changes: dict[str, Any]) -> dict[str, Any]:
        if "request_latency_ms" in changes:
            self.request_latency_ms = float(changes["request_latency_ms"] or 0)
        return {"request_latency_ms": self.request_latency_ms}

    async def on_started(self) -> None:
        """Called on the server's loop once the emulator listens (start background tasks here)."""

    async def on_stopping(self) -> None:
        """Called on the server's loop before shutdown (cancel background tasks here)."""

    def extra_headers(self, request: web.Request) -> dict[str, str]:
        """Headers added to every fault answer (e.g. rate-limit headers)."""
        return {}

    # --- shared machinery ---------------------------------------------------------------------------
    def reset(self) -> None:
        self.calls.clear()
        self.faults.clear()
        self.reset_state()

    def build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024 * 1024)
        app.router.add_get("/_emulator/health", self._health)
        app.router.add_post("/_emulator/reset", self._reset)
        app.router.add_get("/_emulator/calls", self._get_calls)
        app.router.add_delete("/_emulator/calls", self._clear_calls)
        app.router.add_post("/_emulator/faults", self._add_faults)
        app.router.add_get("/_emulator/faults", self._get_faults)
        app.router.add_delete("/_emulator/faults", self._clear_faults)
        app.router.add_post("/_emulator/config", self._config)
        app.router.add_get("/_emulator/assets/emulator.css", self._css)
        self.add_routes(app)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith(CONTROL_PREFIX):
            return await handler(request)
        call = self.calls.record(request.method, request.path, request.query_string)
        started = time.monotonic()
        try:
            response = await self._serve(request, handler)
            call.status = response.status
            return response
        except web.HTTPException as exc:
            call.status = exc.status
            raise
        except (asyncio.CancelledError, ConnectionResetError):
            call.status = 499  # the client went away (nginx's convention)
            raise
        finally:
            call.duration_ms = round((time.monotonic() - started) * 1000, 2)

    async def _serve(self, request: web.Request, handler: Any) -> web.StreamResponse:
        rule = self.faults.take(request.method, request.path)
        request[FAULT_KEY] = rule
        if rule is not None:
            if rule.latency_ms:
                await asyncio.sleep(rule.latency_ms / 1000)
            if rule.hang:
                await asyncio.sleep(rule.hang_s)
                return json_response({"message": "emulator hang ended"}, status=504)
            if rule.kind or rule.status:
                return self._fault_answer(request, rule)
        if self.request_latency_ms:
            await asyncio.sleep(self.request_latency_ms / 1000)
        return await handler(request)

    def _fault_answer(self, request: web.Request, rule: FaultRule) -> web.Response:
        status, body, headers = self.fault_preset(rule)
        merged = {**self.extra_headers(request), **headers, **rule.headers}
        if rule.status:
            status = rule.status
        if rule.body is not None:
            body = rule.body
        if isinstance(body, str):
            return web.Response(text=body, status=status, headers=merged)
        return json_response(body, status=status, headers=merged)

    async def _health(self, request: web.Request) -> web.Response:
        return json_response({"name": self.name, "ok": True})

    async def _reset(self, request: web.Request) -> web.Response:
        self.reset()
        return json_response({"ok": True})

    async def _get_calls(self, request: web.Request) -> web.Response:
        since = int(request.query.get("since") or 0)
        calls = self.calls.since(since)
        next_since = calls[-1].seq if calls else self.calls.last_seq()
        if request.query.get("clear") in ("1", "true"):
            self.calls.clear()
        return json_response({"calls": [c.as_json() for c in calls], "next_since": next_since})

    async def _clear_calls(self, request: web.Request) -> web.Response:
        self.calls.clear()
        return json_response({"ok": True})

    async def _add_faults(self, request: web.Request) -> web.Response:
        body = await request.json()
        specs = body["rules"] if isinstance(body, dict) and "rules" in body else [body]
        try:
            rules = [self.faults.add(spec) for spec in specs]
        except (TypeError, re.error) as exc:
            return json_response({"error": f"bad fault rule: {exc}"}, status=400)
        return json_response({"ids": [r.id for r in rules]})

    async def _get_faults(self, request: web.Request) -> web.Response:
        return json_response({"faults": [r.as_json() for r in self.faults.pending()]})

    async def _clear_faults(self, request: web.Request) -> web.Response:
        self.faults.clear()
        return json_response({"ok": True})

    async def _config(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else {}
        return json_response(self.configure(body or {}))

    async def _css(self, request: web.Request) -> web.Response:
        return web.Response(text=EMULATOR_CSS, content_type="text/css",
                            headers={"Cache-Control": "max-age=3600"})


def bearer_token(request: web.Request) -> str | None:
    """The token of an ``Authorization: Bearer``/``token`` header, or None."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() in ("bearer", "token") and value.strip():
        return value.strip()
    return None
