"""Signing in with GitHub, end to end against the GitHub emulator: the flow, every failure a person can
meet, the single signup grant (replayed and racing callbacks), cookies and the `next` target."""

from __future__ import annotations

import socket
import threading
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, select

from app.errors import Conflict
from app.models import GithubAccount, LedgerEntry, User
from app.services import accounts
from tests.conftest import TEST_GITHUB_CLIENT_ID
from tests.integration import github_flow

OCTOCAT_GITHUB_ID = 583231  # the emulator's seeded octocat


def count(rows, model, *where) -> int:
    rows.rollback()  # read what other connections committed
    return rows.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


def signup_entries(rows) -> list[LedgerEntry]:
    rows.rollback()
    return list(rows.execute(select(LedgerEntry).where(LedgerEntry.reason == "signup")).scalars())


def default_landing(app) -> str:
    """Where sign-in lands without a `next`: the projects dashboard when it exists, else the home page."""
    from app.web.security import default_landing_url

    with app.test_request_context():
        return default_landing_url()


def assert_nothing_created(rows) -> None:
    assert count(rows, User) == 0
    assert count(rows, GithubAccount) == 0
    assert count(rows, LedgerEntry) == 0


def assert_signed_out(client) -> None:
    assert client.get("/api/me").status_code == 401


def token_exchanges(github_emulator) -> list[dict]:
    return [c for c in github_emulator.control.calls() if c["path"] == "/login/oauth/access_token"]


# -- the whole flow ------------------------------------------------------------------------------


def test_sign_in_asks_only_who_the_person_is_and_binds_a_state(app, client, github_emulator):
    flow = github_flow.start(client)
    parts = urlsplit(flow.authorize_url)
    assert f"{parts.scheme}://{parts.netloc}" == github_emulator.url
    assert parts.path == "/login/oauth/authorize"
    assert flow.params["client_id"] == TEST_GITHUB_CLIENT_ID
    # Nothing of their repositories: that is a second consent, when they first need it.
    assert flow.params["scope"].split() == ["read:user", "user:email"]
    # PUBLIC_URL is localhost:5000, or the live server's address once a browser test has run.
    public_url = app.extensions["sorya.config"].PUBLIC_URL
    assert flow.params["redirect_uri"] == f"{public_url}/auth/github/callback"
    assert len(flow.params["state"]) >= 20
    # A second start gets a different state: it is random, not derived from the session.
    assert github_flow.start(client).params["state"] != flow.params["state"]


def test_public_repositories_only_asks_for_public_repo_in_the_second_consent(app, client, github_emulator,
                                                                               monkeypatch, make_user):
    from tests.integration.conftest import sign_in

    monkeypatch.setattr(app.extensions["sorya.config"], "GITHUB_ALLOW_PRIVATE_REPOS", False)
    assert github_flow.start(client).params["scope"].split() == ["read:user", "user:email"]
    sign_in(client, make_user("publicist"))
    response = client.get("/auth/github/repositories", query_string={"next": "/projects/import"})
    assert response.status_code == 302
    scope = parse_qs(urlsplit(response.headers["Location"]).query)["scope"][0]
    assert scope.split() == ["read:user", "user:email", "public_repo"]


def test_first_sign_in_creates_the_account_with_the_signup_grant(app, client, github_emulator, rows):
    response = github_flow.sign_in(client, github_emulator.url)

    assert response.status_code == 302
    assert response.headers["Location"] == default_landing(app)
    me = client.get("/api/me").json
    assert me["login"] == "octocat"
    assert me["name"] == "The Octocat"
    assert me["email"] == "octocat@example.com"
    assert me["plan"] == "free"
    assert me["credits"]["balance"] == 5000
    assert me["github"]["scopes"] == ["read:user", "user:email"]
    account = rows.execute(select(GithubAccount)).scalar_one()
    assert account.github_user_id == OCTOCAT_GITHUB_ID
    assert account.token_status == "valid"
    [entry] = signup_entries(rows)
    assert (entry.delta, entry.user_id, entry.balance_after) == (5000, me["id"], 5000)
    # The welcome says what happened.
    page = client.get("/").get_data(as_text=True)
    assert "Welcome to Sorya, octocat" in page and "5,000 free credits" in page


