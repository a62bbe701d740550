"""Pushing to a named branch, opening a pull request, following its state, and a protected main branch."""

from __future__ import annotations

from tests.conftest import csrf_token_for
from tests.integration.publish.test_import import make_remote
from tests.integration.publish.test_publish_api import api, setup_person
from tests.integration.publish.test_pull import BASE, edit


def imported(app, client, make_user, github) -> int:
    user, token = setup_person(app, client, make_user, github)
    client.user = user
    make_remote(github, token, files=BASE)
    return api(client, "POST", "/api/projects/import", {"repo": "octocat/tools"}).get_json()["id"]


def test_a_push_to_a_new_branch_with_a_pull_request_and_its_state_followed(app, client, make_user, github):
    from app.extensions import db
    from app.models import Push

    project_id = imported(app, client, make_user, github)
    edit(client, project_id, {"a.py": "changed\n"})
    response = api(client, "POST", f"/api/github/repo/{project_id}/push",
                   {"branch": "feature/x", "pull_request": True, "body": "Please review"})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["branch"] == "feature/x" and body["pull_request_url"] == f"{github.url}/octocat/tools/pull/1"
    assert github.control.repo_files("octocat", "tools", ref="feature/x")["a.py"] == "changed\n"
    assert github.control.repo_files("octocat", "tools")["a.py"] == BASE["a.py"]  # main untouched
    page = client.get(f"/projects/{project_id}/publish").get_data(as_text=True)
    assert ">#1<" in page and 'data-pr-state="open"' in page

    github.control.merge_pull("octocat", "tools", 1)
    mark = github.control.mark()
    assert 'data-pr-state="open"' in client.get(f"/projects/{project_id}/publish").get_data(as_text=True)
    assert github.control.calls(since=mark) == []  # checked less than a minute ago: not asked again
    with app.app_context():
        push = db.session.get(Push, body["push_id"])
        push.pull_request = {**push.pull_request, "checked_at": "2000-01-01T00:00:00+00:00"}
        db.session.commit()
    assert 'data-pr-state="merged"' in client.get(f"/projects/{project_id}/publish").get_data(as_text=True)


def test_the_pull_request_title_is_drafted_from_the_versions_summaries(app, client, make_user, github):
    project_id = imported(app, client, make_user, github)
    edit(client, project_id, {"a.py": "v2\n"})
    body = api(client, "POST", f"/api/github/repo/{project_id}/push", {"pull_request": True}).get_json()
    assert body["branch"].startswith("sorya/snapshot-") and body["pull_request_url"]
    import requests
    pr = requests.get(f"{github.url}/api/v3/repos/octocat/tools/pulls/1",
                      headers={"Authorization": f"token {github.control.issue_token('octocat', ['repo'])}"},
                      timeout=5).json()
    assert pr["title"] == "edit" and "- edit" in pr["body"]


def test_a_protected_main_branch_offers_branch_and_pull_request_in_one_click(app, client, make_user, github):
    project_id = imported(app, client, make_user, github)
    github.control.protect_branch("octocat", "tools", "main")
    edit(client, project_id, {"a.py": "protected change\n"})
    refused = api(client, "POST", f"/api/github/repo/{project_id}/push", {})
    assert refused.status_code == 409
    assert refused.get_json()["error"]["reason"] == "branch_protected"
    page = client.get(f"/projects/{project_id}/publish").get_data(as_text=True)
    assert "Push to a branch and open a pull request" in page
    clicked = client.post(f"/projects/{project_id}/publish/push",
                          data={"pull_request": "1", "csrf_token": csrf_token_for(client)})
    assert clicked.status_code == 302
    shown = client.get(clicked.headers["Location"]).get_data(as_text=True)
    assert "opened pull request #1" in shown


def test_bad_branch_names_are_refused(app, client, make_user, github):
    project_id = imported(app, client, make_user, github)
    for bad in ("a..b", "-x", "has space", "x" * 300):
        response = api(client, "POST", f"/api/github/repo/{project_id}/push", {"branch": bad})
        assert response.status_code == 400, bad
    same = api(client, "POST", f"/api/github/repo/{project_id}/push", {"branch": "main", "pull_request": True})
    assert same.status_code == 400
