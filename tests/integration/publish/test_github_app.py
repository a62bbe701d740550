"""GitHub App mode (`GITHUB_APP_ID`, `GITHUB_APP_PRIVATE_KEY`, `GITHUB_APP_SLUG`): repositories are reached
with installation tokens minted from the app's RS256 JWT, on the repositories the person chose; sign-in
keeps its narrow OAuth token. Against the emulator, which checks the JWT with the app's public key."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.publish.conftest import GITHUB_LOGIN, project_row
from tests.integration.publish.test_import import make_remote
from tests.integration.publish.test_publish_api import api
from tests.integration.publish.test_repo_access import narrow_person
from tests.rsa_keys import rsa_pem_pair

APP_ID = "424242"
SLUG = "sorya-test"


@pytest.fixture(scope="module")
def app_keys() -> tuple[str, str]:
    return rsa_pem_pair()


@pytest.fixture
def github_app(app, github, app_keys) -> Iterator[str]:
    """The app registered on the emulator and configured on Sorya; yields its private key."""
    from app.services.publish.app_access import forget_installation_token

    private, public = app_keys
    github.control.register_github_app(APP_ID, SLUG, public)
    config = app.extensions["sorya.config"]
    saved = (config.GITHUB_APP_ID, config.GITHUB_APP_PRIVATE_KEY, config.GITHUB_APP_SLUG)
    config.GITHUB_APP_ID, config.GITHUB_APP_PRIVATE_KEY, config.GITHUB_APP_SLUG = APP_ID, private, SLUG
    forget_installation_token()
    yield private
    forget_installation_token()
    config.GITHUB_APP_ID, config.GITHUB_APP_PRIVATE_KEY, config.GITHUB_APP_SLUG = saved


def token_mints(github, since: int) -> list[dict]:
    return [c for c in github.api_calls(since) if c["path"].endswith("/access_tokens")]


def test_import_and_pull_go_through_the_installation_with_one_token(app, client, make_user, github, github_app):
    user = narrow_person(app, client, make_user, github)  # sign-in scopes only: no repo
    make_remote(github, github.control.issue_token(GITHUB_LOGIN, ["repo"]))
    github.control.install_github_app(APP_ID, GITHUB_LOGIN, ["octocat/tools"])
    mark = github.control.mark()
    response = api(client, "POST", "/api/projects/import", {"repo": "octocat/tools"})
    assert response.status_code == 201, response.get_json()
    project_id = response.get_json()["id"]
    assert api(client, "POST", f"/api/github/repo/{project_id}/pull").status_code == 200
    # One token for both (cached until shortly before it expires), minted with a JWT the emulator verified.
    assert len(token_mints(github, mark)) == 1
    calls = github.api_calls(mark)
    assert all(c["path"] != "/api/v3/user" for c in calls)
    assert project_row(app, project_id).repo_full_name == "octocat/tools"
    _ = user


def test_a_token_near_its_expiry_is_not_reused(app, client, make_user, github, github_app, app_keys):
    github.control.register_github_app(APP_ID, SLUG, app_keys[1], token_ttl_s=120)  # inside the refresh margin
    narrow_person(app, client, make_user, github)
    make_remote(github, github.control.issue_token(GITHUB_LOGIN, ["repo"]))
    github.control.install_github_app(APP_ID, GITHUB_LOGIN, ["octocat/tools"])
    mark = github.control.mark()
    project_id = api(client, "POST", "/api/projects/import", {"repo": "octocat/tools"}).get_json()["id"]
    assert api(client, "POST", f"/api/github/repo/{project_id}/pull").status_code == 200
    assert len(token_mints(github, mark)) == 2


def test_installation_tokens_are_cached_sealed_never_in_plaintext(app, client, make_user, github, github_app):
    from app.services.publish import app_access

    narrow_person(app, client, make_user, github)
    make_remote(github, github.control.issue_token(GITHUB_LOGIN, ["repo"]))
    github.control.install_github_app(APP_ID, GITHUB_LOGIN, ["octocat/tools"])
    assert api(client, "POST", "/api/projects/import", {"repo": "octocat/tools"}).status_code == 201
    sealed = [value for value, _ in app_access._tokens.values()]  # noqa: SLF001 - the cache itself is the subject
    assert len(sealed) == 1 and not sealed[0].startswith("ghs_") and "ghs_" not in sealed[0]


def test_a_repository_without_the_app_offers_the_install_link(app, client, make_user, github, github_app):
    narrow_person(app, client, make_user, github)
    make_remote(github, github.control.issue_token(GITHUB_LOGIN, ["repo"]))
    response = api(client, "POST", "/api/projects/import", {"repo": "octocat/tools"})
    assert response.status_code == 409
    error = response.get_json()["error"]
    assert error["reason"] == "github_app_not_installed"
    assert error["install_url"] == f"{github.url}/github-apps/{SLUG}/installations/new"
    assert "not installed on octocat/tools" in error["message"]
    page = client.post("/projects/import", data={"repo": "octocat/tools", "csrf_token": _csrf(client)})
    assert page.status_code == 409
    assert f'href="{github.url}/github-apps/{SLUG}/installations/new"' in page.get_data(as_text=True)


def test_the_app_removed_from_a_linked_repository_asks_to_reinstall(app, client, make_user, github, github_app):
    narrow_person(app, client, make_user, github)
    make_remote(github, github.control.issue_token(GITHUB_LOGIN, ["repo"]))
    installation = github.control.install_github_app(APP_ID, GITHUB_LOGIN, ["octocat/tools"])
    project_id = api(client, "POST", "/api/projects/import", {"repo": "octocat/tools"}).get_json()["id"]
    github.control.remove_github_app(installation, "octocat/tools")
    pull = api(client, "POST", f"/api/github/repo/{project_id}/pull")
    assert pull.status_code == 409 and pull.get_json()["error"]["reason"] == "github_app_not_installed"
    push = api(client, "POST", f"/api/github/repo/{project_id}/push", {})
    assert push.get_json()["error"]["reason"] == "github_app_not_installed", push.get_json()
    assert push.get_json()["error"]["install_url"].endswith(f"/github-apps/{SLUG}/installations/new")
    # The pull's failure on a page: the error page's button is the reinstall link.
    page = client.post(f"/projects/{project_id}/github/pull", data={"csrf_token": _csrf(client)})
    assert page.status_code == 409
    assert "Install the Sorya app on GitHub" in page.get_data(as_text=True)
    # Reinstalled: it works again (a new installation, a new token).
    github.control.install_github_app(APP_ID, GITHUB_LOGIN, ["octocat/tools"])
    assert api(client, "POST", f"/api/github/repo/{project_id}/pull").status_code == 200


def test_a_refused_installation_token_is_dropped_and_the_next_try_mints_another(app, client, make_user, github,
                                                                                github_app):
    from app import runtime
    from app.crypto import decrypt_secret
    from app.services.publish import app_access

    user = narrow_person(app, client, make_user, github)
    make_remote(github, github.control.issue_token(GITHUB_LOGIN, ["repo"]))
    github.control.install_github_app(APP_ID, GITHUB_LOGIN, ["octocat/tools"])
    project_id = api(client, "POST", "/api/projects/import", {"repo": "octocat/tools"}).get_json()["id"]
    ((_, installation_id), (sealed, _)), = app_access._tokens.items()  # noqa: SLF001
    with app.app_context():
        token = decrypt_secret(runtime.keyring(), sealed, purpose=app_access.INSTALLATION_TOKEN_PURPOSE,
                               owner=installation_id)
    github.control.revoke_token(token)
    refused = api(client, "POST", f"/api/github/repo/{project_id}/pull")
    assert refused.status_code == 502 and refused.get_json()["error"]["reason"] == "github_app_token_refused"
    # The person's own sign-in is fine: nothing asks them to reconnect.
    from tests.integration.publish.test_repo_access import stored_scopes
    assert stored_scopes(app, user.id) == ["read:user", "user:email"]
    from app.extensions import db
    from app.models import GithubAccount
    with app.app_context():
        assert db.session.query(GithubAccount).filter_by(user_id=user.id).one().token_status == "valid"
    mark = github.control.mark()
    assert api(client, "POST", f"/api/github/repo/{project_id}/pull").status_code == 200
    assert len(token_mints(github, mark)) == 1


def test_an_installation_on_someone_elses_repository_does_not_open_it(app, client, make_user, github, github_app):
    narrow_person(app, client, make_user, github)
    mona = github.control.issue_token("mona", ["repo"])
    from tests.integration.publish.test_publish_api import gh_api
    assert gh_api(github, mona, "POST", "/user/repos", {"name": "secret", "private": True}).status_code == 201
    github.control.push_as_someone_else("mona", "secret", {"a.txt": "mine\n"})
    github.control.install_github_app(APP_ID, "mona", ["mona/secret"])
    response = api(client, "POST", "/api/projects/import", {"repo": "mona/secret"})
    assert response.status_code == 404, response.get_json()
    assert client.get("/api/projects").get_json()["projects"] == []


def test_a_jwt_signed_with_another_key_is_refused(app, client, make_user, github, github_app):
    narrow_person(app, client, make_user, github)
    make_remote(github, github.control.issue_token(GITHUB_LOGIN, ["repo"]))
    github.control.install_github_app(APP_ID, GITHUB_LOGIN, ["octocat/tools"])
    app.extensions["sorya.config"].GITHUB_APP_PRIVATE_KEY = rsa_pem_pair()[0]
    response = api(client, "POST", "/api/projects/import", {"repo": "octocat/tools"})
    assert response.status_code in (409, 502), response.get_json()
    assert client.get("/api/projects").get_json()["projects"] == []
    refused = [c for c in github.control.calls() if c["path"].endswith("/installation")]
    assert refused and refused[-1]["status"] == 401


def test_the_import_page_lists_the_repositories_given_to_the_app(app, client, make_user, github, github_app):
    narrow_person(app, client, make_user, github)
    token = github.control.issue_token(GITHUB_LOGIN, ["repo"])
    make_remote(github, token)
    make_remote(github, token, name="hidden")
    github.control.install_github_app(APP_ID, GITHUB_LOGIN, ["octocat/tools"])
    page = client.get("/projects/import").get_data(as_text=True)
    assert "octocat/tools" in page and "octocat/hidden" not in page
    assert "Allow access to my repositories" not in page


def _csrf(client) -> str:
    from tests.conftest import csrf_token_for
    return csrf_token_for(client)


def test_with_the_app_repositories_are_linked_not_created(app, client, make_user, github, github_app):
    from tests.integration.publish.conftest import make_project

    user = narrow_person(app, client, make_user, github)
    project_id = make_project(app, user, "Linked App")
    created = api(client, "POST", f"/api/github/repo/{project_id}/init", {})
    assert created.status_code == 409
    error = created.get_json()["error"]
    assert error["reason"] == "github_app_link_only" and error["install_url"].endswith("/installations/new")
    make_remote(github, github.control.issue_token(GITHUB_LOGIN, ["repo"]), name="linked-app")
    github.control.install_github_app(APP_ID, GITHUB_LOGIN, ["octocat/linked-app"])
    linked = api(client, "POST", f"/api/github/repo/{project_id}/init", {"link_existing": True})
    assert linked.status_code == 201, linked.get_json()
    assert project_row(app, project_id).repo_full_name == "octocat/linked-app"
