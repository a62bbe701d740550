"""Projects: where a person's generated code lives. Create, rename, describe, archive, delete, list.

Every function takes the acting user's id and treats another user's project exactly like a missing one
(`NotFound`), so no caller can learn that someone else's project exists. Functions that change a project
commit; their docstrings say so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from app.errors import InvalidRequest
from app.models import ChatMessage, Project, ProjectBlob, Push, Snapshot, SnapshotTree, User
from app.models.base import utcnow
from app.models.chat import ROLE_ASSISTANT
from app.models.projects import PROJECT_ACTIVE, PROJECT_ARCHIVED
from app.services import access, policy, workspaces
from app.services.snapshots import collect_garbage_blobs, parse_reply_files

log = logging.getLogger(__name__)

MAX_NAME_CHARS = 200
MAX_DESCRIPTION_CHARS = 5_000
STATUSES = (PROJECT_ACTIVE, PROJECT_ARCHIVED)


@dataclass(frozen=True)
class ProjectSummary:
    """A project as the dashboard and `GET /api/projects` show it: one row, three queries for all."""

    project: Project
    last_snapshot_id: int | None
    last_snapshot_number: int | None
    last_snapshot_files: int | None
    last_activity_at: datetime


def _has_control_characters(text: str, *, allow_newlines: bool = False) -> bool:
    allowed = {"\n", "\t"} if allow_newlines else set()
    return any((ord(ch) < 32 or 127 <= ord(ch) < 160) and ch not in allowed for ch in text)


def clean_name(name: object) -> str:
    """A project name, trimmed; `InvalidRequest` (field `name`) when empty, too long or with control characters."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidRequest("Give the project a name.", fields={"name": "required"})
    name = " ".join(name.split())
    if len(name) > MAX_NAME_CHARS:
        raise InvalidRequest(
            f"A project name may be at most {MAX_NAME_CHARS} characters.", fields={"name": "too long"}
        )
    if _has_control_characters(name):
        raise InvalidRequest("A project name cannot contain control characters.", fields={"name": "invalid"})
    return name


def clean_description(description: object) -> str:
    if description is None:
        return ""
    if not isinstance(description, str):
        raise InvalidRequest("The description must be text.", fields={"description": "not text"})
    description = description.replace("\r\n", "\n").strip()
    if len(description) > MAX_DESCRIPTION_CHARS:
        raise InvalidRequest(
            f"A description may be at most {MAX_DESCRIPTION_CHARS:,} characters.",
            fields={"description": "too long"},
        )
    if _has_control_characters(description, allow_newlines=True):
        raise InvalidRequest(
            "A description cannot contain control characters.", fields={"description": "invalid"}
        )
    return description


def create_project(
    session: Session, *, user_id: int, name: object, description: object = "", workspace_id: object = None
) -> Project:
    """A new active project of the user, in `workspace_id` (one they may create projects in: `NotFound`
    otherwise) or their personal workspace by default. Commits."""
    clean_name_ = clean_name(name)
    clean_description_ = clean_description(description)
    if workspace_id is None:
        login = session.execute(select(User.login).where(User.id == user_id)).scalar_one()
        workspace_id = workspaces.ensure_personal_workspace(session, user_id=user_id, login=login)
    elif not isinstance(workspace_id, int) or isinstance(workspace_id, bool):
        raise InvalidRequest("workspace_id must be a workspace's id.", fields={"workspace_id": "not an id"})
    else:
        policy.require(session, user_id, "create_project", workspace_id)
    project = Project(user_id=user_id, name=clean_name_, description=clean_description_,
                      status=PROJECT_ACTIVE, workspace_id=workspace_id)
    session.add(project)
    session.commit()
    log.info("project %s created by user %s", project.id, user_id)
    return project


def update_project(
    session: Session,
    *,
    user_id: int,
    project_id: int,
    name: object = None,
    description: object = None,
    status: object = None,
) -> Project:
    """Rename, describe, archive or unarchive (only the values given change). Commits."""
    project = access.owned_project(session, user_id=user_id, project_id=project_id)
    if name is not None:
        project.name = clean_name(name)
    if description is not None:
        project.description = clean_description(description)
    if status is not None:
        if status not in STATUSES:
            raise InvalidRequest(
                f"status must be one of: {', '.join(STATUSES)}.", fields={"status": "unknown status"}
            )
        project.status = status
    project.updated_at = utcnow()
    session.commit()
    return project


def archive_project(session: Session, *, user_id: int, project_id: int) -> Project:
    """Hide the project from the active list; its snapshots stay. Idempotent. Commits."""
    return update_project(session, user_id=user_id, project_id=project_id, status=PROJECT_ARCHIVED)


def unarchive_project(session: Session, *, user_id: int, project_id: int) -> Project:
    """Idempotent. Commits."""
    return update_project(session, user_id=user_id, project_id=project_id, status=PROJECT_ACTIVE)


