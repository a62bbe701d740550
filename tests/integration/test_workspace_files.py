"""The Files tab: a Markdown file rendered (sanitised) with its source a link away, *Raw* as plain text
(access-checked, never sniffed, tagged by its blob), *Copy* only with JavaScript, and the tab opening on
what the version's reply changed rather than README."""

from __future__ import annotations

import pytest

from tests.conftest import sign_in
from tests.integration.test_immutable_caching import get_with_statements, reads_a_blob
from tests.integration.test_workspace_page import text
from tests.snapshot_helpers import make_project, make_snapshot

README = ("# Counter\n\nA **small** app. <script>alert(1)</script>\n\n[docs](javascript:alert(2)) "
          "[site](https://example.com)\n\n```js path=app.js\nconst n = 1;\n```\n\nKey: sk-live-abcdefghijklmnopqrstuvwx\n")
FILES = {"README.md": README, "app.js": "export const n = 1;\n", "style.css": "body { color: red; }\n"}


@pytest.fixture(params=["mariadb", "sqlite"])
def app(request, app, sqlite_app):
    return app if request.param == "mariadb" else sqlite_app


def test_markdown_is_rendered_sanitised_and_its_source_is_one_link_away(client, alice, app):
    project_id = make_project(app, alice)
    snapshot_id = make_snapshot(app, alice, project_id, FILES)
    page = text(client.get(f"/projects/{project_id}?tab=files&path=README.md"))
    body = page[page.index('id="file-view"'):]
    assert '<div class="markdown-file chat-markdown"><h1>Counter</h1>' in body and "<strong>small</strong>" in body
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert 'href="javascript:' not in body and 'href="https://example.com"' in body  # the bad link stays text
    assert "sk-live-abcdefghijklmnopqrstuvwx" not in body  # redacted as in the source view
    source_url = f"/projects/{project_id}/snapshots/{snapshot_id}?path=README.md&amp;view=source"
    assert f'href="{source_url}"' in body and ">Source</a>" in body
    source = text(client.get(source_url.replace("&amp;", "&"), headers={"HX-Request": "true", "HX-Target": "file-view"}))
    assert 'class="markdown-file' not in source and "highlighttable" in source
    assert "&lt;script&gt;" in source and "sk-live-abcdefghijklmnopqrstuvwx" not in source
    # The workspace's own address shows the source too (a plain link without JavaScript).
    assert "highlighttable" in text(client.get(f"/projects/{project_id}?tab=files&path=README.md&view=source"))


def test_copy_is_hidden_without_javascript_and_raw_is_a_plain_link(client, alice, app):
    project_id = make_project(app, alice)
    snapshot_id = make_snapshot(app, alice, project_id, FILES)
    page = text(client.get(f"/projects/{project_id}?tab=files&path=app.js"))
    raw = f"/projects/{project_id}/snapshots/{snapshot_id}/raw/app.js"
    assert f'data-copy-url="{raw}" hidden>Copy</button>' in page
    assert f'<a class="file-raw" href="{raw}"' in page


def test_raw_is_plain_text_never_sniffed_and_tagged_by_its_blob(client, alice, app):
    project_id = make_project(app, alice)
    snapshot_id = make_snapshot(app, alice, project_id, {**FILES, "page.html": "<script>alert(1)</script>\n"})
    url = f"/projects/{project_id}/snapshots/{snapshot_id}/raw/page.html"
    first, statements = get_with_statements(app, client, url)
    assert first.status_code == 200 and reads_a_blob(statements)
    assert first.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert first.headers["X-Content-Type-Options"] == "nosniff"
    assert first.get_data(as_text=True) == "<script>alert(1)</script>\n"
    etag = first.headers["ETag"]
    again, statements = get_with_statements(app, client, url, **{"If-None-Match": etag})
    assert again.status_code == 304 and again.get_data() == b"" and not reads_a_blob(statements)
    # Secrets are hidden as in every view (the zip holds the real file).
    readme = text(client.get(f"/projects/{project_id}/snapshots/{snapshot_id}/raw/README.md"))
    assert "# Counter" in readme and "sk-live-abcdefghijklmnopqrstuvwx" not in readme
    # Another version with the same bytes has the same tag; another file another one.
    assert client.get(f"/projects/{project_id}/snapshots/{snapshot_id}/raw/app.js").headers["ETag"] != etag


def test_raw_refuses_other_people_missing_files_and_bad_paths(client, alice, app, make_user):
    project_id = make_project(app, alice)
    snapshot_id = make_snapshot(app, alice, project_id, FILES)
    missing = client.get(f"/projects/{project_id}/snapshots/{snapshot_id}/raw/nope.txt")
    assert missing.status_code == 404 and "nope.txt" in missing.get_data(as_text=True)
    assert client.get(f"/projects/{project_id}/snapshots/{snapshot_id}/raw/../README.md").status_code == 404
    assert client.get(f"/projects/{project_id + 999}/snapshots/{snapshot_id}/raw/README.md").status_code == 404
    bob = make_user("bob")
    sign_in(client, bob)
    other = client.get(f"/projects/{project_id}/snapshots/{snapshot_id}/raw/README.md")
    assert other.status_code == 404 and "Counter" not in other.get_data(as_text=True)
    client.post("/auth/logout")
    anonymous = app.test_client().get(f"/projects/{project_id}/snapshots/{snapshot_id}/raw/README.md")
    assert anonymous.status_code in (302, 401) and "Counter" not in anonymous.get_data(as_text=True)


def test_files_opens_on_what_the_reply_changed_not_on_readme(client, alice, app):
    project_id = make_project(app, alice)
    make_snapshot(app, alice, project_id, FILES)
    make_snapshot(app, alice, project_id, {"style.css": "body { color: blue; }\n"}, carry_over=True)
    page = text(client.get(f"/projects/{project_id}?tab=files"))
    assert 'id="file-view" class="file-view" aria-live="polite" data-path="style.css"' in page
    # The standalone version page opens on it too.
    snapshot_page = text(client.get(f"/projects/{project_id}/snapshots/{_latest(app, project_id)}"))
    assert 'id="file-view" class="file-view" aria-live="polite" data-path="style.css"' in snapshot_page
    # A version that changed nothing the tree can show (all added: an upload) opens on README as before.
    other = make_project(app, alice)
    make_snapshot(app, alice, other, FILES)
    assert 'aria-live="polite" data-path="README.md"' in text(client.get(f"/projects/{other}?tab=files"))


def _latest(app, project_id: int) -> int:
    from app.extensions import db
    from app.services import snapshots

    with app.app_context():
        return snapshots.list_snapshots(db.session, project_id, limit=1)[0].id
