"""Bringing GitHub's changes back: `POST /api/github/repo/<id>/pull`, the project page's sync notice
(`partials/_github_sync.html`: "3 new commits on GitHub" + Pull, a rewritten history's offer, a pull's
conflicts with take-ours / take-theirs) and its forms. The work is `app.services.publish.pull`."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, flash, jsonify, redirect, request, url_for
from flask_login import current_user, login_required

from app.errors import DomainError
from app.extensions import db
from app.services import access
from app.services.publish import pull as pull_service
from app.services.publish.access import RepositoryAccessRequired
from app.services.publish.app_access import GithubAppNotInstalled
from app.services.publish.importing import take_remote_as_new_version
from app.web import api
from app.web.projects import limits
from app.web.publish import _settings
from app.web.security import safe_next_path

bp = Blueprint("github_sync", __name__)


@api.bp.post("/github/repo/<int:project_id>/pull")
@login_required
def api_pull(project_id: int):
    result = pull_service.pull(db.session, project_id=project_id, user_id=current_user.id, settings=_settings(),
                               limits=limits())
    return jsonify(snapshot_id=result.snapshot_id, commit_sha=result.commit_sha,
                   files_changed=result.files_changed, conflicts=result.conflicts,
                   new_commits=result.new_commits)


@dataclass(frozen=True)
class SyncView:
    new_commits: int
    rewritten: bool
    conflicts: list[str]
    branch: str
    repo: str


@bp.app_template_global()
def github_sync_view(project) -> SyncView | None:
    """What the sync notice shows for the signed-in person's `project` (None: nothing to show). The
    check behind it asks GitHub at most once a minute per project, conditionally."""
    if not project.repo_full_name or not project.repo_head_sha or not current_user.is_authenticated:
        return None
    status = pull_service.remote_status(db.session, project=project, user_id=current_user.id,
                                        settings=_settings())
    conflicts = pull_service.unresolved_conflicts(db.session, project.id)
    if status is None and not conflicts:
        return None
    return SyncView(new_commits=status.new_commits if status else 0, rewritten=bool(status and status.rewritten),
                    conflicts=conflicts, branch=project.repo_branch or "main", repo=project.repo_full_name)


def _back(project_id: int):
    return redirect(safe_next_path(request.form.get("next")) or url_for("projects.show", project_id=project_id))


@bp.post("/projects/<int:project_id>/github/pull")
@login_required
def pull(project_id: int):
    access.owned_project(db.session, user_id=current_user.id, project_id=project_id)  # others': 404
    try:
        result = pull_service.pull(db.session, project_id=project_id, user_id=current_user.id,
                                   settings=_settings(), limits=limits())
    except (RepositoryAccessRequired, GithubAppNotInstalled):
        raise  # the error page's button is what to do: the second consent, or the app's install link
    except DomainError as exc:
        flash(exc.message, "error")
        return _back(project_id)
    if result.snapshot_id is None:
        flash("Already up to date: GitHub has nothing new.", "success")
    elif result.conflicts:
        flash(f"Pulled {result.new_commits} commit{'s' if result.new_commits != 1 else ''} from GitHub: "
              f"{result.files_changed} file{'s' if result.files_changed != 1 else ''} changed; "
              f"{len(result.conflicts)} conflict{'s' if len(result.conflicts) != 1 else ''} to resolve: "
              f"{', '.join(result.conflicts)}.", "warning")
    else:
        flash(f"Pulled {result.new_commits} commit{'s' if result.new_commits != 1 else ''} from GitHub: "
              f"{result.files_changed} file{'s' if result.files_changed != 1 else ''} changed, merged "
              "cleanly.", "success")
    return _back(project_id)


@bp.post("/projects/<int:project_id>/github/take-remote")
@login_required
def take_remote(project_id: int):
    access.owned_project(db.session, user_id=current_user.id, project_id=project_id)  # others': 404
    try:
        result = take_remote_as_new_version(db.session, project_id=project_id, user_id=current_user.id,
                                            settings=_settings(), limits=limits())
    except DomainError as exc:
        flash(exc.message, "error")
        return _back(project_id)
    flash(f"Took {result.branch} from GitHub as it is now: {result.sentence}.", "success")
    return _back(project_id)


@bp.post("/projects/<int:project_id>/github/resolve")
@login_required
def resolve(project_id: int):
    access.owned_project(db.session, user_id=current_user.id, project_id=project_id)
    path, side = request.form.get("path", ""), request.form.get("side", "")
    try:
        pull_service.resolve_conflict(db.session, project_id=project_id, user_id=current_user.id, path=path,
                                      side=side, settings=_settings(), limits=limits())
    except DomainError as exc:
        flash(exc.message, "error")
        return _back(project_id)
    flash(f"Resolved {path}: took {'Sorya' if side == 'ours' else 'GitHub'}'s side.", "success")
    return _back(project_id)
