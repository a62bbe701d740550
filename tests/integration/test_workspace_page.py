"""The workspace page's routes: tabs and versions are plain links (?tab=, ?v=) that work without
JavaScript; htmx asks for the project pane alone; the rendered stream of a reply."""

from __future__ import annotations

from app.extensions import db
from app.services import chat as chat_service
from tests.conftest import csrf_token_for
from tests.snapshot_helpers import make_project, make_reply, make_snapshot

SITE = {"index.html": '<!doctype html><html><head><link rel="stylesheet" href="style.css"></head><body>Hi</body></html>\n',
        "style.css": "body { color: red; }\n", "README.md": "# Site\n"}


def text(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.get_data(as_text=True)


def two_versions(app, user):
    project_id = make_project(app, user)
    first = make_snapshot(app, user, project_id, SITE)
    second = make_snapshot(app, user, project_id, {**SITE, "style.css": "body { color: blue; }\n"})
    return project_id, first, second


def test_the_preview_tab_frames_the_site_in_an_opaque_origin_sandbox(client, alice, app):
    project_id, _first, second = two_versions(app, alice)
    page = text(client.get(f"/projects/{project_id}"))
    assert 'data-tab="preview"' in page and f'data-snapshot-id="{second}"' in page
    assert 'sandbox="allow-scripts"' in page and "allow-same-origin" not in page
    assert "/snapshot-preview/" in page and "/index.html" in page
    assert 'aria-current="page" class="ws-tab"' in page or 'data-tab="preview" aria-current="page"' in page
    assert '<a href="/projects" aria-current="page">Projects</a>' in page  # the nav shows where you are


def test_each_tab_is_a_link_that_renders_without_javascript(client, alice, app):
    project_id, first, second = two_versions(app, alice)
    files = text(client.get(f"/projects/{project_id}?tab=files"))
    assert 'data-tab="files"' in files and "file-tree" in files
    assert 'class="file-path"' in files  # a file is open (the journey checks it is what the reply changed)
    assert f'action="/projects/{project_id}/upload"' in files and 'enctype="multipart/form-data"' in files
    changes = text(client.get(f"/projects/{project_id}?tab=changes"))
    assert "diff-summary" in changes and "style.css" in changes and "color: blue" in changes
    publish = text(client.get(f"/projects/{project_id}?tab=publish"))
    assert 'id="publish-panel"' in publish
    unknown = text(client.get(f"/projects/{project_id}?tab=nonsense"))
    assert 'data-tab="preview"' in unknown


def test_v_shows_an_older_version_everywhere_and_offers_restore(client, alice, app):
    project_id, first, second = two_versions(app, alice)
    page = text(client.get(f"/projects/{project_id}?v={first}&tab=files"))
    assert f'data-snapshot-id="{first}"' in page and 'data-latest="false"' in page
    assert f'/projects/{project_id}/snapshots/{first}/restore' in page
    older_css = text(client.get(f"/projects/{project_id}?v={first}&tab=files&path=style.css"))
    assert '<h2 class="file-path">style.css</h2>' in older_css and ">red<" in older_css and ">blue<" not in older_css
    assert "Restore this version" in page
    # the tabs keep the version
    assert f"tab=changes&amp;v={first}" in page or f"v={first}&amp;tab=changes" in page
    latest = text(client.get(f"/projects/{project_id}"))
    assert "Restore this version" not in latest
    # Restore (a plain form) makes it the latest.
    response = client.post(f"/projects/{project_id}/snapshots/{first}/restore", data={"csrf_token": csrf_token_for(client)})
    assert response.status_code == 302


def test_someone_elses_version_or_project_is_a_404(client, alice, app, make_user):
    bob = make_user("bob")
    bobs_project = make_project(app, bob, "Bob's")
    bobs_version = make_snapshot(app, bob, bobs_project, SITE)
    project_id, _first, _second = two_versions(app, alice)
    assert client.get(f"/projects/{project_id}?v={bobs_version}").status_code == 404
    assert client.get(f"/projects/{bobs_project}").status_code == 404
    assert client.get(f"/projects/{project_id}?v=abc").status_code == 400


def test_htmx_gets_only_the_pane(client, alice, app):
    project_id, first, _second = two_versions(app, alice)
    response = client.get(f"/projects/{project_id}/chat?tab=files&v={first}",
                          headers={"HX-Request": "true", "HX-Target": "project-pane"})
    html = text(response)
    assert html.lstrip().startswith("<section id=\"project-pane\"") and "<html" not in html and 'id="composer"' not in html
    assert 'data-tab="files"' in html and "Vary" in response.headers and "HX-Target" in response.headers["Vary"]


def test_a_version_a_browser_cannot_run_opens_files_and_says_why(client, alice, app):
    project_id = make_project(app, alice)
    make_snapshot(app, alice, project_id, {"app/main.py": "print(1)\n"})
    page = text(client.get(f"/projects/{project_id}?tab=preview"))
    assert 'data-tab="files"' in page and 'data-site-kind="not_runnable"' in page and "ws-not-runnable" in page
    assert "<iframe" not in page


def test_a_new_project_has_an_empty_pane_with_an_upload_form(client, alice, app):
    project_id = make_project(app, alice)
    page = text(client.get(f"/projects/{project_id}"))
    assert "No version yet" in page and f'action="/projects/{project_id}/upload"' in page
    assert "Enter sends" in page and 'data-estimate-url="/chat/estimate"' in page


def test_the_rendered_stream_sends_sanitised_html_and_the_end(client, alice, app):
    project_id = make_project(app, alice)
    reply_id = make_reply(app, alice, project_id, "Hello **there** <script>x</script>\n\n```css path=a.css\nb{}\n```\n")
    with app.app_context():
        events = chat_service.finished_reply_events(db.session, reply_id, 0)
    assert events, "a finished reply replays its events"
    body = text(client.get(f"/chat/messages/{reply_id}/rendered-stream"))
    assert "event: html" in body and "<strong>there</strong>" in body and "<script>" not in body
    assert '"code-path\\">a.css' in body or "code-path" in body
    assert "event: done" in body
