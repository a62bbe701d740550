"""Publishing to GitHub end to end: the JSON routes against the GitHub emulator.

Each test reads the repository back from the emulator, so "pushed" means the files on GitHub equal the
snapshot, not that a function returned.
"""

from __future__ import annotations

import requests

from tests.conftest import csrf_token_for, sign_in
from tests.integration.publish.conftest import (
    GITHUB_LOGIN,
    connect_github,
    make_project,
    make_snapshot,
    project_row,
    pushes_of,
)
from tests.servers import JobsWorker

FILES_V1 = {"README.md": "# My App\n", "app/main.py": "print('hello')\n", "app/util.py": "X = 1\n",
            "docs/guide.md": "Guide\n"}


def api(client, method: str, path: str, body: dict | None = None):
    headers = {"X-CSRFToken": csrf_token_for(client)}
    return client.open(path, method=method, json=body if body is not None else {}, headers=headers)


def setup_person(app, client, make_user, github, *, email: str | None = "octo@example.com", **connect):
    user = make_user(GITHUB_LOGIN, email=email, name="Octo Cat")
    sign_in(client, user)
    token = connect_github(app, user, github, **connect)
    return user, token


def linked_project(app, client, github, name: str = "My App") -> tuple[int, str]:
    project_id = make_project(app, client.user, name)
    response = api(client, "POST", f"/api/github/repo/{project_id}/init", {})
    assert response.status_code == 201, response.get_json()
    return project_id, response.get_json()["repo_full_name"]


def gh_api(github, token: str, method: str, path: str, body: dict | None = None):
    return requests.request(method, f"{github.url}/api/v3{path}", json=body,
                            headers={"Authorization": f"token {token}"}, timeout=5)


def test_create_repository_defaults_to_a_private_slug_of_the_project_name(app, client, make_user, github):
    user, token = setup_person(app, client, make_user, github)
    client.user = user
    project_id = make_project(app, user, "Weather Bot (v2) ✓", description="Says the weather")
    response = api(client, "POST", f"/api/github/repo/{project_id}/init", {})
    assert response.status_code == 201
    body = response.get_json()
    assert body["repo_full_name"] == "octocat/weather-bot-v2"
    assert body["html_url"] == f"{github.url}/octocat/weather-bot-v2"
    repo = gh_api(github, token, "GET", "/repos/octocat/weather-bot-v2").json()
    assert repo["private"] is True
    assert repo["description"] == "Says the weather"
    project = project_row(app, project_id)
    assert (project.repo_full_name, project.repo_branch, project.repo_head_sha) == (
        "octocat/weather-bot-v2", "main", None)
    # Linking twice is refused rather than silently switching repositories.
    again = api(client, "POST", f"/api/github/repo/{project_id}/init", {"name": "other"})
    assert again.status_code == 409
    assert again.get_json()["error"]["reason"] == "already_linked"


def test_existing_name_offers_to_link_then_links_it(app, client, make_user, github):
    user, token = setup_person(app, client, make_user, github)
    client.user = user
    assert gh_api(github, token, "POST", "/user/repos", {"name": "my-app", "private": False}).status_code == 201
    project_id = make_project(app, user, "My App")
    response = api(client, "POST", f"/api/github/repo/{project_id}/init", {})
    assert response.status_code == 409
    error = response.get_json()["error"]
    assert (error["reason"], error["offer"], error["repo_full_name"]) == ("repo_exists", "link_existing",
                                                                         "octocat/my-app")
    assert project_row(app, project_id).repo_full_name is None
    linked = api(client, "POST", f"/api/github/repo/{project_id}/init", {"name": "my-app", "link_existing": True})
    assert linked.status_code == 201
    assert linked.get_json()["linked_existing"] is True
    assert project_row(app, project_id).repo_full_name == "octocat/my-app"


def test_linking_a_repository_that_does_not_exist_is_a_field_error(app, client, make_user, github):
    user, _ = setup_person(app, client, make_user, github)
    project_id = make_project(app, user)
    response = api(client, "POST", f"/api/github/repo/{project_id}/init", {"name": "nope", "link_existing": True})
    assert response.status_code == 400
    assert "name" in response.get_json()["error"]["fields"]


