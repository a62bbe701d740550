"""Replies of edit blocks become versions, all or nothing (shared/CONTRACT.md, "Generated files in a reply")."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.errors import EditsFailed
from app.extensions import db
from app.models import Snapshot
from app.services import snapshots as svc
from tests.conftest import csrf_token_for, sign_in
from tests.snapshot_helpers import GENEROUS_LIMITS, make_project, make_reply, make_snapshot


def edit(path: str, *sections: tuple[str, str]) -> str:
    body = "".join(f"<<<<<<< SEARCH\n{s}=======\n{r}>>>>>>> REPLACE\n" for s, r in sections)
    return f"```python path={path} edit\n{body}```\n"


def files_of(snapshot_id: int) -> dict[str, bytes]:
    entries = svc.list_snapshot_files(db.session, snapshot_id)
    contents = svc.read_blob_contents(db.session, [e.blob_id for e in entries])
    return {e.path: contents[e.blob_id] for e in entries}


def take(db_session, user, project_id, message_id):
    return svc.take_snapshot_from_message(db_session, user_id=user.id, project_id=project_id,
                                          message_id=message_id, limits=GENEROUS_LIMITS)


def test_a_reply_of_edit_blocks_becomes_a_version_with_the_edited_files(app, make_user, db_session):
    user = make_user()
    project_id = make_project(app, user)
    make_snapshot(app, user, project_id, {"app.py": "def f():\n    return 1\n\nprint(f())\n", "b.txt": "b\n"})
    reply = ("I changed the function.\n\n" + edit("app.py", ("    return 1\n", "    return 2\n"))
             + edit("app.py", ("print(f())\n", "print(f() + 1)\n")) + "```css path=new.css\nbody{}\n```\n")
    result = take(db_session, user, project_id, make_reply(app, user, project_id, reply))
    assert files_of(result.snapshot.id) == {
        "app.py": b"def f():\n    return 2\n\nprint(f() + 1)\n", "b.txt": b"b\n", "new.css": b"body{}\n"}
    assert (result.changed, result.added, result.carried) == (["app.py"], ["new.css"], 1)


def test_failed_edits_make_no_version_and_say_which_and_why(app, make_user, db_session):
    user = make_user()
    project_id = make_project(app, user)
    make_snapshot(app, user, project_id, {"app.py": "x = 1\nx = 1\n", "ok.py": "a\n"})
    reply = (edit("ok.py", ("a\n", "b\n")) + edit("app.py", ("x = 1\n", "x = 2\n"))
             + edit("missing.py", ("q\n", "r\n")) + edit("ok.py", ("zzz\n", "y\n")))
    with pytest.raises(EditsFailed) as failure:
        take(db_session, user, project_id, make_reply(app, user, project_id, reply))
    assert [(e["path"], e["block"], e["section"], e["reason"]) for e in failure.value.errors] == [
        ("app.py", 2, 1, "ambiguous"), ("missing.py", 3, 1, "file_missing"), ("ok.py", 4, 1, "not_found")]
    assert failure.value.status == 422 and "none were" in failure.value.message
    assert db_session.scalar(select(func.count()).select_from(Snapshot)) == 1  # only the upload


def test_the_snapshot_api_answers_422_with_the_edit_errors(app, client, make_user):
    user = make_user()
    sign_in(client, user)
    project_id = make_project(app, user)
    make_snapshot(app, user, project_id, {"app.py": "print(1)\n"})
    bad = make_reply(app, user, project_id, edit("app.py", ("print(3)\n", "print(4)\n")))
    response = client.post(f"/api/projects/{project_id}/snapshots", json={"message_id": bad},
                           headers={"X-CSRFToken": csrf_token_for(client)})
    assert response.status_code == 422
    error = response.json["error"]
    assert error["code"] == "unprocessable"
    assert error["edit_errors"] == [{"path": "app.py", "block": 1, "section": 1, "reason": "not_found",
                                     "detail": error["edit_errors"][0]["detail"]}]
    good = make_reply(app, user, project_id, edit("app.py", ("print(1)\n", "print(2)\n")))
    response = client.post(f"/api/projects/{project_id}/snapshots", json={"message_id": good},
                           headers={"X-CSRFToken": csrf_token_for(client)})
    assert response.status_code == 201 and response.json["from_this_source"] == ["app.py"]


def test_a_stopped_reply_never_applies_its_cut_off_edit(app, make_user, db_session):
    user = make_user()
    project_id = make_project(app, user)
    make_snapshot(app, user, project_id, {"app.py": "a\nb\n"})
    cut = edit("app.py", ("a\n", "A\n")) + "```python path=app.py edit\n<<<<<<< SEARCH\nb\n=======\nB"
    result = take(db_session, user, project_id, make_reply(app, user, project_id, cut, status="stopped"))
    assert files_of(result.snapshot.id) == {"app.py": b"A\nb\n"}
    assert any("cut off" in w for w in result.warnings)