def test_signing_in_again_updates_the_account_and_grants_nothing(client, github_emulator, rows):
    github_flow.sign_in(client, github_emulator.url)
    first_token = rows.execute(select(GithubAccount.access_token_encrypted)).scalar_one()
    client.post("/auth/logout", data={"csrf_token": csrf(client)})

    response = github_flow.sign_in(client, github_emulator.url)

    assert response.status_code == 302
    assert count(rows, User) == 1
    assert len(signup_entries(rows)) == 1
    assert client.get("/api/me").json["credits"]["balance"] == 5000
    # The new grant's token replaced the old one.
    assert rows.execute(select(GithubAccount.access_token_encrypted)).scalar_one() != first_token
    assert "Signed in as octocat" in client.get("/").get_data(as_text=True)


def test_a_renamed_github_user_keeps_their_account(client, github_emulator, rows):
    github_emulator.control.create_user("old-name", name="Renamer", user_id=777001)
    github_flow.sign_in(client, github_emulator.url, login="old-name")
    user_id = client.get("/api/me").json["id"]
    client.post("/auth/logout", data={"csrf_token": csrf(client)})
    # On GitHub the same person (same numeric id) now has another login.
    github_emulator.control.create_user("new-name", name="Renamer", user_id=777001)

    github_flow.sign_in(client, github_emulator.url, login="new-name")

    me = client.get("/api/me").json
    assert (me["id"], me["login"]) == (user_id, "new-name")
    assert rows.execute(select(GithubAccount.login)).scalar_one() == "new-name"
    assert len(signup_entries(rows)) == 1


def test_a_login_freed_by_a_rename_goes_to_its_new_owner(app, github_emulator, rows):
    control = github_emulator.control
    control.create_user("alice", user_id=880001)
    first = app.test_client()
    github_flow.sign_in(first, github_emulator.url, login="alice")
    alice_id = first.get("/api/me").json["id"]
    # alice renames to alice2 on GitHub, and someone else (another id) takes "alice".
    control.create_user("alice2", user_id=880001)
    control.create_user("alice", user_id=880002)

    second = app.test_client()
    github_flow.sign_in(second, github_emulator.url, login="alice")
    assert second.get("/api/me").json["login"] == "alice"
    rows.rollback()
    assert rows.get(User, alice_id).login == f"alice~{alice_id}"

    third = app.test_client()
    github_flow.sign_in(third, github_emulator.url, login="alice2")
    assert third.get("/api/me").json == first.get("/api/me").json | {"login": "alice2"}


def test_an_account_without_a_verified_email_signs_in_without_one(client, github_emulator, rows):
    response = github_flow.sign_in(client, github_emulator.url, login="newbie")

    assert response.status_code == 302
    me = client.get("/api/me").json
    assert (me["login"], me["email"]) == ("newbie", None)
    assert me["credits"]["balance"] == 5000
    assert "No verified email on GitHub" in client.get("/account").get_data(as_text=True)


def test_an_emails_failure_signs_in_without_the_email(client, github_emulator):
    github_emulator.control.fault("GET", r"^/api/v3/user/emails$", kind="server_error", count=None)

    response = github_flow.sign_in(client, github_emulator.url)

    assert response.status_code == 302
    assert client.get("/api/me").json["email"] is None


# -- failures a person can meet ------------------------------------------------------------------


