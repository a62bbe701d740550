"""Importing a GitHub repository (`POST /api/projects/import`, `/projects/import`) against the emulator:
the new project's first version must hold exactly the branch's files, and what does not fit is listed."""

from __future__ import annotations

from tests.integration.publish.conftest import project_row
from tests.integration.publish.test_publish_api import api, gh_api, setup_person

FILES = {"README.md": "# Imported\n", "src/app.py": "print('hi')\n", "src/util/x.py": "X = 1\n",
         "docs/guide.md": "Guide ✓\n"}


def make_remote(github, token: str, name: str = "tools", files: dict | None = None, **push) -> str:
    assert gh_api(github, token, "POST", "/user/repos", {"name": name, "private": True}).status_code == 201
    return github.control.push_as_someone_else("octocat", name, files or FILES, message="first", **push)


def snapshot_files(app, snapshot_id: int) -> dict[str, bytes]:
    from app.extensions import db
    from app.services.snapshots import list_snapshot_files, read_snapshot_file

    with app.app_context():
        return {e.path: read_snapshot_file(db.session, snapshot_id, e.path)[1]
                for e in list_snapshot_files(db.session, snapshot_id)}


def test_import_makes_a_linked_project_whose_first_version_is_the_branch(app, client, make_user, github):
    user, token = setup_person(app, client, make_user, github)
    head = make_remote(github, token)
    mark = github.control.mark()
    response = api(client, "POST", "/api/projects/import", {"repo": "octocat/tools"})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["repo_full_name"] == "octocat/tools"
    assert body["skipped"] == []
    assert body["commit_sha"] == head
    assert body["message"] == "4 files imported"
    files = snapshot_files(app, body["last_snapshot_id"])
    assert files == {path: text.encode() for path, text in FILES.items()}
    project = project_row(app, body["id"])
    assert (project.repo_head_sha, project.repo_branch, project.sync_snapshot_id) == (
        head, "main", body["last_snapshot_id"])
    # Repository, branch head, tree, tarball (302) and the codeload stream: five requests in all.
    calls = github.control.calls(since=mark)
    assert len(calls) == 5, [c["path"] for c in calls]
    assert any("/tarball/" in c["path"] for c in calls)
    assert not any("/git/blobs/" in c["path"] for c in calls)


def test_an_import_then_an_unchanged_push_writes_nothing_and_a_change_pushes_one_file(
        app, client, make_user, github):
    user, token = setup_person(app, client, make_user, github)
    head = make_remote(github, token)
    body = api(client, "POST", "/api/projects/import", {"repo": "octocat/tools"}).get_json()
    pushed = api(client, "POST", f"/api/github/repo/{body['id']}/push", {})
    assert pushed.status_code == 200, pushed.get_json()
    assert pushed.get_json()["status"] == "up_to_date"
    snap = api(client, "POST", f"/api/projects/{body['id']}/snapshots",
               {"files": [{"path": "src/app.py", "content": "print('bye')\n"}], "summary": "bye"})
    assert snap.status_code == 201, snap.get_json()
    pushed = api(client, "POST", f"/api/github/repo/{body['id']}/push", {}).get_json()
    assert pushed["status"] == "succeeded" and pushed["files_changed"] >= 1
    remote = github.control.repo_files("octocat", "tools")
    assert remote["src/app.py"] == "print('bye')\n"
    assert pushed["commit_sha"] != head


def test_submodules_big_files_lfs_pointers_and_files_past_the_count_are_skipped_and_listed(
        app, client, make_user, github):
    config = app.extensions["sorya.config"]
    saved = (config.SNAPSHOT_MAX_FILES, config.SNAPSHOT_MAX_FILE_BYTES)
    config.SNAPSHOT_MAX_FILES, config.SNAPSHOT_MAX_FILE_BYTES = 4, 1000
    try:
        user, token = setup_person(app, client, make_user, github)
        lfs = "version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123456\n"
        files = {"a.txt": "a\n", "b.txt": "b\n", "c/lfs.bin": lfs, "d.txt": "d\n", "e.txt": "e\n"}
        make_remote(github, token, files=files, binary_files={"big.png": b"\x89PNG" + b"\0" * 5000},
                    submodules={"vendor/lib": "a" * 40})
        response = api(client, "POST", "/api/projects/import", {"repo": "octocat/tools", "branch": "main"})
        assert response.status_code == 201, response.get_json()
        body = response.get_json()
        assert body["skipped"] == [
            {"path": "big.png", "reason": "over the size limit"},
            {"path": "c/lfs.bin", "reason": "Git LFS pointer"},
            {"path": "e.txt", "reason": "past the file-count limit"},
            {"path": "vendor/lib", "reason": "submodule"},
        ]
        assert set(snapshot_files(app, body["last_snapshot_id"])) == {"a.txt", "b.txt", "d.txt"}
        assert body["message"] == ("3 files imported; skipped: 1 Git LFS pointer, 1 over the size limit, "
                                   "1 past the file-count limit, 1 submodule")
    finally:
        config.SNAPSHOT_MAX_FILES, config.SNAPSHOT_MAX_FILE_BYTES = saved


