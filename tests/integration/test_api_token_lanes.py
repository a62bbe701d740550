"""Personal API tokens stay in their lane: `/api` only (never a page or a form), a `read` token only
reads, an expired token is refused with a sentence saying so, and the CLI makes tokens of each kind."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.models import ApiToken, Project, User
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
