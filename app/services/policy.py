"""Who may do what in a workspace: the one table of rules, asked by `access.py` (the door every service
and route loads a project, a reply or a snapshot through) and by the workspace services.

Roles: owner (billing, delete the workspace, roles), admin (members, caps, projects, grants to the pool),
member (the team's projects and chat). A person's personal workspace is theirs alone; a member sees the
team's projects, never another member's personal ones. The answer for an object a person may not know
exists is `NotFound` (404); for one they can see but may not act on, `Forbidden` (403).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import Session

from app.errors import Forbidden, NotFound
from app.models import Project, Workspace, WorkspaceMember
from app.models.workspaces import MEMBER_ACTIVE, ROLE_ADMIN, ROLE_MEMBER, ROLE_OWNER

WORKSPACE_NOT_FOUND = "There is no such workspace, or you are not one of its members."

# action -> the roles that may take it. Seeing (`view`) is any active membership.
ACTIONS: dict[str, tuple[str, ...]] = {
    "view": (ROLE_OWNER, ROLE_ADMIN, ROLE_MEMBER),
    "use_project": (ROLE_OWNER, ROLE_ADMIN, ROLE_MEMBER),  # open, chat, snapshot, push
    "create_project": (ROLE_OWNER, ROLE_ADMIN, ROLE_MEMBER),
    "manage_projects": (ROLE_OWNER, ROLE_ADMIN),  # delete, move in and out
    "manage_members": (ROLE_OWNER, ROLE_ADMIN),  # add, remove, caps
    "grant_credits": (ROLE_OWNER, ROLE_ADMIN),
    "view_usage": (ROLE_OWNER, ROLE_ADMIN),
    "manage_roles": (ROLE_OWNER,),
    "billing": (ROLE_OWNER,),
    "delete_workspace": (ROLE_OWNER,),
}

ACTION_SENTENCES = {
    "manage_projects": "Only the workspace's owners and admins may do that to its projects.",
    "manage_members": "Only the workspace's owners and admins may change its members.",
    "grant_credits": "Only the workspace's owners and admins may add credits to its pool.",
    "view_usage": "Only the workspace's owners and admins may see its usage.",
    "manage_roles": "Only the workspace's owners may change roles.",
    "billing": "Only the workspace's owners may change its plan.",
    "delete_workspace": "Only the workspace's owners may delete it.",
}


@dataclass(frozen=True)
class Membership:
    workspace: Workspace
    role: str
    monthly_cap: int | None


def membership(session: Session, person_id: int, workspace_id: int) -> Membership | None:
    """The person's active membership of the workspace, or None (pending, removed, never a member)."""
    row = session.execute(
        select(Workspace, WorkspaceMember.role, WorkspaceMember.monthly_cap)
        .join(WorkspaceMember, WorkspaceMember.workspace_id == Workspace.id)
        .where(Workspace.id == workspace_id, WorkspaceMember.user_id == person_id,
               WorkspaceMember.status == MEMBER_ACTIVE)
    ).first()
    if row is None:
        return None
    return Membership(row[0], row[1], row[2])


def allows(role: str | None, action: str) -> bool:
    if action not in ACTIONS:
        raise ValueError(f"Unknown action {action!r}.")
    return role is not None and role in ACTIONS[action]


def require(session: Session, person_id: int, action: str, workspace_id: int) -> Membership:
    """The person's membership when it allows `action`; `NotFound` when they are not a member (they may not
    know the workspace exists), `Forbidden` when they are but their role does not allow it."""
    found = membership(session, person_id, workspace_id)
    if found is None:
        raise NotFound(WORKSPACE_NOT_FOUND)
    if not allows(found.role, action):
        raise Forbidden(ACTION_SENTENCES.get(action, "Your role in this workspace does not allow that."))
    return found


def project_role(session: Session, person_id: int, project: Project) -> str | None:
    """The person's role towards the project: `owner` of their own personal project, their role in the
    project's team, or None (they may not know it exists)."""
    if project.workspace_id is None:  # written before workspaces: its creator's personal workspace
        return ROLE_OWNER if project.user_id == person_id else None
    # A personal workspace's only member is its person: another member's personal projects stay unseen.
    found = membership(session, person_id, project.workspace_id)
    return found.role if found is not None else None


def can(session: Session, person_id: int, action: str, obj: Project | Workspace) -> bool:
    """May the person take `action` on the project or workspace? Never raises for a refusal."""
    if isinstance(obj, Project):
        return allows(project_role(session, person_id, obj), action)
    found = membership(session, person_id, obj.id)
    return allows(found.role if found else None, action)



def visible_projects(person_id: int) -> ColumnElement[bool]:
    """A WHERE clause: the projects the person may see: those of the workspaces they are an active member
    of (their personal one has them alone as member, so never another member's personal projects), and
    their own written before workspaces existed."""
    my_workspaces = select(WorkspaceMember.workspace_id).where(
        WorkspaceMember.user_id == person_id, WorkspaceMember.status == MEMBER_ACTIVE)
    return or_(Project.workspace_id.in_(my_workspaces),
               and_(Project.workspace_id.is_(None), Project.user_id == person_id))
