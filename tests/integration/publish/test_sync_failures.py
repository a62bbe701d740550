"""GitHub both ways when GitHub says no: what the person sees for each failure, and that nothing is kept."""

from __future__ import annotations

from tests.integration.publish.test_import import make_remote
from tests.integration.publish.test_publish_api import api, setup_person
from tests.integration.publish.test_pull import BASE


def test_an_import_without_the_repository_scope_asks_for_it(app, client, make_user, github):
    user, token = setup_person(app, client, make_user, github, scopes=("read:user", "user:email"))
    owner_token = github.control.issue_token("octocat", ["repo"])
    make_remote(github, owner_token)
    response = api(client, "POST", "/api/projects/import", {"repo": "octocat/tools"})
    error = response.get_json()["error"]
    assert response.status_code == 403, response.get_json()
    assert error["reason"] == "github_scope_required"
    assert "/auth/github/repositories" in error["consent_url"]
    assert client.get("/api/projects").get_json()["projects"] == []


def test_a_rate_limited_import_says_when_to_try_again(app, client, make_user, github):
    user, token = setup_person(app, client, make_user, github)
    make_remote(github, token)
    github.control.fault("GET", "/api/v3/repos/octocat/tools/git/trees/.*", kind="rate_limit", retry_after=3600,
                         count=3)
    response = api(client, "POST", "/api/projects/import", {"repo": "octocat/tools"})
    assert response.status_code in (429, 502, 503), response.get_json()
    assert "Try again after" in response.get_json()["error"]["message"]
    assert client.get("/api/projects").get_json()["projects"] == []


def test_a_pull_from_a_deleted_repository_says_so_and_keeps_the_versions(app, client, make_user, github):
    user, token = setup_person(app, client, make_user, github)
    make_remote(github, token, files=BASE)
    project_id = api(client, "POST", "/api/projects/import", {"repo": "octocat/tools"}).get_json()["id"]
    import requests
    admin = github.control.issue_token("octocat", ["repo", "delete_repo"])
    requests.delete(f"{github.url}/api/v3/repos/octocat/tools", headers={"Authorization": f"token {admin}"},
                    timeout=5).raise_for_status()
    response = api(client, "POST", f"/api/github/repo/{project_id}/pull")
    assert response.status_code in (404, 409, 502), response.get_json()
    assert "deleted, renamed" in response.get_json()["error"]["message"]
    assert len(client.get(f"/api/projects/{project_id}/snapshots").get_json()["snapshots"]) == 1
    # The pull lock was released: a second try answers the same, not "already running".
    again = api(client, "POST", f"/api/github/repo/{project_id}/pull")
    assert "already running" not in again.get_json()["error"]["message"]


def test_a_push_to_an_archived_repository_is_refused_with_githubs_reason(app, client, make_user, github):
    user, token = setup_person(app, client, make_user, github)
    client.user = user
    make_remote(github, token, files=BASE)
    project_id = api(client, "POST", "/api/projects/import", {"repo": "octocat/tools"}).get_json()["id"]
    from tests.integration.publish.test_pull import edit
    edit(client, project_id, {"a.py": "new\n"})
    github.control.fault("PATCH", "/api/v3/repos/octocat/tools/git/refs/.*", status=403,
                         body={"message": "Repository was archived so is read-only."}, count=1)
    response = api(client, "POST", f"/api/github/repo/{project_id}/push", {})
    assert response.status_code in (403, 409, 502), response.get_json()
    assert "archived" in response.get_json()["error"]["message"]
