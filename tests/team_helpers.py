"""A team with a person in every role, for the role guards of workspace routes."""

from __future__ import annotations

from app.extensions import db
from app.services import workspaces

ROLES = ("owner", "admin", "member", "removed", "outsider")


def team_in_every_role(app, make_user) -> tuple[dict, int, int]:
    """People named `<role>-person` (1,000 credits each) and the team "Acme" that the owner made and added the
    admin, the member and the one to be removed to (the caller removes them when its setup is done).
    Returns (people by role, team id, the pool's account id)."""
    people = {role: make_user(f"{role}-person", balance=1000) for role in ROLES}
    with app.app_context():
        team = workspaces.create_team(db.session, user_id=people["owner"].id, name="Acme")
        for role in ("admin", "member", "removed"):
            workspaces.add_member(db.session, user_id=people["owner"].id, workspace_id=team.id,
                                  login=people[role].login, role="admin" if role == "admin" else "member")
        ids = team.id, team.account_user_id
        db.session.remove()
    return people, *ids