def test_operator_allowing_only_public_repositories(app, client, make_user, github):
    user, token = setup_person(app, client, make_user, github, scopes=("public_repo", "read:user"))
    app.extensions["sorya.config"].GITHUB_ALLOW_PRIVATE_REPOS = False
    project_id = make_project(app, user, "Open Thing")
    refused = api(client, "POST", f"/api/github/repo/{project_id}/init", {"private": True})
    assert refused.status_code == 400
    assert "private" in refused.get_json()["error"]["fields"]
    created = api(client, "POST", f"/api/github/repo/{project_id}/init", {})
    assert created.status_code == 201
    assert gh_api(github, token, "GET", "/repos/octocat/open-thing").json()["private"] is False


def test_bad_input_for_init(app, client, make_user, github):
    user, _ = setup_person(app, client, make_user, github)
    project_id = make_project(app, user)
    for body, field in [({"name": "../evil"}, "name"), ({"name": "a" * 101}, "name"), ({"private": "yes"}, "private"),
                        ({"description": "bell\x07"}, "description"), ({"name": 5}, "name")]:
        response = api(client, "POST", f"/api/github/repo/{project_id}/init", body)
        assert response.status_code == 400, body
        assert field in response.get_json()["error"]["fields"], body
    assert client.post(f"/api/github/repo/{project_id}/init", data="{", content_type="application/json",
                       headers={"X-CSRFToken": csrf_token_for(client)}).status_code == 400
    # No CSRF token with a cookie session: refused before anything reaches GitHub.
    mark = github.control.mark()
    assert client.post(f"/api/github/repo/{project_id}/init", json={}).status_code == 403
    assert github.api_calls(mark) == []


def test_other_peoples_projects_are_not_found(app, client, make_user, github):
    owner = make_user("someone")
    project_id = make_project(app, owner, "Theirs")
    make_snapshot(app, project_id, {"a.txt": "a"})
    setup_person(app, client, make_user, github)
    for path in (f"/api/github/repo/{project_id}/init", f"/api/github/repo/{project_id}/push"):
        response = api(client, "POST", path, {})
        assert response.status_code == 404
        assert "Theirs" not in response.get_data(as_text=True)
    assert client.get(f"/projects/{project_id}/publish").status_code == 404


def test_signed_out_api_is_unauthenticated(client, app, github):
    assert client.post("/api/github/repo/1/push", json={}).status_code in (401, 403)


def test_first_push_to_an_empty_repository_then_incremental_pushes(app, client, make_user, github):
    user, token = setup_person(app, client, make_user, github)
    client.user = user
    project_id, full_name = linked_project(app, client, github)
    first_id = make_snapshot(app, project_id, FILES_V1, summary="First version")

    response = api(client, "POST", f"/api/github/repo/{project_id}/push", {})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["files_changed"] == 4
    assert body["html_url"] == f"{github.url}/{full_name}/commit/{body['commit_sha']}"
    assert github.control.repo_files("octocat", "my-app") == FILES_V1
    commit = gh_api(github, token, "GET", f"/repos/{full_name}/git/commits/{body['commit_sha']}").json()
    assert commit["message"].startswith("Snapshot #1: First version")
    assert commit["author"]["email"] == "octo@example.com" and commit["author"]["name"] == "Octo Cat"
    # An empty repository needs one Contents API commit first: at most 2 commits, never more.
    parents = commit["parents"]
    assert len(parents) == 1
    root = gh_api(github, token, "GET", f"/repos/{full_name}/git/commits/{parents[0]['sha']}").json()
    assert root["parents"] == []
    assert project_row(app, project_id).repo_head_sha == body["commit_sha"]

    # Incremental: change one file, add one, delete one; everything else is untouched.
    files_v2 = dict(FILES_V1)
    files_v2["app/main.py"] = "print('hello, world')\n"
    files_v2["app/new.py"] = "NEW = True\n"
    del files_v2["docs/guide.md"]
    make_snapshot(app, project_id, files_v2, summary="Greets the world")
    mark = github.control.mark()
    response = api(client, "POST", f"/api/github/repo/{project_id}/push", {})
    assert response.status_code == 200, response.get_json()
    second = response.get_json()
    assert second["files_changed"] == 3
    assert github.control.repo_files("octocat", "my-app") == files_v2
    calls = github.api_calls(mark)
    # Read the tree, one tree with the two texts inline and the deletion, commit, ref: never per file.
    assert [(c["method"], c["path"].rsplit("/git/", 1)[-1].split("/")[0]) for c in calls] == [
        ("GET", "trees"), ("POST", "trees"), ("POST", "commits"), ("PATCH", "refs")]
    assert second["requests_made"] == len(calls) <= 4 + 3
    head = gh_api(github, token, "GET", f"/repos/{full_name}/git/commits/{second['commit_sha']}").json()
    assert [p["sha"] for p in head["parents"]] == [body["commit_sha"]]

    # Pushing an older snapshot brings its files back exactly (deletions included).
    response = api(client, "POST", f"/api/github/repo/{project_id}/push", {"snapshot_id": first_id})
    assert response.status_code == 200
    assert github.control.repo_files("octocat", "my-app") == FILES_V1


