"""An owner reads a team's usage in the browser: everyone's spending by member, then one member's by project
and by model, a narrower date range through the form, the CSV; at desktop and phone widths."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

from app.extensions import db
from app.models.base import utcnow
from app.services import credits, projects, workspaces
from tests.e2e.axe import assert_accessible
from tests.e2e.conftest import screenshot, sign_in_browser
from tests.usage_helpers import charge_reply, rebuild_rollups


def build_team(app, make_user):
    owner = make_user("olivia", balance=5_000)
    people = [make_user(login) for login in ("marco", "priya", "sam")]
    with app.app_context():
        team = workspaces.create_team(db.session, user_id=owner.id, name="Studio North")
        for person in people:
            workspaces.add_member(db.session, user_id=owner.id, workspace_id=team.id, login=person.login)
        names = ("Landing page", "Billing API", "Docs site")
        project_ids = [projects.create_project(db.session, user_id=owner.id, name=name, workspace_id=team.id).id
                       for name in names]
        credits.grant_credits(db.session, user_id=team.account_user_id, amount=100_000, note="pool",
                              idempotency_key="pool")
        team_id, pool_id = team.id, team.account_user_id
        db.session.remove()
    number = 0
    for days_ago in range(27, -1, -1):
        for index, person in enumerate(people):
            if (days_ago + index) % 3 == 0:
                continue
            number += 1
            model = "gpt-5" if (days_ago + index) % 2 else "gpt-5-mini"
            status = "failed" if number % 11 == 0 else "stopped" if number % 13 == 0 else "complete"
            charge_reply(app, f"r{number}", account_id=pool_id, member_id=person.id,
                         project_id=project_ids[(days_ago // 2 + index) % 3], model=model, status=status,
                         cost=40 + (days_ago * 7 + index * 23) % 90, tokens_in=1500 + days_ago * 40,
                         tokens_out=600 + index * 150, days_ago=days_ago)
    rebuild_rollups(app)
    return owner, team_id, people


def test_owner_sees_a_members_usage_by_project_and_model_filters_dates_and_exports(
        page, app, make_user, live_server):
    owner, team_id, _ = build_team(app, make_user)
    sign_in_browser(page, app, owner, live_server)

    page.goto(f"/workspaces/{team_id}")
    page.get_by_role("link", name="Team usage").click()
    page.wait_for_url(f"**/workspaces/{team_id}/usage")
    assert page.get_by_role("heading", name="Usage of Studio North").is_visible()
    assert page.get_by_role("img", name="Credits spent per day over").is_visible()
    members = page.locator(".usage-table tbody th").all_inner_texts()
    assert sorted(members) == ["marco", "priya", "sam"]
    everyone = int(page.locator("#usage-total-credits").inner_text().replace(",", ""))
    assert_accessible(page, "workspace usage")
    screenshot(page, "workspace-usage-1280")

    # Sorting is a link: by name, A to Z.
    page.locator(".usage-table thead").get_by_role("link", name="Member").click()
    assert page.locator(".usage-table tbody th").all_inner_texts() == ["marco", "priya", "sam"]

    # One member, by project: their link in the table opens it.
    page.locator(".usage-table tbody").get_by_role("link", name="priya").click()
    page.wait_for_url("**member=priya**")
    assert page.get_by_role("heading", name="By project").is_visible()
    assert sorted(page.locator(".usage-table tbody th").all_inner_texts()) == [
        "Billing API", "Docs site", "Landing page"]
    hers = int(page.locator("#usage-total-credits").inner_text().replace(",", ""))
    assert 0 < hers < everyone
    page.get_by_role("link", name="By model").click()
    assert sorted(page.locator(".usage-table tbody th").all_inner_texts()) == ["gpt-5", "gpt-5-mini"]
    assert page.locator("#usage-member").input_value() == "priya"

    # A narrower range through the form: the last 7 days.
    start = (utcnow().date() - timedelta(days=6)).isoformat()
    page.locator("#usage-from").fill(start)
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(f"**from={start}**")
    week = int(page.locator("#usage-total-credits").inner_text().replace(",", ""))
    assert 0 < week < hers
    assert page.get_by_role("heading", name="By model").is_visible()

    with page.expect_download() as download:
        page.get_by_role("button", name="Export CSV").click()
    assert download.value.suggested_filename.endswith("-by-model.csv") and "-priya-" in download.value.suggested_filename
    rows = list(csv.reader(io.StringIO(open(download.value.path(), encoding="utf-8").read())))
    assert rows[0][0] == "model" and rows[0][-1] == "credits"
    assert sum(int(row[-1]) for row in rows[1:]) == week

    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, "workspace-usage-390")
    screenshot(page, "workspace-usage-390-top", full_page=False)


def test_a_member_is_told_only_owners_and_admins_see_usage(page, app, make_user, live_server):
    owner = make_user("olivia")
    member = make_user("marco")
    with app.app_context():
        team = workspaces.create_team(db.session, user_id=owner.id, name="Studio North")
        workspaces.add_member(db.session, user_id=owner.id, workspace_id=team.id, login="marco")
        team_id = team.id
        db.session.remove()
    sign_in_browser(page, app, member, live_server)
    response = page.goto(f"/workspaces/{team_id}/usage")
    assert response.status == 403
    assert page.get_by_text("Only the workspace's owners and admins may see its usage.").is_visible()



def test_a_member_sees_their_spending_per_project_across_workspaces(page, app, make_user, live_server):
    _, _, people = build_team(app, make_user)
    priya = people[1]
    with app.app_context():
        blog = projects.create_project(db.session, user_id=priya.id, name="Personal blog").id
        credits.grant_credits(db.session, user_id=priya.id, amount=1000, note="start", idempotency_key="priya")
        db.session.remove()
    for number in range(3):
        charge_reply(app, f"own{number}", account_id=priya.id, project_id=blog, cost=70, tokens_in=900,
                     tokens_out=300)
    sign_in_browser(page, app, priya, live_server)
    page.goto("/usage")
    table = page.locator("#usage-by-project")
    names = table.locator("tbody th").all_inner_texts()
    # The team's three projects (paid by its pool) and her own, biggest first.
    assert sorted(names) == ["Billing API", "Docs site", "Landing page", "Personal blog"]
    blog_row = table.locator("tbody tr", has=page.get_by_role("rowheader", name="Personal blog"))
    assert blog_row.locator("td").all_inner_texts() == ["210", "3", "2,700", "900"]
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.locator("#projects-heading").scroll_into_view_if_needed()
    screenshot(page, "usage-by-project-390", full_page=False)
