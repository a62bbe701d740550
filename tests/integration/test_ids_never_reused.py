"""Ids that leave the server (URLs, API answers, cookies, reply streams keyed by message id) never name a
second row: SQLite hands a deleted newest row's id to the next insert unless the table has AUTOINCREMENT."""

from __future__ import annotations

import pytest

from app.extensions import db
from app.models import ChatMessage, Project, Push, Snapshot


@pytest.fixture(params=["mariadb", "sqlite"])
def app(request, app, sqlite_app):
    return app if request.param == "mariadb" else sqlite_app


def new_row(model, user_id: int, project_id: int, snapshot_id: int, number: int):
    if model is Project:
        return Project(user_id=user_id, name="p")
    if model is ChatMessage:
        return ChatMessage(user_id=user_id, project_id=project_id, role="user", content="hi")
    if model is Snapshot:
        return Snapshot(project_id=project_id, number=number, summary="")
    return Push(project_id=project_id, user_id=user_id, snapshot_id=snapshot_id, repo_full_name="o/r",
                branch="main", status="failed")


@pytest.mark.parametrize("model", [Project, ChatMessage, Snapshot, Push], ids=lambda m: m.__tablename__)
def test_the_id_of_a_deleted_newest_row_is_never_handed_out_again(app, make_user, model):
    user = make_user()
    with app.app_context():
        project = Project(user_id=user.id, name="home")
        db.session.add(project)
        db.session.flush()
        first = Snapshot(project_id=project.id, number=1, summary="")
        db.session.add(first)
        db.session.commit()
        newest = new_row(model, user.id, project.id, first.id, 2)
        db.session.add(newest)
        db.session.commit()
        deleted_id = newest.id
        db.session.delete(newest)
        db.session.commit()
        again = new_row(model, user.id, project.id, first.id, 2)
        db.session.add(again)
        db.session.commit()
        assert again.id > deleted_id
        db.session.remove()