def test_binary_files_go_up_as_blobs_and_only_when_changed(app, client, make_user, github):
    user, token = setup_person(app, client, make_user, github)
    client.user = user
    project_id, full_name = linked_project(app, client, github)
    logo, icon = bytes(range(256)) * 4, b"\x89PNG\r\n\x1a\n\x00\xff"
    make_snapshot(app, project_id, dict(FILES_V1, **{"logo.png": logo, "icon.png": icon}))
    assert api(client, "POST", f"/api/github/repo/{project_id}/push", {}).status_code == 200
    make_snapshot(app, project_id, dict(FILES_V1, **{"logo.png": logo + b"\x00", "icon.png": icon,
                                                     "README.md": "# Renamed\n"}))
    mark = github.control.mark()
    response = api(client, "POST", f"/api/github/repo/{project_id}/push", {})
    assert response.status_code == 200
    calls = github.api_calls(mark)
    assert sum(c["path"].endswith("/git/blobs") for c in calls) == 1  # only the changed binary
    assert len(calls) <= 4 + 2
    tree = gh_api(github, token, "GET", f"/repos/{full_name}/git/trees/main", {}).json()
    shas = {e["path"]: e["sha"] for e in tree["tree"] if e["type"] == "blob"}
    from tests.integration.publish.conftest import git_blob_sha

    assert shas["logo.png"] == git_blob_sha(logo + b"\x00") and shas["icon.png"] == git_blob_sha(icon)
    assert shas["README.md"] == git_blob_sha(b"# Renamed\n")


def test_pushing_the_same_snapshot_twice_is_a_no_op(app, client, make_user, github):
    user, _ = setup_person(app, client, make_user, github)
    client.user = user
    project_id, _ = linked_project(app, client, github)
    make_snapshot(app, project_id, FILES_V1)
    first = api(client, "POST", f"/api/github/repo/{project_id}/push", {}).get_json()
    mark = github.control.mark()
    again = api(client, "POST", f"/api/github/repo/{project_id}/push", {})
    assert again.status_code == 200
    body = again.get_json()
    assert body["status"] == "up_to_date"
    assert "already up to date" in body["message"].lower()
    assert body["commit_sha"] == first["commit_sha"] and body["files_changed"] == 0
    calls = github.api_calls(mark)
    assert [c["method"] for c in calls] == ["GET"]  # read the tree, write nothing
    assert [p.status for p in pushes_of(app, project_id)] == ["succeeded", "up_to_date"]


