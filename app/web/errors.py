"""One place that turns every error into what the caller understands.

- `/api/...` gets the contract's JSON error `{"error": {"code", "message"}}` with the right status.
- An HTMX request gets the flash fragment, retargeted to the page's flash area.
- A page request gets the error page in the site's style.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from app.errors import DomainError, RateLimited
from app.services.publish.settings import ERROR_SCOPE_REQUIRED
from app.web.observability import loggable_path
from app.web.repo_access import consent_url
from app.web.security import same_site_path

log = logging.getLogger(__name__)

# HTTP status -> (contract code, sentence for a person) for errors raised by Flask/Werkzeug itself.
HTTP_ERRORS = {
    400: ("invalid_request", "The request could not be understood."),
    401: ("unauthenticated", "Sign in, or send a valid API token, to continue."),
    403: ("forbidden", "You are not allowed to do that."),
    404: ("not_found", "There is nothing here, or it is not yours."),
    405: ("invalid_request", "This address does not accept that method."),
    409: ("conflict", "That conflicts with the current state; reload and try again."),
    413: ("too_large", "The request is too large."),
    415: ("invalid_request", "Send the request body as JSON with Content-Type: application/json."),
    422: ("unprocessable", "The request was understood but cannot be processed."),
    429: ("rate_limited", "Too many requests; wait a moment and try again."),
    500: ("internal_error", "Something went wrong on our side. It has been logged; please try again."),
    502: ("upstream_error", "A provider failed to answer."),
    503: ("unavailable", "The service is temporarily unavailable; please try again shortly."),
}

TITLES = {
    400: "Bad request",
    401: "Please sign in",
    402: "Not enough credits",
    403: "Not allowed",
    404: "Not found",
    409: "Conflict",
    413: "Too large",
    422: "Cannot process",
    429: "Slow down",
    500: "Server error",
    502: "Provider error",
    503: "Unavailable",
}


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.path == "/api"


def error_response(status: int, body: dict, *, retry_after_s: int | None = None,
                   action: tuple[str, str] | None = None) -> Response:
    """Render one error for whoever asked: JSON for the API, a fragment for HTMX, else a page (with
    `action`, (address, label), as its button: what the person can do about it)."""
    error = body["error"]
    if wants_json():
        response = jsonify(body)
    elif request.headers.get("HX-Request"):
        response = Response(
            render_template("partials/_flash.html", flashes=[("error", error["message"])]), mimetype="text/html"
        )
        response.headers["HX-Retarget"] = "#flash"
        response.headers["HX-Reswap"] = "innerHTML"
    else:
        response = Response(
            render_template(
                "errors/error.html", status=status, title=TITLES.get(status, "Error"), message=error["message"],
                action_url=action[0] if action else None, action_label=action[1] if action else None,
            ),
            mimetype="text/html",
        )
    response.status_code = status
    if retry_after_s is not None:
        response.headers["Retry-After"] = str(retry_after_s)
    return response


def handle_domain_error(exc: DomainError) -> Response:
    retry_after = exc.retry_after_s if isinstance(exc, RateLimited) else None
    action = None
    if exc.extra.get("reason") == ERROR_SCOPE_REQUIRED:
        # Wherever repository access turned out to be missing, the answer offers the second consent,
        # returning to the page the person was on (routes that can finish the action set their own).
        back = same_site_path(request.headers.get("HX-Current-URL") or request.referrer) or "/projects"
        exc.extra.setdefault("consent_url", consent_url(back))
        action = (exc.extra["consent_url"], "Allow access to my repositories")
    elif exc.extra.get("install_url"):
        action = (exc.extra["install_url"], "Install the Sorya app on GitHub")
    return error_response(exc.status, exc.to_json(), retry_after_s=retry_after, action=action)


def handle_csrf_error(exc: CSRFError) -> Response:
    message = "The form expired or did not come from this site. Reload the page and try again."
    if wants_json():
        message = "Missing or invalid CSRF token: send it in the X-CSRFToken header, or use an API token."
    return error_response(403, {"error": {"code": "forbidden", "message": message}})


def handle_http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    code, message = HTTP_ERRORS.get(status, ("invalid_request", exc.description or "Request failed."))
    if status == 413:
        limit = request.max_content_length
        message = (f"The request body is larger than the {limit:,} bytes this address accepts." if limit
                   else "The request body is larger than this server accepts.")
    retry_after = None
    if status == 429:
        # Flask-Limiter's RateLimitExceeded carries the window; say how long to wait.
        limit = getattr(exc, "limit", None)
        retry_after = int(getattr(getattr(limit, "limit", None), "get_expiry", lambda: 60)()) if limit else 60
        message = f"Too many requests; try again in {retry_after} seconds."
    response = error_response(status, {"error": {"code": code, "message": message}}, retry_after_s=retry_after)
    if status == 405 and exc.get_response().headers.get("Allow"):
        response.headers["Allow"] = exc.get_response().headers["Allow"]
    return response


def handle_unexpected_error(exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, loggable_path())
    code, message = HTTP_ERRORS[500]
    return error_response(500, {"error": {"code": code, "message": message}})


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(DomainError, handle_domain_error)
    app.register_error_handler(CSRFError, handle_csrf_error)
    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(Exception, handle_unexpected_error)
