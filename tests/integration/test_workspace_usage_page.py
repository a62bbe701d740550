"""A workspace's usage page and CSV with JavaScript off: owners and admins see it, a member gets 403, a
removed member and an outsider 404 (`policy.py`); date, member and grouping filters are a GET form, sorting
is links, bad input is a 400 sentence next to the form; a person's own page shows spending per project."""

from __future__ import annotations

import csv
import html
import io
import re
from datetime import timedelta

import pytest

from app.extensions import db
from app.models.base import utcnow
from app.services import credits, projects, workspaces
from tests.conftest import sign_in
from tests.team_helpers import ROLES, team_in_every_role
from tests.usage_helpers import charge_reply, rebuild_rollups


@pytest.fixture
def team(app, make_user):
    people, team_id, pool_id = team_in_every_role(app, make_user)
    with app.app_context():
        site = projects.create_project(db.session, user_id=people["member"].id, name="site", workspace_id=team_id).id
        api = projects.create_project(db.session, user_id=people["admin"].id, name="api", workspace_id=team_id).id
        credits.grant_credits(db.session, user_id=pool_id, amount=10_000, note="pool", idempotency_key="pool")
        ids = {"team": team_id, "site": site, "api": api, "pool": pool_id}
        db.session.remove()
    member, admin = people["member"].id, people["admin"].id
    charge_reply(app, "m1", account_id=pool_id, member_id=member, project_id=site, cost=300, tokens_in=1000,
                 tokens_out=400, days_ago=2)
    charge_reply(app, "m2", account_id=pool_id, member_id=member, project_id=api, model="gpt-5-mini", cost=40,
                 tokens_in=200, tokens_out=50, status="failed", days_ago=1)
    charge_reply(app, "m3", account_id=pool_id, member_id=member, project_id=site, cost=25, tokens_in=90,
                 tokens_out=30, status="stopped", days_ago=40)
    charge_reply(app, "a1", account_id=pool_id, member_id=admin, project_id=api, cost=100, tokens_in=500,
                 tokens_out=100)
    rebuild_rollups(app)
    with app.app_context():
        workspaces.remove_member(db.session, user_id=people["owner"].id, workspace_id=ids["team"],
                                 login="removed-person")
        db.session.remove()
    return ids, people


def text_of(response) -> str:
    return response.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/workspaces/{team}/usage", "/workspaces/{team}/usage.csv"])
def test_each_role_gets_what_the_policy_says(app, team, path):
    ids, people = team
    for role, expected in zip(ROLES, (200, 200, 403, 404, 404), strict=True):
        client = app.test_client()
        sign_in(client, people[role])
        response = client.get(path.format(**ids))
        assert response.status_code == expected, (role, response.status_code)
        if expected == 403:
            assert "Only the workspace's owners and admins may see its usage." in html.unescape(text_of(response))
    assert app.test_client().get(path.format(**ids)).status_code in (302, 401)


def test_the_owner_filters_by_member_dates_and_grouping(app, team, client):
    ids, people = team
    sign_in(client, people["owner"])
    base = f"/workspaces/{ids['team']}/usage"
    everyone = text_of(client.get(base))
    # The last 30 days by default: the 40-day-old reply is outside them.
    assert re.search(r'id="usage-total-credits">440<', everyone)
    assert "member-person" in everyone and "admin-person" in everyone
    assert f'href="{base}?from=' in everyone  # sorting and grouping are plain links
    assert 'aria-label="Credits spent per day over ' in everyone or "Credits spent per day over" in everyone

    start = (utcnow().date() - timedelta(days=60)).isoformat()
    hers = text_of(client.get(base, query_string={"member": "member-person", "group_by": "project", "from": start}))
    rows = re.findall(r'<th scope="row">\s*([^<]+?)\s*</th>((?:\s*<td class="num">[^<]*</td>)+)', hers)
    table = {name: re.findall(r">([^<]*)</td>", cells) for name, cells in rows}
    # Credits, replies, failed, stopped, tokens in, tokens out.
    assert table["site"] == ["325", "2", "0", "1", "1,090", "430"]
    assert table["api"] == ["40", "1", "1", "0", "200", "50"]
    assert table["Total"] == ["365", "3", "1", "1", "1,290", "480"]
    assert list(table)[:2] == ["site", "api"]  # biggest first

    ascending = text_of(client.get(base, query_string={"member": "member-person", "group_by": "project",
                                                        "from": start, "sort": "credits", "dir": "asc"}))
    names = re.findall(r'<th scope="row">\s*([^<]+?)\s*</th>', ascending)
    assert names[:2] == ["api", "site"] and 'aria-sort="ascending"' in ascending

    by_model = text_of(client.get(base, query_string={"group_by": "model", "from": start}))
    assert "gpt-5-mini" in by_model and "gpt-5" in by_model