def test_branch_moved_elsewhere_without_overlap_is_rebuilt_on_top(app, client, make_user, github):
    user, token = setup_person(app, client, make_user, github)
    client.user = user
    project_id, full_name = linked_project(app, client, github)
    make_snapshot(app, project_id, FILES_V1)
    api(client, "POST", f"/api/github/repo/{project_id}/push", {})
    theirs = github.control.push_as_someone_else("octocat", "my-app", {"docs/guide.md": "Better guide\n",
                                                                        "CONTRIBUTING.md": "Be kind\n"})
    files_v2 = dict(FILES_V1, **{"app/main.py": "print('v2')\n"})
    del files_v2["app/util.py"]
    make_snapshot(app, project_id, files_v2)
    response = api(client, "POST", f"/api/github/repo/{project_id}/push", {})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    expected = dict(files_v2, **{"docs/guide.md": "Better guide\n", "CONTRIBUTING.md": "Be kind\n"})
    assert github.control.repo_files("octocat", "my-app") == expected
    commit = gh_api(github, token, "GET", f"/repos/{full_name}/git/commits/{body['commit_sha']}").json()
    assert [p["sha"] for p in commit["parents"]] == [theirs]
    # The rebuilt head is now Sorya's: the next push is incremental again and keeps their files.
    make_snapshot(app, project_id, dict(files_v2, **{"app/main.py": "print('v3')\n"}))
    assert api(client, "POST", f"/api/github/repo/{project_id}/push", {}).status_code == 200
    assert github.control.repo_files("octocat", "my-app") == dict(expected, **{"app/main.py": "print('v3')\n"})


def test_overlapping_change_is_refused_then_pushed_to_a_new_branch(app, client, make_user, github):
    user, _ = setup_person(app, client, make_user, github)
    client.user = user
    project_id, full_name = linked_project(app, client, github)
    make_snapshot(app, project_id, FILES_V1)
    first = api(client, "POST", f"/api/github/repo/{project_id}/push", {}).get_json()
    theirs = github.control.push_as_someone_else("octocat", "my-app", {"app/main.py": "print('theirs')\n"})
    files_v2 = dict(FILES_V1, **{"app/main.py": "print('ours')\n", "app/extra.py": "E = 2\n"})
    make_snapshot(app, project_id, files_v2, summary="Ours")
    response = api(client, "POST", f"/api/github/repo/{project_id}/push", {})
    assert response.status_code == 409
    error = response.get_json()["error"]
    assert (error["reason"], error["offer"], error["conflicting_paths"]) == ("push_conflict",
                                                                             "push_to_new_branch", ["app/main.py"])
    assert "app/main.py" in error["message"]
    main_files = dict(FILES_V1, **{"app/main.py": "print('theirs')\n"})
    assert github.control.repo_files("octocat", "my-app") == main_files
    assert project_row(app, project_id).repo_head_sha == first["commit_sha"]
    assert pushes_of(app, project_id)[-1].error_code == "push_conflict"

    branch = api(client, "POST", f"/api/github/repo/{project_id}/push", {"new_branch": True})
    assert branch.status_code == 200, branch.get_json()
    body = branch.get_json()
    assert body["branch"] == "sorya/snapshot-2"
    assert body["compare_url"] == f"{github.url}/{full_name}/compare/main...sorya/snapshot-2?expand=1"
    assert github.control.repo_files("octocat", "my-app", ref="sorya/snapshot-2") == files_v2
    assert github.control.repo_files("octocat", "my-app") == main_files  # main untouched
    assert project_row(app, project_id).repo_head_sha == first["commit_sha"]
    assert requests.get(body["compare_url"], timeout=5).status_code == 200
    # The same offer again picks a fresh branch name rather than failing.
    again = api(client, "POST", f"/api/github/repo/{project_id}/push", {"new_branch": True})
    assert again.status_code == 200 and again.get_json()["branch"] == "sorya/snapshot-2-2"
    assert theirs  # their commit stays the head of main


