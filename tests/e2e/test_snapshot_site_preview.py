"""A snapshot of a small web site (HTML, CSS, JS) previews as that site: styled, its script run, inside
the sandboxed frame whose opaque origin must still be allowed to load the site's own files."""

from __future__ import annotations

from tests.e2e.conftest import screenshot, sign_in_browser
from tests.snapshot_helpers import make_project, make_snapshot

SITE = {
    "site/index.html": (
        "<!doctype html><html><head><meta charset=utf-8><title>Garden planner</title>"
        "<link rel=stylesheet href=style.css><script src=app.js defer></script></head>"
        "<body><h1>Garden planner</h1><p id=status>Loading…</p></body></html>"
    ),
    "site/style.css": "body { background: rgb(250, 240, 200); } h1 { color: rgb(20, 110, 40); font-size: 48px; }\n",
    "site/app.js": "document.getElementById('status').textContent = 'Planted by app.js';\n",
}


def test_a_three_file_site_renders_styled_and_runs_its_script(page, app, make_user, live_server):
    user = make_user("gardener")
    project_id = make_project(app, user, "Garden planner")
    snapshot_id = make_snapshot(app, user, project_id, SITE, summary="A small site")
    sign_in_browser(page, app, user, live_server)
    blocked = []
    page.on("requestfailed", lambda request: blocked.append((request.url, request.failure)))

    page.goto(f"/projects/{project_id}/snapshots/{snapshot_id}?path=site/index.html&view=rendered")
    page.frame_locator("iframe.html-preview").get_by_text("Planted by app.js").wait_for()
    frame = next(f for f in page.frames if "/snapshot-preview/" in f.url)
    assert frame.evaluate("getComputedStyle(document.querySelector('h1')).color") == "rgb(20, 110, 40)"
    assert frame.evaluate("getComputedStyle(document.querySelector('h1')).fontSize") == "48px"
    assert frame.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(250, 240, 200)"
    assert frame.evaluate("document.getElementById('status').textContent") == "Planted by app.js"
    assert frame.evaluate("origin") == "null"  # still sandboxed: an opaque origin, no access to the app
    assert blocked == []
    screenshot(page, "snapshots-site-preview")
