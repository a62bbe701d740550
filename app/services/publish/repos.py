"""Linking a project to a GitHub repository: name rules, creating or linking one, unlinking."""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass

from sqlalchemy.orm import Session

from app.errors import Conflict, InvalidRequest
from app.providers.github import GithubError, GithubNotFound, GithubRejected, GithubRepoClient, RepoInfo
from app.services import access
from app.services.publish.access import client_for, github_account_for, guard_token
from app.services.publish.history import running_push
from app.services.publish.settings import (
    REPO_DESCRIPTION_MAX_CHARS,
    REPO_NAME_MAX_CHARS,
    REPO_NAME_RE,
    PublishSettings,
)

log = logging.getLogger(__name__)


def repo_name_for(project_name: str) -> str:
    """A GitHub-friendly slug of a project's name: `My App (v2)` -> `my-app-v2`."""
    ascii_name = unicodedata.normalize("NFKD", project_name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", ascii_name).strip("-._").lower()
    slug = re.sub(r"-{2,}", "-", slug)[:REPO_NAME_MAX_CHARS].strip("-._")
    return slug or "sorya-project"


def validate_repo_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise InvalidRequest("Give the repository a name.", fields={"name": "required"})
    if len(name) > REPO_NAME_MAX_CHARS:
        raise InvalidRequest(f"A repository name has at most {REPO_NAME_MAX_CHARS} characters.",
                             fields={"name": "too long"})
    if not REPO_NAME_RE.match(name) or name in (".", "..") or name.lower().endswith(".git"):
        raise InvalidRequest(
            "A repository name may use letters, digits, '-', '_' and '.', and may not end in .git.",
            fields={"name": "letters, digits, '-', '_' and '.' only"})
    return name


def validate_description(description: str | None) -> str:
    text = (description or "").strip()
    if len(text) > REPO_DESCRIPTION_MAX_CHARS:
        raise InvalidRequest(f"A description has at most {REPO_DESCRIPTION_MAX_CHARS} characters.",
                             fields={"description": "too long"})
    if any(unicodedata.category(ch) == "Cc" for ch in text):
        raise InvalidRequest("The description may not contain control characters.",
                             fields={"description": "control characters"})
    return text




@dataclass(frozen=True)
class RepoLink:
    full_name: str
    html_url: str
    private: bool
    linked_existing: bool


def create_repository(
    session: Session,
    *,
    project_id: int,
    user_id: int,
    settings: PublishSettings,
    name: str | None = None,
    description: str | None = None,
    private: bool | None = None,
    link_existing: bool = False,
) -> RepoLink:
    """Create a GitHub repository for the project (or link the person's existing one) and store the link.

    Private by default when the operator allows private repositories (`GITHUB_ALLOW_PRIVATE_REPOS`),
    public otherwise. A name already on the person's account raises `Conflict(reason="repo_exists")`
    offering to link it, unless `link_existing` asks for exactly that (then it must be theirs and
    pushable). Commits the link; nothing is stored when GitHub fails.
    """
    project = access.owned_project(session, user_id=user_id, project_id=project_id)
    if project.repo_full_name:
        raise Conflict(f"This project is already linked to {project.repo_full_name}. Unlink it first to "
                       "use another repository.", reason="already_linked")
    repo_name = validate_repo_name(name if name else repo_name_for(project.name))
    text = validate_description(description if description is not None else project.description)
    if private is None:
        private = settings.allow_private_repos
    if private and not settings.allow_private_repos:
        raise InvalidRequest("This Sorya server publishes public repositories only.",
                             fields={"private": "private repositories are not allowed here"})
    account_login = github_account_for(session, user_id).login
    client = client_for(session, user_id, settings,
                        full_name=f"{account_login}/{repo_name}" if link_existing else None)
    linked = link_existing
    try:
        if link_existing:
            info = _existing_repo(client, account_login, repo_name)
        else:
            info = _new_repo(client, account_login, repo_name, description=text, private=private)
    except GithubError as exc:
        guard_token(session, user_id, exc)
        raise
    project.repo_full_name = info.full_name
    project.repo_html_url = info.html_url
    project.repo_branch = info.default_branch
    project.repo_head_sha = None
    session.commit()
    log.info("project=%s linked to %s (existing=%s)", project.id, info.full_name, linked)
    return RepoLink(full_name=info.full_name, html_url=info.html_url, private=info.private,
                    linked_existing=linked)


def _new_repo(client: GithubRepoClient, account_login: str, name: str, *, description: str,
              private: bool) -> RepoInfo:
    """Create the repository; a name already on the account becomes the offer to link it instead."""
    try:
        return client.create_repository(name, description=description, private=private)
    except GithubRejected as exc:
        if not _name_taken(exc):
            raise InvalidRequest(exc.message, fields={"name": exc.message}) from exc
        info = _existing_repo(client, account_login, name)
        raise Conflict(
            f"You already have a repository named {info.full_name} on GitHub. Link it to this "
            "project instead, or choose another name.", reason="repo_exists",
            repo_full_name=info.full_name, html_url=info.html_url, offer="link_existing",
            fields={"name": "already exists on your account"}) from exc


def _name_taken(exc: GithubRejected) -> bool:
    text = " ".join(str(e.get("message", "")) if isinstance(e, dict) else str(e) for e in exc.errors)
    return "already exists" in (text + exc.message).lower()


def _existing_repo(client: GithubRepoClient, account_login: str, name: str) -> RepoInfo:
    full_name = f"{account_login}/{name}"
    try:
        info = client.get_repository(full_name)
    except GithubNotFound as exc:
        raise InvalidRequest(f"There is no repository {full_name} on your GitHub account.",
                             fields={"name": "not found on your account"}) from exc
    if info.owner_login.lower() != account_login.lower() or not info.can_push:
        raise InvalidRequest(f"{info.full_name} is not a repository you can push to; choose another name.",
                             fields={"name": "not yours to push to"})
    return info


def unlink_repository(session: Session, *, project_id: int, user_id: int) -> None:
    """Forget the project's repository (nothing changes on GitHub). Refused while a push runs."""
    project = access.owned_project(session, user_id=user_id, project_id=project_id)
    if running_push(session, project.id) is not None:
        raise Conflict("A push of this project is running; wait for it to finish.", reason="push_in_progress")
    project.repo_full_name = project.repo_html_url = project.repo_branch = project.repo_head_sha = None
    session.commit()

