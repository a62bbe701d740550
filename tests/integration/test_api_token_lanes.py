"""Personal API tokens stay in their lane: `/api` only (never a page or a form), a `read` token only
reads, an expired token is refused with a sentence saying so, and the CLI makes tokens of each kind."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.models import ApiToken, Project, User
from app.models.base import utcnow
from app.services import api_tokens
from tests.conftest import csrf_token_for


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def new_token(app, user, **options) -> str:
    from app.extensions import db

    with app.app_context():
        return api_tokens.create_token(db.session, user_id=user.id, name="script", **options).plaintext


def token_count(rows) -> int:
    rows.rollback()
    return rows.execute(select(func.count()).select_from(ApiToken)).scalar_one()


# -- pages and forms never accept a bearer token -------------------------------------------------

PAGES = ["/account", "/account/export", "/projects", "/usage", "/usage/ledger.csv", "/chat", "/plans"]


@pytest.mark.parametrize("path", PAGES)
def test_a_bearer_token_opens_no_page(app, client, make_user, path):
    user = make_user("scripter", balance=777, email="scripter@example.com")
    token = new_token(app, user)

    response = client.get(path, headers=bearer(token))

    # What any anonymous visitor gets: the sign-in page, then back here.
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/auth/login?next=")
    body = response.get_data(as_text=True)
    assert "scripter" not in body and "777" not in body


@pytest.mark.parametrize("with_csrf", [False, True], ids=["no-csrf", "anonymous-csrf"])
def test_a_bearer_token_cannot_mint_another_token(app, client, make_user, rows, with_csrf):
    user = make_user("scripter")
    token = new_token(app, user)
    data = {"name": "second way in"}
    if with_csrf:
        # Even with a CSRF token from an anonymous session, the form wants a signed-in browser.
        data["csrf_token"] = csrf_token_for(client)

    response = client.post("/account/tokens", data=data, headers=bearer(token))

    assert response.status_code in (302, 403)
    assert "sorya_" not in response.get_data(as_text=True)
    assert token_count(rows) == 1
    # The same with htmx: no fragment with a token, nothing stored.
    swapped = client.post("/account/tokens", data=data, headers={**bearer(token), "HX-Request": "true"})
    assert swapped.status_code in (401, 403) and "sorya_" not in swapped.get_data(as_text=True)
    assert token_count(rows) == 1


@pytest.mark.parametrize("with_csrf", [False, True], ids=["no-csrf", "anonymous-csrf"])
def test_a_bearer_token_cannot_delete_the_account(app, client, make_user, rows, with_csrf):
    user = make_user("scripter", balance=100)
    token = new_token(app, user)
    data = {"confirm_login": "scripter"}
    if with_csrf:
        data["csrf_token"] = csrf_token_for(client)

    response = client.post("/account/delete", data=data, headers=bearer(token))

    assert response.status_code in (302, 403)
    rows.rollback()
    assert rows.get(User, user.id) is not None
    assert client.get("/api/me", headers=bearer(token)).status_code == 200


def test_a_bearer_token_cannot_revoke_or_create_through_other_forms(app, client, make_user, rows):
    user = make_user("scripter", balance=100)
    token = new_token(app, user)
    token_id = rows.execute(select(ApiToken.id)).scalar_one()
    csrf = csrf_token_for(client)

    revoke = client.post(f"/account/tokens/{token_id}/revoke", data={"csrf_token": csrf}, headers=bearer(token))
    project = client.post("/projects", data={"name": "via token", "csrf_token": csrf}, headers=bearer(token))
    export = client.post("/account/export", data={"csrf_token": csrf}, headers=bearer(token))

    assert [r.status_code for r in (revoke, project, export)] == [302, 302, 302]
    assert all(r.headers["Location"] == "/auth/login" for r in (revoke, project, export))
    rows.rollback()
    assert rows.get(ApiToken, token_id).revoked_at is None
    assert rows.execute(select(func.count()).select_from(Project)).scalar_one() == 0


def test_a_signed_in_browser_still_needs_csrf_when_it_sends_a_bearer_header(app, signed_in_client, rows):
    client = signed_in_client
    token = new_token(app, client.user)

    response = client.post("/account/tokens", data={"name": "sneaky"}, headers=bearer(token))

    assert response.status_code in (302, 403)
    assert token_count(rows) == 1


def test_the_same_token_still_works_on_the_api(app, client, make_user):
    user = make_user("scripter")
    token = new_token(app, user)
    assert client.get("/api/me", headers=bearer(token)).json["login"] == "scripter"
    created = client.post("/api/projects", json={"name": "from a script"}, headers=bearer(token))
    assert created.status_code == 201


# -- scope: a read token only reads --------------------------------------------------------------


def test_a_token_is_write_scoped_and_never_expires_by_default(app, make_user, rows):
    new_token(app, make_user("scripter"))
    token = rows.execute(select(ApiToken)).scalar_one()
    assert (token.scope, token.expires_at) == ("write", None)


def test_a_read_token_reads_but_never_writes(app, client, make_user, rows):
    user = make_user("reader", balance=100)
    token = new_token(app, user, scope="read")

    assert client.get("/api/me", headers=bearer(token)).json["login"] == "reader"
    assert client.head("/api/me", headers=bearer(token)).status_code == 200
    assert client.options("/api/projects", headers=bearer(token)).status_code == 200
    assert client.get("/api/projects", headers=bearer(token)).status_code == 200

    refused = client.post("/api/projects", json={"name": "nope"}, headers=bearer(token))

    assert refused.status_code == 403
    assert refused.json["error"]["code"] == "forbidden"
    assert "read-only" in refused.json["error"]["message"]
    for method in ("PATCH", "DELETE", "PUT"):
        assert client.open("/api/projects/1", method=method, json={}, headers=bearer(token)).status_code == 403
    rows.rollback()
    assert rows.execute(select(func.count()).select_from(Project)).scalar_one() == 0


def test_a_write_token_writes(app, client, make_user):
    token = new_token(app, make_user("writer"), scope="write")
    assert client.post("/api/projects", json={"name": "yes"}, headers=bearer(token)).status_code == 201


# -- expiry --------------------------------------------------------------------------------------


def test_a_token_works_until_it_expires_then_says_so(app, client, make_user, rows, monkeypatch):
    user = make_user("temp")
    token = new_token(app, user, expires_in_days=7)
    stored = rows.execute(select(ApiToken)).scalar_one()
    assert timedelta(days=7) - timedelta(minutes=1) < stored.expires_at - utcnow() <= timedelta(days=7)
    assert client.get("/api/me", headers=bearer(token)).status_code == 200

    # A week and a second later (an expiry never changes, so the clock moves: the look-up cached a
    # moment ago must not outlive it).
    later = stored.expires_at + timedelta(seconds=1)
    monkeypatch.setattr(api_tokens, "utcnow", lambda: later)
    response = client.get("/api/me", headers=bearer(token))

    assert response.status_code == 401
    assert response.json["error"]["code"] == "unauthenticated"
    assert "expired" in response.json["error"]["message"]
    # A write with an expired read token is still "who are you?", not "not allowed".
    stored.scope = "read"
    rows.commit()
    assert client.post("/api/projects", json={"name": "x"}, headers=bearer(token)).status_code == 401


@pytest.mark.parametrize(("options", "field"), [({"scope": "admin"}, "scope"), ({"expires_in_days": 0}, "expires"),
                                                ({"expires_in_days": 366}, "expires")])
def test_a_bad_scope_or_expiry_is_refused(app, make_user, options, field):
    from app.errors import InvalidRequest
    from app.extensions import db

    user = make_user("picky")
    with app.app_context(), pytest.raises(InvalidRequest) as refused:
        api_tokens.create_token(db.session, user_id=user.id, name="x", **options)
    assert field in refused.value.fields


def test_expired_tokens_do_not_count_against_the_limit(app, make_user, rows, monkeypatch):
    from app.extensions import db

    monkeypatch.setattr(api_tokens, "MAX_ACTIVE_TOKENS_PER_USER", 1)
    user = make_user("rotator")
    new_token(app, user, expires_in_days=1)
    stored = rows.execute(select(ApiToken)).scalar_one()
    stored.expires_at = utcnow() - timedelta(days=1)
    rows.commit()
    with app.app_context():
        api_tokens.create_token(db.session, user_id=user.id, name="fresh")


# -- the account page ----------------------------------------------------------------------------


def test_the_account_page_creates_a_read_token_that_expires(signed_in_client, rows):
    client = signed_in_client
    form = client.get("/account").get_data(as_text=True)
    assert 'name="scope"' in form and 'name="expires_days"' in form
    for value in ('value="read"', 'value="write"', 'value="7"', 'value="30"', 'value="90"', 'value=""'):
        assert value in form

    response = client.post("/account/tokens", data={
        "name": "dashboard", "scope": "read", "expires_days": "30", "csrf_token": csrf_token_for(client)})

    assert response.status_code == 201
    token = re.search(r'<code id="new-token">(sorya_[A-Za-z0-9_-]+)</code>', response.get_data(as_text=True)).group(1)
    rows.rollback()
    stored = rows.execute(select(ApiToken)).scalar_one()
    assert stored.scope == "read" and stored.expires_at is not None
    assert client.post("/api/projects", json={"name": "x"}, headers=bearer(token)).status_code == 403
    row = re.search(rf'<tr id="token-{stored.id}">(.*?)</tr>', client.get("/account").get_data(as_text=True), re.S)
    assert "Read only" in row.group(1) and "in 30 days" in row.group(1)


def test_the_account_page_marks_expired_tokens(app, signed_in_client, rows):
    client = signed_in_client
    new_token(app, client.user, expires_in_days=1)
    stored = rows.execute(select(ApiToken)).scalar_one()
    stored.expires_at = utcnow() - timedelta(hours=2)
    rows.commit()
    new_token(app, client.user)

    page = client.get("/account").get_data(as_text=True)

    expired_row = re.search(rf'<tr id="token-{stored.id}"[^>]*>(.*?)</tr>', page, re.S).group(1)
    assert "Expired" in expired_row
    assert page.count("Never") >= 1  # the other token never expires


@pytest.mark.parametrize(("data", "message"), [({"scope": "root"}, "read or write"),
                                               ({"expires_days": "soon"}, "number of days")])
def test_the_account_page_explains_a_bad_scope_or_expiry(signed_in_client, rows, data, message):
    client = signed_in_client
    response = client.post("/account/tokens", data={"name": "x", **data, "csrf_token": csrf_token_for(client)})
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert token_count(rows) == 0


# -- the CLI -------------------------------------------------------------------------------------


def test_cli_creates_a_read_token_that_expires(app, client, make_user, rows):
    make_user("robot")
    result = app.test_cli_runner().invoke(
        args=["tokens", "create", "robot", "--name", "reports", "--scope", "read", "--expires-days", "7"])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    stored = rows.execute(select(ApiToken)).scalar_one()
    assert stored.scope == "read"
    assert timedelta(days=6) < stored.expires_at - utcnow() <= timedelta(days=7)
    assert "read-only" in result.stderr and "expires" in result.stderr
    assert client.get("/api/me", headers=bearer(token)).status_code == 200
    assert client.post("/api/projects", json={"name": "x"}, headers=bearer(token)).status_code == 403


@pytest.mark.parametrize(("flags", "exit_code"), [(["--scope", "admin"], 2), (["--expires-days", "0"], 1),
                                                  (["--expires-days", "many"], 2)])
def test_cli_refuses_a_bad_scope_or_expiry(app, make_user, rows, flags, exit_code):
    make_user("robot")
    result = app.test_cli_runner().invoke(args=["tokens", "create", "robot", "--name", "x", *flags])
    assert result.exit_code == exit_code, result.output
    assert "Error" in result.output
    assert token_count(rows) == 0
