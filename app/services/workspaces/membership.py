"""Workspaces and their members: the personal workspace every person has, teams, invitations by GitHub
login, roles and caps. Each function commits (or says it does not); rights are `policy.py`'s."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import Conflict, InvalidRequest, NotFound
from app.models import User, Workspace, WorkspaceMember
from app.models.workspaces import (
    KIND_PERSONAL,
    KIND_TEAM,
    MEMBER_ACTIVE,
    MEMBER_PENDING,
    ROLE_ADMIN,
    ROLE_MEMBER,
    ROLE_OWNER,
)
from app.services import credits, policy

log = logging.getLogger(__name__)

MAX_WORKSPACE_NAME_CHARS = 100
MAX_MONTHLY_CAP = 10**12


@dataclass(frozen=True)
class WorkspaceView:
    id: int
    name: str
    kind: str
    role: str


@dataclass(frozen=True)
class MemberView:
    login: str
    role: str
    monthly_cap: int | None
    status: str
    user_id: int | None


def ensure_personal_workspace(session: Session, *, user_id: int, login: str) -> int:
    """The person's personal workspace id, created (with them as owner) when missing. Does not commit."""
    found = session.execute(
        select(Workspace.id).where(Workspace.account_user_id == user_id, Workspace.kind == KIND_PERSONAL)
    ).scalar_one_or_none()
    if found is not None:
        return found
    workspace = Workspace(name=login[:MAX_WORKSPACE_NAME_CHARS], kind=KIND_PERSONAL, account_user_id=user_id)
    session.add(workspace)
    session.flush()
    session.add(WorkspaceMember(workspace_id=workspace.id, user_id=user_id, login=login.lower(),
                                role=ROLE_OWNER, status=MEMBER_ACTIVE))
    session.flush()
    return workspace.id


def accept_invitations(session: Session, *, user_id: int, login: str) -> list[int]:
    """Turn the pending invitations addressed to `login` into active memberships. Does not commit.
    Returns the workspace ids joined (the sign-in shows a notice for each)."""
    pending = session.execute(
        select(WorkspaceMember).where(WorkspaceMember.login == login.lower(),
                                      WorkspaceMember.status == MEMBER_PENDING)
    ).scalars().all()
    for member in pending:
        member.user_id = user_id
        member.status = MEMBER_ACTIVE
    return [member.workspace_id for member in pending]


def personal_workspace_id(session: Session, user_id: int) -> int | None:
    return session.execute(
        select(Workspace.id).where(Workspace.account_user_id == user_id, Workspace.kind == KIND_PERSONAL)
    ).scalar_one_or_none()


def clean_workspace_name(name: object) -> str:
    if not isinstance(name, str) or not " ".join(name.split()):
        raise InvalidRequest("Give the workspace a name.", fields={"name": "is empty"})
    name = " ".join(name.split())
    if len(name) > MAX_WORKSPACE_NAME_CHARS:
        raise InvalidRequest(f"A workspace name may be at most {MAX_WORKSPACE_NAME_CHARS} characters.",
                             fields={"name": "too long"})
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise InvalidRequest("A workspace name cannot contain control characters.", fields={"name": "invalid"})
    return name


def create_team(session: Session, *, user_id: int, name: object) -> Workspace:
    """A new team workspace with the caller as its owner and an empty pool (its own account). Commits."""
    clean = clean_workspace_name(name)
    owner = session.get(User, user_id)
    if owner is None:
        raise NotFound("There is no such person.")
    # The pool's account: a users row nobody can sign in as (no GitHub link; ':' is no GitHub login).
    account = User(login=f"team-new:{secrets.token_hex(12)}", name=clean)
    session.add(account)
    session.flush()
    account.login = f"team:{account.id}"
    workspace = Workspace(name=clean, kind=KIND_TEAM, account_user_id=account.id)
    session.add(workspace)
    session.flush()
    credits.lock_balance(session, account.id)
    session.add(WorkspaceMember(workspace_id=workspace.id, user_id=user_id, login=owner.login.lower(),
                                role=ROLE_OWNER, status=MEMBER_ACTIVE))
    session.commit()
    log.info("workspace %s created by user %s", workspace.id, user_id)
    return workspace


def list_workspaces(session: Session, *, user_id: int) -> list[WorkspaceView]:
    """The workspaces the person is an active member of: the personal one first, then teams by name."""
    rows = session.execute(
        select(Workspace.id, Workspace.name, Workspace.kind, WorkspaceMember.role)
        .join(WorkspaceMember, WorkspaceMember.workspace_id == Workspace.id)
        .where(WorkspaceMember.user_id == user_id, WorkspaceMember.status == MEMBER_ACTIVE)
        .order_by(Workspace.kind, Workspace.name, Workspace.id)
    ).all()
    return [WorkspaceView(*row) for row in rows]


def _clean_cap(monthly_cap: object) -> int | None:
    if monthly_cap is None:
        return None
    if not isinstance(monthly_cap, int) or isinstance(monthly_cap, bool) or not 0 <= monthly_cap <= MAX_MONTHLY_CAP:
        raise InvalidRequest("A monthly cap is a whole number of credits, 0 or more (null: no cap).",
                             fields={"monthly_cap": "not a whole number of credits"})
    return monthly_cap


def _clean_login(login: object) -> str:
    if not isinstance(login, str) or not login.strip():
        raise InvalidRequest("Name the person by their GitHub login.", fields={"login": "is empty"})
    login = login.strip().lstrip("@")
    if len(login) > 39 or not all(ch.isascii() and (ch.isalnum() or ch == "-") for ch in login):
        raise InvalidRequest("A GitHub login has at most 39 letters, digits or hyphens.",
                             fields={"login": "not a GitHub login"})
    return login.lower()


