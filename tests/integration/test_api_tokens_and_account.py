"""Personal API tokens and the account page: create/revoke (HTMX and no-JS), bearer authentication,
the throttled last-used write, other users' objects, the data export, deletion and the CLI."""

from __future__ import annotations

import io
import json
import re
import zipfile

import pytest
from sqlalchemy import func, select, text

from app.models import ApiToken, LedgerEntry, User
from app.services import api_tokens
from tests.conftest import csrf_token_for, sign_in
from tests.integration import github_flow
from tests.sql_helpers import statements_on


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def new_token(app, user, name: str = "script") -> str:
    from app.extensions import db

    with app.app_context():
        return api_tokens.create_token(db.session, user_id=user.id, name=name).plaintext


def shown_token(html: str) -> str:
    match = re.search(r'<code id="new-token">(sorya_[A-Za-z0-9_-]+)</code>', html)
    assert match, "the new token is shown once"
    return match.group(1)


# -- creating, listing, revoking -----------------------------------------------------------------


def test_creating_a_token_without_javascript_shows_it_once(signed_in_client, app):
    client = signed_in_client
    response = client.post("/account/tokens", data={"name": "CI deploys", "csrf_token": csrf_token_for(client)})

    assert response.status_code == 201
    html = response.get_data(as_text=True)
    token = shown_token(html)
    assert token.startswith("sorya_") and len(token) >= 40
    assert "cannot show it again" in html
    assert client.get("/api/me", headers=bearer(token)).json["login"] == "octocat"
    # The next view lists it by name and prefix, never the whole value.
    page = client.get("/account").get_data(as_text=True)
    assert "CI deploys" in page and token[:12] + "…" in page
    assert token not in page


def test_creating_a_token_with_htmx_swaps_the_tokens_partial(signed_in_client):
    client = signed_in_client
    response = client.post(
        "/account/tokens", data={"name": "laptop"},
        headers={"HX-Request": "true", "X-CSRFToken": csrf_token_for(client)},
    )

    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert html.lstrip().startswith("{#") is False
    assert '<section id="api-tokens"' in html and "<html" not in html
    shown_token(html)
    assert "laptop" in html


@pytest.mark.parametrize(
    ("name", "message"),
    [("", "Give the token a name"), ("   ", "Give the token a name"), ("x" * 101, "at most 100 characters"),
     ("bad\x00name", "control characters")],
)
def test_a_bad_token_name_is_explained_next_to_the_field(signed_in_client, rows, name, message):
    client = signed_in_client
    page = client.post("/account/tokens", data={"name": name, "csrf_token": csrf_token_for(client)})
    assert page.status_code == 400
    assert 'id="token-name-error"' in page.get_data(as_text=True)
    assert message in page.get_data(as_text=True)

    fragment = client.post("/account/tokens", data={"name": name},
                           headers={"HX-Request": "true", "X-CSRFToken": csrf_token_for(client)})
    assert message in fragment.get_data(as_text=True)
    assert rows.execute(select(func.count()).select_from(ApiToken)).scalar_one() == 0


def test_token_names_with_html_are_escaped(signed_in_client):
    client = signed_in_client
    client.post("/account/tokens", data={"name": "<script>alert(1)</script>", "csrf_token": csrf_token_for(client)})
    page = client.get("/account").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_creating_a_token_needs_csrf_with_a_session(signed_in_client, rows):
    assert signed_in_client.post("/account/tokens", data={"name": "x"}).status_code == 403
    assert rows.execute(select(func.count()).select_from(ApiToken)).scalar_one() == 0


def test_revoking_a_token_stops_it_at_once(signed_in_client, app):
    client = signed_in_client
    token = new_token(app, client.user)
    token_id = re.search(r'id="token-(\d+)"', client.get("/account").get_data(as_text=True)).group(1)

    response = client.post(f"/account/tokens/{token_id}/revoke", data={"csrf_token": csrf_token_for(client)})

    assert response.status_code == 302
    assert client.get("/api/me", headers=bearer(token)).status_code == 401
    assert "No tokens yet" in client.get("/account").get_data(as_text=True)
    # Revoking again is harmless.
    again = client.post(f"/account/tokens/{token_id}/revoke", data={"csrf_token": csrf_token_for(client)})
    assert again.status_code == 302