@pytest.mark.parametrize("query, field, sentence", [
    ({"from": "yesterday"}, "usage-from", "from must be a date like 2026-12-01."),
    ({"from": "2026-12-09", "to": "2026-12-01"}, "usage-to", "The range must end on or after its first day."),
    ({"from": "2025-01-01", "to": "2026-01-01"}, "usage-from", "Choose a range of at most 92 days."),
    ({"group_by": "colour"}, None, "group_by is member, project, model or day."),
    ({"sort": "name"}, None, "sort is one of"),
])
def test_bad_filters_say_what_is_wrong(app, team, client, query, field, sentence):
    ids, people = team
    sign_in(client, people["admin"])
    response = client.get(f"/workspaces/{ids['team']}/usage", query_string=query)
    assert response.status_code == 400
    page = text_of(response)
    assert sentence in page
    if field:
        assert re.search(rf'id="{field}"[^>]*aria-invalid="true"', page)
    assert client.get(f"/api/workspaces/{ids['team']}/usage", query_string=query).status_code == 400


def test_an_unknown_member_is_a_400_naming_the_field(app, team, client):
    ids, people = team
    sign_in(client, people["owner"])
    response = client.get(f"/api/workspaces/{ids['team']}/usage?member=nobody-here")
    assert response.status_code == 400
    assert response.get_json()["error"]["fields"] == {"member": "unknown login"}
    assert "nobody-here" in response.get_json()["error"]["message"]
    page = client.get(f"/workspaces/{ids['team']}/usage?member=nobody-here")
    assert page.status_code == 400 and "choose one of the team" in html.unescape(text_of(page))
    assert re.search(r'id="usage-member"[^>]*aria-invalid="true"', text_of(page))


def test_the_csv_has_the_tables_rows_and_defuses_formulas(app, team, client):
    ids, people = team
    with app.app_context():
        projects.update_project(db.session, user_id=people["admin"].id, project_id=ids["api"],
                                name="=HYPERLINK(1)")
        db.session.remove()
    sign_in(client, people["owner"])
    response = client.get(f"/workspaces/{ids['team']}/usage.csv", query_string={"group_by": "project"})
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert re.match(r'attachment; filename="sorya-usage-\d+-\d{4}-\d\d-\d\d-\d{4}-\d\d-\d\d-by-project\.csv"',
                    response.headers["Content-Disposition"])
    found = list(csv.reader(io.StringIO(text_of(response))))
    assert found[0] == ["project", "replies", "failed_replies", "stopped_replies", "tokens_in", "tokens_out",
                        "credits"]
    by_name = {row[0]: row[1:] for row in found[1:]}
    assert by_name["site"] == ["1", "0", "0", "1000", "400", "300"]
    assert by_name["'=HYPERLINK(1)"] == ["2", "1", "0", "700", "150", "140"]  # text, never a formula


def test_the_api_gives_failed_and_stopped_replies_too(app, team, client):
    ids, people = team
    sign_in(client, people["admin"])
    start = (utcnow().date() - timedelta(days=60)).isoformat()
    rows = client.get(f"/api/workspaces/{ids['team']}/usage?group_by=member&from={start}").get_json()["rows"]
    assert rows == [
        {"key": "member-person", "tokens_in": 1290, "tokens_out": 480, "credits": 365, "replies": 3,
         "failed_replies": 1, "stopped_replies": 1},
        {"key": "admin-person", "tokens_in": 500, "tokens_out": 100, "credits": 100, "replies": 1,
         "failed_replies": 0, "stopped_replies": 0},
    ]


def test_a_persons_usage_page_shows_their_spending_per_project(app, team, client, make_user):
    ids, people = team
    with app.app_context():
        own = projects.create_project(db.session, user_id=people["member"].id, name="my <b>blog</b>").id
        db.session.remove()
    charge_reply(app, "own", account_id=people["member"].id, project_id=own, cost=9, tokens_in=30, tokens_out=3)
    sign_in(client, people["member"])
    page = text_of(client.get("/usage"))
    table = page[page.index('id="usage-by-project"'):]
    names = re.findall(r'<th scope="row">([^<]*)</th>', table)
    assert names == ["site", "api", "my &lt;b&gt;blog&lt;/b&gt;"]  # the team's pool and their own, escaped
    assert re.search(r'<th scope="row">site</th><td class="num">300</td>\s*<td class="num">1</td>', table)
