"""A version served as a site: a fresh preview address per version, the console script injected and
served as JavaScript, and the CSP that follows the project's CDN setting."""

from __future__ import annotations

import re

from app.models import Project
from tests.conftest import csrf_token_for, sign_in
from tests.snapshot_helpers import make_project, make_snapshot

SITE = {
    "index.html": "<!doctype html><html><head><link rel=stylesheet href=style.css>"
                  "<script type=module src=app.js></script></head><body><h1>Hi</h1></body></html>",
    "style.css": "h1 { color: blue; }",
    "app.js": "import { start } from './counter.js'; start();",
    "counter.js": "export function start() {}",
}


def fresh_url(client, project_id, snapshot_id, **params):
    response = client.get(f"/projects/{project_id}/snapshots/{snapshot_id}/preview-url", query_string=params,
                          headers={"Accept": "application/json"})
    assert response.status_code == 200 and response.headers["Cache-Control"] == "private, no-store"
    return response.json


def test_a_version_has_a_fresh_preview_address_that_keeps_its_page(client, make_user, app):
    alice = make_user("alice")
    sign_in(client, alice)
    project_id = make_project(app, alice)
    snapshot_id = make_snapshot(app, alice, project_id, {**SITE, "about.html": "<p>about</p>"})
    body = fresh_url(client, project_id, snapshot_id)
    assert (body["entry"], body["path"], body["site_kind"], body["expires_in"]) == ("index.html", "index.html",
                                                                                   "static", 600)
    assert re.fullmatch(r"/snapshot-preview/[^/]+/index\.html", body["url"])
    kept = fresh_url(client, project_id, snapshot_id, path="about.html")
    assert kept["url"].endswith("/about.html") and kept["path"] == "about.html"
    assert fresh_url(client, project_id, snapshot_id, path="gone.html")["path"] == "index.html"
    # Without JSON (a plain "Open in new tab" link) it goes to the page.
    response = client.get(f"/projects/{project_id}/snapshots/{snapshot_id}/preview-url",
                          headers={"Accept": "text/html"})
    assert response.status_code == 302 and "/snapshot-preview/" in response.headers["Location"]

    frame = app.test_client()  # the sandboxed frame sends no cookie
    page = frame.get(body["url"])
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and page.mimetype == "text/html"
    script = re.search(r'<head><script src="([^"]+)" data-parent-origin="http://localhost"></script><link', html)
    assert script is not None, html[:300]
    served = frame.get(script.group(1))
    assert served.status_code == 200 and served.mimetype == "text/javascript"
    assert b'source: "sorya-preview"' in served.data and b"unhandledrejection" in served.data
    # The page's own files load beside it, under the same address.
    assert frame.get(body["url"].replace("index.html", "counter.js")).mimetype == "text/javascript"


def test_the_site_csp_follows_the_projects_cdn_setting(client, make_user, app, db_session):
    alice = make_user("alice")
    sign_in(client, alice)
    project_id = make_project(app, alice)
    snapshot_id = make_snapshot(app, alice, project_id, SITE)
    assert db_session.get(Project, project_id).preview_allow_cdn is True  # on by default
    url = fresh_url(client, project_id, snapshot_id)["url"]
    csp = app.test_client().get(url).headers["Content-Security-Policy"]
    assert csp.startswith("default-src 'self' 'unsafe-inline' data: blob: https:;")
    assert csp.endswith("; sandbox allow-scripts") and "allow-same-origin" not in csp
    assert "frame-ancestors 'self'" in csp

    settings_page = client.get(f"/projects/{project_id}/settings").get_data(as_text=True)
    assert "Previews may load from https: CDNs" in settings_page and "checked" in settings_page
    response = client.post(f"/projects/{project_id}/settings/preview", data={"csrf_token": csrf_token_for(client)})
    assert response.status_code == 302
    db_session.expire_all()
    assert db_session.get(Project, project_id).preview_allow_cdn is False
    csp = app.test_client().get(url).headers["Content-Security-Policy"]
    assert csp.startswith("default-src 'self' 'unsafe-inline' data: blob:;") and "https:" not in csp
    # Also on the script it injects.
    script = app.test_client().get(url.replace("index.html", "__sorya__/console.js"))
    assert script.mimetype == "text/javascript" and "https:" not in script.headers["Content-Security-Policy"]


def test_a_python_app_has_no_preview_address_and_says_why(client, make_user, app):
    alice = make_user("alice")
    sign_in(client, alice)
    project_id = make_project(app, alice)
    snapshot_id = make_snapshot(app, alice, project_id, {"app.py": "print(1)\n", "requirements.txt": "flask\n"})
    body = fresh_url(client, project_id, snapshot_id)
    assert body["url"] is None and body["site_kind"] == "not_runnable"
    assert "Python app; a browser cannot run it" in body["message"]


def test_another_users_version_and_settings_are_not_found(client, make_user, app):
    alice, bob = make_user("alice"), make_user("bob")
    project_id = make_project(app, alice)
    snapshot_id = make_snapshot(app, alice, project_id, SITE)
    sign_in(client, bob)
    assert client.get(f"/projects/{project_id}/snapshots/{snapshot_id}/preview-url",
                      headers={"Accept": "application/json"}).status_code == 404
    assert client.post(f"/projects/{project_id}/settings/preview",
                       data={"csrf_token": csrf_token_for(client)}).status_code == 404