def test_revoking_with_htmx_returns_the_partial(signed_in_client, app, rows):
    client = signed_in_client
    new_token(app, client.user, name="keep")
    drop = new_token(app, client.user, name="drop")
    drop_id = rows.execute(select(ApiToken.id).where(ApiToken.name == "drop")).scalar_one()

    response = client.post(f"/account/tokens/{drop_id}/revoke",
                           headers={"HX-Request": "true", "X-CSRFToken": csrf_token_for(client)})

    html = response.get_data(as_text=True)
    assert response.status_code == 200 and '<section id="api-tokens"' in html
    assert "keep" in html and ">drop<" not in html
    assert client.get("/api/me", headers=bearer(drop)).status_code == 401


# -- other users' objects ------------------------------------------------------------------------

# Every route that takes the id of an object a user owns: a function making such an object for `owner`
# (returning the route's parameters) and one saying the object is untouched. Extend as routes are added.
def token_of(app, owner) -> dict[str, int]:
    from app.extensions import db

    with app.app_context():
        return {"token_id": api_tokens.create_token(db.session, user_id=owner.id, name="theirs").token.id}


def token_untouched(rows, ids) -> bool:
    return rows.get(ApiToken, ids["token_id"]).revoked_at is None


def project_of(app, owner) -> dict[str, int]:
    """A project of `owner` with a linked repository, a reply, a snapshot of it and a push."""
    from app.extensions import db
    from app.models import Blob, ChatMessage, Project, Push, Snapshot
    from tests.snapshot_helpers import attach_files

    with app.app_context():
        project = Project(user_id=owner.id, name="theirs", repo_full_name="owner/theirs", repo_branch="main")
        blob = Blob(sha256="c" * 64, git_sha="d" * 40, size=6, content=b"theirs")
        db.session.add_all([project, blob])
        db.session.flush()
        reply = ChatMessage(user_id=owner.id, project_id=project.id, role="assistant",
                            content="```text path=theirs.txt\ntheirs\n```")
        db.session.add(reply)
        db.session.flush()
        snapshot = Snapshot(project_id=project.id, number=1, summary="theirs", source_message_id=reply.id)
        db.session.add(snapshot)
        db.session.flush()
        attach_files(db.session, snapshot, {"theirs.txt": blob.id})
        push = Push(project_id=project.id, snapshot_id=snapshot.id, user_id=owner.id,
                    repo_full_name="owner/theirs", branch="main", status="succeeded")
        db.session.add(push)
        db.session.commit()
        return {"project_id": project.id, "push_id": push.id, "snapshot_id": snapshot.id, "message_id": reply.id}


def project_untouched(rows, ids) -> bool:
    from app.models import Project, Push, Snapshot

    project = rows.get(Project, ids["project_id"])
    pushes = rows.execute(select(func.count()).select_from(Push).where(Push.project_id == ids["project_id"])).scalar_one()
    snapshots = rows.execute(
        select(func.count()).select_from(Snapshot).where(Snapshot.project_id == ids["project_id"])
    ).scalar_one()
    return (
        project is not None and project.name == "theirs" and project.status == "active"
        and project.repo_full_name == "owner/theirs" and pushes == 1 and snapshots == 1
    )


