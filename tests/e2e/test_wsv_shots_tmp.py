from tests.e2e.conftest import screenshot, sign_in_browser
from tests.snapshot_helpers import GENEROUS_LIMITS, make_project, make_reply, make_snapshot, reply_with


def test_shots(page, app, make_user, live_server):
    from app.extensions import db
    from app.services.snapshots.auto import version_reply

    user = make_user("shots", balance=500)
    project_id = make_project(app, user, "Book club")
    make_snapshot(app, user, project_id, {"index.html": "<h1>x</h1>", "style.css": "h1{}"})
    done = make_reply(app, user, project_id, reply_with({"index.html": "<h1>y</h1>", "app.js": "go()"}))
    with app.app_context():
        version_reply(db.session, user_id=user.id, message_id=done, limits=GENEROUS_LIMITS)
        db.session.remove()
    make_reply(app, user, project_id, "```path=page.html\n<p>ok</p>\n```\n```python path=app.py\nprint('v", status="stopped")
    make_reply(app, user, None, reply_with({"main.py": "print(1)\n"}))
    sign_in_browser(page, app, user, live_server)
    page.goto(f"/projects/{project_id}/chat")
    screenshot(page, "wsv-chat-desktop")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "wsv-chat-phone")
    page.goto("/chat")
    screenshot(page, "wsv-general-phone")
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto("/chat")
    screenshot(page, "wsv-general-desktop")
    page.goto(f"/projects/{project_id}/settings")
    screenshot(page, "wsv-settings")
    page.goto(f"/projects/{project_id}")
    screenshot(page, "wsv-project")
