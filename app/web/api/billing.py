"""The billing part of the JSON API: `POST /api/billing/subscribe`, `POST /api/billing/portal`, and the
CSRF-exempt `POST /api/webhooks/stripe`. Nothing here grants credits: only a verified webhook does, in
the service."""

from __future__ import annotations

import logging

from flask import jsonify, request
from flask_login import login_required

from app.errors import TooLarge
from app.extensions import db, limiter
from app.services import billing
from app.web import billing as billing_pages
from app.web.api import bp, read_json

log = logging.getLogger(__name__)

# Stripe events are a few kilobytes; anything near this is not Stripe.
WEBHOOK_MAX_BYTES = 1_000_000


@bp.post("/billing/subscribe")
@login_required
@limiter.limit(billing_pages.CHECKOUT_RATE_LIMIT, key_func=billing_pages.user_rate_key)
def api_subscribe():
    body = read_json()
    hosted = billing_pages.checkout_session(body.get("plan"), request.headers.get("Idempotency-Key"))
    return jsonify(url=hosted.url, session_id=hosted.id)


@bp.post("/billing/portal")
@login_required
@limiter.limit(billing_pages.CHECKOUT_RATE_LIMIT, key_func=billing_pages.user_rate_key)
def api_portal():
    read_json()  # an empty body is fine; a malformed one is a 400
    hosted = billing_pages.portal_session()
    return jsonify(url=hosted.url)


@bp.post("/webhooks/stripe")
def stripe_webhook():
    """Stripe's signed events. 400 (nothing stored) unless genuine; 200 once processed or already known;
    500 when processing failed, so Stripe retries (the transaction left nothing behind)."""
    if (request.content_length or 0) > WEBHOOK_MAX_BYTES:
        raise TooLarge("A Stripe event is never this large.")
    payload = request.get_data(cache=False)
    if len(payload) > WEBHOOK_MAX_BYTES:
        raise TooLarge("A Stripe event is never this large.")
    settings = billing_pages.billing_settings()
    event = billing.verify_webhook(settings, payload, request.headers.get("Stripe-Signature"))
    try:
        outcome = billing.process_event(db.session, billing_pages.gateway(), settings, event)
    except Exception:  # noqa: BLE001 - every failure must answer 500 so Stripe retries the event
        log.exception("billing: webhook %s (%s) failed; Stripe will retry", event.get("id"), event.get("type"))
        response = jsonify(error={"code": "internal_error",
                                  "message": "The event could not be processed; it will be retried."})
        response.status_code = 500
        return response
    return jsonify(received=True, id=outcome.event_id, status=outcome.status)