PROJECT_ROUTES = [
    ("POST", "/api/github/repo/{project_id}/init"),
    ("POST", "/api/github/repo/{project_id}/push"),
    ("POST", "/api/github/repo/{project_id}/pull"),
    ("POST", "/projects/{project_id}/github/pull"),
    ("POST", "/projects/{project_id}/github/take-remote"),
    ("POST", "/projects/{project_id}/github/resolve"),
    ("GET", "/api/github/repo/{project_id}/pushes/{push_id}"),
    ("GET", "/api/projects/{project_id}"),
    ("PATCH", "/api/projects/{project_id}"),
    ("DELETE", "/api/projects/{project_id}"),
    ("GET", "/api/projects/{project_id}/preview"),
    ("POST", "/api/projects/{project_id}/snapshots"),
    ("GET", "/api/projects/{project_id}/snapshots"),
    ("GET", "/api/snapshots/{snapshot_id}"),
    ("GET", "/api/snapshots/{snapshot_id}/archive"),
    ("GET", "/api/snapshots/{snapshot_id}/diff"),
    ("POST", "/api/snapshots/{snapshot_id}/restore"),
    ("POST", "/messages/{message_id}/snapshot"),
    ("GET", "/projects/{project_id}"),
    ("POST", "/projects/{project_id}/archive"),
    ("GET", "/projects/{project_id}/delete"),
    ("POST", "/projects/{project_id}/delete"),
    ("GET", "/projects/{project_id}/diff"),
    ("GET", "/projects/{project_id}/publish"),
    ("GET", "/projects/{project_id}/publish/panel"),
    ("POST", "/projects/{project_id}/publish/push"),
    ("POST", "/projects/{project_id}/publish/repo"),
    ("POST", "/projects/{project_id}/publish/unlink"),
    ("GET", "/projects/{project_id}/settings"),
    ("POST", "/projects/{project_id}/settings"),
    ("GET", "/projects/{project_id}/snapshots/{snapshot_id}"),
    ("GET", "/projects/{project_id}/snapshots/{snapshot_id}/raw/{path}"),
    ("GET", "/projects/{project_id}/snapshots/{snapshot_id}/download"),
    ("POST", "/projects/{project_id}/snapshots/{snapshot_id}/restore"),
    ("POST", "/projects/{project_id}/unarchive"),
    ("GET", "/projects/{project_id}/chat"),
    ("POST", "/projects/{project_id}/chat"),
    ("GET", "/chat/messages/{message_id}"),
    ("POST", "/chat/messages/{message_id}/stop"),
    ("GET", "/chat/messages/{message_id}/rendered-stream"),
    ("POST", "/chat/messages/{message_id}/fix-edits"),
    ("POST", "/projects/{project_id}/chat/new-conversation"),
    ("POST", "/api/chat/{message_id}/fix-edits"),
    ("GET", "/api/chat/{message_id}/stream"),
    ("POST", "/api/chat/{message_id}/stop"),
    ("POST", "/messages/{message_id}/keep"),
    ("POST", "/messages/{message_id}/save-to-project"),
    ("GET", "/projects/{project_id}/snapshots/{snapshot_id}/preview-url"),
    ("POST", "/projects/{project_id}/settings/preview"),
    ("POST", "/projects/{project_id}/upload"),
    ("POST", "/chat/messages/{message_id}/regenerate"),
    ("POST", "/api/chat/{message_id}/regenerate"),
]
def workspace_of(app, owner) -> dict:
    """A team of `owner` with one other member and credits in its pool."""
    from app.extensions import db
    from app.services import credits, workspaces

    make_member = User(login="crewmate", name="Crew")
    with app.app_context():
        db.session.add(make_member)
        db.session.commit()
        team = workspaces.create_team(db.session, user_id=owner.id, name="Their team")
        workspaces.add_member(db.session, user_id=owner.id, workspace_id=team.id, login="crewmate")
        credits.post_ledger_entry(db.session, user_id=team.account_user_id, delta=70, reason=credits.REASON_ADJUSTMENT,
                                  idempotency_key=f"team-start:{team.id}")
        ids = {"workspace_id": team.id, "login": "crewmate", "account_id": team.account_user_id}
        db.session.remove()
    return ids


def workspace_untouched(rows, ids) -> bool:
    from app.models import CreditBalance, WorkspaceMember

    members = rows.execute(select(WorkspaceMember.login, WorkspaceMember.role, WorkspaceMember.monthly_cap).where(
        WorkspaceMember.workspace_id == ids["workspace_id"]).order_by(WorkspaceMember.login)).all()
    return [tuple(m) for m in members] == [("crewmate", "member", None), ("owner", "owner", None)] and \
        rows.get(CreditBalance, ids["account_id"]).balance == 70


WORKSPACE_ROUTES = [
    ("GET", "/api/workspaces/{workspace_id}/members"), ("POST", "/api/workspaces/{workspace_id}/members"),
    ("PATCH", "/api/workspaces/{workspace_id}/members/{login}"),
    ("DELETE", "/api/workspaces/{workspace_id}/members/{login}"),
    ("GET", "/api/workspaces/{workspace_id}/credits"), ("POST", "/api/workspaces/{workspace_id}/credits"),
    ("GET", "/api/workspaces/{workspace_id}/usage"), ("GET", "/workspaces/{workspace_id}"),
    ("POST", "/workspaces/{workspace_id}/members"), ("POST", "/workspaces/{workspace_id}/members/{login}"),
    ("POST", "/workspaces/{workspace_id}/members/{login}/remove"), ("POST", "/workspaces/{workspace_id}/credits"),
    ("GET", "/workspaces/{workspace_id}/usage"), ("GET", "/workspaces/{workspace_id}/usage.csv"),
]

OBJECT_ROUTES = [
    ("POST", "/account/tokens/{token_id}/revoke", token_of, token_untouched),
    *[(method, route, project_of, project_untouched) for method, route in PROJECT_ROUTES],
    *[(method, route, workspace_of, workspace_untouched) for method, route in WORKSPACE_ROUTES],
]


