"""Blob garbage collection as the periodic job runs it."""

import hashlib

from sqlalchemy import select

from app.extensions import db
from app.models import Blob
from app.runtime import jobs
from tests.snapshot_helpers import make_project, make_snapshot


def test_periodic_collection_removes_only_unreferenced_blobs(app, make_user):
    user = make_user()
    project_id = make_project(app, user)
    make_snapshot(app, user, project_id, {"kept.txt": "still used"})
    orphan = b"left behind by a delete that died midway"
    with app.app_context():
        db.session.add(Blob(sha256=hashlib.sha256(orphan).hexdigest(), git_sha="0" * 40, size=len(orphan),
                            content=orphan))
        db.session.commit()

    assert "collect_garbage_blobs" in jobs.PERIODIC_JOBS
    assert jobs.run_periodic_once(app, ["collect_garbage_blobs"]) == {"collect_garbage_blobs": 1}

    with app.app_context():
        contents = set(db.session.scalars(select(Blob.content)))
    assert contents == {b"still used"}
    assert jobs.run_periodic_once(app, ["collect_garbage_blobs"]) == {"collect_garbage_blobs": 0}
