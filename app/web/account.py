"""The account page (who you are, GitHub, plan and balance, API tokens, your data)."""

from __future__ import annotations

import logging
import math
from datetime import datetime

from flask import (
    Blueprint,
    Response,
    flash,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_login import current_user, login_required

from app import runtime
from app.errors import Conflict, DomainError, InvalidRequest, UpstreamError
from app.extensions import db
from app.models.base import utcnow
from app.models.users import TOKEN_SCOPE_WRITE
from app.services import accounts, api_tokens, billing, exports
from app.web import github_auth as github
from app.web.auth import sign_out_this_browser
from app.web.publish import _settings as _publish_settings
from app.web.repo_access import consent_path

log = logging.getLogger(__name__)

bp = Blueprint("account", __name__)

# How often viewing the account page asks GitHub whether the stored token still works.
TOKEN_CHECK_INTERVAL_S = 15 * 60


def is_htmx() -> bool:
    return bool(request.headers.get("HX-Request"))


def refresh_github_status(user_id: int, overview: accounts.AccountOverview) -> accounts.AccountOverview:
    """Ask GitHub about the stored token when the last answer is old, so a revoked grant shows here."""
    if overview.github is None or not accounts.token_check_due(overview.github, max_age_s=TOKEN_CHECK_INTERVAL_S):
        return overview
    try:
        token = accounts.github_access_token(db.session, runtime.keyring(), user_id)
        github.check_token(token)
    except github.GithubTokenRevoked:
        accounts.record_token_check(db.session, user_id, revoked=True)
    except (UpstreamError, Conflict) as exc:
        # GitHub down or slow: say nothing new, try again at the next view.
        log.info("account: github check for user=%s skipped: %s", user_id, exc.message)
        return overview
    else:
        accounts.record_token_check(db.session, user_id, revoked=False)
    return accounts.account_overview(db.session, user_id)


# The expiry choices the account page offers, in days; None is "never". The CLI takes any 1..365.
TOKEN_EXPIRY_CHOICES_DAYS = (None, 7, 30, 90)


def token_section(*, new_token: api_tokens.CreatedToken | None = None, token_error: str | None = None,
                  token_error_field: str = "name", token_form: dict[str, str] | None = None) -> dict:
    """What the API tokens section shows: the list, the form (as it was sent back after an error), a new token."""
    return {
        "tokens": api_tokens.list_tokens(db.session, current_user.id),
        "new_token": new_token,
        "token_error": token_error,
        # The field the error concerns, so it shows next to that field.
        "token_error_field": token_error_field,
        "token_form": token_form or {},
        "token_expiry_choices": TOKEN_EXPIRY_CHOICES_DAYS,
    }


def plural(count: int, unit: str) -> str:
    return f"{count} {unit}" if count == 1 else f"{count} {unit}s"


@bp.app_template_filter("token_expiry")
def token_expiry(expires_at: datetime | None) -> str:
    """"Never", "Expired", or how long is left, roughly: "in 30 days", "in 5 hours", "in 12 minutes"."""
    if expires_at is None:
        return "Never"
    left_s = (expires_at - utcnow()).total_seconds()
    if left_s <= 0:
        return "Expired"
    if left_s < 3600:
        return "in " + plural(max(1, math.ceil(left_s / 60)), "minute")
    if left_s < 48 * 3600:
        return "in " + plural(round(left_s / 3600), "hour")
    return "in " + plural(round(left_s / 86400), "day")


def render_account(*, new_token: api_tokens.CreatedToken | None = None, token_error: str | None = None,
                   token_error_field: str = "name", token_form: dict[str, str] | None = None,
                   delete_error: str | None = None, status: int = 200):
    overview = accounts.account_overview(db.session, current_user.id)
    overview = refresh_github_status(current_user.id, overview)
    return render_template(
        "account/show.html",
        overview=overview,
        **token_section(new_token=new_token, token_error=token_error, token_error_field=token_error_field,
                        token_form=token_form),
        delete_error=delete_error,
        data_export=exports.current_export(current_user.id),
        billing_status=billing.billing_status(db.session, current_user.id),
        reconnect_url=url_for("auth.start", next=url_for("account.show")),
        repository_access=repository_access(overview.scopes),
        grant_url=consent_path(url_for("account.show")),
    ), status


def repository_access(scopes: list[str]) -> str:
    """`app` (a GitHub App reaches repositories), `granted` or `not_granted` (the OAuth scope)."""
    settings = _publish_settings()
    if settings.app is not None:
        return "app"
    return "granted" if github.grants_repositories(tuple(scopes), settings.allow_private_repos) else "not_granted"


def render_tokens(*, new_token: api_tokens.CreatedToken | None = None, token_error: str | None = None,
                  token_error_field: str = "name", token_form: dict[str, str] | None = None, status: int = 200):
    return render_template(
        "partials/_api_tokens.html",
        **token_section(new_token=new_token, token_error=token_error, token_error_field=token_error_field,
                        token_form=token_form),
    ), status


def expiry_days_from_form(raw: str) -> int | None:
    """The form's expiry: empty (never) or a whole number of days; the service checks the range."""
    raw = raw.strip()
    if raw in ("", "never"):
        return None
    try:
        return int(raw)
    except ValueError:
        raise InvalidRequest(
            "Choose when the token expires: never, or a number of days.", fields={"expires": "a number of days"}
        ) from None


@bp.get("/account")
@login_required
def show():
    return render_account()


@bp.post("/account/tokens")
@login_required
def create_token():
    form = {key: request.form.get(key, "")[:200] for key in ("name", "scope", "expires_days")}
    try:
        created = api_tokens.create_token(
            db.session, user_id=current_user.id, name=request.form.get("name", ""),
            scope=request.form.get("scope") or TOKEN_SCOPE_WRITE,
            expires_in_days=expiry_days_from_form(request.form.get("expires_days", "")),
        )
    except (InvalidRequest, Conflict) as exc:
        render = render_tokens if is_htmx() else render_account
        # 200 for htmx so the form and its error are swapped in place; a full page says 400.
        return render(token_error=exc.message, token_error_field=next(iter(exc.fields), "name"), token_form=form,
                      status=200 if is_htmx() else 400)
    if is_htmx():
        return render_tokens(new_token=created)
    # Without JavaScript the new token is shown on the page this POST answers: it is never stored.
    return render_account(new_token=created, status=201)


@bp.post("/account/tokens/<int:token_id>/revoke")
@login_required
def revoke_token(token_id: int):
    token = api_tokens.revoke_token(db.session, user_id=current_user.id, token_id=token_id)
    if is_htmx():
        return render_tokens()
    flash(f"The token “{token.name}” is revoked; scripts using it now get 401.", "success")
    return redirect(url_for("account.show") + "#api-tokens")


def export_filename() -> str:
    return f"sorya-{current_user.login}-data.json"


@bp.get("/account/export")
@login_required
def export():
    """The same document built in this request, as a zip streamed while it is written (file contents
    beside the JSON): kept for scripts and old bookmarks. The page uses the background export below,
    which does not hold a web worker while a large account is read."""
    folder = export_filename().removesuffix(".json")
    return Response(
        stream_with_context(exports.stream_account_zip(db.session, current_user.id, folder)),
        mimetype="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{folder}.zip"', "Cache-Control": "no-store"},
    )


def render_data_export():
    return render_template("partials/_data_export.html", data_export=exports.current_export(current_user.id))


@bp.post("/account/export")
@login_required
def prepare_export():
    exports.start_export(current_user.id)
    if is_htmx():
        return render_data_export()
    return redirect(url_for("account.show", _anchor="data-export"))


@bp.get("/account/export/status")
@login_required
def export_status():
    """The "Your data" section alone, which htmx polls while the export is prepared."""
    if is_htmx():
        return render_data_export()
    return redirect(url_for("account.show", _anchor="data-export"))


@bp.get("/account/export/<token>")
@login_required
def download_export(token: str):
    _, chunks = exports.open_export(current_user.id, token)
    return Response(
        stream_with_context(chunks),
        mimetype="application/json",
        headers={"Content-Disposition": f'attachment; filename="{export_filename()}"', "Cache-Control": "no-store"},
    )


@bp.post("/account/delete")
@login_required
def delete():
    confirmation = request.form.get("confirm_login", "").strip()
    if confirmation != current_user.login:
        return render_account(
            delete_error=f"Type your login, {current_user.login}, exactly to confirm.", status=400
        )
    user_id = current_user.id
    try:
        accounts.delete_account(db.session, user_id)
    except DomainError as exc:
        return render_account(delete_error=exc.message, status=exc.status)
    exports.discard_for_user(user_id)
    sign_out_this_browser()
    flash("Your account and its data are deleted. Thank you for trying Sorya.", "info")
    return redirect(url_for("pages.landing"))


@bp.post("/account/sign-out-everywhere")
@login_required
def sign_out_everywhere():
    accounts.end_all_sessions(db.session, current_user.id)
    sign_out_this_browser()
    flash("You are signed out everywhere: every browser signed in to your account, this one included, must "
          "sign in again. Your API tokens still work until you revoke them.", "success")
    return redirect(url_for("pages.landing"))
