"""Importing a GitHub repository: the page listing the person's repositories (`/projects/import`), its
form, and `POST /api/projects/import`. The work is `app.services.publish.importing`."""

from __future__ import annotations

from flask import Blueprint, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from app.errors import DomainError, InvalidRequest
from app.extensions import db
from app.services.publish.access import RepositoryAccessRequired
from app.services.publish.app_access import app_install_url
from app.services.publish.importing import ImportResult, import_repository, importable_repositories
from app.web import api
from app.web.api import read_json
from app.web.api.projects import project_json
from app.web.projects import limits
from app.web.publish import _settings
from app.web.repo_access import ask_for_repositories, consent_path, consent_url, register_resumer

bp = Blueprint("github_import", __name__)

MAX_QUERY_CHARS = 100


def _import(repo: object, branch: object) -> ImportResult:
    return import_repository(db.session, user_id=current_user.id, repo=repo, branch=branch,
                             settings=_settings(), limits=limits())


@api.bp.post("/projects/import")
@login_required
def api_import():
    body = read_json()
    try:
        result = _import(body.get("repo"), body.get("branch"))
    except RepositoryAccessRequired as exc:
        # The API cannot follow a consent: it answers 403 with the address that asks for it and comes
        # back to this import on the page.
        exc.extra["consent_url"] = consent_url(url_for("github_import.page", repo=str(body.get("repo") or "")))
        raise
    answer = project_json(result.project, result.snapshot.id)
    answer.update(skipped=result.skipped, commit_sha=result.commit_sha, branch=result.branch,
                  message=result.sentence)
    return jsonify(answer), 201


def _page_args() -> tuple[str, int]:
    query = (request.args.get("q") or "").strip()[:MAX_QUERY_CHARS]
    try:
        page = max(1, min(1000, int(request.args.get("page", "1"))))
    except ValueError:
        page = 1
    return query, page


@bp.get("/projects/import")
@login_required
def page():
    query, number = _page_args()
    listing, error, needs_access = None, None, None
    try:
        listing = importable_repositories(db.session, user_id=current_user.id, settings=_settings(), page=number,
                                          query=query)
    except RepositoryAccessRequired as exc:
        # Not an error of this page: the person has simply not granted repository access yet.
        needs_access = exc
    except DomainError as exc:
        error = exc
    settings = _settings()
    return render_template("github_import/page.html", listing=listing, error=error, query=query,
                           needs_access=needs_access, grant_path=consent_path(request.full_path.rstrip("?")),
                           install_url=app_install_url(settings) if settings.app else None,
                           form={"repo": request.args.get("repo", ""), "branch": ""}), 200 if error is None else (
        error.status if error.status < 500 else 502)


@bp.post("/projects/import")
@login_required
def submit():
    form = {"repo": request.form.get("repo", ""), "branch": request.form.get("branch", "")}
    try:
        if not form["repo"].strip():
            raise InvalidRequest("Choose a repository to import.", fields={"repo": "required"})
        result = _import(form["repo"], form["branch"] or None)
    except RepositoryAccessRequired:
        return ask_for_repositories("import", repo=form["repo"], branch=form["branch"])
    except DomainError as exc:
        return _failed(exc, form)
    return _imported(result)


def _failed(exc: DomainError, form: dict[str, str]):
    return render_template("github_import/page.html", listing=None, error=exc, query="", form=form,
                           needs_access=None, grant_path=None), (exc.status if exc.status < 500 else 502)


def _imported(result: ImportResult):
    flash(f"Imported {result.project.repo_full_name} ({result.branch}): {result.sentence}.", "success")
    return redirect(url_for("projects.show", project_id=result.project.id))


def _finish_import(action: dict):
    """The import the person started before GitHub asked for repository access (`repo_access.py`)."""
    form = {"repo": str(action.get("repo") or ""), "branch": str(action.get("branch") or "")}
    try:
        result = _import(form["repo"], form["branch"] or None)
    except DomainError as exc:  # a second RepositoryAccessRequired included: the consent was narrowed
        return _failed(exc, form)
    return _imported(result)


register_resumer("import", _finish_import)
