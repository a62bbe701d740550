"""Asking for repositories only when needed: sign-in grants the profile only; the first create, link or
import asks GitHub for `repo` in a second consent and then finishes what the person started."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from sqlalchemy import select

from tests.conftest import csrf_token_for, sign_in
from tests.integration import github_flow
from tests.integration.publish.conftest import GITHUB_LOGIN, make_project, project_row
from tests.integration.publish.test_import import FILES, make_remote, snapshot_files
from tests.integration.publish.test_publish_api import api

OCTOCAT_ID = 583231  # the emulator's seeded octocat
NARROW = ("read:user", "user:email")


def narrow_person(app, client, make_user, github, *, scopes=NARROW, github_user_id: int = OCTOCAT_ID):
    """A person signed in as octocat whose stored token holds `scopes` (sign-in's, by default)."""
    from app import runtime
    from app.extensions import db
    from app.models import GithubAccount
    from app.services.accounts import encrypt_github_token

    user = make_user(GITHUB_LOGIN, name="Octo Cat")
    sign_in(client, user)
    token = github.control.issue_token(GITHUB_LOGIN, list(scopes))
    with app.app_context():
        db.session.add(GithubAccount(user_id=user.id, github_user_id=github_user_id, login=GITHUB_LOGIN,
                                     access_token_encrypted=encrypt_github_token(runtime.keyring(), token, user.id),
                                     scopes=",".join(scopes)))
        db.session.commit()
    client.user = user
    return user


def stored_scopes(app, user_id: int) -> list[str]:
    from app.extensions import db
    from app.models import GithubAccount

    with app.app_context():
        return db.session.execute(select(GithubAccount.scopes).where(GithubAccount.user_id == user_id)).scalar_one().split(",")


def follow_consent(client, github, location: str, *, login: str = GITHUB_LOGIN, action: str = "authorize"):
    """From Sorya's redirect to `/auth/github/repositories`, through GitHub's consent, to the callback's
    answer. Returns (the scopes asked of GitHub, Sorya's answer to the callback)."""
    assert urlsplit(location).path == "/auth/github/repositories", location
    started = client.get(location)
    assert started.status_code == 302, started.get_data(as_text=True)
    params = {k: v[0] for k, v in parse_qs(urlsplit(started.headers["Location"]).query).items()}
    flow = github_flow.Consent(authorize_url=started.headers["Location"], params=params)
    callback = github_flow.consent(github.url, flow, login=login, action=action)
    return params["scope"].split(), client.get(github_flow.callback_path(callback))


def test_an_import_without_repository_access_asks_once_then_finishes_the_import(app, client, make_user, github):
    user = narrow_person(app, client, make_user, github)
    head = make_remote(github, github.control.issue_token(GITHUB_LOGIN, ["repo"]))
    mark = github.control.mark()
    started = client.post("/projects/import", data={"repo": "octocat/tools", "branch": "",
                                                    "csrf_token": csrf_token_for(client)})
    assert started.status_code == 302
    assert github.api_calls(mark) == []  # nothing asked of GitHub with a token that could not do it
    scopes, back = follow_consent(client, github, started.headers["Location"])
    assert scopes == ["read:user", "user:email", "repo"]
    assert back.status_code == 302 and back.headers["Location"] == "/github/continue"
    assert "repo" in stored_scopes(app, user.id)
    done = client.get("/github/continue")
    assert done.status_code == 302 and done.headers["Location"].startswith("/projects/")
    project_id = int(done.headers["Location"].split("/")[2])
    project = project_row(app, project_id)
    assert project.repo_full_name == "octocat/tools" and project.repo_head_sha == head
    assert snapshot_files(app, project.sync_snapshot_id) == {p: t.encode() for p, t in FILES.items()}
    page = client.get(done.headers["Location"]).get_data(as_text=True)
    assert "Imported octocat/tools (main): 4 files imported." in page
    # The kept action ran once: coming back again does nothing more.
    assert client.get("/github/continue").headers["Location"] == "/projects"
    assert len(client.get("/api/projects").get_json()["projects"]) == 1


def test_the_api_answers_403_with_the_consent_address_and_calls_nothing(app, client, make_user, github):
    narrow_person(app, client, make_user, github)
    make_remote(github, github.control.issue_token(GITHUB_LOGIN, ["repo"]))
    mark = github.control.mark()
    response = api(client, "POST", "/api/projects/import", {"repo": "octocat/tools"})
    assert response.status_code == 403
    error = response.get_json()["error"]
    assert error["code"] == "github_scope_required" and error["reason"] == "github_scope_required"
    assert error["scope"] == "repo"
    assert "GitHub will ask you to allow it once" in error["message"]
    consent = urlsplit(error["consent_url"])
    assert consent.path == "/auth/github/repositories"
    assert parse_qs(consent.query)["next"] == ["/projects/import?repo=octocat/tools"]
    assert github.api_calls(mark) == []
    project_id = make_project(app, client.user)
    init = api(client, "POST", f"/api/github/repo/{project_id}/init", {})
    assert init.status_code == 403 and init.get_json()["error"]["code"] == "github_scope_required"
    assert parse_qs(urlsplit(init.get_json()["error"]["consent_url"]).query)["next"] == [f"/projects/{project_id}/publish"]


def test_creating_a_repository_asks_then_creates_it_and_returns_to_the_page(app, client, make_user, github):
    user = narrow_person(app, client, make_user, github)
    project_id = make_project(app, user, "Second Consent")
    started = client.post(f"/projects/{project_id}/publish/repo",
                          data={"name": "second-consent", "visibility": "private", "csrf_token": csrf_token_for(client),
                                "next": f"/projects/{project_id}?tab=publish"})
    assert started.status_code == 302
    _, back = follow_consent(client, github, started.headers["Location"])
    done = client.get(back.headers["Location"])
    assert done.headers["Location"] == f"/projects/{project_id}?tab=publish"
    assert project_row(app, project_id).repo_full_name == "octocat/second-consent"
    assert "octocat/second-consent" in github.control.session.get(f"{github.url}/_emulator/repos", timeout=5).json()["repos"]


def test_htmx_is_sent_to_the_consent_as_a_whole_page(app, client, make_user, github):
    user = narrow_person(app, client, make_user, github)
    project_id = make_project(app, user)
    response = client.post(f"/projects/{project_id}/publish/repo", data={"csrf_token": csrf_token_for(client)},
                           headers={"HX-Request": "true", "HX-Current-URL": f"http://localhost/projects/{project_id}"})
    assert response.status_code == 204
    assert urlsplit(response.headers["HX-Redirect"]).path == "/auth/github/repositories"


def test_a_declined_second_consent_says_so_and_does_nothing(app, client, make_user, github):
    user = narrow_person(app, client, make_user, github)
    make_remote(github, github.control.issue_token(GITHUB_LOGIN, ["repo"]))
    started = client.post("/projects/import", data={"repo": "octocat/tools", "csrf_token": csrf_token_for(client)})
    _, back = follow_consent(client, github, started.headers["Location"], action="cancel")
    assert back.status_code == 302
    page = client.get(back.headers["Location"], follow_redirects=True).get_data(as_text=True)
    assert "GitHub access was not granted, so nothing was done." in page
    assert stored_scopes(app, user.id) == list(NARROW)
    assert client.get("/github/continue").headers["Location"] == "/projects"  # the kept import was dropped
    assert client.get("/api/projects").get_json()["projects"] == []


def test_a_consent_given_as_another_github_user_is_refused(app, client, make_user, github):
    user = narrow_person(app, client, make_user, github)
    started = client.post("/projects/import", data={"repo": "octocat/tools", "csrf_token": csrf_token_for(client)})
    _, back = follow_consent(client, github, started.headers["Location"], login="mona")
    assert back.status_code == 403
    assert "different GitHub user" in back.get_data(as_text=True)
    assert stored_scopes(app, user.id) == list(NARROW)


def test_accounts_that_granted_repo_keep_it_when_they_sign_in_again(app, client, make_user, github):
    user = narrow_person(app, client, make_user, github, scopes=("read:user", "user:email", "repo"))
    make_remote(github, github.control.issue_token(GITHUB_LOGIN, ["repo"]))
    client.post("/auth/logout", data={"csrf_token": csrf_token_for(client)})
    signed_in = github_flow.sign_in(client, github.url)  # sign-in asks for the profile only
    assert signed_in.status_code == 302
    assert "repo" in stored_scopes(app, user.id)
    response = api(client, "POST", "/api/projects/import", {"repo": "octocat/tools"})
    assert response.status_code == 201, response.get_json()


def test_a_token_github_says_lacks_the_scope_is_asked_again(app, client, make_user, github):
    """The stored scopes say `repo`, but the person narrowed the token on GitHub since."""
    from app import runtime
    from app.extensions import db
    from app.models import GithubAccount
    from app.services.accounts import encrypt_github_token

    user = narrow_person(app, client, make_user, github, scopes=("read:user", "user:email", "repo"))
    make_remote(github, github.control.issue_token(GITHUB_LOGIN, ["repo"]))
    narrowed = github.control.issue_token(GITHUB_LOGIN, list(NARROW))
    with app.app_context():
        account = db.session.execute(select(GithubAccount).where(GithubAccount.user_id == user.id)).scalar_one()
        account.access_token_encrypted = encrypt_github_token(runtime.keyring(), narrowed, user.id)
        db.session.commit()
    response = api(client, "POST", "/api/projects/import", {"repo": "octocat/tools"})
    assert response.status_code == 403, response.get_json()
    assert response.get_json()["error"]["code"] == "github_scope_required"
    assert "repo" not in stored_scopes(app, user.id)
    assert client.get("/api/projects").get_json()["projects"] == []


def test_the_import_page_offers_the_consent_instead_of_an_error(app, client, make_user, github):
    narrow_person(app, client, make_user, github)
    page = client.get("/projects/import")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "Allow access to my repositories" in text
    assert "/auth/github/repositories?next=%2Fprojects%2Fimport" in text


def test_a_pull_from_a_page_without_repository_access_offers_the_consent(app, client, make_user, github):
    """A linked project whose person's token lost the repository scope: the page's pull answers with the
    error page whose button is the second consent, returning to the page they were on."""
    user = narrow_person(app, client, make_user, github)
    project_id = make_project(app, user, repo_full_name="octocat/tools", repo_branch="main", repo_head_sha="a" * 40)
    response = client.post(f"/projects/{project_id}/github/pull", data={"csrf_token": csrf_token_for(client)},
                           headers={"Referer": f"http://localhost/projects/{project_id}"})
    assert response.status_code == 403
    text = response.get_data(as_text=True)
    assert "Allow access to my repositories" in text
    assert f"/auth/github/repositories?next=%2Fprojects%2F{project_id}" in text


def test_the_account_page_says_whether_repository_access_is_granted(app, client, make_user, github):
    narrow_person(app, client, make_user, github)
    page = client.get("/account").get_data(as_text=True)
    assert "Repository access: not granted yet." in page
    assert "/auth/github/repositories?next=%2Faccount" in page
    started = client.get("/auth/github/repositories?next=%2Faccount")
    params = {k: v[0] for k, v in parse_qs(urlsplit(started.headers["Location"]).query).items()}
    callback = github_flow.consent(github.url, github_flow.Consent(started.headers["Location"], params))
    assert client.get(github_flow.callback_path(callback)).headers["Location"] == "/account"
    assert "Repository access: granted." in client.get("/account").get_data(as_text=True)


def test_the_consent_needs_a_session_and_never_returns_off_site(app, client, make_user, github):
    signed_out = client.get("/auth/github/repositories?next=%2Fprojects%2Fimport")
    assert signed_out.status_code == 302 and "/auth/login" in signed_out.headers["Location"]
    narrow_person(app, client, make_user, github)
    started = client.get("/auth/github/repositories", query_string={"next": "https://evil.example/"})
    params = {k: v[0] for k, v in parse_qs(urlsplit(started.headers["Location"]).query).items()}
    callback = github_flow.consent(github.url, github_flow.Consent(started.headers["Location"], params))
    assert client.get(github_flow.callback_path(callback)).headers["Location"] == "/projects"
    # A stale or forged /github/continue with nothing kept goes to the projects, doing nothing.
    assert client.get("/github/continue").headers["Location"] == "/projects"
