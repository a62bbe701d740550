"""Workspace pages with JavaScript off: create a team, add members, set a cap, move credits in, leave; the
header's switcher names the workspace of the project on screen."""

from __future__ import annotations

import re

from app.extensions import db
from app.services import projects
from tests.conftest import csrf_token_for, sign_in


def page(response) -> str:
    return response.get_data(as_text=True)


def test_a_team_through_its_forms(client, make_user, app):
    owner = make_user("olga", balance=500)
    make_user("mia")
    sign_in(client, owner)
    token = csrf_token_for(client)
    refused = client.post("/workspaces", data={"csrf_token": token, "name": "   "})
    assert refused.status_code == 400 and "Give the workspace a name." in page(refused)
    created = client.post("/workspaces", data={"csrf_token": token, "name": "Night <b>Owls</b>"})
    team_id = int(re.search(r"/workspaces/(\d+)$", created.headers["Location"]).group(1))
    client.post(f"/workspaces/{team_id}/members", data={"csrf_token": token, "login": "mia", "monthly_cap": "300"})
    client.post(f"/workspaces/{team_id}/members", data={"csrf_token": token, "login": "newbie"})
    bad_cap = client.post(f"/workspaces/{team_id}/members/mia", data={"csrf_token": token, "monthly_cap": "lots"})
    assert bad_cap.status_code == 400 and "monthly cap is a whole number" in page(bad_cap)
    too_much = client.post(f"/workspaces/{team_id}/credits", data={"csrf_token": token, "amount": "900"})
    assert too_much.status_code == 402 and "you have 500" in page(too_much)
    client.post(f"/workspaces/{team_id}/credits", data={"csrf_token": token, "amount": "200"})
    shown = page(client.get(f"/workspaces/{team_id}"))
    assert "Night &lt;b&gt;Owls&lt;/b&gt;" in shown and "<b>Owls" not in shown
    assert "invited" in shown and "mia" in shown and 'value="300"' in shown
    assert re.search(r"<strong>200</strong> credits", shown)
    with app.app_context():
        project = projects.create_project(db.session, user_id=owner.id, name="Site", workspace_id=team_id)
        project_id = project.id
        db.session.remove()
    project_page = page(client.get(f"/projects/{project_id}"))
    switcher = project_page.split('class="dropdown workspace-switcher"')[1].split("</summary>")[0]
    assert "Night &lt;b&gt;Owls&lt;/b&gt;" in switcher
    listed = page(client.get(f"/projects?workspace_id={team_id}"))
    assert "Site" in listed
    last_owner = client.post(f"/workspaces/{team_id}/members/olga/remove", data={"csrf_token": token})
    assert last_owner.status_code == 409 and "The last owner cannot leave" in page(last_owner)
    no_csrf = client.post(f"/workspaces/{team_id}/members", data={"login": "x"})
    assert no_csrf.status_code in (400, 403)
