"""Signing in with GitHub (the only way in), and signing out.

`/auth/login` explains what Sorya asks GitHub for and starts the flow; GitHub sends the person back to
`{PUBLIC_URL}/auth/github/callback`. Every way the flow can fail ends on the sign-in page with a
sentence saying what happened, and nothing half-created.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user

from app import runtime
from app.errors import DomainError, Forbidden, UpstreamError
from app.extensions import db
from app.services import accounts
from app.web import github_auth as github
from app.web.repo_access import PENDING_ACTION_KEY
from app.web.security import default_landing_url, safe_next_path

log = logging.getLogger(__name__)

bp = Blueprint("auth", __name__)

CALLBACK_PATH = "/auth/github/callback"
# "Keep me signed in" lasts this long; without it the session ends with the browser.
REMEMBER_DURATION = timedelta(days=30)


def callback_url() -> str:
    return runtime.settings().PUBLIC_URL.rstrip("/") + CALLBACK_PATH


def render_sign_in(*, next_path: str | None, error: str | None = None, status: int = 200, reconnect: bool = False):
    settings = runtime.settings()
    return render_template(
        "auth/sign_in.html",
        next_path=next_path,
        error=error,
        reconnect=reconnect,
        configured=bool(settings.GITHUB_CLIENT_ID),
        repo_scope=github.requested_scopes(settings.GITHUB_ALLOW_PRIVATE_REPOS)[-1],
        app_mode=bool(settings.GITHUB_APP_ID and settings.GITHUB_APP_PRIVATE_KEY and settings.GITHUB_APP_SLUG),
    ), status


@bp.get("/auth/login")
def login():
    next_path = safe_next_path(request.args.get("next"))
    if current_user.is_authenticated:
        # Signed-in people come here on purpose, from a "Reconnect GitHub" link: offer exactly that,
        # and bring them back to the page they came from.
        return render_sign_in(next_path=next_path or same_site_referrer(), reconnect=True)
    return render_sign_in(next_path=next_path)


def same_site_referrer() -> str | None:
    """The path of the referring page when it is on this site, else None."""
    referrer = urlsplit(request.referrer or "")
    if referrer.netloc != request.host:
        return None
    return safe_next_path(referrer.path + (f"?{referrer.query}" if referrer.query else ""))


@bp.get("/auth/github")
def start():
    next_path = safe_next_path(request.args.get("next"))
    if not runtime.settings().GITHUB_CLIENT_ID:
        return render_sign_in(
            next_path=next_path, status=503,
            error="Sign-in is not set up on this server yet: its operator must set GITHUB_CLIENT_ID and "
                  "GITHUB_CLIENT_SECRET.",
        )
    flow = github.SignInFlow(next_path=next_path, remember=request.args.get("remember") == "1")
    return github.start_sign_in(callback_url(), flow)


@bp.get("/auth/github/repositories")
@login_required
def repositories():
    """The second consent: ask GitHub for the repository scope, then return to `next` (the action the
    person started, see `app/web/repo_access.py`). Sign-in never asks for it."""
    settings = runtime.settings()
    next_path = safe_next_path(request.args.get("next")) or url_for("projects.dashboard")
    if not settings.GITHUB_CLIENT_ID:
        flash("GitHub is not set up on this server: its operator must set GITHUB_CLIENT_ID.", "error")
        return redirect(next_path)
    flow = github.SignInFlow(next_path=next_path, remember=False, purpose=github.FLOW_REPOSITORIES)
    return github.start_sign_in(callback_url(), flow,
                                scopes=github.requested_scopes(settings.GITHUB_ALLOW_PRIVATE_REPOS))


def _finish_repository_consent(grant: github.GithubGrant, flow: github.SignInFlow):
    """The second consent came back: keep its token for the signed-in person, then go where they were."""
    next_path = safe_next_path(flow.next_path) or url_for("projects.dashboard")
    if not current_user.is_authenticated:
        return render_sign_in(next_path=next_path, status=401,
                              error="Your Sorya session ended while GitHub asked for access. Sign in again.")
    identity = github.fetch_identity(grant.access_token)
    accounts.store_repository_grant(db.session, runtime.keyring(), user_id=current_user.id,
                                    github_user_id=identity.id, access_token=grant.access_token,
                                    scopes=grant.scopes)
    if not github.grants_repositories(grant.scopes, runtime.settings().GITHUB_ALLOW_PRIVATE_REPOS):
        flash("GitHub did not grant access to your repositories, so Sorya cannot do that yet.", "error")
        session.pop(PENDING_ACTION_KEY, None)
        return redirect(url_for("projects.dashboard"))
    return redirect(next_path)


def _refused(exc: github.SignInRefused):
    """A refused flow: a declined second consent goes back to the person's projects with a sentence (what
    they started is dropped); a refused sign-in shows the sign-in page with it."""
    if exc.purpose == github.FLOW_REPOSITORIES and current_user.is_authenticated:
        session.pop(PENDING_ACTION_KEY, None)
        flash("GitHub access was not granted, so nothing was done.", "error")
        return redirect(url_for("projects.dashboard"))
    return render_sign_in(next_path=safe_next_path(exc.next_path), error=exc.message, status=400)


@bp.get(CALLBACK_PATH)
def callback():
    try:
        grant, flow = github.finish_sign_in()
        if flow.purpose == github.FLOW_REPOSITORIES:
            return _finish_repository_consent(grant, flow)
        identity = github.fetch_identity(grant.access_token)
        result = accounts.sign_in_with_github(
            db.session,
            identity=identity,
            grant=grant,
            keyring=runtime.keyring(),
            signup_credits=runtime.settings().CREDITS_SIGNUP_GRANT,
            secret_key=runtime.settings().SECRET_KEY,
        )
    except github.SignInRefused as exc:
        log.info("sign-in refused: %s", exc.reason)
        return _refused(exc)
    except Forbidden as exc:
        return render_sign_in(next_path=None, error=exc.message, status=403)
    except UpstreamError as exc:
        return render_sign_in(next_path=None, error=exc.message, status=502)
    except DomainError as exc:
        return render_sign_in(next_path=None, error=exc.message, status=exc.status)

    user = accounts.get_user(db.session, result.user_id)
    # A fresh session at sign-in: nothing from before (a fixated id, other pending flows) carries over.
    session.clear()
    user.signed_in_session_id = accounts.start_session(db.session, user.id, max_age=REMEMBER_DURATION)
    login_user(user, remember=flow.remember, duration=REMEMBER_DURATION)
    if result.created and result.signup_credits:
        flash(f"Welcome to Sorya, {user.login}! Your account starts with {result.signup_credits:,} free credits.",
              "success")
    elif result.created:
        flash(f"Welcome to Sorya, {user.login}! This GitHub account already received its free credits "
              "on an earlier Sorya account.", "info")
    else:
        flash(f"Signed in as {user.login}.", "success")
    return redirect(flow.next_path or default_landing_url())


@bp.post("/auth/logout")
def logout():
    # This browser's session only: its cookies, copied or not, die with it; other devices stay signed in.
    accounts.end_session(db.session, getattr(current_user, "signed_in_session_id", None))
    sign_out_this_browser()
    flash("You are signed out.", "info")
    return redirect(url_for("pages.landing"))


def sign_out_this_browser() -> None:
    """Forget the signed-in user in this browser: the session, and the remember-me cookie.

    `logout_user` records in the session that the remember-me cookie must be deleted, so it runs after
    the session is cleared (clearing after it erased that note, and the cookie signed the browser in
    again at the next request).
    """
    session.clear()
    logout_user()