def test_denied_consent_explains_and_creates_nothing(client, github_emulator, rows):
    flow = github_flow.start(client)
    callback = github_flow.consent(github_emulator.url, flow, action="cancel")
    assert "error=access_denied" in callback

    response = client.get(github_flow.callback_path(callback))

    assert response.status_code == 400
    assert "You cancelled the authorization on GitHub" in response.get_data(as_text=True)
    assert "Try again with GitHub" in response.get_data(as_text=True)
    assert_nothing_created(rows)
    assert_signed_out(client)
    assert token_exchanges(github_emulator) == []


def test_trying_again_after_cancelling_keeps_where_the_person_was_going(client, github_emulator):
    callback = github_flow.consent(github_emulator.url, github_flow.start(client, next_path="/account"), action="cancel")
    page = client.get(github_flow.callback_path(callback)).get_data(as_text=True)
    assert 'name="next" value="/account"' in page


def test_a_state_that_does_not_match_is_refused_before_any_exchange(client, github_emulator, rows):
    flow = github_flow.start(client)
    callback = github_flow.consent(github_emulator.url, flow)
    forged = callback.replace(f"state={flow.params['state']}", "state=forged-state-value")

    response = client.get(github_flow.callback_path(forged))

    assert response.status_code == 400
    assert "does not match one your browser started" in response.get_data(as_text=True)
    assert_nothing_created(rows)
    assert_signed_out(client)
    assert token_exchanges(github_emulator) == []


def test_a_callback_from_another_browser_is_refused(app, client, github_emulator, rows):
    """Login CSRF: a victim's browser following an attacker's callback link holds no matching state."""
    attacker = app.test_client()
    callback = github_flow.consent(github_emulator.url, github_flow.start(attacker))

    response = client.get(github_flow.callback_path(callback))

    assert response.status_code == 400
    assert_nothing_created(rows)


def test_an_expired_state_is_refused(client, github_emulator, rows):
    flow = github_flow.start(client)
    callback = github_flow.consent(github_emulator.url, flow)
    with client.session_transaction() as session:
        key = f"_state_github_{flow.params['state']}"
        pending = dict(session[key])
        pending["data"] = dict(pending["data"], started_at=pending["data"]["started_at"] - 11 * 60)
        session[key] = pending

    response = client.get(github_flow.callback_path(callback))

    assert response.status_code == 400
    assert "has expired" in response.get_data(as_text=True)
    assert_nothing_created(rows)
    assert token_exchanges(github_emulator) == []


def test_a_bad_code_is_refused(client, github_emulator, rows):
    flow = github_flow.start(client)

    response = client.get("/auth/github/callback", query_string={"code": "not-a-real-code", "state": flow.params["state"]})

    assert response.status_code == 400
    assert "already used or has expired" in response.get_data(as_text=True)
    assert_nothing_created(rows)
    assert len(token_exchanges(github_emulator)) == 1


def test_a_replayed_callback_grants_once(client, github_emulator, rows):
    callback = github_flow.consent(github_emulator.url, github_flow.start(client))
    assert client.get(github_flow.callback_path(callback)).status_code == 302

    # The same URL again (back button, a reload, a leaked link): its state was used up.
    replay = client.get(github_flow.callback_path(callback))
    assert replay.status_code == 400
    # The same code under a fresh state: GitHub answers bad_verification_code for a used code.
    fresh = github_flow.start(client)
    code = parse_qs(urlsplit(callback).query)["code"][0]
    reused = client.get("/auth/github/callback", query_string={"code": code, "state": fresh.params["state"]})
    assert reused.status_code == 400
    assert "already used" in reused.get_data(as_text=True)

    assert count(rows, User) == 1
    assert [e.delta for e in signup_entries(rows)] == [5000]


