"""A version never changes: its preview files, file views and zip carry strong tags and answer 304 to a
matching `If-None-Match` without reading a blob; highlighted file views are kept by content hash."""

from __future__ import annotations

import re

import pytest

from app.extensions import db
from app.runtime import view_cache
from tests.conftest import sign_in
from tests.snapshot_helpers import make_project, make_snapshot
from tests.sql_helpers import statements_on


@pytest.fixture(params=["mariadb", "sqlite"])
def app(request, app, sqlite_app):
    # With Redis, views are cached there; without (the embedded default), in the process.
    return app if request.param == "mariadb" else sqlite_app


def get_with_statements(app, client, url: str, **headers: str):
    with app.app_context():
        engine = db.engine
    with statements_on(engine) as statements:
        response = client.get(url, headers=headers)
    return response, statements


def reads_a_blob(statements: list[str]) -> bool:
    return any("blobs.content" in s.replace("`", "").replace('"', "") for s in statements)


def frame_url(client, project_id: int, snapshot_id: int) -> str:
    page = client.get(f"/projects/{project_id}/snapshots/{snapshot_id}?path=index.html&view=rendered")
    return re.search(r'<iframe class="html-preview" src="([^"]+)"', page.get_data(as_text=True)).group(1)


def test_a_preview_file_answers_304_to_its_blob_tag_without_reading_the_blob(client, alice, app):
    project_id = make_project(app, alice)
    snapshot_id = make_snapshot(app, alice, project_id, {"index.html": "<p>x</p>", "style.css": "p{}"})
    url = frame_url(client, project_id, snapshot_id).rsplit("/", 1)[0] + "/style.css"
    frame = app.test_client()
    first, statements = get_with_statements(app, frame, url)
    assert first.status_code == 200 and first.get_data() == b"p{}" and reads_a_blob(statements)
    etag = first.headers["ETag"]
    again, statements = get_with_statements(app, frame, url, **{"If-None-Match": etag})
    assert again.status_code == 304 and again.get_data() == b"" and again.headers["ETag"] == etag
    assert not reads_a_blob(statements)
    other, _ = get_with_statements(app, frame, url, **{"If-None-Match": '"b-something-else"'})
    assert other.status_code == 200 and other.get_data() == b"p{}"


def test_a_file_view_answers_304_and_a_repeat_view_renders_from_the_cache(client, alice, app):
    project_id = make_project(app, alice)
    snapshot_id = make_snapshot(app, alice, project_id, {"a.py": "x = 1\n", "b.py": "API_KEY = 'sk-live-abcdefghijklmnopqrstuvwx'\n"})
    view_cache.LOCAL.clear()
    partial = {"HX-Request": "true", "HX-Target": "file-view"}
    url = f"/projects/{project_id}/snapshots/{snapshot_id}?path=a.py"
    first, statements = get_with_statements(app, client, url, **partial)
    assert first.status_code == 200 and reads_a_blob(statements) and "highlight" in first.get_data(as_text=True)
    etag = first.headers["ETag"]
    assert get_with_statements(app, client, url, **partial, **{"If-None-Match": etag})[0].status_code == 304
    # Without the tag (another browser), the highlighted view comes from the cache: no blob is read.
    repeat, statements = get_with_statements(app, client, url, **partial)
    assert repeat.status_code == 200 and not reads_a_blob(statements)
    assert repeat.get_data() == first.get_data()
    # Another file has another tag; the redaction of secrets still applies through the cache.
    secret_url = f"/projects/{project_id}/snapshots/{snapshot_id}?path=b.py"
    secret = client.get(secret_url, headers=partial)
    assert secret.headers["ETag"] != etag and "sk-live-abcdefghijklmnopqrstuvwx" not in secret.get_data(as_text=True)
    assert "sk-live-abcdefghijklmnopqrstuvwx" not in client.get(secret_url, headers=partial).get_data(as_text=True)


def test_a_version_zip_answers_304_to_its_tag_without_reading_blobs(client, alice, app):
    project_id = make_project(app, alice)
    snapshot_id = make_snapshot(app, alice, project_id, {"a.py": "x = 1\n"})
    url = f"/projects/{project_id}/snapshots/{snapshot_id}/download"
    first = client.get(url)
    assert first.status_code == 200 and first.get_data()[:2] == b"PK"
    again, statements = get_with_statements(app, client, url, **{"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.get_data() == b"" and not reads_a_blob(statements)


def test_someone_else_gets_no_304_for_a_tag_they_learnt(client, alice, app, make_user):
    project_id = make_project(app, alice)
    snapshot_id = make_snapshot(app, alice, project_id, {"a.py": "x = 1\n"})
    url = f"/projects/{project_id}/snapshots/{snapshot_id}/download"
    etag = client.get(url).headers["ETag"]
    bob = app.test_client()
    sign_in(bob, make_user("bob"))
    assert bob.get(url, headers={"If-None-Match": etag}).status_code == 404
