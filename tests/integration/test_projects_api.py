"""The JSON API of projects and snapshots (shared/CONTRACT.md): shapes, status codes, errors, ownership."""

from __future__ import annotations

import base64
import io
import json
import zipfile

import pytest

from tests.conftest import csrf_token_for, sign_in
from tests.snapshot_helpers import (
    assert_not_found_and_nothing_leaked,
    make_project,
    make_reply,
    make_snapshot,
    reply_with,
)


@pytest.fixture
def api(client, make_user):
    """A signed-in client whose unsafe requests carry the CSRF header, as a browser script would."""
    user = make_user("alice")
    sign_in(client, user)
    token = csrf_token_for(client)

    class Api:
        def __init__(self):
            self.user = user

        def get(self, url, **kw):
            return client.get(url, **kw)

        def post(self, url, json=None, **kw):
            return client.post(url, json=json, headers={"X-CSRFToken": token}, **kw)

        def patch(self, url, json=None):
            return client.patch(url, json=json, headers={"X-CSRFToken": token})

        def delete(self, url):
            return client.delete(url, headers={"X-CSRFToken": token})

    return Api()


def test_project_lifecycle(api):
    created = api.post("/api/projects", json={"name": "  My   app ", "description": "Todo list"})
    assert created.status_code == 201
    project = created.json
    assert project["name"] == "My app" and project["status"] == "active" and project["last_snapshot_id"] is None
    assert set(project) >= {"id", "name", "status", "repo_full_name", "last_snapshot_id", "created_at", "updated_at"}
    listed = api.get("/api/projects").json["projects"]
    assert [p["id"] for p in listed] == [project["id"]]
    renamed = api.patch(f"/api/projects/{project['id']}", json={"name": "Renamed", "status": "archived"})
    assert renamed.status_code == 200 and renamed.json["name"] == "Renamed" and renamed.json["status"] == "archived"
    assert api.get(f"/api/projects/{project['id']}").json["name"] == "Renamed"
    assert api.delete(f"/api/projects/{project['id']}").status_code == 204
    assert api.get(f"/api/projects/{project['id']}").status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [({}, "name"), ({"name": ""}, "name"), ({"name": "x" * 201}, "name"), ({"name": "a\x00b"}, "name"),
     ({"name": 5}, "name"), ({"name": "ok", "description": ["not text"]}, "description")],
)
def test_create_project_bad_input_names_the_field(api, body, field):
    response = api.post("/api/projects", json=body)
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_request" and field in response.json["error"]["fields"]


def test_malformed_json_and_unknown_patch_fields_are_400(api, client):
    token = csrf_token_for(client)
    response = client.post("/api/projects", data="{not json", headers={"X-CSRFToken": token,
                                                                       "Content-Type": "application/json"})
    assert response.status_code == 400 and response.json["error"]["code"] == "invalid_request"
    project = api.post("/api/projects", json={"name": "p"}).json
    response = api.patch(f"/api/projects/{project['id']}", json={"owner": 2})
    assert response.status_code == 400 and "owner" in response.json["error"]["fields"]
    response = api.patch(f"/api/projects/{project['id']}", json={"status": "deleted"})
    assert response.status_code == 400


def test_unsafe_methods_need_the_csrf_token_and_everything_needs_a_session(client, make_user):
    user = make_user()
    sign_in(client, user)
    assert client.post("/api/projects", json={"name": "x"}).status_code == 403
    anonymous = client.application.test_client()
    assert anonymous.get("/api/projects").status_code == 401
    assert anonymous.get("/api/projects").json["error"]["code"] == "unauthenticated"


