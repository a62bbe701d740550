"""Who may see or change an object: the only door through which services and routes load a project, a
reply or a snapshot on behalf of a person.

Every function takes the acting user's id and returns the object only when that user may reach it; for
anyone else it raises `NotFound` with the same sentence as for a missing object, so an id never reveals
that someone else's object exists (404). Who may reach a project is `policy.py`'s rule (their own
personal projects, and their teams' projects by role); a project they may see but whose `action` their
role does not allow is `Forbidden` (403). Replies stay their sender's. Nothing else decides: no service or route decides by itself who may reach a project, a reply or a snapshot (it
asks here, then works within the object it got: a project's pushes, a snapshot's files). What only ever
belongs to one account (API tokens, exports, credit holds, checkouts) is checked where it is kept.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import Forbidden, NotFound
from app.models import ChatMessage, Project, Snapshot
from app.models.chat import ROLE_ASSISTANT
from app.services import policy

PROJECT_NOT_FOUND = "There is no such project, or it is not yours."
REPLY_NOT_FOUND = "There is no such reply, or it is not yours."
SNAPSHOT_NOT_FOUND = "There is no such snapshot, or it is not yours."


def owned_project(
    session: Session, *, user_id: int, project_id: int, lock: bool = False, action: str = "use_project"
) -> Project:
    """The project when the user may reach it, else `NotFound`; `Forbidden` when they may see it but their
    role does not allow `action` (`policy.ACTIONS`). Reads only.

    `lock=True` reads it with `SELECT ... FOR UPDATE` (MariaDB: a row lock held until the transaction
    ends; SQLite ignores it, and writers there serialise on the database's write lock), for callers that
    number or delete what hangs off the project. Without a lock it may come from the identity map.
    """
    if lock:
        project = session.execute(
            select(Project).where(Project.id == project_id).with_for_update()
        ).scalar_one_or_none()
    else:
        project = session.get(Project, project_id)
    if project is None:
        raise NotFound(PROJECT_NOT_FOUND)
    return _allowed(session, user_id, project, action)


def _allowed(session: Session, user_id: int, project: Project, action: str) -> Project:
    # The common case, a person's own project outside any team, needs no membership look-up.
    if project.user_id == user_id and project.workspace_id is None:
        return project
    role = policy.project_role(session, user_id, project)
    if role is None:
        raise NotFound(PROJECT_NOT_FOUND)
    if not policy.allows(role, action):
        raise Forbidden(policy.ACTION_SENTENCES.get(action, "Your role in this workspace does not allow that."))
    return project


def owned_reply(
    session: Session, *, user_id: int, message_id: int, lock: bool = False, fresh: bool = False
) -> ChatMessage:
    """The assistant reply when the user may reach it, else `NotFound` (also for a person's own message,
    which is not a reply). Reads only.

    `lock=True` reads it with `SELECT ... FOR UPDATE`; `fresh=True` reads its committed columns afresh
    instead of trusting the session's identity map (a page showing a reply another process is writing).
    """
    if lock:
        message = session.execute(
            select(ChatMessage).where(ChatMessage.id == message_id).with_for_update()
            .execution_options(populate_existing=True)
        ).scalar_one_or_none()
    else:
        message = session.get(ChatMessage, message_id, populate_existing=fresh)
    if message is None or message.user_id != user_id or message.role != ROLE_ASSISTANT:
        raise NotFound(REPLY_NOT_FOUND)
    return message


def owned_snapshot(session: Session, *, user_id: int, snapshot_id: int, project_id: int | None = None) -> Snapshot:
    """The snapshot when the user may reach its project (and it is `project_id`'s, when given), else
    `NotFound`. One query, two for a team's project. Reads only."""
    row = session.execute(
        select(Snapshot, Project)
        .join(Project, Project.id == Snapshot.project_id)
        .where(Snapshot.id == snapshot_id)
    ).first()
    if row is None or (project_id is not None and row[0].project_id != project_id):
        raise NotFound(SNAPSHOT_NOT_FOUND)
    snapshot, project = row
    if policy.project_role(session, user_id, project) is None:
        raise NotFound(SNAPSHOT_NOT_FOUND)
    return snapshot
