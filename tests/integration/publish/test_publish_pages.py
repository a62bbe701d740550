"""The publish panel and its forms: without JavaScript (post, redirect back) and with htmx (panel swap)."""

from __future__ import annotations

import re
import time

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

HX = {"HX-Request": "true"}


def person(app, client, make_user, github):
    user = make_user(GITHUB_LOGIN, email="octo@example.com")
    sign_in(client, user)
    connect_github(app, user, github)
    return user


def test_panel_offers_to_create_with_the_slug_and_escapes_names(app, client, make_user, github):
    user = person(app, client, make_user, github)
    project_id = make_project(app, user, "<script>alert(1)</script> Tool")
    html = client.get(f"/projects/{project_id}/publish").get_data(as_text=True)
    assert 'value="script-alert-1-script-tool"' in html
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;" in html
    assert 'value="private" checked' in html


def test_create_and_push_without_javascript(app, client, make_user, github):
    user = person(app, client, make_user, github)
    project_id = make_project(app, user, "Plain Form")
    make_snapshot(app, project_id, {"index.html": "<h1>Hi</h1>\n"}, summary="Landing page")
    token = csrf_token_for(client)
    back = f"/projects/{project_id}/publish"
    created = client.post(f"/projects/{project_id}/publish/repo",
                          data={"csrf_token": token, "name": "plain-form", "visibility": "private", "next": back})
    assert created.status_code == 302 and created.headers["Location"] == back
    assert project_row(app, project_id).repo_full_name == "octocat/plain-form"
    page = client.get(back).get_data(as_text=True)
    assert "Created octocat/plain-form on GitHub." in page
    snapshot_id = re.search(r'<option value="(\d+)"', page).group(1)
    pushed = client.post(f"/projects/{project_id}/publish/push",
                         data={"csrf_token": token, "snapshot_id": snapshot_id, "next": back})
    assert pushed.status_code == 302
    page = client.get(back).get_data(as_text=True)
    push = pushes_of(app, project_id)[-1]
    assert push.status == "succeeded"
    assert f'href="{push.html_url}"' in page and push.commit_sha[:7] in page
    assert github.control.repo_files("octocat", "plain-form") == {"index.html": "<h1>Hi</h1>\n"}


def test_off_site_next_is_ignored(app, client, make_user, github):
    user = person(app, client, make_user, github)
    project_id = make_project(app, user, "Redirect")
    token = csrf_token_for(client)
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        response = client.post(f"/projects/{project_id}/publish/unlink", data={"csrf_token": token, "next": target})
        assert response.status_code == 302
        assert response.headers["Location"] == f"/projects/{project_id}/publish"


def test_forms_need_csrf(app, client, make_user, github):
    user = person(app, client, make_user, github)
    project_id = make_project(app, user)
    assert client.post(f"/projects/{project_id}/publish/repo", data={"name": "x"}).status_code == 403
    assert project_row(app, project_id).repo_full_name is None


def test_htmx_swaps_the_panel_with_the_link_offer(app, client, make_user, github):
    user = person(app, client, make_user, github)
    token = github.control.issue_token(GITHUB_LOGIN, ["repo"])
    import requests

    requests.post(f"{github.url}/api/v3/user/repos", json={"name": "taken"}, timeout=5,
                  headers={"Authorization": f"token {token}"})
    project_id = make_project(app, user, "Taken")
    response = client.post(f"/projects/{project_id}/publish/repo", headers={**HX, "X-CSRFToken": csrf_token_for(client)},
                           data={"name": "taken"})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert html.lstrip().startswith("<section id=\"publish-panel\"")
    assert "You already have <strong>octocat/taken</strong>" in html
    assert 'name="link_existing" value="1"' in html
    linked = client.post(f"/projects/{project_id}/publish/repo", headers={**HX, "X-CSRFToken": csrf_token_for(client)},
                         data={"name": "taken", "link_existing": "1"})
    assert "Linked octocat/taken on GitHub." in linked.get_data(as_text=True)


