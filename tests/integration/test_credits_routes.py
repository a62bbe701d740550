"""The usage page, its CSV export and the credits API, end to end through the Flask test client."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import pytest

from app.extensions import db
from app.models import CreditHold
from app.models.base import utcnow
from app.services import credits
from tests.conftest import sign_in


@pytest.fixture
def alice(app, make_user):
    return make_user("alice", balance=1000)


@pytest.fixture
def alice_client(client, alice):
    sign_in(client, alice)
    return client


def post(app, user, delta, key, reason="chat", **fields):
    with app.app_context():
        entry = credits.post_ledger_entry(
            db.session, user_id=user.id, delta=delta, reason=reason, idempotency_key=key, **fields
        ).entry
        entry_id = entry.id
        db.session.remove()
    return entry_id


# -- access --------------------------------------------------------------------------------------


def test_usage_page_and_export_need_a_session(client):
    for path in ("/usage", "/usage/ledger.csv"):
        response = client.get(path)
        assert response.status_code == 302 and "next=" in response.headers["Location"]


@pytest.mark.parametrize("path", ["/api/credits", "/api/credits/ledger"])
def test_api_needs_authentication(client, path):
    response = client.get(path)
    assert response.status_code == 401
    assert response.json["error"]["code"] == "unauthenticated"


def test_the_api_and_page_show_only_the_signed_in_users_ledger(app, alice_client, make_user):
    mallory = make_user("mallory", balance=777)
    secret_id = post(app, mallory, -5, "mallory:secret", meta={"note": "mallory-only-note"})
    body = alice_client.get("/api/credits/ledger").json
    assert all(entry["id"] != secret_id for entry in body["entries"])
    assert alice_client.get("/api/credits").json["balance"] == 1000
    page = alice_client.get("/usage").get_data(as_text=True)
    assert "mallory-only-note" not in page and "777" not in page
    assert "mallory-only-note" not in alice_client.get("/usage/ledger.csv").get_data(as_text=True)


# -- API -----------------------------------------------------------------------------------------


def test_api_credits_reports_balance_and_held(app, alice_client, alice):
    with app.app_context():
        credits.place_hold(db.session, user_id=alice.id, amount=250, idempotency_key="h1")
        db.session.remove()
    response = alice_client.get("/api/credits")
    assert response.status_code == 200
    assert response.json == {"balance": 1000, "held": 250, "available": 750}


def test_api_credits_releases_an_expired_hold_before_answering(app, alice_client, alice):
    with app.app_context():
        hold = credits.place_hold(db.session, user_id=alice.id, amount=250, idempotency_key="h1")
        db.session.execute(
            CreditHold.__table__.update().where(CreditHold.id == hold.id).values(expires_at=utcnow() - timedelta(seconds=1))
        )
        db.session.commit()
        db.session.remove()
    assert alice_client.get("/api/credits").json == {"balance": 1000, "held": 0, "available": 1000}


def test_api_ledger_pages_newest_first_with_a_keyset_cursor(app, alice_client, alice):
    ids = [post(app, alice, -(number + 1), f"c{number}", model="gpt-5", meta={"tokens_in": 10}) for number in range(5)]
    first = alice_client.get("/api/credits/ledger?limit=2").json
    assert [entry["id"] for entry in first["entries"]] == [ids[4], ids[3]]
    assert first["next_before"] == ids[3]
    entry = first["entries"][0]
    assert set(entry) >= {"id", "delta", "reason", "created_at", "meta"}
    assert (entry["delta"], entry["reason"], entry["meta"], entry["model"]) == (-5, "chat", {"tokens_in": 10}, "gpt-5")
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", entry["created_at"]) and entry["created_at"].endswith("+00:00")

    second = alice_client.get(f"/api/credits/ledger?limit=2&before={first['next_before']}").json
    third = alice_client.get(f"/api/credits/ledger?limit=2&before={second['next_before']}").json
    assert [e["id"] for e in second["entries"]] == [ids[2], ids[1]]
    # The starting balance is the oldest entry; after it there is nothing more.
    assert [e["delta"] for e in third["entries"]] == [-1, 1000] and third["next_before"] is None
    default = alice_client.get("/api/credits/ledger").json
    assert len(default["entries"]) == 6 and default["next_before"] is None


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=abc", "limit"),
        ("limit=-3", "limit"),
        ("before=0", "before"),
        ("before=x1", "before"),
        ("before=1e3", "before"),
        ("before=%00", "before"),
    ],
)
def test_api_ledger_rejects_bad_parameters_with_the_field_named(alice_client, query, field):
    response = alice_client.get(f"/api/credits/ledger?{query}")
    assert response.status_code == 400
    error = response.json["error"]
    assert error["code"] == "invalid_request" and field in error["fields"] and field in error["message"]


def test_api_ledger_accepts_the_limit_bounds(alice_client):
    assert alice_client.get("/api/credits/ledger?limit=1").status_code == 200
    assert alice_client.get("/api/credits/ledger?limit=100").status_code == 200


# -- the usage page ------------------------------------------------------------------------------


def test_a_new_user_sees_empty_states_that_say_what_happens_next(alice_client, app, make_user):
    newcomer = make_user("newcomer")
    sign_in(alice_client, newcomer)
    page = alice_client.get("/usage").get_data(as_text=True)
    assert "No credits spent in the last 30 days." in page
    assert "Your ledger is empty." in page
    assert "<svg" not in page


def test_usage_page_shows_balance_held_chart_and_ledger_in_words(app, alice_client, alice):
    with app.app_context():
        hold = credits.place_hold(db.session, user_id=alice.id, amount=300, idempotency_key="h1")
        credits.settle_hold(
            db.session, hold_id=hold.id, charge=42, idempotency_key="chat:1", model="gpt-5",
            meta={"tokens_in": 1200, "tokens_out": 800, "message_id": 9},
        )
        credits.place_hold(db.session, user_id=alice.id, amount=100, idempotency_key="h2")
        db.session.remove()
    post(app, alice, 20000, "invoice:in_1", reason="plan_grant", meta={"plan": "pro", "invoice_id": "in_1"})
    response = alice_client.get("/usage")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert re.search(r'id="usage-balance">20,958<', page)
    assert re.search(r'id="usage-held">100<', page)
    assert re.search(r'id="usage-available">20,858<', page)
    # The chart: accessible name and description, a bar per model and day, a legend.
    assert 'role="img"' in page and "<title id=\"usage-chart-title\">" in page
    assert "42 credits spent over the last 30 days" in page
    assert "· gpt-5: 42 credits</title>" in page
    assert 'class="chart-swatch chart-series-0"' in page
    # The ledger, newest first, in words.
    titles = re.findall(r'class="ledger-title">([^<]+)<', page)
    assert titles == ["Plan credits", "Chat reply", "Adjustment"]
    assert "gpt-5 · 1,200 tokens in, 800 out" in page
    assert "Pro plan" in page
    assert "+20,000" in page and "-42" in page
    assert 'href="/usage/ledger.csv"' in page
    # The header counter and the nav link to this page.
    assert re.search(r'id="credit-counter"[^>]*href="/usage"', page, re.S)
    assert 'aria-current="page"' in page


def test_usage_page_escapes_text_from_the_ledger(app, alice_client, alice):
    post(app, alice, 5, "xss", reason="refund", meta={"note": "<script>alert(1)</script> & <b>"},
         model="<img src=x onerror=alert(1)>")
    page = alice_client.get("/usage").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;" in page


def test_usage_page_ledger_is_paginated_with_htmx_and_without(app, alice_client, alice):
    for number in range(credits.LEDGER_PAGE_DEFAULT + 5):
        post(app, alice, -1, f"c{number}", meta={"note": f"entry number {number}"})
    page = alice_client.get("/usage").get_data(as_text=True)
    assert page.count('class="ledger-title"') == credits.LEDGER_PAGE_DEFAULT
    assert "entry number 54" in page and "entry number 4<" not in page
    older = re.search(r'href="(/usage\?before=\d+)#ledger"', page).group(1)

    full = alice_client.get(older).get_data(as_text=True)
    assert "entry number 4<" in full and "entry number 54" not in full and "Newest entries" in full
    assert "<html" in full

    fragment = alice_client.get(older, headers={"HX-Request": "true", "HX-Target": "ledger"}).get_data(as_text=True)
    assert "<html" not in fragment
    assert 'id="ledger"' in fragment and "entry number 0<" in fragment
    # The oldest page ends the pagination.
    assert "Older entries" not in fragment


def test_usage_page_rejects_a_malformed_cursor(alice_client):
    response = alice_client.get("/usage?before=abc")
    assert response.status_code == 400
    assert "before must be a whole number" in response.get_data(as_text=True)


# -- CSV export ----------------------------------------------------------------------------------


def test_csv_export_streams_the_whole_ledger_with_formulas_defused(app, alice_client, alice):
    post(app, alice, -3, "c1", model="gpt-5", meta={"tokens_in": 100, "tokens_out": 50})
    post(app, alice, 7, "r1", reason="refund", meta={"note": "=cmd|' /C calc'!A0"})
    post(app, alice, 2, "r2", reason="refund", meta={"note": "@SUM(A1:A2), \"quoted\"\nsecond line"})
    post(app, alice, 1, "r3", reason="refund", meta={"note": "+1+2"}, model="-2+3")
    response = alice_client.get("/usage/ledger.csv")
    assert response.status_code == 200
    assert response.is_streamed
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="sorya-ledger-')
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [row["delta"] for row in rows] == ["1", "2", "7", "-3", "1000"]  # newest first; numbers stay numbers
    assert rows[2]["details"] == "'=cmd|' /C calc'!A0"
    assert rows[1]["details"] == "'@SUM(A1:A2), \"quoted\" second line"
    assert rows[0]["details"].startswith("'-2+3 · +1+2") and rows[0]["model"] == "'-2+3"
    assert rows[3]["description"] == "Chat reply" and rows[3]["details"] == "gpt-5 · 100 tokens in, 50 out"
    assert rows[3]["reason"] == "chat" and rows[3]["balance_after"] == "997"
    assert rows[2]["meta"].startswith("{") and "=cmd" in rows[2]["meta"]
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "@", "\t", "\r")), value
            assert not value.startswith("-") or re.fullmatch(r"-\d+", value), value


def test_csv_export_of_a_long_ledger_is_complete(app, alice_client, alice, monkeypatch):
    from app.web import credits as credits_web

    real = credits.iter_ledger_entries
    monkeypatch.setattr(credits_web.credits, "iter_ledger_entries", lambda session, user_id: real(session, user_id, batch_size=7))
    for number in range(40):
        post(app, alice, 1, f"g{number}", reason="refund")
    rows = list(csv.DictReader(io.StringIO(alice_client.get("/usage/ledger.csv").get_data(as_text=True))))
    assert len(rows) == 41 and len({row["id"] for row in rows}) == 41
    assert [int(row["id"]) for row in rows] == sorted((int(row["id"]) for row in rows), reverse=True)
