"""Request ids, one log line per request, latency and stream metrics, and `GET /metrics`.

- Every request gets an id: the caller's `X-Request-ID` when it is a sane token (a load balancer's or a
  client's, so one id follows a request across systems), else a new one. It is returned in the
  response's `X-Request-ID` and carried by every log line written while the request runs.
- One log line per request (`event=request`): method, path without its query string (query strings
  carry OAuth codes and tokens), endpoint, status, duration, and the user id when the request had
  already loaded the user (no extra query for it). A route whose path carries a credential (a preview
  link's token) is marked `path_carries_credential` and logs its route instead of its path.
- `/metrics` answers with `Authorization: Bearer <METRICS_TOKEN>` when that setting is set; when it is
  not, only to a caller on loopback that came through no proxy (no `X-Forwarded-For`), so a local
  Prometheus or `curl` on the host reads it and the internet does not.
"""

from __future__ import annotations

import hmac
import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, request
from sqlalchemy import inspect as sa_inspect

from app import metrics, runtime
from app.errors import NotFound, Unauthenticated
from app.logs import REQUEST_ID

log = logging.getLogger("sorya.request")

bp = Blueprint("observability", __name__)

REQUEST_ID_HEADER = "X-Request-ID"
# Accept a caller's id only when it cannot smuggle anything into a log line or a header.
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{8,128}$")
LOOPBACK_ADDRESSES = {"127.0.0.1", "::1"}


def incoming_request_id() -> str:
    offered = request.headers.get(REQUEST_ID_HEADER, "")
    return offered if _SANE_REQUEST_ID.match(offered) else uuid.uuid4().hex


def path_carries_credential(view: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a route whose URL path holds a credential: its log lines show the route, not the path."""
    view.path_carries_credential = True  # type: ignore[attr-defined]
    return view


def loggable_path() -> str:
    """The request's path for a log line: the matched route instead when the path carries a credential."""
    view = current_app.view_functions.get(request.endpoint or "")
    if getattr(view, "path_carries_credential", False) and request.url_rule is not None:
        return request.url_rule.rule
    return request.path


def start_request() -> None:
    g.request_started = time.perf_counter()
    g.request_id = incoming_request_id()
    g.request_id_token = REQUEST_ID.set(g.request_id)


def finish_request(response: Response) -> Response:
    request_id = g.get("request_id") or incoming_request_id()
    response.headers[REQUEST_ID_HEADER] = request_id
    elapsed_s = time.perf_counter() - g.get("request_started", time.perf_counter())
    endpoint = request.endpoint or "unmatched"
    metrics.HTTP_REQUEST_DURATION.labels(
        endpoint=endpoint, method=request.method, status=str(response.status_code)
    ).observe(elapsed_s)
    user = g.get("_login_user")
    fields = {
        "event": "request",
        "method": request.method,
        "path": loggable_path(),
        "endpoint": endpoint,
        "status": response.status_code,
        "duration_ms": round(elapsed_s * 1000, 2),
        "user_id": loaded_user_id(user),
        "remote_addr": request.remote_addr,
    }
    level = logging.DEBUG if endpoint == "static" else logging.INFO
    log.log(level, "%s %s %s", request.method, fields["path"], response.status_code, extra=fields)
    if response.mimetype == "text/event-stream" and response.is_streamed:
        track_stream(response, request_id)
    return response


def loaded_user_id(user: object) -> int | None:
    """The user's id without a query: after a commit the ORM object is expired, and reading `user.id`
    would reload the whole row just for this log line."""
    if user is None:
        return None
    state = sa_inspect(user, raiseerr=False)
    if state is not None and state.identity:
        return state.identity[0]
    return getattr(user, "id", None)


def track_stream(response: Response, request_id: str) -> None:
    """Count the stream as active until the server closes it (end of reply or client gone)."""
    metrics.ACTIVE_STREAMS.inc()
    opened = time.perf_counter()
    path = loggable_path()

    def closed() -> None:
        metrics.ACTIVE_STREAMS.dec()
        log.info(
            "stream closed %s", path,
            extra={"event": "stream_closed", "path": path, "request_id": request_id,
                   "duration_ms": round((time.perf_counter() - opened) * 1000, 2)},
        )

    response.call_on_close(closed)


def end_request(exc: BaseException | None) -> None:
    token = g.pop("request_id_token", None)
    if token is not None:
        REQUEST_ID.reset(token)


def metrics_caller_allowed() -> bool:
    """Raise unless the caller may read /metrics (see the module docstring)."""
    expected = runtime.settings().METRICS_TOKEN
    if expected:
        offered = request.headers.get("Authorization", "")
        scheme, _, token = offered.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected.encode()):
            raise Unauthenticated("Send the metrics token as Authorization: Bearer <METRICS_TOKEN>.")
        return True
    if request.remote_addr in LOOPBACK_ADDRESSES and "X-Forwarded-For" not in request.headers:
        return True
    # Not 403: an outsider learns nothing about what lives here.
    raise NotFound("There is nothing here, or it is not yours.")


@bp.get("/metrics")
def metrics_endpoint():
    metrics_caller_allowed()
    body, content_type = metrics.render_metrics()
    return Response(body, content_type=content_type)


def register_observability(app: Flask) -> None:
    app.before_request(start_request)
    app.after_request(finish_request)
    app.teardown_request(end_request)