def delete_project(session: Session, *, user_id: int, project_id: int) -> int:
    """Delete the project, its snapshots, pushes and chat, then the blobs no snapshot uses any more.

    Returns how many blobs were collected. The project row is locked first, so a snapshot being taken
    concurrently either finishes before (and its blobs are then considered) or finds no project. Rows
    are deleted explicitly rather than left to ON DELETE CASCADE, which SQLite does not enforce by
    default. Commits (twice: the project, then the garbage collection).
    """
    access.owned_project(session, user_id=user_id, project_id=project_id, lock=True, action="manage_projects")
    blob_ids = list(session.scalars(select(ProjectBlob.blob_id).where(ProjectBlob.project_id == project_id)))
    session.execute(delete(Push).where(Push.project_id == project_id))
    session.execute(delete(ProjectBlob).where(ProjectBlob.project_id == project_id))
    session.execute(delete(SnapshotTree).where(SnapshotTree.project_id == project_id))
    # Self-references first, so no database has to order a self-referencing delete.
    session.execute(update(Snapshot).where(Snapshot.project_id == project_id).values(parent_id=None))
    session.execute(delete(Snapshot).where(Snapshot.project_id == project_id))
    session.execute(update(ChatMessage).where(ChatMessage.project_id == project_id).values(reply_to_id=None))
    session.execute(delete(ChatMessage).where(ChatMessage.project_id == project_id))
    session.execute(delete(Project).where(Project.id == project_id))
    session.commit()
    collected = collect_garbage_blobs(session, blob_ids)
    log.info("project %s deleted by user %s; %d blobs collected", project_id, user_id, collected)
    return collected


def summarise_projects(
    session: Session, *, user_id: int, status: str | None = None, workspace_id: int | None = None
) -> list[ProjectSummary]:
    """The projects the user may see (their personal ones and their teams'; only `workspace_id`'s when
    given), most recent activity first, with their latest snapshot. Three queries."""
    query = select(Project).where(policy.visible_projects(user_id))
    if workspace_id is not None:
        query = query.where(Project.workspace_id == workspace_id)
    if status is not None:
        query = query.where(Project.status == status)
    projects = list(session.scalars(query))
    if not projects:
        return []
    ids = [p.id for p in projects]
    latest_numbers = (
        select(Snapshot.project_id, func.max(Snapshot.number).label("number"))
        .where(Snapshot.project_id.in_(ids))
        .group_by(Snapshot.project_id)
        .subquery()
    )
    latest = {
        row.project_id: row
        for row in session.execute(
            select(Snapshot.project_id, Snapshot.id, Snapshot.number, Snapshot.file_count, Snapshot.created_at).join(
                latest_numbers,
                (latest_numbers.c.project_id == Snapshot.project_id) & (latest_numbers.c.number == Snapshot.number),
            )
        )
    }
    last_message = dict(
        session.execute(
            select(ChatMessage.project_id, func.max(ChatMessage.created_at))
            .where(ChatMessage.user_id == user_id, ChatMessage.project_id.in_(ids))
            .group_by(ChatMessage.project_id)
        ).all()
    )
    summaries = []
    for project in projects:
        snap = latest.get(project.id)
        moments = [project.updated_at, project.created_at]
        if snap is not None:
            moments.append(snap.created_at)
        if last_message.get(project.id) is not None:
            moments.append(last_message[project.id])
        summaries.append(
            ProjectSummary(
                project=project,
                last_snapshot_id=snap.id if snap else None,
                last_snapshot_number=snap.number if snap else None,
                last_snapshot_files=snap.file_count if snap else None,
                last_activity_at=max(m for m in moments if m is not None),
            )
        )
    summaries.sort(key=lambda s: (s.last_activity_at, s.project.id), reverse=True)
    return summaries


def active_projects(session: Session, *, user_id: int) -> list[Project]:
    """The active (not archived) projects the user may see, most recently updated first. One query."""
    return list(
        session.scalars(
            select(Project)
            .where(policy.visible_projects(user_id), Project.status == PROJECT_ACTIVE)
            .order_by(Project.updated_at.desc())
        )
    )


def snapshots_by_source_message(session: Session, *, project_ids: set[int]) -> dict[int, Snapshot]:
    """The snapshots of these projects that were taken from a reply, by that reply's id. One query (none
    for no project). The caller has checked that the projects are the user's."""
    if not project_ids:
        return {}
    rows = session.scalars(
        select(Snapshot).where(Snapshot.project_id.in_(project_ids), Snapshot.source_message_id.is_not(None))
    )
    return {row.source_message_id: row for row in rows}


def recent_replies_with_files(session: Session, project: Project, *, limit: int) -> list[ChatMessage]:
    """The project's latest `limit` assistant replies that contain files, newest first. One query: it
    reads the latest `3 * limit` replies and keeps those with files."""
    messages = session.scalars(
        select(ChatMessage)
        .where(
            ChatMessage.user_id == project.user_id,
            ChatMessage.project_id == project.id,
            ChatMessage.role == ROLE_ASSISTANT,
        )
        .order_by(ChatMessage.id.desc())
        .limit(limit * 3)
    )
    return [m for m in messages if parse_reply_files(m.content or "").has_files][:limit]


def project_of_snapshot(session: Session, snapshot: Snapshot) -> Project:
    """The project a snapshot belongs to (the caller found the snapshot through its owner)."""
    return session.get(Project, snapshot.project_id)
