"""`GET /api/me`: who the caller is, their plan, balance and GitHub connection."""

from __future__ import annotations

from flask import jsonify
from flask_login import current_user, login_required

from app.extensions import db
from app.services import accounts
from app.web.api import bp


@bp.get("/me")
@login_required
def api_me():
    overview = accounts.account_overview(db.session, current_user.id)
    user = overview.user
    return jsonify(
        id=user.id,
        login=user.login,
        name=user.name,
        email=user.email,
        plan=user.plan,
        credits={"balance": overview.balance, "held": overview.held},
        github={"login": overview.github.login, "scopes": overview.scopes,
                "token_status": overview.github.token_status} if overview.github else None,
    )
