"""The JSON API's blueprint (`/api`) and the helpers every API route uses to read its input."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, request

from app.errors import InvalidRequest, TooLarge
from app.extensions import limiter
from app.web.security import api_rate_limit, api_rate_limit_exempt, api_rate_limit_key

bp = Blueprint("api", __name__, url_prefix="/api")
# One budget per caller across the whole API (API_RATE_LIMIT), kept in Redis when REDIS_URL is set so
# every web process counts the same calls. A route adding a stricter limit of its own passes
# `override_defaults=False` to `limiter.limit`, else Flask-Limiter drops this budget for that route.
limiter.shared_limit(api_rate_limit, scope="api", key_func=api_rate_limit_key, exempt_when=api_rate_limit_exempt)(bp)


def read_json(*, max_entries: int | None = None) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 that says what is wrong with it.

    With `max_entries`, parsing stops with a 413 at the first JSON object past that many inside the body
    (a snapshot's files are objects), before the rest of the body becomes Python objects."""
    if not request.data:
        return {}
    if not request.is_json:
        raise InvalidRequest("Send the request body as JSON with Content-Type: application/json.")
    body = request.get_json(silent=True) if max_entries is None else parse_at_most(request.data, max_entries)
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return body


def int_arg(name: str, *, default: int | None = None, minimum: int = 1, maximum: int | None = None) -> int | None:
    """A whole-number query parameter within bounds, or a 400 naming the parameter."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(f"{name} must be a whole number.", fields={name: "not a whole number"}) from None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise InvalidRequest(f"{name} must be {bound}.", fields={name: f"must be {bound}"})
    return value


def parse_at_most(data: bytes, max_entries: int) -> Any:
    """`data` parsed as JSON (None when it is not JSON), raising `TooLarge` as soon as it holds more than
    `max_entries` objects besides the outermost one: the parser calls the hook for each object it
    finishes, innermost first, so the count is exact and nothing past the limit is built."""
    finished = 0

    def count_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal finished
        finished += 1
        if finished > max_entries + 1:
            raise TooLarge(
                f"The request body holds more than {max_entries:,} entries; this address accepts at most "
                f"{max_entries:,}.", limit="entries", maximum=max_entries,
            )
        return dict(pairs)

    try:
        return current_app.json.loads(data, object_pairs_hook=count_object)
    except (ValueError, RecursionError):  # not JSON (UnicodeDecodeError is a ValueError), or nested absurdly
        return None