def test_two_racing_callbacks_for_a_new_user_create_one_account_and_grant_once(
    app, github_emulator, rows, monkeypatch
):
    github_emulator.control.create_user("racer", user_id=990001)
    # Widen the race to certainty: both callbacks look the account up, find none, and only then both
    # try to create it. Later lookups (the loser's retry) pass straight through.
    lookup_barrier = threading.Barrier(2, timeout=10)
    real_find = accounts.find_github_account
    lookups: list[bool] = []

    def find_after_both_looked(session, github_user_id):
        found = real_find(session, github_user_id)
        lookups.append(found is not None)
        if len(lookups) <= 2:
            lookup_barrier.wait()
        return found

    monkeypatch.setattr(accounts.signin, "find_github_account", find_after_both_looked)
    clients = [app.test_client() for _ in range(2)]
    callbacks = [github_flow.consent(github_emulator.url, github_flow.start(c), login="racer") for c in clients]
    barrier = threading.Barrier(len(clients))
    statuses: list[int] = []

    def finish(test_client, callback):
        barrier.wait()
        statuses.append(test_client.get(github_flow.callback_path(callback)).status_code)

    threads = [threading.Thread(target=finish, args=pair) for pair in zip(clients, callbacks, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert statuses == [302, 302]
    assert count(rows, User) == 1
    assert count(rows, GithubAccount, GithubAccount.github_user_id == 990001) == 1
    assert [e.delta for e in signup_entries(rows)] == [5000]
    ids = {c.get("/api/me").json["id"] for c in clients}
    assert len(ids) == 1
    # Both first lookups found nothing; the loser of the insert looked again and found the winner's.
    assert lookups == [False, False, True]


def test_github_5xx_on_the_code_exchange_shows_a_provider_error(client, github_emulator, rows):
    github_emulator.control.fault("POST", r"^/login/oauth/access_token$", kind="server_error", status=502)

    response = github_flow.sign_in(client, github_emulator.url)

    assert response.status_code == 502
    assert "GitHub could not be reached" in response.get_data(as_text=True)
    assert_nothing_created(rows)
    assert_signed_out(client)
    # The one-use code is never retried.
    assert len(token_exchanges(github_emulator)) == 1


def test_github_5xx_on_the_user_read_shows_a_provider_error(client, github_emulator, rows):
    github_emulator.control.fault("GET", r"^/api/v3/user$", kind="server_error", status=503, count=None)

    response = github_flow.sign_in(client, github_emulator.url)

    assert response.status_code == 502
    assert "GitHub answered with an error (503)" in response.get_data(as_text=True)
    assert_nothing_created(rows)
    assert_signed_out(client)


def test_one_github_5xx_on_the_user_read_is_retried(client, github_emulator):
    github_emulator.control.fault("GET", r"^/api/v3/user$", kind="server_error", count=1)

    response = github_flow.sign_in(client, github_emulator.url)

    assert response.status_code == 302
    user_reads = [c["status"] for c in github_emulator.control.calls() if c["path"] == "/api/v3/user"]
    assert user_reads == [500, 200]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_github_unreachable_shows_a_provider_error(app, client, github_emulator, rows, monkeypatch):
    flow = github_flow.start(client)
    callback = github_flow.consent(github_emulator.url, flow)
    # GitHub goes away between the consent and the code exchange.
    oauth_client = app.extensions["sorya.github_oauth"]
    monkeypatch.setattr(oauth_client, "access_token_url", f"http://127.0.0.1:{closed_port()}/login/oauth/access_token")

    response = client.get(github_flow.callback_path(callback))

    assert response.status_code == 502
    assert "GitHub could not be reached to finish signing in" in response.get_data(as_text=True)
    assert_nothing_created(rows)


def test_a_disabled_account_cannot_sign_in(app, client, github_emulator, rows):
    github_flow.sign_in(client, github_emulator.url)
    client.post("/auth/logout", data={"csrf_token": csrf(client)})
    with app.app_context():
        from app.extensions import db

        accounts.disable_user(db.session, "octocat")
    before = rows.execute(select(GithubAccount.access_token_encrypted)).scalar_one()

    response = github_flow.sign_in(client, github_emulator.url)

    assert response.status_code == 403
    assert "disabled" in response.get_data(as_text=True)
    assert_signed_out(client)
    assert rows.execute(select(GithubAccount.access_token_encrypted)).scalar_one() == before


def test_sign_in_is_explained_when_github_is_not_configured(app, client, monkeypatch):
    monkeypatch.setattr(app.extensions["sorya.config"], "GITHUB_CLIENT_ID", "")
    response = client.get("/auth/github")
    assert response.status_code == 503
    assert "GITHUB_CLIENT_ID" in response.get_data(as_text=True)


# -- revoked tokens ------------------------------------------------------------------------------


def stored_github_token(app, user_id: int) -> str:
    from app import runtime
    from app.extensions import db

    with app.app_context():
        return accounts.github_access_token(db.session, runtime.keyring(), user_id)


def test_a_token_revoked_on_github_is_discovered_and_can_be_reconnected(app, client, github_emulator, rows):
    github_flow.sign_in(client, github_emulator.url)
    user_id = client.get("/api/me").json["id"]
    page = client.get("/account").get_data(as_text=True)
    assert "Connected as <strong>@octocat</strong>" in page
    github_emulator.control.revoke_token(stored_github_token(app, user_id))

    # Within the check interval the page trusts the last answer and does not call GitHub.
    mark = github_emulator.control.mark()
    assert "GitHub no longer accepts" not in client.get("/account").get_data(as_text=True)
    assert github_emulator.control.calls(since=mark) == []

    # Later, the page asks GitHub again and learns the token is gone.
    rows.rollback()
    account = rows.execute(select(GithubAccount)).scalar_one()
    account.token_checked_at = account.token_checked_at.replace(year=account.token_checked_at.year - 1)
    rows.commit()
    page = client.get("/account").get_data(as_text=True)
    assert "GitHub no longer accepts Sorya's access to @octocat" in page
    assert 'id="reconnect-github"' in page and "Reconnect GitHub" in page
    rows.rollback()
    assert rows.execute(select(GithubAccount.token_status)).scalar_one() == "revoked"
    assert client.get("/api/me").json["github"]["token_status"] == "revoked"

    # Reconnect goes through GitHub again and comes back to the account page.
    reconnect = github_flow.sign_in(client, github_emulator.url, next_path="/account")
    assert reconnect.headers["Location"] == "/account"
    page = client.get("/account").get_data(as_text=True)
    assert "GitHub no longer accepts" not in page
    assert "Connected as <strong>@octocat</strong>" in page
    assert len(signup_entries(rows)) == 1


def test_a_github_call_answered_401_marks_the_token_revoked(app, client, github_emulator, rows):
    """What a publishing call does when GitHub refuses the token: the adapter says so, the service records it."""
    from app.extensions import db
    from app.web import github_auth as github

    github_flow.sign_in(client, github_emulator.url)
    user_id = client.get("/api/me").json["id"]
    token = stored_github_token(app, user_id)
    github_emulator.control.revoke_token(token)
    with app.app_context():
        with pytest.raises(github.GithubTokenRevoked):
            github.fetch_identity(token)
        accounts.mark_github_token_revoked(db.session, user_id)
        with pytest.raises(Conflict):
            accounts.github_access_token(db.session, app.extensions["sorya.keyring"], user_id)
    assert "GitHub no longer accepts" in client.get("/account").get_data(as_text=True)


# -- sessions, cookies and next ------------------------------------------------------------------


def csrf(client) -> str:
    from tests.conftest import csrf_token_for

    return csrf_token_for(client)


def set_cookie_headers(response, name: str) -> list[str]:
    return [h for h in response.headers.getlist("Set-Cookie") if h.startswith(f"{name}=")]


def test_session_cookie_is_httponly_lax_and_not_remembered_by_default(client, github_emulator):
    response = github_flow.sign_in(client, github_emulator.url)

    [cookie] = set_cookie_headers(response, "session")
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # PUBLIC_URL is http in this test
    assert "Expires" not in cookie  # ends with the browser
    assert set_cookie_headers(response, "remember_token") == []


def test_keep_me_signed_in_sets_a_hardened_remember_cookie(client, github_emulator):
    response = github_flow.sign_in(client, github_emulator.url, remember=True)

    [cookie] = set_cookie_headers(response, "remember_token")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Expires" in cookie


def test_cookies_are_secure_when_public_url_is_https(app_config, tmp_path):
    from dataclasses import replace

    from app import create_app

    https_app = create_app(replace(app_config, PUBLIC_URL="https://sorya.example", INSTANCE_DIR=str(tmp_path)))
    https_client = https_app.test_client()
    response = https_client.get("/auth/github", base_url="https://sorya.example")

    assert response.status_code == 302
    assert "redirect_uri=https%3A%2F%2Fsorya.example%2Fauth%2Fgithub%2Fcallback" in response.headers["Location"]
    [cookie] = set_cookie_headers(response, "session")
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert https_app.config["REMEMBER_COOKIE_SECURE"] is True


def test_sign_out_needs_post_and_csrf(client, github_emulator):
    github_flow.sign_in(client, github_emulator.url)

    assert client.get("/auth/logout").status_code == 405
    assert client.post("/auth/logout").status_code == 403
    assert client.get("/api/me").status_code == 200
    response = client.post("/auth/logout", data={"csrf_token": csrf(client)})
    assert response.status_code == 302
    assert_signed_out(client)


def test_sign_in_goes_to_a_safe_next_path(client, github_emulator):
    response = github_flow.sign_in(client, github_emulator.url, next_path="/account?tab=tokens")
    assert response.headers["Location"] == "/account?tab=tokens"


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/path",
        "/\\evil.example",
        "\\\\evil.example",
        "javascript:alert(1)",
        "http:/evil.example",
        "/account\r\nSet-Cookie: x=1",
        "account",
        "",
    ],
)
def test_sign_in_never_goes_off_site(app, client, github_emulator, target):
    response = github_flow.sign_in(client, github_emulator.url, next_path=target)
    assert response.status_code == 302
    assert response.headers["Location"] == default_landing(app)