def test_snapshot_from_a_file_list_and_from_a_message(api, app):
    project_id = make_project(app, api.user)
    response = api.post(f"/api/projects/{project_id}/snapshots", json={
        "files": [{"path": "app.py", "content": "print('hi')\n"},
                  {"path": "logo.png", "content": base64.b64encode(b"\x89PNG\x00").decode(), "encoding": "base64"}],
        "summary": "First upload",
    })
    assert response.status_code == 201, response.json
    first = response.json
    assert first["summary"] == "First upload" and first["project_id"] == project_id
    assert {f["path"]: f["size"] for f in first["files"]} == {"app.py": 12, "logo.png": 5}
    assert all(len(f["sha256"]) == 64 for f in first["files"])

    message_id = make_reply(app, api.user, project_id, reply_with({"app.py": "print('v2')\n", "lib/util.py": "x\n"}))
    response = api.post(f"/api/projects/{project_id}/snapshots", json={"message_id": message_id})
    assert response.status_code == 201
    second = response.json
    assert {f["path"] for f in second["files"]} == {"app.py", "logo.png", "lib/util.py"}
    assert second["from_this_source"] == ["app.py", "lib/util.py"] and second["carried"] == 1
    listed = api.get(f"/api/projects/{project_id}/snapshots").json["snapshots"]
    assert [s["id"] for s in listed] == [second["id"], first["id"]]  # newest first
    assert api.get(f"/api/projects/{project_id}").json["last_snapshot_id"] == second["id"]


@pytest.mark.parametrize(
    ("files", "status", "needle"),
    [
        ([{"path": "../x", "content": "1"}], 400, "goes above the project folder"),
        ([{"path": "C:/x", "content": "1"}], 400, "drive letter"),
        ([{"path": ".git/HEAD", "content": "1"}], 400, ".git"),
        ([{"path": "a\u0000b", "content": "1"}], 400, "control character"),
        ([{"path": "x", "content": "!!", "encoding": "base64"}], 400, "base64"),
        ([{"content": "1"}], 400, "path"),
        ([], 400, "at least one file"),
        ("not a list", 400, "list"),
    ],
)
def test_bad_file_lists_are_refused_with_the_reason(api, app, files, status, needle):
    project_id = make_project(app, api.user)
    response = api.post(f"/api/projects/{project_id}/snapshots", json={"files": files})
    assert response.status_code == status
    assert needle in response.json["error"]["message"]


@pytest.mark.parametrize(
    ("path", "code_point"),
    [("x\u202egnp.exe", "U+202E"), ("a\u200bb.txt", "U+200B"), ("a\u2028b", "U+2028"), ("a\ud800b", "U+D800")],
)
def test_a_path_with_an_invisible_character_is_refused_with_the_reason_in_fields(api, app, path, code_point):
    project_id = make_project(app, api.user)
    response = api.post(f"/api/projects/{project_id}/snapshots",
                        json={"files": [{"path": path, "content": "1"}, {"path": "ok.txt", "content": "2"}]})
    assert response.status_code == 400
    error = response.json["error"]
    assert error["code"] == "invalid_request"
    assert f"contains an invisible or control character ({code_point})" in error["fields"]["files"]
    assert api.get(f"/api/projects/{project_id}/snapshots").json["snapshots"] == []


def test_limits_give_a_413_with_the_numbers(api, app):
    app.extensions["sorya.config"].SNAPSHOT_MAX_FILES = 2
    try:
        project_id = make_project(app, api.user)
        files = [{"path": f"f{i}", "content": "x"} for i in range(3)]
        response = api.post(f"/api/projects/{project_id}/snapshots", json={"files": files})
    finally:
        app.extensions["sorya.config"].SNAPSHOT_MAX_FILES = 500
    assert response.status_code == 413
    error = response.json["error"]
    assert error["code"] == "too_large" and "3 files" in error["message"] and "limit is 2" in error["message"]
    assert (error["maximum"], error["actual"]) == (2, 3)