def test_conflict_offer_then_branch_and_pull_request_link(app, client, make_user, github):
    user = person(app, client, make_user, github)
    project_id = make_project(app, user, "Clash")
    headers = {**HX, "X-CSRFToken": csrf_token_for(client)}
    client.post(f"/projects/{project_id}/publish/repo", headers=headers, data={"name": "clash"})
    make_snapshot(app, project_id, {"a.py": "a = 1\n"})
    client.post(f"/projects/{project_id}/publish/push", headers=headers, data={})
    github.control.push_as_someone_else("octocat", "clash", {"a.py": "a = 'theirs'\n"})
    make_snapshot(app, project_id, {"a.py": "a = 2\n"})
    refused = client.post(f"/projects/{project_id}/publish/push", headers=headers, data={}).get_data(as_text=True)
    assert "Someone changed files on GitHub" in refused and "a.py" in refused
    assert "Push to a new branch" in refused
    branch = client.post(f"/projects/{project_id}/publish/push", headers=headers,
                         data={"new_branch": "1"}).get_data(as_text=True)
    assert "Open a pull request" in branch
    assert "/octocat/clash/compare/main...sorya/snapshot-2?expand=1" in branch


def test_flagged_files_are_listed_and_need_the_checkbox(app, client, make_user, github):
    user = person(app, client, make_user, github)
    project_id = make_project(app, user, "Secrets")
    headers = {**HX, "X-CSRFToken": csrf_token_for(client)}
    client.post(f"/projects/{project_id}/publish/repo", headers=headers, data={"name": "secrets"})
    make_snapshot(app, project_id, {"config.py": "KEY = 'sk-live'\n"}, flagged_paths=["config.py"])
    html = client.get(f"/projects/{project_id}/publish").get_data(as_text=True)
    assert "These files look like they contain secrets" in html and "<code>config.py</code>" in html
    refused = client.post(f"/projects/{project_id}/publish/push", headers=headers, data={}).get_data(as_text=True)
    assert "These files look like they contain secrets" in refused
    assert 'name="confirm_flagged" value="1"' in refused
    assert pushes_of(app, project_id) == []
    client.post(f"/projects/{project_id}/publish/push", headers=headers, data={"confirm_flagged": "1"})
    assert pushes_of(app, project_id)[-1].status == "succeeded"


def test_background_push_polls_until_done(app, client, make_user, github, monkeypatch, app_config):
    # With Redis configured the push is an RQ job: a worker process runs it, as in production.
    with JobsWorker(app_config):
        from app.services import publish

        monkeypatch.setattr(publish, "PUSH_INLINE_MAX_FILES", 3)
        user = person(app, client, make_user, github)
        project_id = make_project(app, user, "Big")
        headers = {**HX, "X-CSRFToken": csrf_token_for(client)}
        client.post(f"/projects/{project_id}/publish/repo", headers=headers, data={"name": "big"})
        github.control.configure(request_latency_ms=20)
        make_snapshot(app, project_id, {f"f{i}.txt": str(i) for i in range(12)})
        started = client.post(f"/projects/{project_id}/publish/push", headers=headers, data={}).get_data(as_text=True)
        assert "in the background" in started
        assert 'hx-trigger="every 1s"' in started and "publish-progress" in started
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            panel = client.get(f"/projects/{project_id}/publish/panel", headers=HX).get_data(as_text=True)
            if "publish-progress" not in panel:
                break
            time.sleep(0.2)
        assert 'hx-trigger="every 1s"' not in panel
        assert pushes_of(app, project_id)[-1].status == "succeeded"
        assert len(github.control.repo_files("octocat", "big")) == 12


def test_hostile_next_stays_on_site_and_never_fails(app, client, make_user, github):
    """Tab and CR/LF in `next` used to slip through (`Location: //evil.example`) or answer 500."""
    user = person(app, client, make_user, github)
    project_id = make_project(app, user, "Redirect")
    token = csrf_token_for(client)
    for target in ("/\t/evil.example", "/\r/x", "/\n/evil.example", "/%2F/evil.example", "/%5Cevil.example"):
        response = client.post(f"/projects/{project_id}/publish/unlink", data={"csrf_token": token, "next": target})
        assert response.status_code == 302, repr(target)
        assert response.headers["Location"] == f"/projects/{project_id}/publish", repr(target)


def test_panel_never_offers_an_off_site_page_to_return_to(app, client, make_user, github):
    user = person(app, client, make_user, github)
    project_id = make_project(app, user, "Redirect")
    headers = {**HX, "HX-Current-URL": "http://localhost//evil.example/x"}
    html = client.get(f"/projects/{project_id}/publish/panel", headers=headers).get_data(as_text=True)
    assert f'name="next" value="/projects/{project_id}/publish"' in html
    assert "evil.example" not in html
