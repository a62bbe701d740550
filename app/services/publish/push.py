"""Starting and running a push: the project's push lock, the job's run, and what a failure records."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import Conflict, DomainError, InvalidRequest, NotFound
from app.models import Project, Push, Snapshot
from app.models.base import utcnow
from app.models.publish import PUSH_FAILED, PUSH_RUNNING
from app.providers.github import (
    BranchProtected,
    GithubError,
    GithubNotFound,
    GithubRepoClient,
    NotFastForward,
)
from app.services import access
from app.services.publish.access import client_for, github_account_for, guard_token
from app.services.publish.history import running_push
from app.services.publish.importing import validate_branch
from app.services.publish.outcome import PushConflict, PushCrashed, PushOutcome, finish_push
from app.services.publish.push_job import PushJob
from app.services.publish.settings import (
    ERROR_BRANCH_MOVED,
    ERROR_INTERRUPTED,
    ERROR_REPO_MISSING,
    PUSH_STALE_AFTER_S,
    PublishSettings,
)

log = logging.getLogger(__name__)


def start_push(
    session: Session,
    *,
    project_id: int,
    user_id: int,
    snapshot_id: int | None = None,
    confirm_flagged: bool = False,
    new_branch: bool = False,
    branch: str | None = None,
    pull_request: bool = False,
    title: str | None = None,
    body: str | None = None,
) -> Push:
    """Record a push of the snapshot (latest by default) holding the project's push lock, and commit.

    Refuses (`Conflict`) when the project has no repository, a push of it is running, or the snapshot
    has flagged files and `confirm_flagged` is false. The caller then runs `run_push(session, push.id, settings)` inline or
    in the background.
    """
    project = access.owned_project(session, user_id=user_id, project_id=project_id)
    if not project.repo_full_name:
        raise Conflict("Create or link a GitHub repository for this project first.", reason="not_linked")
    github_account_for(session, user_id)
    snapshot = _snapshot_to_push(session, project.id, snapshot_id)
    _refuse_while_pulling_or_conflicted(session, project.id)
    flagged = list(snapshot.flagged_paths or [])
    if flagged and not confirm_flagged:
        raise Conflict(
            f"Snapshot #{snapshot.number} has files that look like they contain secrets: "
            f"{', '.join(flagged)}. Confirm that you want to publish them.",
            reason="confirmation_required", flagged_paths=flagged)
    push = Push(project_id=project.id, snapshot_id=snapshot.id, user_id=user_id,
                repo_full_name=project.repo_full_name, branch=project.repo_branch or "main",
                status=PUSH_RUNNING, running_lock=project.id, progress_total=snapshot.file_count)
    # A new branch is chosen when the push runs; the marker survives in `branch` until then.
    if new_branch:
        push.branch = f"sorya/snapshot-{snapshot.number}"
    named = validate_branch(branch)
    if pull_request and not named:
        named = f"sorya/snapshot-{snapshot.number}"
    if pull_request and named == push.branch:
        raise InvalidRequest("A pull request needs a branch other than the repository's main branch.",
                             fields={"branch": "same as the main branch"})
    if named and named != push.branch:
        push.branch = named
        push.options = {"named_branch": True, "pull_request": _draft_pull_request(
            session, project, snapshot, title, body) if pull_request else None}
    for _ in range(2):
        session.add(push)
        try:
            session.commit()
            return push
        except IntegrityError:
            session.rollback()
            if not _clear_stale_lock(session, project.id):
                holder = running_push(session, project.id)
                number = holder and session.get(Snapshot, holder.snapshot_id)
                which = f" (snapshot #{number.number})" if number else ""
                raise Conflict(f"A push of this project is already running{which}. Wait for it to finish, "
                               "then push again.", reason="push_in_progress") from None
    raise Conflict("A push of this project is already running.", reason="push_in_progress")


PR_TITLE_MAX_CHARS = 256
PR_BODY_MAX_CHARS = 20_000


def _draft_pull_request(session: Session, project: Project, snapshot: Snapshot, title: str | None,
                        body: str | None) -> dict[str, str]:
    """The pull request's title and body: the person's, else drafted from the summaries of the versions
    since the sync base."""
    since = 0
    if project.sync_snapshot_id:
        base = session.get(Snapshot, project.sync_snapshot_id)
        since = base.number if base else 0
    summaries = [s for (s,) in session.execute(
        select(Snapshot.summary).where(Snapshot.project_id == project.id, Snapshot.number > since,
                                       Snapshot.number <= snapshot.number).order_by(Snapshot.number)) if s]
    drafted_title = " ".join((snapshot.summary or f"Version #{snapshot.number} from Sorya").split())[:72]
    drafted_body = "Changes made in Sorya:\n\n" + "\n".join(f"- {s}" for s in summaries[-30:]) if summaries else \
        f"Version #{snapshot.number} of {project.name}, published from Sorya."
    title = (title or "").strip() or drafted_title
    if len(title) > PR_TITLE_MAX_CHARS or len(body or "") > PR_BODY_MAX_CHARS:
        raise InvalidRequest(f"A pull request's title has at most {PR_TITLE_MAX_CHARS} characters and its body "
                             f"at most {PR_BODY_MAX_CHARS:,}.", fields={"title": "too long"})
    return {"title": title, "body": (body or "").strip() or drafted_body}


def _refuse_while_pulling_or_conflicted(session: Session, project_id: int) -> None:
    from app.services.publish.pull import REASON_PULL_RUNNING, pull_running, unresolved_conflicts

    if pull_running(session, project_id):
        raise Conflict("A pull of this project is running. Push once it has finished.",
                       reason=REASON_PULL_RUNNING)
    conflicts = unresolved_conflicts(session, project_id)
    if conflicts:
        raise Conflict(
            f"This version still has conflicts from the last pull: {', '.join(conflicts)}. Resolve them "
            "(take Sorya's or GitHub's side, edit them in the chat, or upload the files), then push.",
            reason="unresolved_conflicts", conflicts=conflicts)


def _snapshot_to_push(session: Session, project_id: int, snapshot_id: int | None) -> Snapshot:
    query = select(Snapshot).where(Snapshot.project_id == project_id)
    if snapshot_id is not None:
        snapshot = session.execute(query.where(Snapshot.id == snapshot_id)).scalar_one_or_none()
        if snapshot is None:
            raise NotFound("There is no such snapshot in this project.")
        return snapshot
    snapshot = session.execute(query.order_by(Snapshot.number.desc()).limit(1)).scalar_one_or_none()
    if snapshot is None:
        raise Conflict("This project has no snapshot yet: ask Sorya for some code first.", reason="no_snapshot")
    return snapshot


def _clear_stale_lock(session: Session, project_id: int) -> bool:
    """Release the lock of a push that has held it for too long (its process died); True if released."""
    holder = running_push(session, project_id)
    if holder is None:
        return True  # released between our insert and this read
    if holder.created_at > utcnow() - timedelta(seconds=PUSH_STALE_AFTER_S):
        return False
    finish_push(session, holder, PUSH_FAILED, error_code=ERROR_INTERRUPTED,
                error_message="This push stopped before finishing; nothing was recorded as pushed.")
    return True


def run_push(session: Session, push_id: int, settings: PublishSettings) -> PushOutcome:
    """Run a recorded push to GitHub to the end and record its result; releases the lock whatever happens.

    Commits as it goes (progress, then the outcome). Raises only `NotFound` when `push_id` is not a
    running push; every failure after that is recorded on the push row and returned as the outcome's
    `error`. The caller builds `settings` from configuration (the job entry point in web/publish.py).
    """
    push = session.get(Push, push_id)
    if push is None or push.status != PUSH_RUNNING:
        raise NotFound("There is no such running push.")
    snapshot = session.get(Snapshot, push.snapshot_id)
    project = session.get(Project, push.project_id)
    assert snapshot is not None and project is not None
    flagged = list(snapshot.flagged_paths or [])
    client: GithubRepoClient | None = None
    try:
        client = client_for(session, push.user_id, settings, full_name=project.repo_full_name)
        outcome = PushJob(session, push, project, snapshot, client).run()
        outcome.flagged_paths = flagged
        return outcome
    except DomainError as exc:
        return _record_failure(session, push_id, project, exc, client, flagged)
    except Exception:
        log.exception("push=%s crashed", push_id)
        return _record_crash(session, push_id, flagged)


def _record_failure(session: Session, push_id: int, project: Project, exc: DomainError,
                    client: GithubRepoClient | None, flagged: list[str]) -> PushOutcome:
    """Mark the push failed with the error a person should see (and a revoked token on the account)."""
    session.rollback()
    push = session.get(Push, push_id)
    assert push is not None
    if isinstance(exc, GithubError):
        guard_token(session, push.user_id or 0, exc)
    error = _domain_error_for_push(exc, project)
    if client is not None:
        push.requests_made = client.requests_made
    finish_push(session, push, PUSH_FAILED, error_code=_error_code(error), error_message=error.message[:1000])
    log.info("push=%s project=%s failed: %s", push.id, push.project_id, _error_code(error))
    conflicting = error.conflicting_paths if isinstance(error, PushConflict) else []
    return PushOutcome(push=push, error=error, flagged_paths=flagged, conflicting_paths=conflicting)


def _record_crash(session: Session, push_id: int, flagged: list[str]) -> PushOutcome:
    """Mark the push failed after an unexpected error inside Sorya (already logged)."""
    session.rollback()
    push = session.get(Push, push_id)
    assert push is not None
    finish_push(session, push, PUSH_FAILED, error_code="internal_error",
                error_message="Something went wrong on our side; nothing was recorded as pushed. Try again.")
    return PushOutcome(push=push, error=PushCrashed(push.error_message or ""), flagged_paths=flagged)


def _error_code(error: DomainError) -> str:
    return str(error.extra.get("reason") or error.code)


def _domain_error_for_push(exc: DomainError, project: Project) -> DomainError:
    """The error a person should see for a failed push, with what to do next."""
    if isinstance(exc, GithubNotFound):
        return Conflict(
            f"The repository {project.repo_full_name} no longer exists on GitHub, or was renamed or made "
            "private to you. Relink the project to the repository's new name, or recreate it.",
            reason=ERROR_REPO_MISSING, offer="relink_or_recreate")
    if isinstance(exc, BranchProtected):
        return Conflict(
            f"{project.repo_branch} of {project.repo_full_name} is protected: GitHub accepts changes to it "
            "only through a pull request. Push to a branch and open a pull request instead.",
            reason="branch_protected", offer="push_to_branch_with_pr")
    if isinstance(exc, NotFastForward):
        return Conflict(
            f"The branch {project.repo_branch} of {project.repo_full_name} kept changing on GitHub while "
            "Sorya pushed. Nothing was recorded as pushed; push again.", reason=ERROR_BRANCH_MOVED)
    return exc
