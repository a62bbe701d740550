"""`flask workspaces list` and `flask credits grant --workspace NAME AMOUNT`: a team's pool on the ledger."""

from __future__ import annotations

from app.extensions import db
from app.services import credits, workspaces


def test_grant_to_a_team_pool_and_list_workspaces(app, make_user):
    owner = make_user("boss", balance=10)
    with app.app_context():
        team = workspaces.create_team(db.session, user_id=owner.id, name="Acme Labs")
        workspaces.ensure_personal_workspace(db.session, user_id=owner.id, login="boss")
        db.session.commit()
        team_id, account_id = team.id, team.account_user_id
        db.session.remove()
    runner = app.test_cli_runner()
    granted = runner.invoke(args=["credits", "grant", "--workspace", "Acme Labs", "700", "--reason", "pilot"])
    assert granted.exit_code == 0, granted.output
    taken = runner.invoke(args=["credits", "grant", "--workspace", "Acme Labs", "-900", "--reason", "oops"])
    assert taken.exit_code == 0 and "stopped at a zero balance" in taken.output
    runner.invoke(args=["credits", "grant", "--workspace", "Acme Labs", "250", "--reason", "again"])
    with app.app_context():
        assert credits.credit_summary(db.session, account_id).balance == 250
        assert credits.credit_summary(db.session, owner.id).balance == 10
        db.session.remove()
    missing = runner.invoke(args=["credits", "grant", "--workspace", "Nope", "5", "--reason", "x"])
    assert missing.exit_code != 0 and "No single team workspace named 'Nope'" in missing.output
    person = runner.invoke(args=["credits", "grant", "boss", "5", "--reason", "still works"])
    assert person.exit_code == 0, person.output
    listed = runner.invoke(args=["workspaces", "list"]).output.splitlines()
    assert f"{team_id}\tAcme Labs\tteam\t1\t250" in listed
    assert any(line.endswith("\tboss\tpersonal\t1\t15") for line in listed), listed
    assert runner.invoke(args=["credits", "reconcile"]).exit_code == 0