def test_every_object_route_is_covered(app):
    """A new route taking an object id, and each of its methods, must join OBJECT_ROUTES."""
    covered = {(method, route.replace("{login}", "<login>").replace("{path}", "<path:path>")
                .replace("{", "<int:").replace("}", ">"))
               for method, route, _, _ in OBJECT_ROUTES}
    for rule in app.url_map.iter_rules():
        if "<int:" in rule.rule:
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                assert (method, rule.rule) in covered, f"add {method} {rule.rule} to OBJECT_ROUTES"


@pytest.mark.parametrize(("method", "route", "make_object", "untouched"), OBJECT_ROUTES)
@pytest.mark.parametrize("auth", ["session", "bearer"])
def test_another_users_object_is_not_found(app, client, make_user, rows, method, route, make_object, untouched, auth):
    owner = make_user("owner")
    intruder = make_user("intruder", balance=1000)
    ids = make_object(app, owner)
    headers = {}
    if auth == "session":
        sign_in(client, intruder)
        headers["X-CSRFToken"] = csrf_token_for(client)
    else:
        headers.update(bearer(new_token(app, intruder)))

    response = client.open(route.format(**{"path": "index.html", **ids}), method=method, headers=headers, json={} if method in ("POST", "PATCH") else None)

    if auth == "bearer" and not route.startswith("/api/"):
        # Pages and forms never accept a token: the request is anonymous (sign in, or CSRF refused).
        assert response.status_code in (302, 403), response.get_data(as_text=True)[:500]
    else:
        assert response.status_code == 404, response.get_data(as_text=True)[:500]
    assert "theirs" not in response.get_data(as_text=True)
    rows.rollback()
    assert untouched(rows, ids)


# -- bearer authentication -----------------------------------------------------------------------


def test_api_me_with_a_bearer_token(app, client, make_user):
    user = make_user("scripter", balance=1234, email="s@example.com")
    response = client.get("/api/me", headers=bearer(new_token(app, user)))
    assert response.status_code == 200
    assert response.json == {
        "id": user.id, "login": "scripter", "name": "Test User", "email": "s@example.com", "plan": "free",
        "credits": {"balance": 1234, "held": 0}, "github": None,
    }
    assert "Set-Cookie" not in response.headers  # a script's call leaves no session behind


@pytest.mark.parametrize(
    "header",
    ["Bearer sorya_not-a-real-token", "Bearer ", "Bearer ghp_someone_elses", "Bearer " + "sorya_" + "a" * 500,
     "Bearer sorya_\u00e9\u0000"],
)
def test_a_bad_bearer_token_is_401_json(client, header):
    response = client.get("/api/me", headers={"Authorization": header.encode("utf-8").decode("latin-1")})
    assert response.status_code == 401
    assert response.json["error"]["code"] == "unauthenticated"


def test_a_bad_bearer_token_never_falls_back_to_the_session(signed_in_client):
    client = signed_in_client
    assert client.get("/api/me").status_code == 200
    response = client.get("/api/me", headers=bearer("sorya_wrong"))
    assert response.status_code == 401
    # Nor on pages: a bearer header makes a page request anonymous, whatever cookie comes with it.
    assert client.get("/account", headers=bearer("sorya_wrong")).status_code == 302


def test_a_bearer_token_wins_over_a_remember_cookie(app, client, make_user, github_emulator):
    github_flow.sign_in(client, github_emulator.url, remember=True)
    with client.session_transaction() as session:
        session.clear()  # only the remember-me cookie is left
    assert client.get("/api/me").json["login"] == "octocat"
    other = make_user("other")
    assert client.get("/api/me", headers=bearer(new_token(app, other))).json["login"] == "other"
    assert client.get("/api/me", headers=bearer("sorya_wrong")).status_code == 401


def test_unauthenticated_api_calls_get_401_json(client):
    response = client.get("/api/me")
    assert response.status_code == 401
    assert response.json["error"]["code"] == "unauthenticated"


def test_a_disabled_accounts_tokens_and_sessions_stop_working(app, client, make_user):
    user = make_user("leaver")
    token = new_token(app, user)
    sign_in(client, user)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["users", "disable", "leaver"])
    assert result.exit_code == 0, result.output
    assert client.get("/api/me", headers=bearer(token)).status_code == 401
    assert client.get("/api/me").status_code == 401