def test_pages_redirect_to_sign_in_and_come_back(client, github_emulator):
    response = client.get("/account?tab=tokens")
    assert response.status_code == 302
    login = urlsplit(response.headers["Location"])
    assert login.path == "/auth/login"
    next_path = parse_qs(login.query)["next"][0]
    assert next_path == "/account?tab=tokens"

    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Continue with GitHub" in page
    assert 'name="next" value="/account?tab=tokens"' in page

    assert github_flow.sign_in(client, github_emulator.url, next_path=next_path).headers["Location"] == next_path


def test_htmx_requests_without_a_session_are_told_where_to_sign_in(client):
    response = client.post("/account/tokens", headers={"HX-Request": "true"})
    # CSRF is checked first for a cookie-less POST: it is still refused, never served.
    assert response.status_code in (401, 403)
    response = client.get("/account", headers={"HX-Request": "true"})
    assert response.status_code == 401
    assert response.headers["HX-Redirect"] == "/auth/login?next=/account"


def test_signed_in_people_get_a_reconnect_page_that_returns_where_they_were(client, github_emulator):
    """The publish panel's "Reconnect GitHub" links to the sign-in page with no `next`."""
    github_flow.sign_in(client, github_emulator.url)

    page = client.get("/auth/login", headers={"Referer": "http://localhost/projects/7?tab=publish"})
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Reconnect GitHub" in html and "signed in as <strong>octocat</strong>" in html
    assert 'name="next" value="/projects/7?tab=publish"' in html
    # A referrer from another site is not a place to return to.
    html = client.get("/auth/login", headers={"Referer": "https://evil.example/x"}).get_data(as_text=True)
    assert 'name="next"' not in html
    assert 'name="next" value="/account"' in client.get("/auth/login?next=/account").get_data(as_text=True)
