"""Asking for repository access when an action first needs it, and finishing that action afterwards.

Sign-in asks GitHub only who the person is. When a create, link or import finds no repository scope
(`RepositoryAccessRequired`, from `services/publish/access.py`), its route keeps the action in the
session (`ask_for_repositories`) and sends the person to GitHub's second consent
(`/auth/github/repositories`), which returns to `/github/continue`: the kept action runs there, once.

Why running a kept action on a GET is safe: only a CSRF-checked POST of this browser can put it in the
(signed) session, it runs at most once (popped before running), and it expires with the OAuth state.
The JSON API cannot be redirected: its 403 `github_scope_required` carries `consent_url` instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, flash, redirect, session, url_for
from flask_login import login_required

from app import runtime
from app.providers.github import OAUTH_STATE_TTL_S
from app.web.security import redirect_page

bp = Blueprint("repo_access", __name__)

PENDING_ACTION_KEY = "github_pending_action"
# kind -> the function finishing it (registered by the module that owns the action).
_resumers: dict[str, Callable[[dict[str, Any]], Any]] = {}


def register_resumer(kind: str, finish: Callable[[dict[str, Any]], Any]) -> None:
    _resumers[kind] = finish


def consent_path(next_path: str) -> str:
    return url_for("auth.repositories") + "?" + urlencode({"next": next_path})


def consent_url(next_path: str) -> str:
    """The absolute address of the second consent returning to `next_path` (for the JSON API)."""
    return runtime.settings().PUBLIC_URL.rstrip("/") + consent_path(next_path)


def ask_for_repositories(kind: str, **action: Any) -> Response:
    """Keep the action, and go to GitHub's second consent; it comes back to `/github/continue`."""
    if kind not in _resumers:
        raise ValueError(f"no resumer registered for {kind!r}")
    session[PENDING_ACTION_KEY] = {"kind": kind, "at": time.time(), **action}
    return redirect_page(consent_path(url_for("repo_access.resume")))


@bp.get("/github/continue")
@login_required
def resume():
    action = session.pop(PENDING_ACTION_KEY, None)
    if not isinstance(action, dict) or action.get("kind") not in _resumers:
        return redirect(url_for("projects.dashboard"))
    if time.time() - float(action.get("at") or 0) > OAUTH_STATE_TTL_S:
        flash("GitHub access is set up, but what you started was too long ago: please start it again.", "info")
        return redirect(url_for("projects.dashboard"))
    return _resumers[action["kind"]](action)
