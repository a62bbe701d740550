"""Plans, checkout, the billing portal and the Stripe webhook.

Pages (blueprint `billing`): `/plans`, the checkout form and its success and cancel pages, the portal
form. The JSON routes (`/api/billing/...` and the Stripe webhook) are app/web/api/billing.py. Nothing
here grants credits: only a verified webhook does, in the service.
"""

from __future__ import annotations

import logging
import secrets

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from app import runtime
from app.errors import DomainError
from app.extensions import db, limiter
from app.services import billing
from app.web.api import int_arg

log = logging.getLogger(__name__)

bp = Blueprint("billing", __name__)

# The success page polls every POLL_INTERVAL_S for this many times (three minutes), then says so.
POLL_INTERVAL_S = 2
POLL_MAX_ATTEMPTS = 90
CHECKOUT_RATE_LIMIT = "20 per minute"


def user_rate_key() -> str:
    return f"user:{current_user.get_id()}" if current_user.is_authenticated else request.remote_addr or "-"


def _public_url(endpoint: str, **values: object) -> str:
    """An absolute URL under PUBLIC_URL (what Stripe sends the person back to), not the request's host."""
    return runtime.settings().PUBLIC_URL.rstrip("/") + url_for(endpoint, **values)


def _return_urls() -> tuple[str, str]:
    # {CHECKOUT_SESSION_ID} is filled in by Stripe, so it must reach Stripe unescaped.
    success = _public_url("billing.checkout_success") + "?session_id={CHECKOUT_SESSION_ID}"
    return success, _public_url("billing.checkout_canceled")


def billing_settings() -> billing.BillingSettings:
    return billing.BillingSettings.from_config(runtime.settings())


def gateway():
    return billing.stripe_gateway(billing_settings())


def checkout_session(plan: str, request_key: str | None):
    success_url, cancel_url = _return_urls()
    return billing.start_checkout(
        db.session, gateway(), billing_settings(), current_user, plan,
        success_url=success_url, cancel_url=cancel_url, request_key=request_key,
    )


def portal_session():
    return billing.open_portal(db.session, gateway(), current_user, return_url=_public_url("billing.plans"))


# -- pages ----------------------------------------------------------------------------------------


@bp.get("/plans")
@login_required
def plans():
    settings = runtime.settings()
    return render_template(
        "billing/plans.html",
        offers=billing.list_plans(billing_settings(), gateway()),
        status=billing.billing_status(db.session, current_user.id),
        signup_grant=settings.CREDITS_SIGNUP_GRANT,
        checkout_token=secrets.token_urlsafe(18),
    )


@bp.post("/billing/checkout")
@login_required
@limiter.limit(CHECKOUT_RATE_LIMIT, key_func=user_rate_key)
def checkout():
    try:
        hosted = checkout_session(request.form.get("plan", ""), request.form.get("checkout_token"))
    except DomainError as exc:
        flash(exc.message, "error")
        return redirect(url_for("billing.plans"), code=303)
    return redirect(hosted.url, code=303)


@bp.post("/billing/portal")
@login_required
@limiter.limit(CHECKOUT_RATE_LIMIT, key_func=user_rate_key)
def portal():
    try:
        hosted = portal_session()
    except DomainError as exc:
        flash(exc.message, "error")
        return redirect(url_for("billing.plans"), code=303)
    return redirect(hosted.url, code=303)


def _progress(session_id: str, invoice_id: str | None):
    return billing.checkout_progress(db.session, gateway(), current_user.id, session_id, invoice_id=invoice_id)


@bp.get("/billing/success")
@login_required
def checkout_success():
    session_id = request.args.get("session_id", "")
    progress = _progress(session_id, None)
    return render_template(
        "billing/success.html", progress=progress, session_id=session_id, attempt=0,
        poll_interval_s=POLL_INTERVAL_S, poll_max=POLL_MAX_ATTEMPTS,
    )


@bp.get("/billing/success/status")
@login_required
def checkout_status():
    """The progress partial, polled by the success page until the webhook's grant lands."""
    session_id = request.args.get("session_id", "")
    attempt = int_arg("attempt", default=0, minimum=0, maximum=POLL_MAX_ATTEMPTS) or 0
    progress = _progress(session_id, request.args.get("invoice") or None)
    return render_template(
        "partials/_checkout_progress.html", progress=progress, session_id=session_id, attempt=attempt,
        poll_interval_s=POLL_INTERVAL_S, poll_max=POLL_MAX_ATTEMPTS, fragment=True,
    )


@bp.get("/billing/cancel")
@login_required
def checkout_canceled():
    return render_template("billing/canceled.html")
