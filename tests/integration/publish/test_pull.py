"""Pulling GitHub's changes (`POST /api/github/repo/<id>/pull`) against the emulator: the new version's
files are read back and compared with what a three-way merge must give."""

from __future__ import annotations

from tests.conftest import csrf_token_for
from tests.integration.publish.conftest import project_row
from tests.integration.publish.test_import import make_remote, snapshot_files
from tests.integration.publish.test_publish_api import api, setup_person

BASE = {"README.md": "# Tools\n", "a.py": "one\ntwo\nthree\nfour\nfive\n", "b.py": "x = 1\ny = 2\n",
        "c.py": "keep\n"}


def imported(app, client, make_user, github) -> tuple[int, str]:
    user, token = setup_person(app, client, make_user, github)
    client.user = user
    make_remote(github, token, files=BASE)
    body = api(client, "POST", "/api/projects/import", {"repo": "octocat/tools"}).get_json()
    return body["id"], token


def edit(client, project_id: int, files: dict[str, str]) -> int:
    """A new version changing `files` (an upload replaces the whole set, so the others are sent as they are)."""
    latest = client.get(f"/api/projects/{project_id}/snapshots").get_json()["snapshots"][0]["id"]
    current = {f["path"]: f["content"] for f in _contents(client, project_id, latest)}
    current.update(files)
    response = api(client, "POST", f"/api/projects/{project_id}/snapshots",
                   {"files": [{"path": p, "content": c} for p, c in current.items()], "summary": "edit"})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def _contents(client, project_id: int, snapshot_id: int) -> list[dict]:
    return [{"path": p, "content": c.decode()} for p, c in snapshot_files(client.application, snapshot_id).items()]


def test_nothing_new_answers_a_null_version(app, client, make_user, github):
    project_id, _ = imported(app, client, make_user, github)
    body = api(client, "POST", f"/api/github/repo/{project_id}/pull").get_json()
    assert body["snapshot_id"] is None and body["files_changed"] == 0 and body["conflicts"] == []


def test_one_side_changes_merge_clean_and_both_side_changes_merge_by_line_or_conflict(
        app, client, make_user, github):
    project_id, _ = imported(app, client, make_user, github)
    edit(client, project_id, {"a.py": "ONE\ntwo\nthree\nfour\nfive\n", "b.py": "x = 10\ny = 2\n"})
    github.control.push_as_someone_else("octocat", "tools", {"a.py": "one\ntwo\nthree\nfour\nFIVE\n"})
    github.control.push_as_someone_else("octocat", "tools", {"b.py": "x = 99\ny = 2\n", "new.txt": "new\n"})
    head = github.control.push_as_someone_else("octocat", "tools", {"c.py": None})
    response = api(client, "POST", f"/api/github/repo/{project_id}/pull")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["commit_sha"] == head and body["conflicts"] == ["b.py"] and body["new_commits"] == 3
    files = snapshot_files(app, body["snapshot_id"])
    assert files["a.py"] == b"ONE\ntwo\nthree\nfour\nFIVE\n"  # both changed, different lines: merged
    assert files["b.py"] == b"<<<<<<< Sorya\nx = 10\n=======\nx = 99\n>>>>>>> GitHub\ny = 2\n"
    assert files["new.txt"] == b"new\n" and "c.py" not in files and files["README.md"] == b"# Tools\n"
    assert project_row(app, project_id).repo_head_sha == head

    # A version with unresolved conflicts is not pushed; taking GitHub's side resolves it.
    refused = api(client, "POST", f"/api/github/repo/{project_id}/push", {})
    assert refused.status_code == 409
    assert refused.get_json()["error"]["reason"] == "unresolved_conflicts"
    assert "b.py" in refused.get_json()["error"]["message"]
    page = client.get(f"/projects/{project_id}").get_data(as_text=True)
    assert "1 file with conflicts" in page
    resolved = client.post(f"/projects/{project_id}/github/resolve",
                           data={"path": "b.py", "side": "theirs", "csrf_token": csrf_token_for(client)})
    assert resolved.status_code == 302
    pushed = api(client, "POST", f"/api/github/repo/{project_id}/push", {})
    assert pushed.status_code == 200, pushed.get_json()
    remote = github.control.repo_files("octocat", "tools")
    assert remote["a.py"] == "ONE\ntwo\nthree\nfour\nFIVE\n" and remote["b.py"] == "x = 99\ny = 2\n"
    assert "c.py" not in remote and remote["new.txt"] == "new\n"