def test_last_used_is_written_at_most_once_a_minute(app, client, make_user, rows):
    from app.extensions import db

    user = make_user("busy")
    token = new_token(app, user)
    with app.app_context():
        engine = db.engine
    with statements_on(engine) as statements:
        for _ in range(25):
            assert client.get("/api/me", headers=bearer(token)).status_code == 200

    writes = [s for s in statements if s.lstrip().upper().startswith("UPDATE API_TOKENS")]
    assert len(writes) == 1
    rows.rollback()
    assert rows.execute(select(ApiToken.last_used_at)).scalar_one() is not None
    page_client = app.test_client()
    sign_in(page_client, user)
    row = re.search(r'<tr id="token-\d+"[^>]*>(.*?)</tr>', page_client.get("/account").get_data(as_text=True), re.S)
    last_used = re.findall(r"<td>(.*?)</td>", row.group(1))[4]
    assert last_used.endswith(" UTC") and last_used != "Never"


def test_touch_last_used_writes_again_after_a_minute(app, make_user, rows):
    from datetime import timedelta

    user = make_user("later")
    new_token(app, user)
    token = rows.execute(select(ApiToken)).scalar_one()
    assert api_tokens.touch_last_used(rows, token) is True
    rows.refresh(token)
    assert api_tokens.touch_last_used(rows, token) is False
    token.last_used_at = token.last_used_at - timedelta(seconds=api_tokens.LAST_USED_RESOLUTION_S + 1)
    rows.commit()
    assert api_tokens.touch_last_used(rows, token) is True


# -- nothing in plain text -----------------------------------------------------------------------


def all_rows_as_text(rows) -> str:
    rows.rollback()
    tables = rows.execute(text("SHOW TABLES")).scalars().all()
    dump = []
    for table in tables:
        for row in rows.execute(text(f"SELECT * FROM `{table}`")).all():
            dump.append(repr(tuple(row)))
    return "\n".join(dump)


def test_the_database_holds_no_token_in_plain_text(app, client, github_emulator, rows, caplog):
    caplog.set_level("DEBUG")
    github_flow.sign_in(client, github_emulator.url)
    user_id = client.get("/api/me").json["id"]
    api_token = shown_token(client.post(
        "/account/tokens", data={"name": "ci", "csrf_token": csrf_token_for(client)}
    ).get_data(as_text=True))
    client.get("/api/me", headers=bearer(api_token))
    from app import runtime
    from app.extensions import db
    from app.services import accounts

    with app.app_context():
        github_token = accounts.github_access_token(db.session, runtime.keyring(), user_id)
    assert github_token.startswith("gho_")

    dump = all_rows_as_text(rows)
    assert dump.count("\n") >= 5  # the dump really holds the rows (users, tokens, ledger, ...)
    for secret in (github_token, api_token, api_token[len("sorya_"):]):
        assert secret not in dump
    assert api_tokens.hash_token(api_token) in dump  # what is stored instead
    assert github_token not in caplog.text and api_token not in caplog.text


# -- data export and deletion --------------------------------------------------------------------


def test_download_my_data_has_everything_but_secrets(app, client, github_emulator, rows, make_user):
    from app.models import Blob, ChatMessage, Project, Snapshot
    from tests.snapshot_helpers import attach_files

    make_user("stranger", balance=10)
    github_flow.sign_in(client, github_emulator.url)
    user_id = client.get("/api/me").json["id"]
    api_token = new_token(app, rows.get(User, user_id), name="ci")
    project = Project(user_id=user_id, name="Site", description="<b>mine</b>")
    blob = Blob(sha256="a" * 64, git_sha="b" * 40, size=5, content=b"hello")
    rows.add_all([project, blob])
    rows.flush()
    snapshot = Snapshot(project_id=project.id, number=1, summary="first")
    rows.add(snapshot)
    rows.flush()
    attach_files(rows, snapshot, {"index.html": blob.id})
    rows.add(ChatMessage(user_id=user_id, project_id=project.id, role="user", content="make a site"))
    rows.commit()

    response = client.get("/account/export")

    assert response.status_code == 200 and response.is_streamed
    assert response.mimetype == "application/zip"
    assert response.headers["Content-Disposition"] == 'attachment; filename="sorya-octocat-data.zip"'
    archive = zipfile.ZipFile(io.BytesIO(response.get_data()))
    assert archive.read("sorya-octocat-data/blobs/" + "a" * 64) == b"hello"
    body = archive.read("sorya-octocat-data/account.json").decode()
    data = json.loads(body)
    assert data["account"]["login"] == "octocat"
    assert data["github"]["user_id"] == 583231
    assert data["credits"]["balance"] == 5000
    assert [e["reason"] for e in data["credits"]["ledger"]] == ["signup"]
    assert data["api_tokens"][0]["name"] == "ci"
    assert data["projects"][0]["snapshots"][0]["files"] == [
        {"path": "index.html", "sha256": "a" * 64, "size": 5, "origin": "reply"}
    ]
    assert "blobs" not in data and "blobs/<sha256>" in data["file_contents"]
    assert data["chat_messages"][0]["content"] == "make a site"
    assert "stranger" not in body
    assert api_token not in body and api_token[:40] not in body
    assert "gho_" not in body and "v1." not in body  # neither the token nor its ciphertext