def test_revoked_token_asks_to_reconnect_and_records_nothing(app, client, make_user, github):
    user, token = setup_person(app, client, make_user, github)
    client.user = user
    project_id, _ = linked_project(app, client, github)
    make_snapshot(app, project_id, FILES_V1)
    github.control.revoke_token(token)
    response = api(client, "POST", f"/api/github/repo/{project_id}/push", {})
    assert response.status_code == 502
    error = response.get_json()["error"]
    assert error["reason"] == "github_token_revoked" and "Reconnect GitHub" in error["message"]
    from app.extensions import db
    from app.models import GithubAccount

    with app.app_context():
        assert db.session.query(GithubAccount).one().token_status == "revoked"
    assert [p.status for p in pushes_of(app, project_id)] == ["failed"]
    assert project_row(app, project_id).repo_head_sha is None
    # Until they reconnect, Sorya does not even try.
    mark = github.control.mark()
    again = api(client, "POST", f"/api/github/repo/{project_id}/push", {})
    assert again.status_code == 409 and again.get_json()["error"]["reason"] == "github_token_revoked"
    assert github.api_calls(mark) == []
    page = client.get(f"/projects/{project_id}/publish").get_data(as_text=True)
    assert "Reconnect" in page


def test_missing_repository_scope(app, client, make_user, github):
    user, _ = setup_person(app, client, make_user, github, scopes=("read:user", "user:email"))
    project_id = make_project(app, user)
    mark = github.control.mark()
    response = api(client, "POST", f"/api/github/repo/{project_id}/init", {})
    assert response.status_code == 403
    error = response.get_json()["error"]
    assert error["code"] == "github_scope_required"
    assert "access to your GitHub repositories" in error["message"]
    assert "/auth/github/repositories?next=" in error["consent_url"]
    assert github.api_calls(mark) == []
    assert project_row(app, project_id).repo_full_name is None


def test_repository_renamed_or_deleted_offers_relink_or_recreate(app, client, make_user, github):
    user, token = setup_person(app, client, make_user, github)
    client.user = user
    project_id, full_name = linked_project(app, client, github)
    make_snapshot(app, project_id, FILES_V1)
    assert api(client, "POST", f"/api/github/repo/{project_id}/push", {}).status_code == 200
    assert gh_api(github, token, "PATCH", f"/repos/{full_name}", {"name": "renamed"}).status_code == 200
    make_snapshot(app, project_id, dict(FILES_V1, **{"x.txt": "x"}))
    response = api(client, "POST", f"/api/github/repo/{project_id}/push", {})
    assert response.status_code == 409
    error = response.get_json()["error"]
    assert (error["reason"], error["offer"]) == ("repo_missing", "relink_or_recreate")
    assert "renamed" in error["message"]
    page = client.get(f"/projects/{project_id}/publish").get_data(as_text=True)
    assert "Unlink, then relink or recreate" in page
    # Relink to the new name: the push then continues from Sorya's last commit there.
    token_header = {"X-CSRFToken": csrf_token_for(client)}
    assert client.post(f"/projects/{project_id}/publish/unlink", data={"csrf_token": token_header["X-CSRFToken"]}
                       ).status_code == 302
    relinked = api(client, "POST", f"/api/github/repo/{project_id}/init", {"name": "renamed", "link_existing": True})
    assert relinked.status_code == 201
    pushed = api(client, "POST", f"/api/github/repo/{project_id}/push", {})
    assert pushed.status_code == 200, pushed.get_json()
    assert github.control.repo_files("octocat", "renamed") == dict(FILES_V1, **{"x.txt": "x"})


