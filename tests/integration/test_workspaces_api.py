"""Workspaces through the JSON API: members by login (active or pending), roles, caps, a team's pool, and
the policy for every id-taking route: an owner, an admin, a member, a removed member and an outsider get
exactly what `services/policy.py` says (404 for what they may not know exists, 403 for what they may not
do)."""

from __future__ import annotations

import pytest

from app.extensions import db
from app.models.base import utcnow
from app.services import api_tokens, projects, workspaces
from tests.team_helpers import ROLES, team_in_every_role


def bearer(app, user) -> dict[str, str]:
    with app.app_context():
        token = api_tokens.create_token(db.session, user_id=user.id, name="t").plaintext
        db.session.remove()
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def team(app, make_user):
    people, team_id, _ = team_in_every_role(app, make_user)
    with app.app_context():
        workspaces.remove_member(db.session, user_id=people["owner"].id, workspace_id=team_id, login="removed-person")
        project = projects.create_project(db.session, user_id=people["member"].id, name="shared",
                                          workspace_id=team_id)
        personal = projects.create_project(db.session, user_id=people["member"].id, name="mine")
        ids = {"team": team_id, "project": project.id, "personal": personal.id}
        db.session.remove()
    headers = {role: bearer(app, person) for role, person in people.items()}
    return ids, headers, people


# route -> what each of owner, admin, member, removed, outsider gets.
EXPECTED = {
    ("GET", "/api/projects/{project}"): (200, 200, 200, 404, 404),
    ("PATCH", "/api/projects/{project}"): (200, 200, 200, 404, 404),
    ("GET", "/api/projects/{project}/snapshots"): (200, 200, 200, 404, 404),
    ("GET", "/api/chat/history?project_id={project}"): (200, 200, 200, 404, 404),
    ("GET", "/api/projects/{personal}"): (404, 404, 200, 404, 404),
    ("GET", "/api/workspaces/{team}/members"): (200, 200, 200, 404, 404),
    ("GET", "/api/workspaces/{team}/credits"): (200, 200, 200, 404, 404),
    ("PATCH", "/api/workspaces/{team}/members/member-person"): (200, 200, 403, 404, 404),
    ("POST", "/api/workspaces/{team}/members"): (201, 201, 403, 404, 404),
    ("POST", "/api/workspaces/{team}/credits"): (201, 201, 403, 404, 404),
    ("GET", "/api/workspaces/{team}/usage"): (200, 200, 403, 404, 404),
    ("DELETE", "/api/projects/{project}"): (204, 204, 403, 404, 404),
}
BODIES = {"PATCH": {"monthly_cap": 500}, "POST": {"amount": 10}}


@pytest.mark.parametrize("route", list(EXPECTED), ids=lambda r: f"{r[0]} {r[1]}")
def test_each_role_gets_what_the_policy_says(app, team, route):
    ids, headers, people = team
    method, template = route
    for role, expected in zip(ROLES, EXPECTED[route], strict=True):
        client = app.test_client()
        path = template.format(**ids)
        body = BODIES.get(method)
        if path.endswith("/members") and method == "POST":
            body = {"login": f"new-{role}"}
        if template.startswith("/api/projects/{project}") and method == "PATCH":
            body = {"name": f"renamed by {role}"}
        response = client.open(path, method=method, json=body, headers=headers[role])
        assert response.status_code == expected, (role, path, response.get_json(silent=True))
        if expected == 404:
            assert "not" in response.get_json()["error"]["message"]
        if response.status_code == 204:  # deleted: give the next role a project to refuse
            with app.app_context():
                ids["project"] = projects.create_project(db.session, user_id=people["member"].id,
                                                         name="again", workspace_id=ids["team"]).id
                db.session.remove()


def test_lists_show_team_projects_never_another_members_personal_ones(app, team):
    ids, headers, _ = team
    seen = {role: {p["id"] for p in app.test_client().get("/api/projects", headers=headers[role])
                   .get_json()["projects"]} for role in ROLES}
    assert seen["owner"] == seen["admin"] == {ids["project"]}
    assert seen["member"] == {ids["project"], ids["personal"]}
    assert ids["project"] not in seen["removed"] | seen["outsider"]
    only_team = app.test_client().get(f"/api/projects?workspace_id={ids['team']}", headers=headers["member"])
    assert [p["id"] for p in only_team.get_json()["projects"]] == [ids["project"]]
    listed = app.test_client().get("/api/workspaces", headers=headers["member"]).get_json()["workspaces"]
    assert [(w["name"], w["kind"], w["role"]) for w in listed] == [
        ("member-person", "personal", "owner"), ("Acme", "team", "member")]


