"""Project and snapshot pages: dashboard, project page, preview, HTML preview, diff, download, restore,
settings, the take-snapshot control, ownership and the preview page's query count."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Project, Snapshot
from tests.conftest import csrf_token_for, sign_in
from tests.snapshot_helpers import (
    assert_not_found_and_nothing_leaked,
    make_project,
    make_reply,
    make_snapshot,
    reply_with,
)
from tests.sql_helpers import statements_on


def text(response) -> str:
    return response.get_data(as_text=True)


def test_dashboard_empty_state_tells_a_new_user_what_to_do(client, alice):
    page = text(client.get("/projects"))
    assert "Start your first project" in page and "Create project" in page
    assert 'action="/projects"' in page


def test_dashboard_lists_projects_with_latest_snapshot_and_repo(client, alice, app):
    project_id = make_project(app, alice, "Recipe tracker")
    make_snapshot(app, alice, project_id, {"a.py": "1\n", "b.py": "2\n"})
    with app.app_context():
        project = db.session.get(Project, project_id)
        project.repo_full_name = "alice/recipes"
        db.session.commit()
    page = text(client.get("/projects"))
    assert "Recipe tracker" in page and "#1</a> · 2 files" in page and "alice/recipes" in page
    assert "Start your first project" not in page


def test_create_project_form_shows_errors_next_to_the_field_and_works_without_js(client, alice, app):
    token = csrf_token_for(client)
    bad = client.post("/projects", data={"csrf_token": token, "name": "   "})
    assert bad.status_code == 400
    assert 'aria-invalid="true"' in text(bad) and "Give the project a name." in text(bad)
    good = client.post("/projects", data={"csrf_token": token, "name": "<script>alert(1)</script>"})
    assert good.status_code == 302
    page = text(client.get(good.headers["Location"]))
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert(1)" not in page


def test_form_posts_without_csrf_are_refused(client, alice, app):
    project_id = make_project(app, alice)
    assert client.post("/projects", data={"name": "x"}).status_code == 403
    assert client.post(f"/projects/{project_id}/delete", data={"confirm_name": "Demo app"}).status_code == 403
    with app.app_context():
        assert db.session.get(Project, project_id) is not None


def test_project_page_is_the_workspace_conversation_beside_versions_and_files(client, alice, app):
    project_id = make_project(app, alice)
    make_snapshot(app, alice, project_id, {"src/app.py": "x\n", "README.md": "# Demo\n"})
    make_reply(app, alice, project_id, reply_with({"src/new.py": "y\n"}) + "\n<img src=x onerror=alert(1)>")
    page = text(client.get(f"/projects/{project_id}"))
    assert 'id="project-pane"' in text(client.get(f"/projects/{project_id}/chat"))  # the same workspace
    assert 'id="project-pane"' in page and 'id="composer"' in page  # one page: the chat beside the project
    assert "<strong>v1</strong>" in page and "latest" in page
    # A Python app is not a site: the Preview tab says so and opens the files instead.
    assert 'data-tab="files"' in page and "src/" in page and "app.py" in page and "README.md" in page
    assert 'data-site-kind="not_runnable"' in page
    assert "src/new.py" in page and 'id="reply-chip-' in page  # the reply, with its chip
    assert "<img src=x onerror" not in page and "&lt;img src=x onerror" in page  # escaped, never raw


def test_take_snapshot_with_htmx_swaps_in_a_confirmation_naming_the_reply_files(client, alice, app):
    project_id = make_project(app, alice)
    make_snapshot(app, alice, project_id, {"keep.py": "k\n", "app.py": "v1\n"})
    message_id = make_reply(app, alice, project_id, reply_with({"app.py": "v2\n", "new.py": "n\n"}))
    response = client.post(f"/messages/{message_id}/snapshot", data={"csrf_token": csrf_token_for(client)},
                           headers={"HX-Request": "true"})
    assert response.status_code == 200
    html = text(response)
    assert f'id="snapshot-action-{message_id}"' in html and "<html" not in html
    assert "Snapshot" in html and "#2</a>" in html and "2 files from this reply, 1 carried over" in html
    assert re.search(r"badge-new\">new</span> new.py", html) and re.search(r"changed</span> app.py", html)


def test_take_snapshot_without_js_redirects_to_the_new_snapshot_with_a_message(client, alice, app):
    project_id = make_project(app, alice)
    message_id = make_reply(app, alice, project_id, reply_with({"app.py": "v1\n"}))
    response = client.post(f"/messages/{message_id}/snapshot", data={"csrf_token": csrf_token_for(client)})
    assert response.status_code == 302
    with app.app_context():
        snapshot = db.session.scalars(select(Snapshot)).one()
    assert response.headers["Location"].endswith(f"/projects/{project_id}/snapshots/{snapshot.id}")
    page = text(client.get(response.headers["Location"]))
    assert "Snapshot #1 taken: 1 from this reply (app.py)" in page


def test_take_snapshot_errors_show_inside_the_control(client, alice, app):
    project_id = make_project(app, alice)
    message_id = make_reply(app, alice, project_id, "```path=../evil.sh\nx\n```\n")
    response = client.post(f"/messages/{message_id}/snapshot", data={"csrf_token": csrf_token_for(client)},
                           headers={"HX-Request": "true"})
    assert response.status_code == 400
    assert "goes above the project folder" in text(response)


def test_a_general_chat_reply_asks_which_project(client, alice, app):
    make_project(app, alice, "Target")
    message_id = make_reply(app, alice, None, reply_with({"a.py": "1\n"}))
    with app.test_request_context():
        from flask import render_template
        from flask_login import login_user

        from app.models import ChatMessage
        from app.web.snapshot_actions import SnapshotActions

        login_user(db.session.get(type(alice), alice.id))
        html = render_template("partials/_snapshot_action.html", message=db.session.get(ChatMessage, message_id),
                               project=None, snapshot_actions=SnapshotActions(db.session, user_id=alice.id,
                                                                                   project=None))
    assert 'name="project_id"' in html and "Target" in html
    response = client.post(f"/messages/{message_id}/snapshot", data={"csrf_token": csrf_token_for(client)})
    assert response.status_code == 400 and "Choose the project" in text(response)


def test_the_action_renders_nothing_for_replies_without_files(app, alice):
    project_id = make_project(app, alice)
    message_id = make_reply(app, alice, project_id, "No code here, only ```python\nprint(1)\n```")
    with app.test_request_context():
        from flask import render_template

        from app.models import ChatMessage
        from app.web.snapshot_actions import SnapshotActions

        project = db.session.get(Project, project_id)
        html = render_template("partials/_snapshot_action.html", message=db.session.get(ChatMessage, message_id),
                               project=project, snapshot_actions=SnapshotActions(db.session, user_id=alice.id,
                                                                                      project=project))
    assert html.strip() == ""


def test_preview_highlights_redacts_and_truncates(client, alice, app):
    project_id = make_project(app, alice)
    big = "".join(f"print({i})\n" for i in range(6000))
    snapshot_id = make_snapshot(app, alice, project_id, {
        "app.py": "def main():\n    return '<b>hi</b>'\n",
        ".env": "STRIPE_SECRET_KEY=sk_live_4eC39HqLyjWDarjtT1zdp7dc\n",
        "big.py": big,
        "logo.png": b"\x89PNG\r\n\x1a\n\x00\x00",
    })
    base = f"/projects/{project_id}/snapshots/{snapshot_id}"
    page = text(client.get(f"{base}?path=app.py"))
    assert '<span class="k">def</span>' in page and "&lt;b&gt;hi&lt;/b&gt;" in page
    assert "style=" not in page.split('id="file-view"')[1]  # classes only: the CSP forbids inline styles
    assert "Possible secrets" in page and ".env" in page
    env = text(client.get(f"{base}?path=.env"))
    assert "sk_live" not in env and "redacted" in env and "1 secret hidden" in env
    truncated = text(client.get(f"{base}?path=big.py"))
    assert "Showing the first 5,000 of 6,000 lines." in truncated
    binary = text(client.get(f"{base}?path=logo.png"))
    assert "Binary file" in binary
    assert client.get(f"{base}?path=nope.txt").status_code == 404
    fragment = client.get(f"{base}?path=app.py", headers={"HX-Request": "true", "HX-Target": "file-view"})
    assert text(fragment).lstrip().startswith('<section id="file-view"')


def test_html_files_render_in_a_sandboxed_frame_from_a_strict_route(client, alice, app):
    project_id = make_project(app, alice)
    snapshot_id = make_snapshot(app, alice, project_id, {
        "site/index.html": "<h1>Hello</h1><script>document.title='x'</script><link rel=stylesheet href=style.css>",
        "site/style.css": "h1 { color: red }",
        "site/.env": "TOKEN=abc\n",
    })
    page = text(client.get(f"/projects/{project_id}/snapshots/{snapshot_id}?path=site/index.html&view=rendered"))
    match = re.search(r'<iframe class="html-preview" src="([^"]+)" sandbox="allow-scripts"', page)
    assert match, page
    assert "allow-same-origin" not in page
    frame_url = match.group(1)
    anonymous = app.test_client()  # the sandboxed frame has an opaque origin: it sends no cookie
    served = anonymous.get(frame_url)
    assert served.status_code == 200 and served.mimetype == "text/html"
    csp = served.headers["Content-Security-Policy"]
    assert "sandbox allow-scripts" in csp and "allow-same-origin" not in csp
    # A site's policy (app/web/security.py PREVIEW_SITE_CSP): its own files, inline code, and https: CDNs
    # by the project's default; the opaque-origin sandbox keeps Sorya's cookies and API out of reach.
    assert "frame-ancestors 'self'" in csp and "form-action 'none'" in csp and "object-src 'none'" in csp
    assert csp.startswith("default-src 'self' 'unsafe-inline' data: blob: https:;")
    assert served.headers["X-Frame-Options"] == "SAMEORIGIN"
    sibling = anonymous.get(frame_url.rsplit("/", 1)[0] + "/style.css")
    assert sibling.status_code == 200 and sibling.mimetype == "text/css"
    assert b"abc" not in anonymous.get(frame_url.rsplit("/", 1)[0] + "/.env").data
    # The app's own pages still refuse to be framed by anyone.
    assert "frame-ancestors 'none'" in client.get(f"/projects/{project_id}").headers["Content-Security-Policy"]
    token = frame_url.split("/")[2]
    assert anonymous.get(f"/snapshot-preview/{token[:-2]}xx/site/index.html").status_code == 404


def test_a_preview_token_stops_working_when_the_snapshot_is_deleted(client, alice, app):
    project_id = make_project(app, alice)
    snapshot_id = make_snapshot(app, alice, project_id, {"index.html": "<p>x</p>"})
    page = text(client.get(f"/projects/{project_id}/snapshots/{snapshot_id}?path=index.html&view=rendered"))
    frame_url = re.search(r'<iframe class="html-preview" src="([^"]+)"', page).group(1)
    client.post(f"/projects/{project_id}/delete", data={"csrf_token": csrf_token_for(client), "confirm_name": "Demo app"})
    assert app.test_client().get(frame_url).status_code == 404


def test_diff_page_inline_and_side_by_side_with_htmx(client, alice, app):
    project_id = make_project(app, alice)
    first = make_snapshot(app, alice, project_id, {"a.py": "one\ntwo\n", "old.txt": "x\n"})
    second = make_snapshot(app, alice, project_id, {"a.py": "one\n<2>\n", "new.txt": "y\n"})
    page = text(client.get(f"/projects/{project_id}/diff"))
    assert "1 added" in page and "1 changed" in page and "1 removed" in page
    assert "-two" in page and "+&lt;2&gt;" in page
    split = client.get(f"/projects/{project_id}/diff?target={second}&base={first}&view=split",
                       headers={"HX-Request": "true", "HX-Target": "diff"})
    fragment = text(split)
    assert fragment.lstrip().startswith('<section id="diff"') and "diff-split" in fragment
    assert '<td class="code del"><pre>two</pre>' in fragment and '<td class="code ins"><pre>&lt;2&gt;</pre>' in fragment


def test_download_and_restore_from_pages(client, alice, app):
    project_id = make_project(app, alice)
    first = make_snapshot(app, alice, project_id, {"a.py": "v1\n"})
    make_snapshot(app, alice, project_id, {"a.py": "v2\n"})
    download = client.get(f"/projects/{project_id}/snapshots/{first}/download")
    assert download.status_code == 200 and download.mimetype == "application/zip"
    assert 'filename="demo-app-snapshot-1.zip"' in download.headers["Content-Disposition"]
    page = text(client.get(f"/projects/{project_id}/snapshots/{first}"))
    assert "Restore as latest" in page
    restored = client.post(f"/projects/{project_id}/snapshots/{first}/restore",
                           data={"csrf_token": csrf_token_for(client)})
    assert restored.status_code == 302
    page = text(client.get(restored.headers["Location"]))
    assert "Snapshot #3" in page and "Restore as latest" not in page and "v1" in page


def test_settings_rename_archive_and_delete_with_confirmation(client, alice, app):
    project_id = make_project(app, alice)
    token = csrf_token_for(client)
    renamed = client.post(f"/projects/{project_id}/settings", data={"csrf_token": token, "name": "New name",
                                                                     "description": "Line 1\nLine 2"})
    assert renamed.status_code == 302
    bad = client.post(f"/projects/{project_id}/settings", data={"csrf_token": token, "name": ""})
    assert bad.status_code == 400 and "Give the project a name." in text(bad)
    assert client.post(f"/projects/{project_id}/archive", data={"csrf_token": token}).status_code == 302
    assert "Archived (1)" in text(client.get("/projects"))
    assert client.post(f"/projects/{project_id}/unarchive", data={"csrf_token": token}).status_code == 302
    confirm = text(client.get(f"/projects/{project_id}/delete"))
    assert "Type <strong>New name</strong> to confirm" in confirm
    wrong = client.post(f"/projects/{project_id}/delete", data={"csrf_token": token, "confirm_name": "new name"})
    assert wrong.status_code == 400 and "exactly as shown" in text(wrong)
    done = client.post(f"/projects/{project_id}/delete", data={"csrf_token": token, "confirm_name": "New name"})
    assert done.status_code == 302
    with app.app_context():
        assert db.session.get(Project, project_id) is None


def test_other_users_pages_and_messages_are_404(client, alice, app, make_user):
    other = make_user("mallory")
    project_id = make_project(app, other)
    snapshot_id = make_snapshot(app, other, project_id, {"secret.py": "TOP SECRET\n"})
    message_id = make_reply(app, other, project_id, reply_with({"x.py": "TOP SECRET\n"}))
    mine = make_project(app, alice)
    token = csrf_token_for(client)
    responses = [
        client.get(f"/projects/{project_id}"),
        client.get(f"/projects/{project_id}/snapshots/{snapshot_id}"),
        client.get(f"/projects/{mine}/snapshots/{snapshot_id}"),
        client.get(f"/projects/{project_id}/snapshots/{snapshot_id}/download"),
        client.get(f"/projects/{project_id}/diff"),
        client.get(f"/projects/{mine}/diff?target={snapshot_id}"),
        client.get(f"/projects/{project_id}/settings"),
        client.get(f"/projects/{project_id}/delete"),
        client.post(f"/projects/{project_id}/delete", data={"csrf_token": token, "confirm_name": "Demo app"}),
        client.post(f"/projects/{project_id}/archive", data={"csrf_token": token}),
        client.post(f"/projects/{project_id}/snapshots/{snapshot_id}/restore", data={"csrf_token": token}),
        client.post(f"/messages/{message_id}/snapshot", data={"csrf_token": token, "project_id": str(mine)}),
    ]
    assert_not_found_and_nothing_leaked(responses, b"TOP SECRET")
    with app.app_context():
        assert db.session.get(Project, project_id).status == "active"


def test_signed_out_visitors_are_sent_to_sign_in(app):
    anonymous = app.test_client()
    response = anonymous.get("/projects")
    assert response.status_code == 302 and "next=" in response.headers["Location"]


def count_queries(app, client, url: str) -> int:
    with app.app_context():
        engine = db.engine
    with statements_on(engine) as statements:
        response = client.get(url)
    assert response.status_code == 200
    return len(statements)


def test_preview_and_project_pages_make_the_same_number_of_queries_for_10_and_300_files(client, alice, app):
    small_project = make_project(app, alice, "Small")
    large_project = make_project(app, alice, "Large")
    small = make_snapshot(app, alice, small_project, {f"pkg{i % 7}/m{i}.py": f"x = {i}\n" for i in range(10)})
    # Other contents than the small one's: a file view already rendered is served from the view cache.
    large = make_snapshot(app, alice, large_project, {f"pkg{i % 7}/m{i}.py": f"y = {i}\n" for i in range(300)})
    small_preview = count_queries(app, client, f"/projects/{small_project}/snapshots/{small}?path=pkg0/m0.py")
    large_preview = count_queries(app, client, f"/projects/{large_project}/snapshots/{large}?path=pkg0/m0.py")
    assert small_preview == large_preview
    assert count_queries(app, client, f"/projects/{small_project}") == count_queries(app, client, f"/projects/{large_project}")
    assert count_queries(app, client, f"/projects/{large_project}/diff") == count_queries(app, client, f"/projects/{small_project}/diff")


# -- preview links ---------------------------------------------------------------------------------


def preview_link(client, project_id: int, snapshot_id: int, path: str = "index.html") -> str:
    page = text(client.get(f"/projects/{project_id}/snapshots/{snapshot_id}?path={path}&view=rendered"))
    return re.search(r'<iframe class="html-preview" src="([^"]+)"', page).group(1)


@pytest.fixture
def clock(monkeypatch):
    """Move the clock of signed, timed values (preview links) forward by `clock.advance(seconds)`."""
    from itsdangerous.timed import TimestampSigner

    real = TimestampSigner.get_timestamp

    class Clock:
        offset_s = 0

        def advance(self, seconds: int) -> None:
            self.offset_s += seconds

    moved = Clock()
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda signer: real(signer) + moved.offset_s)
    return moved


def test_a_preview_link_lives_ten_minutes(client, alice, app, clock):
    project_id = make_project(app, alice)
    snapshot_id = make_snapshot(app, alice, project_id, {"index.html": "<p>x</p>"})
    frame_url = preview_link(client, project_id, snapshot_id)
    frame = app.test_client()  # the sandboxed frame sends no cookie
    clock.advance(9 * 60 + 50)
    assert frame.get(frame_url).status_code == 200
    clock.advance(20)
    expired = frame.get(frame_url)
    assert expired.status_code == 404 and "reload the snapshot page" in text(expired)
    assert frame.get(preview_link(client, project_id, snapshot_id)).status_code == 200  # reloading gives a new one


def test_a_preview_link_opens_only_for_the_viewer_it_was_made_for(client, alice, app, make_user):
    project_id = make_project(app, alice)
    snapshot_id = make_snapshot(app, alice, project_id, {"index.html": "<p>x</p>"})
    frame_url = preview_link(client, project_id, snapshot_id)
    assert app.test_client().get(frame_url).status_code == 200  # no session: the link alone
    assert client.get(frame_url).status_code == 200  # alice's own session
    bob = app.test_client()
    sign_in(bob, make_user("bob"))
    assert bob.get(frame_url).status_code == 404  # someone else signed in with alice's link

    from app.services import accounts

    with app.app_context():
        accounts.disable_user(db.session, "alice")
        db.session.remove()
    assert app.test_client().get(frame_url).status_code == 404


@pytest.mark.parametrize(
    ("path", "mimetype"),
    [("style.css", "text/css"), ("app.js", "text/javascript"), ("mod.mjs", "text/javascript"),
     ("logo.svg", "image/svg+xml"), ("font.woff2", "font/woff2"), ("data.json", "application/json")],
)
def test_preview_files_load_in_the_sandboxed_frame_with_their_type(client, alice, app, path, mimetype):
    project_id = make_project(app, alice)
    snapshot_id = make_snapshot(app, alice, project_id, {
        "index.html": "<link rel=stylesheet href=style.css><script src=app.js></script>",
        path: b"wOF2\x00\x01\x00\x00" if path.endswith(".woff2") else "{}",
    })
    frame_url = preview_link(client, project_id, snapshot_id)
    served = app.test_client().get(frame_url.rsplit("/", 1)[0] + "/" + path)
    assert served.status_code == 200 and served.mimetype == mimetype
    # The frame's origin is opaque, so for the browser every file it loads is cross-origin.
    assert served.headers["Cross-Origin-Resource-Policy"] == "cross-origin"
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    assert served.headers["Referrer-Policy"] == "no-referrer"


def test_the_logs_show_a_preview_route_never_its_token(client, alice, app):
    import io
    import logging

    from app import logs

    project_id = make_project(app, alice)
    snapshot_id = make_snapshot(app, alice, project_id, {"index.html": "<p>x</p>"})
    frame_url = preview_link(client, project_id, snapshot_id)
    token = frame_url.split("/")[2]
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    logging.getLogger().addHandler(handler)
    try:
        assert app.test_client().get(frame_url).status_code == 200
        assert app.test_client().get(frame_url.rsplit("/", 1)[0] + "/missing.css").status_code == 404
    finally:
        logging.getLogger().removeHandler(handler)
    written = stream.getvalue()
    assert token not in written
    assert '"path": "/snapshot-preview/<token>/<path:path>"' in written