def _team(session: Session, user_id: int, workspace_id: int, action: str) -> policy.Membership:
    found = policy.require(session, user_id, action, workspace_id)
    if found.workspace.kind != KIND_TEAM:
        raise InvalidRequest("A personal workspace has no other members; create a team for that.")
    return found


def _view(member: WorkspaceMember) -> MemberView:
    return MemberView(member.login, member.role, member.monthly_cap, member.status, member.user_id)


def add_member(
    session: Session, *, user_id: int, workspace_id: int, login: object, role: object = ROLE_MEMBER,
    monthly_cap: object = None,
) -> MemberView:
    """Add a person by GitHub login: active at once when they have signed in before, else a pending
    invitation accepted at their first sign-in. Owners and admins; only an owner adds an admin. Commits.
    `Conflict` when the login is already a member or invited."""
    acting = _team(session, user_id, workspace_id, "manage_members")
    clean_login = _clean_login(login)
    if role not in (ROLE_ADMIN, ROLE_MEMBER):
        raise InvalidRequest("A member's role is admin or member.", fields={"role": "admin or member"})
    if role == ROLE_ADMIN:
        policy.require(session, user_id, "manage_roles", workspace_id)
    cap = _clean_cap(monthly_cap)
    existing = session.execute(select(WorkspaceMember).where(
        WorkspaceMember.workspace_id == workspace_id, WorkspaceMember.login == clean_login)).scalar_one_or_none()
    if existing is not None:
        raise Conflict(f"{clean_login} is already a member of {acting.workspace.name} or invited to it.")
    person = session.execute(select(User.id).where(func.lower(User.login) == clean_login)).scalar_one_or_none()
    member = WorkspaceMember(workspace_id=workspace_id, user_id=person, login=clean_login, role=role,
                             monthly_cap=cap, status=MEMBER_ACTIVE if person is not None else MEMBER_PENDING)
    session.add(member)
    session.commit()
    log.info("workspace %s: %s added %s as %s (%s)", workspace_id, user_id, clean_login, role, member.status)
    return _view(member)


def _member(session: Session, workspace_id: int, login: object) -> WorkspaceMember:
    clean_login = login.lower() if isinstance(login, str) else ""
    member = session.execute(select(WorkspaceMember).where(
        WorkspaceMember.workspace_id == workspace_id, WorkspaceMember.login == clean_login)
        .with_for_update()).scalar_one_or_none()
    if member is None:
        raise NotFound(f"{login} is not a member of this workspace.")
    return member


def _owners_left(session: Session, workspace_id: int) -> int:
    return session.execute(select(func.count()).select_from(WorkspaceMember).where(
        WorkspaceMember.workspace_id == workspace_id, WorkspaceMember.role == ROLE_OWNER,
        WorkspaceMember.status == MEMBER_ACTIVE)).scalar_one()


def update_member(
    session: Session, *, user_id: int, workspace_id: int, login: object, changes: dict[str, object]
) -> MemberView:
    """Change a member's role (owners only) and/or monthly cap (owners and admins). Commits.
    The last owner cannot stop being one."""
    _team(session, user_id, workspace_id, "manage_members")
    member = _member(session, workspace_id, login)
    if "monthly_cap" in changes:
        member.monthly_cap = _clean_cap(changes["monthly_cap"])
    if "role" in changes:
        policy.require(session, user_id, "manage_roles", workspace_id)
        role = changes["role"]
        if role not in (ROLE_OWNER, ROLE_ADMIN, ROLE_MEMBER):
            raise InvalidRequest("A role is owner, admin or member.", fields={"role": "unknown role"})
        if member.role == ROLE_OWNER and role != ROLE_OWNER and _owners_left(session, workspace_id) <= 1:
            raise Conflict("A team needs an owner: make someone else owner first.")
        member.role = role
    session.commit()
    return _view(member)


def remove_member(session: Session, *, user_id: int, workspace_id: int, login: object) -> None:
    """Remove a member or invitation (owners and admins; anyone may remove themselves: leaving).
    The last owner cannot leave or be removed. Their holds in flight still settle on the pool. Commits."""
    found = policy.membership(session, user_id, workspace_id)
    if found is None:
        raise NotFound(policy.WORKSPACE_NOT_FOUND)
    if found.workspace.kind != KIND_TEAM:
        raise InvalidRequest("You cannot leave your personal workspace.")
    member = _member(session, workspace_id, login)
    if member.user_id != user_id:
        policy.require(session, user_id, "manage_members", workspace_id)
        if member.role == ROLE_OWNER:
            policy.require(session, user_id, "manage_roles", workspace_id)
    if member.role == ROLE_OWNER and member.status == MEMBER_ACTIVE and _owners_left(session, workspace_id) <= 1:
        raise Conflict("The last owner cannot leave: make someone else owner first.")
    session.delete(member)
    session.commit()
    log.info("workspace %s: %s removed %s", workspace_id, user_id, member.login)


def list_members(session: Session, *, user_id: int, workspace_id: int) -> list[MemberView]:
    policy.require(session, user_id, "view", workspace_id)
    members = session.execute(select(WorkspaceMember).where(WorkspaceMember.workspace_id == workspace_id)
                              .order_by(WorkspaceMember.login)).scalars().all()
    return [_view(member) for member in members]