def test_export_needs_a_signed_in_user(client):
    assert client.get("/account/export").status_code == 302


def test_delete_my_account_needs_the_login_typed(signed_in_client, rows):
    client = signed_in_client
    response = client.post("/account/delete", data={"confirm_login": "Octocat ", "csrf_token": csrf_token_for(client)})
    assert response.status_code == 400
    assert 'id="delete-error"' in response.get_data(as_text=True)
    assert rows.get(User, client.user.id) is not None
    assert client.post("/account/delete", data={"confirm_login": "octocat"}).status_code == 403


def test_delete_my_account_removes_it_and_signs_out(signed_in_client, rows, app):
    client = signed_in_client
    token = new_token(app, client.user)

    response = client.post("/account/delete", data={"confirm_login": "octocat", "csrf_token": csrf_token_for(client)})

    assert (response.status_code, response.headers["Location"]) == (302, "/")
    assert "Your account and its data are deleted" in client.get("/").get_data(as_text=True)
    assert client.get("/api/me").status_code == 401
    assert client.get("/api/me", headers=bearer(token)).status_code == 401
    rows.rollback()
    assert rows.get(User, client.user.id) is None
    entries = rows.execute(select(LedgerEntry)).scalars().all()
    assert [(e.user_id, e.delta) for e in entries] == [(None, 5000)]


def test_delete_refuses_while_a_subscription_bills(signed_in_client, rows):
    from app.models import Subscription

    client = signed_in_client
    rows.add(Subscription(user_id=client.user.id, stripe_subscription_id="sub_x", stripe_customer_id="cus_x",
                                plan="pro", status="active"))
    rows.commit()
    response = client.post("/account/delete", data={"confirm_login": "octocat", "csrf_token": csrf_token_for(client)})
    assert response.status_code == 409
    assert "Cancel your subscription" in response.get_data(as_text=True)


# -- CLI -----------------------------------------------------------------------------------------


def test_cli_users_list(app, make_user):
    first = make_user("ada", balance=5000)
    second = make_user("grace")
    app.test_cli_runner().invoke(args=["users", "disable", "grace"])
    result = app.test_cli_runner().invoke(args=["users", "list"])
    assert result.exit_code == 0
    assert result.output.splitlines() == [f"{first.id}\tada\tfree\t5000", f"{second.id}\tgrace\tfree\t0\tdisabled"]


def test_cli_users_list_leaves_out_team_pools(app, make_user):
    from app.extensions import db
    from app.services import workspaces

    owner = make_user("ada", balance=10)
    with app.app_context():
        workspaces.create_team(db.session, user_id=owner.id, name="Acme")
        db.session.remove()
    result = app.test_cli_runner().invoke(args=["users", "list"])
    assert result.exit_code == 0
    assert result.output.splitlines() == [f"{owner.id}\tada\tfree\t10"]
    assert "Acme" in app.test_cli_runner().invoke(args=["workspaces", "list"]).output


def test_cli_tokens_create_prints_a_working_token_once(app, client, make_user):
    make_user("robot")
    result = app.test_cli_runner().invoke(args=["tokens", "create", "robot", "--name", "deploy"])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert re.fullmatch(r"sorya_[A-Za-z0-9_-]{43}", token)
    assert "will not be shown again" in result.stderr
    assert client.get("/api/me", headers=bearer(token)).json["login"] == "robot"


@pytest.mark.parametrize(
    "args", [["tokens", "create", "nobody", "--name", "x"], ["users", "disable", "nobody"],
             ["tokens", "create", "robot", "--name", ""]],
)
def test_cli_explains_bad_input(app, make_user, args):
    make_user("robot")
    result = app.test_cli_runner().invoke(args=args)
    assert result.exit_code == 1
    assert "Error:" in result.output
