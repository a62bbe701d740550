"""Signed-in sessions end when they should, on MariaDB and on the embedded SQLite default.

Flask's session and Flask-Login's remember-me cookie are signed, not stored: before sessions were kept
server-side, a copied cookie outlived sign-out, "sign out" kept "keep me signed in", and on SQLite (which
reused a deleted row's id) a deleted account's cookie opened the next account.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import User
from tests.conftest import csrf_token_for
from tests.integration import github_flow

COOKIES = ("session", "remember_token")


@pytest.fixture(params=["mariadb", "sqlite"])
def app(request, app, sqlite_app):
    return app if request.param == "mariadb" else sqlite_app


@pytest.fixture(autouse=True)
def _github_reset(github_emulator):
    yield
    github_emulator.control.reset()  # the SQLite app is not the harness's `app`: reset it here too


def signed_in(app, github_emulator, login: str = "octocat", *, remember: bool = True):
    client = app.test_client()
    assert github_flow.sign_in(client, github_emulator.url, login=login, remember=remember).status_code == 302
    assert client.get("/api/me").status_code == 200
    return client


def copy_of(app, client):
    """Another browser holding a copy of `client`'s cookies (as stolen, or synced, cookies would be)."""
    copy = app.test_client()
    for name in COOKIES:
        cookie = client.get_cookie(name)
        if cookie is not None:
            copy.set_cookie(name, cookie.value)
    return copy


def me(client) -> int:
    return client.get("/api/me").status_code


def test_a_deleted_accounts_cookies_do_not_open_the_next_account(app, github_emulator):
    first = signed_in(app, github_emulator, "octocat")
    first_id = first.get("/api/me").json["id"]
    kept = copy_of(app, first)
    deleted = first.post("/account/delete", data={"confirm_login": "octocat", "csrf_token": csrf_token_for(first)})
    assert deleted.status_code == 302

    github_emulator.control.create_user("newcomer")
    second = signed_in(app, github_emulator, "newcomer")
    assert second.get("/api/me").json["id"] != first_id  # ids are never handed out again

    assert me(kept) == 401
    assert me(first) == 401 and first.get_cookie("remember_token") is None


def test_sign_out_forgets_keep_me_signed_in(app, github_emulator):
    client = signed_in(app, github_emulator, remember=True)
    assert client.get_cookie("remember_token") is not None
    client.post("/auth/logout", data={"csrf_token": csrf_token_for(client)})
    assert client.get_cookie("remember_token") is None
    assert me(client) == 401
    assert me(client) == 401  # and stays signed out


def test_a_copied_cookie_dies_at_sign_out_while_other_devices_stay_signed_in(app, github_emulator):
    laptop = signed_in(app, github_emulator)
    phone = signed_in(app, github_emulator)
    copied = copy_of(app, laptop)
    session_only = app.test_client()
    session_only.set_cookie("session", laptop.get_cookie("session").value)

    laptop.post("/auth/logout", data={"csrf_token": csrf_token_for(laptop)})

    assert me(laptop) == 401
    assert me(copied) == 401 and me(session_only) == 401
    assert me(phone) == 200  # signing out one browser is not signing out everywhere


def test_sign_out_everywhere_ends_every_browser_but_not_api_tokens(app, github_emulator):
    laptop = signed_in(app, github_emulator)
    phone = signed_in(app, github_emulator)
    phone_session_only = app.test_client()
    phone_session_only.set_cookie("session", phone.get_cookie("session").value)
    html = laptop.post("/account/tokens", data={"name": "ci", "csrf_token": csrf_token_for(laptop)}).get_data(
        as_text=True
    )
    token = html.split('<code id="new-token">', 1)[1].split("<", 1)[0]

    page = laptop.get("/account").get_data(as_text=True)
    assert 'action="/account/sign-out-everywhere"' in page and "Sign out everywhere" in page
    refused = laptop.post("/account/sign-out-everywhere")  # no CSRF token
    assert refused.status_code in (400, 403) and me(phone) == 200

    answer = laptop.post("/account/sign-out-everywhere", data={"csrf_token": csrf_token_for(laptop)},
                         follow_redirects=True)
    assert answer.status_code == 200 and "signed out everywhere" in answer.get_data(as_text=True)
    assert me(laptop) == 401 and laptop.get_cookie("remember_token") is None
    assert me(phone) == 401 and me(phone_session_only) == 401
    assert app.test_client().get("/api/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_a_cookie_naming_only_a_user_id_signs_nobody_in(app, make_user):
    user = make_user("plain")
    client = app.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = str(user.id)
    assert me(client) == 401


def test_a_disabled_account_loses_its_sessions_for_good(app, github_emulator):
    client = signed_in(app, github_emulator)
    runner = app.test_cli_runner()
    assert runner.invoke(args=["users", "disable", "octocat"]).exit_code == 0
    assert me(client) == 401
    with app.app_context():
        user = db.session.execute(select(User).where(User.login == "octocat")).scalar_one()
        user.disabled_at = None  # re-enabled by hand: the old cookies stay dead
        db.session.commit()
    assert me(client) == 401
