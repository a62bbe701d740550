"""Signing in makes the personal workspace and accepts the invitations waiting for the login."""

from __future__ import annotations

from app.extensions import db
from app.services import workspaces
from tests.integration.test_accounts_service import identity, sign_in


def test_first_sign_in_accepts_a_pending_invitation_and_makes_a_personal_workspace(app, make_user):
    owner = make_user("olga")
    with app.app_context():
        team = workspaces.create_team(db.session, user_id=owner.id, name="Crew")
        invited = workspaces.add_member(db.session, user_id=owner.id, workspace_id=team.id, login="NewPerson",
                                        monthly_cap=100)
        team_id = team.id
        db.session.remove()
    assert invited.status == "pending" and invited.user_id is None
    result = sign_in(app, identity(github_id=777, login="NewPerson"))
    with app.app_context():
        views = workspaces.list_workspaces(db.session, user_id=result.user_id)
        assert [(v.name, v.kind, v.role) for v in views] == [("NewPerson", "personal", "owner"), ("Crew", "team", "member")]
        members = workspaces.list_members(db.session, user_id=owner.id, workspace_id=team_id)
        assert {(m.login, m.status, m.monthly_cap) for m in members} == {("olga", "active", None),
                                                                        ("newperson", "active", 100)}
        db.session.remove()
    sign_in(app, identity(github_id=777, login="NewPerson"))  # a second sign-in changes nothing
    with app.app_context():
        assert len(workspaces.list_workspaces(db.session, user_id=result.user_id)) == 2
        db.session.remove()
