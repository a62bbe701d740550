"""The JSON API's blueprint (`/api`) and the helpers every API route uses to read its input."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request

from app.extensions import limiter
from app.services.errors import InvalidRequest
from app.web.security import api_rate_limit, api_rate_limit_exempt, api_rate_limit_key

bp = Blueprint("api", __name__, url_prefix="/api")
# One budget per caller across the whole API (API_RATE_LIMIT), kept in Redis when REDIS_URL is set so
# every web process counts the same calls. A route adding a stricter limit of its own passes
# `override_defaults=False` to `limiter.limit`, else Flask-Limiter drops this budget for that route.
limiter.shared_limit(api_rate_limit, scope="api", key_func=api_rate_limit_key, exempt_when=api_rate_limit_exempt)(bp)


def read_json() -> dict[str, Any]:
    """The request body as a JSON object, or a 400 that says what is wrong with it."""
    if not request.data:
        return {}
    if not request.is_json:
        raise InvalidRequest("Send the request body as JSON with Content-Type: application/json.")
    body = request.get_json(silent=True)
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