def test_rate_limits_wait_for_a_near_reset_and_explain_a_far_one(app, client, make_user, github):
    user, _ = setup_person(app, client, make_user, github)
    client.user = user
    project_id, _ = linked_project(app, client, github)
    make_snapshot(app, project_id, FILES_V1)
    assert api(client, "POST", f"/api/github/repo/{project_id}/push", {}).status_code == 200
    make_snapshot(app, project_id, dict(FILES_V1, **{"a.txt": "a"}))
    # 403 with X-RateLimit-Remaining: 0 and a reset one second away: waited out, the push succeeds.
    github.control.fault("POST", r"/git/trees$", kind="rate_limit", retry_after=1)
    response = api(client, "POST", f"/api/github/repo/{project_id}/push", {})
    assert response.status_code == 200, response.get_json()
    assert github.control.repo_files("octocat", "my-app")["a.txt"] == "a"
    # 429 with a reset an hour away: not waited for; the person is told when to retry.
    make_snapshot(app, project_id, dict(FILES_V1, **{"a.txt": "b"}))
    github.control.fault("GET", r"/git/trees/", kind="rate_limit", status=429, retry_after=3600)
    response = api(client, "POST", f"/api/github/repo/{project_id}/push", {})
    assert response.status_code == 502
    error = response.get_json()["error"]
    assert error["reason"] == "github_rate_limited"
    assert error["retry_after_s"] >= 3599 and "Try again after" in error["message"]
    assert pushes_of(app, project_id)[-1].status == "failed"
    assert github.control.repo_files("octocat", "my-app")["a.txt"] == "a"


def test_ref_update_refused_without_the_branch_moving(app, client, make_user, github):
    user, _ = setup_person(app, client, make_user, github)
    client.user = user
    project_id, _ = linked_project(app, client, github)
    make_snapshot(app, project_id, FILES_V1)
    first = api(client, "POST", f"/api/github/repo/{project_id}/push", {}).get_json()
    make_snapshot(app, project_id, dict(FILES_V1, **{"a.txt": "a"}))
    github.control.fault("PATCH", r"/git/refs/heads/main$", status=422,
                         body={"message": "Update is not a fast forward"})
    response = api(client, "POST", f"/api/github/repo/{project_id}/push", {})
    assert response.status_code == 502
    assert "not a fast forward" in response.get_json()["error"]["message"]
    assert project_row(app, project_id).repo_head_sha == first["commit_sha"]
    assert "a.txt" not in github.control.repo_files("octocat", "my-app")
    retry = api(client, "POST", f"/api/github/repo/{project_id}/push", {})
    assert retry.status_code == 200
    assert github.control.repo_files("octocat", "my-app")["a.txt"] == "a"


def test_server_errors_and_timeouts_are_retried_for_idempotent_steps(app, client, make_user, github):
    user, _ = setup_person(app, client, make_user, github)
    client.user = user
    project_id, _ = linked_project(app, client, github)
    make_snapshot(app, project_id, FILES_V1)
    assert api(client, "POST", f"/api/github/repo/{project_id}/push", {}).status_code == 200
    make_snapshot(app, project_id, dict(FILES_V1, **{"a.bin": b"\x00a", "b.bin": b"\x00b"}))
    github.control.fault("POST", r"/git/blobs$", kind="server_error", status=502, count=2)
    github.control.fault("POST", r"/git/trees$", hang=True, hang_s=3, count=1)
    mark = github.control.mark()
    response = api(client, "POST", f"/api/github/repo/{project_id}/push", {})
    assert response.status_code == 200, response.get_json()
    files = github.control.repo_files("octocat", "my-app")
    assert files["a.bin"] == "\x00a" and files["b.bin"] == "\x00b"
    calls = github.api_calls(mark)
    assert response.get_json()["requests_made"] == len(calls) == 4 + 2 + 3  # two 502s and one timeout retried