def test_a_repository_too_large_is_refused_before_downloading(app, client, make_user, github):
    config = app.extensions["sorya.config"]
    saved = config.SNAPSHOT_MAX_TOTAL_BYTES
    config.SNAPSHOT_MAX_TOTAL_BYTES = 20
    try:
        user, token = setup_person(app, client, make_user, github)
        make_remote(github, token)
        mark = github.control.mark()
        response = api(client, "POST", "/api/projects/import", {"repo": "octocat/tools"})
        assert response.status_code == 413
        message = response.get_json()["error"]["message"]
        total = sum(len(text.encode()) for text in FILES.values())
        assert f"holds {total} bytes" in message and "at most 20 bytes" in message
        assert not any("tarball" in c["path"] or "codeload" in c["path"] for c in github.control.calls(since=mark))
        assert client.get("/api/projects").get_json()["projects"] == []
    finally:
        config.SNAPSHOT_MAX_TOTAL_BYTES = saved


def test_bad_names_missing_repositories_and_branches_say_so(app, client, make_user, github):
    user, token = setup_person(app, client, make_user, github)
    make_remote(github, token)
    for bad in ({}, {"repo": "no-slash"}, {"repo": "../etc/passwd"}, {"repo": 5},
                {"repo": "octocat/tools", "branch": "a..b"}):
        response = api(client, "POST", "/api/projects/import", bad)
        assert response.status_code == 400, bad
    missing = api(client, "POST", "/api/projects/import", {"repo": "octocat/gone"})
    assert missing.status_code == 409
    assert "renamed or deleted" in missing.get_json()["error"]["message"]
    no_branch = api(client, "POST", "/api/projects/import", {"repo": "octocat/tools", "branch": "nope"})
    assert no_branch.status_code == 409
    assert client.get("/api/projects").get_json()["projects"] == []


def test_a_download_cut_mid_way_keeps_nothing(app, client, make_user, github):
    user, token = setup_person(app, client, make_user, github)
    make_remote(github, token)
    github.control.fault("GET", "/_codeload/.*", kind="server_error", count=5)
    response = api(client, "POST", "/api/projects/import", {"repo": "octocat/tools"})
    assert response.status_code == 502, response.get_json()
    assert client.get("/api/projects").get_json()["projects"] == []


def test_the_import_page_lists_repositories_marks_private_ones_and_imports_without_javascript(
        app, client, make_user, github):
    user, token = setup_person(app, client, make_user, github)
    make_remote(github, token, "tools")
    assert gh_api(github, token, "POST", "/user/repos", {"name": "open-thing", "private": False}).status_code == 201
    page = client.get("/projects/import")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "octocat/tools" in html and "octocat/open-thing" in html
    assert html.count("badge-private") == 1
    searched = client.get("/projects/import?q=open").get_data(as_text=True)
    assert "octocat/open-thing" in searched and "octocat/tools" not in searched
    from tests.conftest import csrf_token_for
    posted = client.post("/projects/import", data={"repo": "octocat/tools", "csrf_token": csrf_token_for(client)})
    assert posted.status_code == 302
    shown = client.get(posted.headers["Location"]).get_data(as_text=True)
    assert "4 files imported" in shown
    no_csrf = client.post("/projects/import", data={"repo": "octocat/tools"})
    assert no_csrf.status_code in (400, 403)


def test_the_import_page_without_github_offers_to_connect(app, client, make_user, github):
    from tests.conftest import sign_in
    user = make_user("plain", email="plain@example.com")
    sign_in(client, user)
    page = client.get("/projects/import")
    assert page.status_code == 409
    assert "Connect GitHub" in page.get_data(as_text=True)


def test_other_peoples_private_repositories_cannot_be_imported(app, client, make_user, github):
    setup_person(app, client, make_user, github)
    other = github.control.issue_token("mona", ["repo"])
    assert gh_api(github, other, "POST", "/user/repos", {"name": "secret", "private": True}).status_code == 201
    github.control.push_as_someone_else("mona", "secret", {"s.txt": "s\n"})
    response = api(client, "POST", "/api/projects/import", {"repo": "mona/secret"})
    assert response.status_code == 409
