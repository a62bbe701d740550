"""Request-wide guards: CSRF for browser sessions, security headers, and Flask-Login's hooks."""

from __future__ import annotations

from flask import Flask, Response, redirect, request, url_for
from flask_login import current_user

from app.extensions import csrf, db, login_manager
from app.models import User
from app.services.errors import Unauthenticated

# Routes that authenticate their caller another way and must not demand a CSRF token.
CSRF_EXEMPT_PATHS = {"/api/webhooks/stripe"}


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
    try:
        user = db.session.get(User, int(user_id))
    except ValueError:
        return None
    return user if user is not None and user.is_active else None


@login_manager.unauthorized_handler
def unauthorized():
    if request.path.startswith("/api/"):
        raise Unauthenticated("Sign in, or send a valid API token in the Authorization header.")
    return redirect(url_for("pages.landing", next=request.full_path.rstrip("?")))


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