def test_a_push_that_dies_midway_records_nothing_and_retries_safely(app, client, make_user, github):
    user, token = setup_person(app, client, make_user, github)
    client.user = user
    project_id, full_name = linked_project(app, client, github)
    make_snapshot(app, project_id, FILES_V1)
    first = api(client, "POST", f"/api/github/repo/{project_id}/push", {}).get_json()
    files_v2 = dict(FILES_V1, **{"app/main.py": "print(2)\n"})
    make_snapshot(app, project_id, files_v2)
    github.control.fault("PATCH", r"/git/refs/", kind="server_error", count=None)
    response = api(client, "POST", f"/api/github/repo/{project_id}/push", {})
    assert response.status_code == 502
    assert response.get_json()["error"]["reason"] == "github_unavailable"
    assert project_row(app, project_id).repo_head_sha == first["commit_sha"]
    assert github.control.repo_files("octocat", "my-app") == FILES_V1
    assert [p.status for p in pushes_of(app, project_id)] == ["succeeded", "failed"]
    assert pushes_of(app, project_id)[-1].running_lock is None
    github.control.clear_faults()
    retry = api(client, "POST", f"/api/github/repo/{project_id}/push", {})
    assert retry.status_code == 200
    assert github.control.repo_files("octocat", "my-app") == files_v2
    commit = gh_api(github, token, "GET", f"/repos/{full_name}/git/commits/{retry.get_json()['commit_sha']}").json()
    assert [p["sha"] for p in commit["parents"]] == [first["commit_sha"]]


def test_ref_moved_but_not_recorded_is_recognised_on_retry(app, client, make_user, github, monkeypatch):
    """The process dies after GitHub moved the branch but before the push was recorded."""
    from app.services import publish

    user, _ = setup_person(app, client, make_user, github)
    client.user = user
    project_id, _ = linked_project(app, client, github)
    make_snapshot(app, project_id, FILES_V1)
    api(client, "POST", f"/api/github/repo/{project_id}/push", {})
    files_v2 = dict(FILES_V1, **{"app/main.py": "print(2)\n"})
    make_snapshot(app, project_id, files_v2)
    real = publish.PushJob._succeeded

    def die(self, *args, **kwargs):
        raise RuntimeError("worker killed")

    monkeypatch.setattr(publish.PushJob, "_succeeded", die)
    assert api(client, "POST", f"/api/github/repo/{project_id}/push", {}).status_code == 500
    assert pushes_of(app, project_id)[-1].status == "failed"
    monkeypatch.setattr(publish.PushJob, "_succeeded", real)
    commits_before = len(requests.get(f"{github.url}/api/v3/repos/octocat/my-app/commits", timeout=5,
                                      headers={"Authorization": f"token {_token(app)}"}).json())
    retry = api(client, "POST", f"/api/github/repo/{project_id}/push", {})
    assert retry.status_code == 200
    # Either the same commit again (same tree, parent, author and second) or "already up to date":
    # never a second commit carrying the same change.
    assert retry.get_json()["status"] in ("succeeded", "up_to_date")
    assert github.control.repo_files("octocat", "my-app") == files_v2
    commits_after = len(requests.get(f"{github.url}/api/v3/repos/octocat/my-app/commits", timeout=5,
                                     headers={"Authorization": f"token {_token(app)}"}).json())
    assert commits_after == commits_before


def _token(app) -> str:
    from app import runtime
    from app.crypto import decrypt_secret
    from app.extensions import db
    from app.models import GithubAccount

    with app.app_context():
        account = db.session.query(GithubAccount).one()
        return decrypt_secret(runtime.keyring(), account.access_token_encrypted, purpose="github_token",
                              owner=account.user_id)


def test_flagged_snapshot_needs_confirmation(app, client, make_user, github):
    user, _ = setup_person(app, client, make_user, github)
    client.user = user
    project_id, _ = linked_project(app, client, github)
    make_snapshot(app, project_id, dict(FILES_V1, **{".env": "API_KEY=sk-live-123\n"}), flagged_paths=[".env"])
    mark = github.control.mark()
    response = api(client, "POST", f"/api/github/repo/{project_id}/push", {})
    assert response.status_code == 409
    error = response.get_json()["error"]
    assert (error["reason"], error["flagged_paths"]) == ("confirmation_required", [".env"])
    assert github.api_calls(mark) == [] and pushes_of(app, project_id) == []
    confirmed = api(client, "POST", f"/api/github/repo/{project_id}/push", {"confirm_flagged": True})
    assert confirmed.status_code == 200
    assert confirmed.get_json()["flagged_paths"] == [".env"]
    assert github.control.repo_files("octocat", "my-app")[".env"] == "API_KEY=sk-live-123\n"


