"""Request-wide guards: CSRF for browser sessions, security headers, and Flask-Login's hooks."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, Response, g, redirect, request, url_for
from flask_login import current_user

from app.extensions import csrf, db, login_manager
from app.models import User
from app.services.errors import Unauthenticated

# Routes that authenticate their caller another way and must not demand a CSRF token.
CSRF_EXEMPT_PATHS = {"/api/webhooks/stripe"}
MAX_NEXT_CHARS = 2000


def has_bearer_token() -> bool:
    return request.headers.get("Authorization", "").lower().startswith("bearer ")


def enforce_csrf() -> None:
    """CSRF protects cookie sessions. A request carrying `Authorization: Bearer` is authenticated by
    that token alone (never by the cookie), and a cross-site form cannot set that header, so it skips."""
    if request.method in ("GET", "HEAD", "OPTIONS", "TRACE"):
        return
    if request.path in CSRF_EXEMPT_PATHS or has_bearer_token():
        return
    csrf.protect()


def content_security_policy() -> str:
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'self'",
            "frame-ancestors 'none'",
        ]
    )


def add_security_headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", content_security_policy())
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
    response.headers.setdefault("X-Frame-Options", "DENY")
    from app import runtime

    if runtime.settings().public_url_is_https:
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
    return response


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    # A request that carries a bearer token is authenticated by that token alone: a bad token must be
    # a 401 even when the same client also holds a valid session or remember-me cookie.
    if has_bearer_token():
        return bearer_user()
    try:
        user = db.session.get(User, int(user_id))
    except ValueError:
        return None
    return user if user is not None and user.is_active else None


@login_manager.request_loader
def load_user_from_request(_request) -> User | None:
    return bearer_user() if has_bearer_token() else None


def bearer_user() -> User | None:
    """The active user of the request's `Authorization: Bearer` token, looked up once per request."""
    if "bearer_user" not in g:
        from app.services import api_tokens

        _, _, presented = request.headers.get("Authorization", "").partition(" ")
        g.bearer_user = api_tokens.authenticate(db.session, presented.strip())
    return g.bearer_user


def safe_next_path(target: str | None) -> str | None:
    """`target` if it is a path on this site (`/projects?x=1`), else None.

    Refuses absolute and scheme-relative URLs (`https://evil`, `//evil`), backslashes (browsers read
    `/\\evil` as `//evil`), control characters and anything not starting with a single `/`.
    """
    if not target or len(target) > MAX_NEXT_CHARS:
        return None
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


def default_landing_url() -> str:
    """Where a signed-in person goes when no `next` was asked for: their projects, else the home page."""
    from flask import current_app

    if "projects.dashboard" in current_app.view_functions:
        return url_for("projects.dashboard")
    return url_for("pages.landing")


@login_manager.unauthorized_handler
def unauthorized():
    if request.path.startswith("/api/"):
        if has_bearer_token():
            raise Unauthenticated("The API token is not valid: it is unknown, revoked, or its account is disabled.")
        raise Unauthenticated("Sign in, or send a valid API token in the Authorization header.")
    from flask import current_app

    next_path = safe_next_path(request.full_path.rstrip("?") if request.method == "GET" else None)
    endpoint = "auth.login" if "auth.login" in current_app.view_functions else "pages.landing"
    target = url_for(endpoint, next=next_path) if next_path else url_for(endpoint)
    if request.headers.get("HX-Request"):
        # An htmx swap cannot follow a redirect to another page; ask htmx to navigate instead.
        response = Response(status=401)
        response.headers["HX-Redirect"] = target
        return response
    return redirect(target)


def register_security(app: Flask) -> None:
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False
    app.before_request(enforce_csrf)
    app.after_request(add_security_headers)

    @app.context_processor
    def layout_context():
        from app import runtime

        balance = None
        if current_user.is_authenticated:
            from app.models import CreditBalance

            row = db.session.get(CreditBalance, current_user.id)
            balance = row.balance if row else 0
        return {
            "sandbox": runtime.settings().SORYA_SANDBOX,
            "credit_balance": balance,
            "has_endpoint": lambda name: name in app.view_functions,
        }