def test_add_by_login_active_or_pending_and_caps(app, team, make_user):
    ids, headers, people = team
    client = app.test_client()
    added = client.post(f"/api/workspaces/{ids['team']}/members", json={"login": "outsider-person",
                        "monthly_cap": 300}, headers=headers["owner"])
    assert added.status_code == 201 and added.get_json() == {
        "login": "outsider-person", "role": "member", "monthly_cap": 300, "status": "active"}
    pending = client.post(f"/api/workspaces/{ids['team']}/members", json={"login": "Newcomer"},
                          headers=headers["admin"])
    assert pending.get_json()["status"] == "pending"
    again = client.post(f"/api/workspaces/{ids['team']}/members", json={"login": "newcomer"}, headers=headers["owner"])
    assert again.status_code == 409
    bad = client.post(f"/api/workspaces/{ids['team']}/members", json={"login": "../x"}, headers=headers["owner"])
    assert bad.status_code == 400 and "login" in bad.get_json()["error"]["fields"]
    # An admin may not make admins; only owners change roles.
    assert client.post(f"/api/workspaces/{ids['team']}/members", json={"login": "x1", "role": "admin"},
                       headers=headers["admin"]).status_code == 403
    assert client.patch(f"/api/workspaces/{ids['team']}/members/member-person", json={"role": "admin"},
                        headers=headers["admin"]).status_code == 403
    # The last owner can neither leave nor be demoted.
    assert client.delete(f"/api/workspaces/{ids['team']}/members/owner-person",
                         headers=headers["owner"]).status_code == 409
    assert client.patch(f"/api/workspaces/{ids['team']}/members/owner-person", json={"role": "member"},
                        headers=headers["owner"]).status_code == 409
    # A member may leave.
    assert client.delete(f"/api/workspaces/{ids['team']}/members/member-person",
                         headers=headers["member"]).status_code == 204
    assert client.get(f"/api/projects/{ids['project']}", headers=headers["member"]).status_code == 404


def test_grant_to_pool_moves_credits_exactly_or_402(app, team):
    ids, headers, _ = team
    client = app.test_client()
    granted = client.post(f"/api/workspaces/{ids['team']}/credits", json={"amount": 400}, headers=headers["owner"])
    assert granted.status_code == 201 and granted.get_json() == {"balance": 400}
    assert client.get("/api/credits", headers=headers["owner"]).get_json()["balance"] == 600
    too_much = client.post(f"/api/workspaces/{ids['team']}/credits", json={"amount": 601}, headers=headers["owner"])
    assert too_much.status_code == 402 and too_much.get_json()["error"]["reason"] == "balance"
    assert client.get(f"/api/workspaces/{ids['team']}/credits", headers=headers["owner"]).get_json()["balance"] == 400
    retried = [client.post(f"/api/workspaces/{ids['team']}/credits", json={"amount": 50},
                           headers={**headers["admin"], "Idempotency-Key": "k1"}) for _ in range(2)]
    assert [r.get_json()["balance"] for r in retried] == [450, 450]
    assert client.get("/api/credits", headers=headers["admin"]).get_json()["balance"] == 950
    assert app.test_cli_runner().invoke(args=["credits", "reconcile"]).exit_code == 0


def test_usage_by_member_model_and_project_for_owners_and_admins_only(app, team):
    ids, headers, people = team
    client = app.test_client()
    client.post(f"/api/workspaces/{ids['team']}/credits", json={"amount": 900}, headers=headers["owner"])
    for _ in range(2):
        sent = client.post("/api/chat", json={"message": "hello", "project_id": ids["project"]},
                           headers=headers["member"])
        assert sent.status_code == 200, sent.get_json()
    by_member = client.get(f"/api/workspaces/{ids['team']}/usage?group_by=member", headers=headers["admin"]).get_json()
    assert [(r["key"], r["replies"]) for r in by_member["rows"]] == [("member-person", 2)]
    spent = by_member["rows"][0]["credits"]
    assert spent > 0 and by_member["rows"][0]["tokens_out"] > 0
    pool_now = client.get(f"/api/workspaces/{ids['team']}/credits", headers=headers["owner"]).get_json()
    assert pool_now["balance"] == 900 - spent
    assert pool_now["members"][[m["login"] for m in pool_now["members"]].index("member-person")]["spent_this_month"] == spent
    by_project = client.get(f"/api/workspaces/{ids['team']}/usage?group_by=project", headers=headers["owner"])
    assert [r["key"] for r in by_project.get_json()["rows"]] == ["shared"]
    assert client.get(f"/api/workspaces/{ids['team']}/usage", headers=headers["member"]).status_code == 403
    assert client.get(f"/api/workspaces/{ids['team']}/usage", headers=headers["outsider"]).status_code == 404
    bad = client.get(f"/api/workspaces/{ids['team']}/usage?group_by=color", headers=headers["owner"])
    assert bad.status_code == 400
    month = utcnow().strftime("%Y-%m")
    report = app.test_cli_runner().invoke(args=["usage", "report", "--workspace", "Acme", "--month", month])
    assert report.exit_code == 0, report.output
    assert "member-person\t2\t" in report.output and f"\t{spent}\t0\t0\n" in report.output
    assert "shared\t2\t" in report.output
    bad_month = app.test_cli_runner().invoke(args=["usage", "report", "--workspace", "Acme", "--month", "13/2026"])
    assert bad_month.exit_code != 0 and "--month must look like" in bad_month.output