def test_one_push_at_a_time_per_project(app, client, make_user, github):
    from app.extensions import db
    from app.services import publish

    user, _ = setup_person(app, client, make_user, github)
    client.user = user
    project_id, _ = linked_project(app, client, github)
    make_snapshot(app, project_id, FILES_V1)
    with app.app_context():
        held = publish.start_push(db.session, project_id=project_id, user_id=user.id)
        held_id = held.id
    mark = github.control.mark()
    response = api(client, "POST", f"/api/github/repo/{project_id}/push", {})
    assert response.status_code == 409
    assert response.get_json()["error"]["reason"] == "push_in_progress"
    assert github.api_calls(mark) == []
    # The holder finishes; the lock is free again.
    with app.app_context():
        outcome = publish.run_push(db.session, held_id, publish.PublishSettings.from_config(
            app.extensions["sorya.config"], app.extensions["sorya.keyring"]))
        assert outcome.error is None
    assert api(client, "POST", f"/api/github/repo/{project_id}/push", {}).get_json()["status"] == "up_to_date"


def test_concurrent_starts_let_exactly_one_push_run(app, make_user, github):
    import threading

    from app.errors import Conflict
    from app.extensions import db
    from app.services import publish

    user = make_user(GITHUB_LOGIN)
    connect_github(app, user, github)
    project_id = make_project(app, user, "Race", repo_full_name="octocat/race", repo_branch="main")
    make_snapshot(app, project_id, {"a": "a"})
    barrier = threading.Barrier(4)
    results: list[str] = []

    def start() -> None:
        with app.app_context():
            barrier.wait()
            try:
                publish.start_push(db.session, project_id=project_id, user_id=user.id)
                results.append("started")
            except Conflict:
                results.append("refused")
            finally:
                db.session.remove()

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["refused"] * 3 + ["started"]


def test_a_stale_lock_from_a_dead_push_is_released(app, client, make_user, github):
    from datetime import timedelta

    from app.extensions import db
    from app.models import Push
    from app.models.base import utcnow
    from app.services import publish

    user, _ = setup_person(app, client, make_user, github)
    client.user = user
    project_id, _ = linked_project(app, client, github)
    make_snapshot(app, project_id, FILES_V1)
    with app.app_context():
        dead = publish.start_push(db.session, project_id=project_id, user_id=user.id)
        dead.created_at = utcnow() - timedelta(seconds=publish.PUSH_STALE_AFTER_S + 5)
        db.session.commit()
        dead_id = dead.id
    response = api(client, "POST", f"/api/github/repo/{project_id}/push", {})
    assert response.status_code == 200, response.get_json()
    with app.app_context():
        row = db.session.get(Push, dead_id)
        assert (row.status, row.error_code, row.running_lock) == ("failed", "interrupted", None)


def test_large_push_runs_in_the_background_with_progress(app, client, make_user, github, monkeypatch, app_config):
    # With Redis configured the push is an RQ job: a worker process runs it, as in production.
    with JobsWorker(app_config):
        from app.services import publish

        monkeypatch.setattr(publish, "PUSH_INLINE_MAX_FILES", 5)
        user, _ = setup_person(app, client, make_user, github)
        client.user = user
        project_id, _ = linked_project(app, client, github)
        files = {f"src/file_{i:03}.py": f"N = {i}\n" for i in range(30)}
        make_snapshot(app, project_id, files)
        response = api(client, "POST", f"/api/github/repo/{project_id}/push", {})
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        assert body["files_changed"] == 30
        assert body["progress"]["done"] == body["progress"]["total"] > 0
        # An empty repository: read the branch, the first file through the Contents API, then one tree
        # with the other 29 inline, the commit and the ref update.
        assert body["requests_made"] == 5
        assert github.control.repo_files("octocat", "my-app") == files
        status = client.get(f"/api/github/repo/{project_id}/pushes/{body['push_id']}").get_json()
        assert status["status"] == "succeeded" and status["commit_sha"] == body["commit_sha"]