def test_a_diff_past_the_budget_is_marked_in_the_api_and_explained_on_the_page(api, app):
    project_id = make_project(app, api.user)
    old_text, new_text = "a\nb\n" * 1_500, "b\na\n" * 1_500
    make_snapshot(app, api.user, project_id, {"flip.txt": old_text, "small.py": "one\n"})
    second = make_snapshot(app, api.user, project_id, {"flip.txt": new_text, "small.py": "two\n"})

    changed = {c["path"]: c for c in api.get(f"/api/snapshots/{second}/diff").json["changed"]}
    assert changed["flip.txt"]["too_large_to_diff"] is True
    assert (changed["flip.txt"]["old_size"], changed["flip.txt"]["new_size"]) == (len(old_text), len(new_text))
    assert isinstance(changed["flip.txt"]["unified_diff"], str) and "-a\n" not in changed["flip.txt"]["unified_diff"]
    assert changed["small.py"]["too_large_to_diff"] is False and "-one\n+two" in changed["small.py"]["unified_diff"]

    page = api.get(f"/projects/{project_id}/diff?target={second}")
    assert page.status_code == 200
    assert "Too large to compare line by line" in page.get_data(as_text=True)


def test_preview_diff_archive_and_restore(api, app):
    project_id = make_project(app, api.user)
    first = make_snapshot(app, api.user, project_id, {"a.py": "one\n", "keys.py": "K = 'AKIAIOSFODNN7EXAMPLE'\n"})
    second = make_snapshot(app, api.user, project_id, {"a.py": "two\n", "keys.py": "K = 'AKIAIOSFODNN7EXAMPLE'\n",
                                                       "b.py": "new\n"})
    preview = api.get(f"/api/projects/{project_id}/preview").json
    assert preview["snapshot_id"] == second
    by_path = {f["path"]: f for f in preview["files"]}
    assert by_path["a.py"] == {**by_path["a.py"], "size": 4, "language": "Python", "snippet": "two\n", "redacted": False}
    assert by_path["keys.py"]["redacted"] is True and "AKIA" not in by_path["keys.py"]["snippet"]
    assert api.get(f"/api/projects/{project_id}/preview?snapshot_id={first}").json["snapshot_id"] == first
    assert api.get(f"/api/projects/{project_id}/preview?snapshot_id=abc").status_code == 400

    diff = api.get(f"/api/snapshots/{second}/diff?against={first}").json
    assert [a["path"] for a in diff["added"]] == ["b.py"] and diff["removed"] == []
    assert diff["changed"][0]["path"] == "a.py" and "-one\n+two" in diff["changed"][0]["unified_diff"]
    assert api.get(f"/api/snapshots/{second}/diff").json["against"] == first

    archive = api.get(f"/api/snapshots/{first}/archive")
    assert archive.status_code == 200 and archive.mimetype == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(archive.data)).namelist()
    assert names == ["demo-app-snapshot-1/a.py", "demo-app-snapshot-1/keys.py"]
    assert archive.data == api.get(f"/api/snapshots/{first}/archive").data

    restored = api.post(f"/api/snapshots/{first}/restore")
    assert restored.status_code == 201
    assert restored.json["number"] == 3 and {f["path"] for f in restored.json["files"]} == {"a.py", "keys.py"}
    assert restored.json["flagged_paths"] == ["keys.py"]


