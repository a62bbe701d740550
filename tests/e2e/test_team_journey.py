"""An owner builds a team in the browser: creates it, adds a member who has signed in and one who has not,
sets a monthly cap, moves credits into the pool; the member's sends in a team project take the pool down
until their cap refuses one, naming who can raise it. Screenshots at desktop and phone widths."""

from __future__ import annotations

from app.extensions import db
from app.models import Workspace
from app.services import api_tokens, credits, projects
from tests.e2e.conftest import screenshot, sign_in_browser


def test_owner_builds_a_team_and_a_member_meets_their_cap(page, app, make_user, live_server):
    owner = make_user("olivia", balance=5_000)
    member = make_user("marco")
    sign_in_browser(page, app, owner, live_server)

    page.goto("/workspaces")
    page.get_by_label("Team name").fill("Studio North")
    page.get_by_role("button", name="Create team").click()
    page.wait_for_url("**/workspaces/*")
    team_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
    page.get_by_label("GitHub login").fill("marco")
    page.locator("#member-cap").fill("60")
    page.get_by_role("button", name="Add member").click()
    page.get_by_text("marco added.").wait_for()
    page.get_by_label("GitHub login").fill("not-yet-here")
    page.get_by_role("button", name="Add member").click()
    page.get_by_text("invited").wait_for()
    page.get_by_label("Move from your balance").fill("1000")
    page.get_by_role("button", name="Add credits").click()
    page.get_by_text("1000 credits moved to the team's pool.").wait_for()
    assert page.locator(".pool-balance strong").inner_text() == "1,000"
    screenshot(page, "team-workspace-1280")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "team-workspace-390")
    page.set_viewport_size({"width": 1280, "height": 800})

    with app.app_context():
        project_id = projects.create_project(db.session, user_id=owner.id, name="Landing page",
                                             workspace_id=team_id).id
        token = api_tokens.create_token(db.session, user_id=member.id, name="cli").plaintext
        account_id = db.session.get(Workspace, team_id).account_user_id
        db.session.remove()
    client = app.test_client()
    statuses, refusal = [], None
    for attempt in range(8):
        response = client.post("/api/chat", json={"message": f"page {attempt}", "project_id": project_id},
                               headers={"Authorization": f"Bearer {token}"})
        statuses.append(response.status_code)
        if response.status_code == 402:
            refusal = response.get_json()["error"]
            break
    assert statuses[0] == 200 and refusal is not None, statuses
    assert refusal["reason"] == "member_cap"
    assert "marco's monthly cap in Studio North" in refusal["message"] and "olivia can raise it" in refusal["message"]
    with app.app_context():
        pool_balance = credits.credit_summary(db.session, account_id).balance
        db.session.remove()
    assert 1_000 - 60 <= pool_balance < 1_000

    page.goto(f"/workspaces/{team_id}")
    assert page.locator(".pool-balance strong").inner_text() == f"{pool_balance:,}"
    page.goto(f"/projects/{project_id}")
    assert "Studio North" in page.locator(".workspace-switcher summary").inner_text()
    screenshot(page, "team-project-1280", full_page=False)
