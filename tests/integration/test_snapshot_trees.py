"""Versions as trees of directory manifests (`app/services/snapshots/trees.py`), through the store: a
version writes only the manifests on the paths it changed, shares the rest, reads back exactly, and a
repeat read of its file list costs two queries whatever its size. MariaDB and SQLite alike."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import event, select

from app.errors import InvalidRequest
from app.extensions import db
from app.models import Blob, ProjectBlob, Snapshot, SnapshotTree
from app.services import snapshots as svc
from app.services.snapshots.trees import forget_cached_manifests
from tests.snapshot_helpers import GENEROUS_LIMITS, count, files_of, make_project, make_snapshot
from tests.sql_helpers import statements_on


@pytest.fixture(params=["mariadb", "sqlite"])
def app(request, app, sqlite_app):
    return app if request.param == "mariadb" else sqlite_app


def change(app, user, project_id: int, files: dict[str, str], deletions: list[str] | None = None) -> int:
    """A version on top of the latest: `files` written, `deletions` removed, everything else carried."""
    with app.app_context():
        incoming = [svc.IncomingFile(path, text.encode(), svc.ORIGIN_REPLY) for path, text in files.items()]
        return svc.take_snapshot_from_files(
            db.session, user_id=user.id, project_id=project_id, files=incoming, deletions=deletions,
            carry_over=True, limits=GENEROUS_LIMITS).snapshot.id


class InsertedRows:
    """Rows INSERTed per table while the block runs (executemany counts each parameter set)."""

    def __init__(self) -> None:
        self.by_table: dict[str, int] = {}

    def __enter__(self) -> InsertedRows:
        event.listen(db.engine, "before_cursor_execute", self.record)
        return self

    def __exit__(self, *exc) -> None:
        event.remove(db.engine, "before_cursor_execute", self.record)

    def record(self, conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.lstrip().upper().startswith("INSERT"):
            table = statement.split()[2].strip('`"')
            self.by_table[table] = self.by_table.get(table, 0) + (len(parameters) if executemany else 1)


def project_of_300(app, user) -> tuple[int, dict[str, str]]:
    files = {f"src/pkg{i % 12}/module_{i:03}.py": f"VALUE = {i}\n" for i in range(300)}
    project_id = make_project(app, user)
    make_snapshot(app, user, project_id, files)
    return project_id, files


def test_a_version_changing_3_files_writes_only_the_manifests_on_their_paths(app, make_user, db_session):
    user = make_user()
    project_id, files = project_of_300(app, user)
    changed = {"src/pkg1/module_001.py": "A\n", "src/pkg1/module_013.py": "B\n", "src/pkg5/module_005.py": "C\n"}
    with InsertedRows() as inserted:
        snapshot_id = change(app, user, project_id, changed)
    # The root (which holds src/'s 12 folders: src/ is its only entry), pkg1/ and pkg5/; 3 new contents
    # and the project's hold on them.
    assert inserted.by_table == {"blobs": 3, "project_blobs": 3, "snapshot_trees": 3, "snapshots": 1}
    expected = {path: text.encode() for path, text in {**files, **changed}.items()}
    assert files_of(snapshot_id) == expected
    origins = {e.path: e.origin for e in svc.list_snapshot_files(db_session, snapshot_id)}
    assert {p for p, o in origins.items() if o == "reply"} == set(changed)
    assert {o for p, o in origins.items() if p not in changed} == {"carried"}


def test_a_version_equal_to_an_earlier_one_shares_its_whole_tree(app, make_user, db_session):
    user = make_user()
    project_id = make_project(app, user)
    first = make_snapshot(app, user, project_id, {"a/x.txt": "1\n", "b/y.txt": "2\n"})
    change(app, user, project_id, {"a/x.txt": "changed\n"})
    trees_before = count(SnapshotTree)
    with InsertedRows() as inserted:
        back = change(app, user, project_id, {"a/x.txt": "1\n"})
    assert "snapshot_trees" not in inserted.by_table and count(SnapshotTree) == trees_before
    assert db_session.get(Snapshot, back).root_tree == db_session.get(Snapshot, first).root_tree
    restored = svc.restore_snapshot(db_session, user_id=user.id, snapshot_id=first, limits=GENEROUS_LIMITS)
    assert restored.snapshot.root_tree == db_session.get(Snapshot, first).root_tree
    assert count(SnapshotTree) == trees_before


def test_deep_paths_round_trip_and_write_a_manifest_only_where_a_folder_branches(app, make_user, db_session):
    user = make_user()
    project_id = make_project(app, user)
    deep = "/".join(f"d{i}" for i in range(40)) + "/leaf.txt"
    make_snapshot(app, user, project_id, {deep: "v1\n", "top.txt": "t\n", "d0/d1/side.txt": "s\n"})
    with InsertedRows() as inserted:
        second = change(app, user, project_id, {deep: "v2\n"})
    # The root and d0/d1/ (where the path branches); the 38 single-entry folders below are one name.
    assert inserted.by_table["snapshot_trees"] == 2
    entry, content = svc.read_snapshot_file(db_session, second, deep)
    assert content == b"v2\n" and entry.path == deep
    assert files_of(second) == {deep: b"v2\n", "top.txt": b"t\n", "d0/d1/side.txt": b"s\n"}


def test_deleting_the_last_file_of_a_folder_removes_the_folder_and_keeps_earlier_versions(
    app, make_user, db_session
):
    user = make_user()
    project_id = make_project(app, user)
    first = make_snapshot(app, user, project_id, {"keep/a.txt": "a\n", "gone/b.txt": "b\n", "gone/sub/c.txt": "c\n"})
    second = change(app, user, project_id, {}, deletions=["gone/b.txt", "gone/sub/c.txt"])
    assert files_of(second) == {"keep/a.txt": b"a\n"}
    root = db_session.get(Snapshot, second).root_tree
    manifest = json.loads(db_session.scalar(select(SnapshotTree.manifest).where(SnapshotTree.hash == root)))
    assert list(manifest) == ["keep/a.txt"]  # no empty folder left behind
    assert set(files_of(first)) == {"keep/a.txt", "gone/b.txt", "gone/sub/c.txt"}
    with pytest.raises(InvalidRequest):
        change(app, user, project_id, {}, deletions=["keep/a.txt"])  # a version needs a file


def test_a_rename_moves_the_entry_without_storing_the_content_again(app, make_user, db_session):
    user = make_user()
    project_id = make_project(app, user)
    first = make_snapshot(app, user, project_id, {"old/name.py": "same\n", "other.py": "o\n"})
    blobs = count(Blob)
    second = change(app, user, project_id, {"new/place.py": "same\n"}, deletions=["old/name.py"])
    assert count(Blob) == blobs
    assert files_of(second) == {"new/place.py": b"same\n", "other.py": b"o\n"}
    assert files_of(first) == {"old/name.py": b"same\n", "other.py": b"o\n"}


def test_a_repeat_read_of_a_300_file_version_costs_two_queries(app, make_user, db_session):
    user = make_user()
    project_id, _ = project_of_300(app, user)
    snapshot_id = svc.latest_snapshot(db_session, project_id).id
    forget_cached_manifests()
    db_session.expunge_all()
    with statements_on(db.engine) as cold:
        assert len(svc.list_snapshot_files(db_session, snapshot_id)) == 300
    # The snapshot row, one query per depth (the root, then its 12 packages at once), the blobs' sizes.
    assert len(cold) == 4
    db_session.expunge_all()
    with statements_on(db.engine) as warm:
        assert len(svc.list_snapshot_files(db_session, snapshot_id)) == 300
    assert len(warm) == 2  # the snapshot row and the blobs' sizes: no manifest is read again


def test_project_blobs_hold_what_garbage_collection_and_the_quota_see(app, make_user, db_session):
    user = make_user()
    project_id = make_project(app, user)
    make_snapshot(app, user, project_id, {"a.txt": "aaaa\n", "b.txt": "bb\n"})
    change(app, user, project_id, {"a.txt": "a2\n"})
    assert count(ProjectBlob) == 3
    assert svc.storage_used_bytes(db_session, user.id) == len("aaaa\n") + len("bb\n") + len("a2\n")
    assert svc.unreferenced_blob_ids(db_session) == []


def test_a_repeat_view_of_a_300_file_version_page_reads_no_manifest(app, client, make_user):
    from tests.conftest import sign_in

    user = make_user("alice")
    sign_in(client, user)
    project_id, _ = project_of_300(app, user)
    with app.app_context():
        snapshot_id = svc.latest_snapshot(db.session, project_id).id
        engine = db.engine
    url = f"/projects/{project_id}/snapshots/{snapshot_id}?path=src/pkg0/module_000.py"
    assert client.get(url).status_code == 200
    with statements_on(engine) as statements:
        assert client.get(url).status_code == 200
    # Sign-in, project, version, the file list's one blob query, the latest version, the workspaces.
    assert not [s for s in statements if "snapshot_trees" in s]
    assert len([s for s in statements if "FROM blobs" in s]) == 1 and len(statements) <= 6