def test_other_users_objects_are_404_in_the_api(api, app, make_user):
    other = make_user("mallory")
    project_id = make_project(app, other)
    snapshot_id = make_snapshot(app, other, project_id, {"secret.py": "TOP SECRET\n"})
    message_id = make_reply(app, other, project_id, reply_with({"x.py": "1\n"}))
    mine = make_project(app, api.user)
    responses = [
        api.get(f"/api/projects/{project_id}"),
        api.patch(f"/api/projects/{project_id}", json={"name": "pwned"}),
        api.delete(f"/api/projects/{project_id}"),
        api.get(f"/api/projects/{project_id}/snapshots"),
        api.post(f"/api/projects/{project_id}/snapshots", json={"files": [{"path": "a", "content": "b"}]}),
        api.get(f"/api/projects/{project_id}/preview"),
        api.get(f"/api/projects/{mine}/preview?snapshot_id={snapshot_id}"),
        api.get(f"/api/snapshots/{snapshot_id}"),
        api.get(f"/api/snapshots/{snapshot_id}/diff"),
        api.get(f"/api/snapshots/{snapshot_id}/archive"),
        api.post(f"/api/snapshots/{snapshot_id}/restore"),
        api.post(f"/api/projects/{mine}/snapshots", json={"message_id": message_id}),
    ]
    assert_not_found_and_nothing_leaked(responses, b"TOP SECRET")
    assert {response.json["error"]["code"] for response in responses} == {"not_found"}
    assert [p["id"] for p in api.get("/api/projects").json["projects"]] == [mine]


# -- request body limits ---------------------------------------------------------------------------


@pytest.fixture
def tiny_snapshot_limits(app):
    config = app.extensions["sorya.config"]
    saved = (config.SNAPSHOT_MAX_FILES, config.SNAPSHOT_MAX_FILE_BYTES, config.SNAPSHOT_MAX_TOTAL_BYTES)
    config.SNAPSHOT_MAX_FILES, config.SNAPSHOT_MAX_FILE_BYTES, config.SNAPSHOT_MAX_TOTAL_BYTES = 2, 10, 20
    yield
    config.SNAPSHOT_MAX_FILES, config.SNAPSHOT_MAX_FILE_BYTES, config.SNAPSHOT_MAX_TOTAL_BYTES = saved


@pytest.fixture
def json_parses(app, monkeypatch):
    """Every request body the app's JSON parser reads, with how many objects each parse finished. (The
    parser also reads the session cookie, which is text: request bodies are bytes.)"""
    calls = []
    real_loads = app.json.loads

    def spy(data, **kwargs):
        if not isinstance(data, bytes):
            return real_loads(data, **kwargs)
        call = {"objects": 0}
        calls.append(call)
        hook = kwargs.get("object_pairs_hook")
        if hook is not None:
            def counted(pairs):
                call["objects"] += 1
                return hook(pairs)

            kwargs["object_pairs_hook"] = counted
        return real_loads(data, **kwargs)

    monkeypatch.setattr(app.json, "loads", spy)
    return calls


# The snapshot route's body limit with tiny_snapshot_limits: 20 content bytes doubled, two entries'
# paths and keys, and room for the rest of the body.
TINY_SNAPSHOT_BODY_MAX = 20 * 2 + 2 * 2_200 + 64 * 1024


def test_a_snapshot_body_over_its_limit_is_refused_before_it_is_read(api, app, tiny_snapshot_limits, json_parses):
    project_id = make_project(app, api.user)
    not_even_json = b"x" * (TINY_SNAPSHOT_BODY_MAX + 1)
    response = api.post(f"/api/projects/{project_id}/snapshots", data=not_even_json,
                        content_type="application/json")
    assert json_parses == []
    assert response.status_code == 413
    error = json.loads(response.get_data())["error"]
    assert error["code"] == "too_large" and f"at most {TINY_SNAPSHOT_BODY_MAX:,} bytes" in error["message"]


def test_a_snapshot_body_just_under_its_limit_is_taken(api, app, tiny_snapshot_limits):
    project_id = make_project(app, api.user)
    body = b'{"files": [{"path": "a.txt", "content": "hello"}]}'
    body += b" " * (TINY_SNAPSHOT_BODY_MAX - len(body))  # JSON allows trailing whitespace
    response = api.post(f"/api/projects/{project_id}/snapshots", data=body, content_type="application/json")
    assert response.status_code == 201 and response.json["file_count"] == 1


