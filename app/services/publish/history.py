"""Reading pushes: the running one (the project's push lock), one push, its snapshot, waiting for its end,
and the history a page shows."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import NotFound
from app.models import Project, Push, Snapshot, User
from app.models.publish import PUSH_RUNNING, PUSH_SUCCEEDED
from app.services import access
from app.services.publish.settings import HISTORY_LIMIT


def running_push(session: Session, project_id: int) -> Push | None:
    """The push holding the project's push lock, if any (read-only)."""
    return session.execute(select(Push).where(Push.running_lock == project_id)).scalar_one_or_none()


@dataclass(frozen=True)
class PushView:
    id: int
    snapshot_number: int | None
    status: str
    commit_sha: str | None
    html_url: str | None
    branch: str
    compare_url: str | None
    files_changed: int
    who: str
    created_at: datetime
    finished_at: datetime | None
    error_code: str | None
    error_message: str | None
    progress_done: int
    progress_total: int
    requests_made: int
    pull_request_url: str | None = None
    pull_request_state: str | None = None
    pull_request_number: int | None = None


def push_history(session: Session, project: Project, *, github_url: str, limit: int = HISTORY_LIMIT) -> list[PushView]:
    rows = session.execute(
        select(Push, Snapshot.number, User.login)
        .outerjoin(Snapshot, Snapshot.id == Push.snapshot_id)
        .outerjoin(User, User.id == Push.user_id)
        .where(Push.project_id == project.id).order_by(Push.id.desc()).limit(limit)).all()
    views = []
    for push, number, login in rows:
        compare = None
        if push.status == PUSH_SUCCEEDED and project.repo_branch and push.branch != project.repo_branch:
            compare = (f"{github_url.rstrip('/')}/{push.repo_full_name}/compare/"
                       f"{project.repo_branch}...{push.branch}?expand=1")
        views.append(PushView(
            id=push.id, snapshot_number=number, status=push.status, commit_sha=push.commit_sha,
            html_url=push.html_url, branch=push.branch, compare_url=compare, files_changed=push.files_changed,
            who=login or "a deleted account", created_at=push.created_at, finished_at=push.finished_at,
            error_code=push.error_code, error_message=push.error_message, progress_done=push.progress_done,
            progress_total=push.progress_total, requests_made=push.requests_made,
            pull_request_url=(push.pull_request or {}).get("url"),
            pull_request_state=(push.pull_request or {}).get("state"),
            pull_request_number=(push.pull_request or {}).get("number")))
    return views


def get_push(session: Session, *, project_id: int, user_id: int, push_id: int) -> Push:
    access.owned_project(session, user_id=user_id, project_id=project_id)
    push = session.get(Push, push_id)
    if push is None or push.project_id != project_id:
        raise NotFound("There is no such push in this project.")
    return push


def pushed_snapshot(session: Session, push: Push) -> Snapshot | None:
    """The snapshot a push sends (None once it was deleted)."""
    return session.get(Snapshot, push.snapshot_id)


def wait_for_push_end(session: Session, push_id: int, *, timeout_s: float, poll_s: float) -> Push:
    """The push once it has finished, or as it stands after `timeout_s`. The job may run on another host,
    so the row is the only thing to watch; each poll ends its read transaction so the next one sees the
    job's commits. Reads only."""
    deadline = time.monotonic() + timeout_s
    while True:
        session.expire_all()
        push = session.get(Push, push_id)
        if push.status != PUSH_RUNNING or time.monotonic() >= deadline:
            return push
        session.rollback()
        time.sleep(poll_s)


def push_compare_url(session: Session, push: Push, *, github_url: str) -> str | None:
    """The pull-request link of a push that went to a branch other than the project's, once committed."""
    project = session.get(Project, push.project_id)
    if project is None or not project.repo_branch or push.branch == project.repo_branch or not push.commit_sha:
        return None
    return f"{github_url.rstrip('/')}/{push.repo_full_name}/compare/{project.repo_branch}...{push.branch}?expand=1"
