"""How much a request may send, checked before anything reads or parses its body.

Every route reads at most `MAX_CONTENT_LENGTH` (config.MAX_REQUEST_BODY_BYTES, 1 MB); Werkzeug refuses a
larger body with a 413 as soon as something touches it. A route that legitimately takes more (a snapshot
upload) raises its own limit with `limit_body`, which also refuses a declared `Content-Length` over that
limit up front: the body is never read. `read_json(max_entries=...)` (app.web.api) then stops parsing at
the first JSON object past the count the route can accept, so a body of many tiny entries costs the
memory of those entries, not of the whole body.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import current_app, request

from app.errors import TooLarge


def body_too_large(limit: int, declared: int | None = None) -> TooLarge:
    sent = f"The request body is {declared:,} bytes; " if declared is not None else "The request body is too large; "
    return TooLarge(f"{sent}this address accepts at most {limit:,} bytes.", limit="request_bytes", maximum=limit)


def limit_body(max_bytes: Callable[[], int]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Let the decorated route read a body of up to `max_bytes()` bytes (read per request, so it follows
    the settings) instead of MAX_CONTENT_LENGTH. `apply_route_body_limit` enforces it before anything
    else touches the body (the CSRF check reads form fields)."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        view.max_body_bytes = max_bytes  # type: ignore[attr-defined]
        return view

    return decorate


def apply_route_body_limit() -> None:
    """Before every request: give the matched route its own body limit when it has one (`limit_body`),
    and refuse a declared Content-Length over the request's limit with a 413 before reading a byte. A
    body without Content-Length (chunked) is cut off at the same limit by Werkzeug."""
    view = current_app.view_functions.get(request.endpoint or "")
    max_bytes = getattr(view, "max_body_bytes", None)
    if max_bytes is not None:
        request.max_content_length = max_bytes()
    limit, declared = request.max_content_length, request.content_length
    if limit is not None and declared is not None and declared > limit:
        raise body_too_large(limit, declared)
