"""Workspaces: personal and team, members and invitations (`membership.py`), a team's pool and its
members' monthly caps (`pool.py`). Who may do what is `app/services/policy.py`'s."""

from app.services.workspaces.membership import (
    MemberView,
    WorkspaceView,
    accept_invitations,
    add_member,
    create_team,
    ensure_personal_workspace,
    list_members,
    list_workspaces,
    personal_workspace_id,
    remove_member,
    update_member,
)

__all__ = [
    "MemberView", "WorkspaceView", "accept_invitations", "add_member", "create_team", "ensure_personal_workspace",
    "list_members", "list_workspaces", "personal_workspace_id", "remove_member", "update_member",
]
