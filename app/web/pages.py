"""The landing page and the health endpoints."""

from __future__ import annotations

from flask import Blueprint, jsonify, render_template
from flask_login import current_user

from app import runtime
from app.extensions import db
from app.services.health import check_readiness
from config import BASE_DIR

bp = Blueprint("pages", __name__)


@bp.get("/")
def landing():
    return render_template("landing.html", user=current_user)


@bp.get("/healthz")
def healthz():
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    report = check_readiness(db.session, runtime.redis_client(), BASE_DIR / "migrations")
    return jsonify(report.as_json()), (200 if report.ready else 503)