def test_an_edit_that_removes_the_markers_resolves_the_conflict(app, client, make_user, github):
    project_id, _ = imported(app, client, make_user, github)
    edit(client, project_id, {"b.py": "x = 10\ny = 2\n"})
    github.control.push_as_someone_else("octocat", "tools", {"b.py": "x = 99\ny = 2\n"})
    assert api(client, "POST", f"/api/github/repo/{project_id}/pull").get_json()["conflicts"] == ["b.py"]
    edit(client, project_id, {"b.py": "x = 109\ny = 2\n"})
    pushed = api(client, "POST", f"/api/github/repo/{project_id}/push", {})
    assert pushed.status_code == 200, pushed.get_json()
    assert github.control.repo_files("octocat", "tools")["b.py"] == "x = 109\ny = 2\n"


def test_the_page_says_how_many_new_commits_and_checks_at_most_once_a_minute(app, client, make_user, github):
    project_id, _ = imported(app, client, make_user, github)
    for n in range(3):
        github.control.push_as_someone_else("octocat", "tools", {f"n{n}.txt": f"{n}\n"})
    mark = github.control.mark()
    for _ in range(5):
        page = client.get(f"/projects/{project_id}").get_data(as_text=True)
        assert "3 new commits on GitHub" in page
    calls = [c for c in github.control.calls(since=mark) if c["path"].startswith("/api/v3")]
    assert len(calls) == 2  # the conditional head read (moved: 200) and one compare; then the cache
    no_js = client.post(f"/projects/{project_id}/github/pull", data={"csrf_token": csrf_token_for(client)})
    assert no_js.status_code == 302
    shown = client.get(no_js.headers["Location"]).get_data(as_text=True)
    assert "Pulled 3 commits from GitHub" in shown and "new commits on GitHub" not in shown


def test_an_unchanged_branch_is_asked_with_its_etag_and_answers_304(app, client, make_user, github):
    from app.extensions import db
    from app.models import ProjectSync

    project_id, _ = imported(app, client, make_user, github)
    client.get(f"/projects/{project_id}")
    with app.app_context():
        row = db.session.get(ProjectSync, project_id)
        row.checked_at = None  # a minute later
        db.session.commit()
    mark = github.control.mark()
    client.get(f"/projects/{project_id}")
    calls = [c for c in github.control.calls(since=mark) if c["path"].startswith("/api/v3")]
    assert [c["status"] for c in calls] == [304]


def test_a_force_pushed_branch_is_named_and_can_be_taken_as_a_new_version(app, client, make_user, github):
    project_id, _ = imported(app, client, make_user, github)
    head = github.control.force_push("octocat", "tools", {"only.txt": "rewritten\n"})
    refused = api(client, "POST", f"/api/github/repo/{project_id}/pull")
    assert refused.status_code == 409
    assert refused.get_json()["error"]["reason"] == "history_rewritten"
    assert "rewritten" in client.get(f"/projects/{project_id}").get_data(as_text=True)
    taken = client.post(f"/projects/{project_id}/github/take-remote", data={"csrf_token": csrf_token_for(client)})
    assert taken.status_code == 302
    project = project_row(app, project_id)
    assert project.repo_head_sha == head
    latest = client.get(f"/api/projects/{project_id}").get_json()
    snaps = client.get(f"/api/projects/{project_id}/snapshots").get_json()["snapshots"]
    assert len(snaps) == 2 and latest is not None
    assert set(snapshot_files(app, snaps[0]["id"])) == {"only.txt"}


def test_a_pull_while_a_push_runs_is_refused(app, client, make_user, github):
    from app.extensions import db
    from app.models import Push

    project_id, _ = imported(app, client, make_user, github)
    with app.app_context():
        snap = client.get(f"/api/projects/{project_id}/snapshots").get_json()["snapshots"][0]["id"]
        db.session.add(Push(project_id=project_id, snapshot_id=snap, user_id=client.user.id,
                            repo_full_name="octocat/tools", branch="main", status="running",
                            running_lock=project_id))
        db.session.commit()
    response = api(client, "POST", f"/api/github/repo/{project_id}/pull")
    assert response.status_code == 409
    assert "push of this project is running" in response.get_json()["error"]["message"]


def test_someone_elses_project_is_not_found(app, client, make_user, github):
    project_id, _ = imported(app, client, make_user, github)
    from tests.conftest import sign_in
    other = make_user("mallory", email="m@example.com")
    sign_in(client, other)
    assert api(client, "POST", f"/api/github/repo/{project_id}/pull").status_code == 404