def test_a_body_of_many_tiny_entries_stops_parsing_past_the_limit(api, app, tiny_snapshot_limits, json_parses):
    project_id = make_project(app, api.user)
    entries = ",".join('{"path": "a", "delete": true}' for _ in range(2_000))
    body = f'{{"files": [{entries}]}}'.encode()
    assert len(body) < TINY_SNAPSHOT_BODY_MAX  # small enough to read: the entries are what is refused
    response = api.post(f"/api/projects/{project_id}/snapshots", data=body, content_type="application/json")
    # Two files to write and two old ones to delete at most: the parser stopped at the sixth object.
    assert [call["objects"] for call in json_parses] == [6]
    assert response.status_code == 413
    error = json.loads(response.get_data())["error"]
    assert error["code"] == "too_large" and "more than 4 entries" in error["message"]


def test_every_other_route_reads_at_most_one_megabyte(api, json_parses):
    response = api.post("/api/projects", data=b"x" * 1_000_001, content_type="application/json")
    assert json_parses == []
    assert response.status_code == 413
    error = json.loads(response.get_data())["error"]
    assert error["code"] == "too_large" and "1,000,000 bytes" in error["message"]


def test_a_browser_session_uploads_a_snapshot_larger_than_the_default_limit(api, app):
    """The CSRF check reads form fields before the route runs: it must already see the route's limit."""
    project_id = make_project(app, api.user)
    files = [{"path": f"part{i}.txt", "content": "y" * 700_000} for i in range(2)]
    response = api.post(f"/api/projects/{project_id}/snapshots", json={"files": files})
    assert response.status_code == 201 and response.json["total_bytes"] == 1_400_000


@pytest.fixture
def storage_quota(app):
    def set_quota(quota_bytes: int) -> None:
        app.extensions["sorya.config"].STORAGE_QUOTA_BYTES = quota_bytes

    original = app.extensions["sorya.config"].STORAGE_QUOTA_BYTES
    yield set_quota
    app.extensions["sorya.config"].STORAGE_QUOTA_BYTES = original


def upload(api, project_id: int, files: dict[str, str]):
    return api.post(f"/api/projects/{project_id}/snapshots",
                    json={"files": [{"path": p, "content": c} for p, c in files.items()]})


def test_storage_quota_counts_each_distinct_content_once_and_refuses_past_it(api, app, make_user, storage_quota):
    from app.extensions import db
    from app.models import Blob
    from app.services.snapshots import sha256_hex

    storage_quota(2_000)
    # Another user's copy of a content does not count for this user: it is new storage to them.
    shared = "s" * 500
    other = make_user("bob")
    make_snapshot(app, other, make_project(app, other, "Bob's"), {"shared.txt": shared})
    first_project, second_project = make_project(app, api.user, "One"), make_project(app, api.user, "Two")

    assert upload(api, first_project, {"a.txt": "a" * 700, "shared.txt": shared}).status_code == 201  # 1,200
    # The same contents again, in this project and in another one, are already stored: nothing new.
    assert upload(api, first_project, {"a.txt": "a" * 700, "copy.txt": shared}).status_code == 201
    assert upload(api, second_project, {"a.txt": "a" * 700, "b.txt": "b" * 800}).status_code == 201  # 2,000

    response = upload(api, second_project, {"a.txt": "a" * 700, "c.txt": "c" * 101})
    assert response.status_code == 413
    error = response.json["error"]
    assert error["code"] == "too_large" and error["limit"] == "storage_quota"
    assert (error["maximum"], error["actual"]) == (2_000, 2_101)
    assert "would bring your storage to 2.1 KB of your 2 KB" in error["message"]
    assert "delete" in error["message"]
    assert len(api.get(f"/api/projects/{second_project}/snapshots").json["snapshots"]) == 1
    with app.app_context():
        assert db.session.query(Blob).filter_by(sha256=sha256_hex(b"c" * 101)).count() == 0

    page = api.get("/usage").get_data(as_text=True)
    assert "Storage" in page and "2 KB" in page and "of 2 KB" in page
