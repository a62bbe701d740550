"""0006_vers on data: each version's file rows become its tree (shared folders written once), its origins
and its project's blobs are kept, and the way down gives back the same file rows (MariaDB and SQLite)."""

import pytest
from flask_migrate import downgrade, upgrade
from sqlalchemy import text

from app import create_app
from app.extensions import db
from tests.conftest import build_config, recreate_mysql_database

NOW = "2026-12-01 10:00:00"
# Project 5 has two versions: #2 changes lib/a.py and deletes docs/old.md; project 6 shares a blob with it
# and holds a file `a` beside a folder `a/`, which a flat file list allowed.
FILES = {
    10: [("lib/a.py", 1, "upload"), ("lib/b.py", 2, "upload"), ("docs/old.md", 3, "upload"),
         ("deep/x/y/z.txt", 4, "upload")],
    11: [("lib/a.py", 5, "reply"), ("lib/b.py", 2, "carried"), ("deep/x/y/z.txt", 4, "carried")],
    12: [("a", 2, "upload"), ("a/b", 6, "upload")],
}
SEED = [
    "INSERT INTO users (id, login, name, plan, created_at, updated_at) VALUES (1, 'ada', '', 'free', :now, :now)",
    "INSERT INTO projects (id, user_id, name, description, status, created_at, updated_at) "
    "VALUES (5, 1, 'site', '', 'active', :now, :now)",
    "INSERT INTO projects (id, user_id, name, description, status, created_at, updated_at) "
    "VALUES (6, 1, 'api', '', 'active', :now, :now)",
    *[f"INSERT INTO blobs (id, sha256, git_sha, size, is_binary, content, created_at) "
      f"VALUES ({n}, '{n:064d}', '{n:040d}', 2, 0, 'b{n}', :now)" for n in range(1, 7)],
    *[f"INSERT INTO snapshots (id, project_id, number, summary, file_count, total_bytes, flagged_paths, notes, "
      f"created_at) VALUES ({sid}, {pid}, {num}, '', {len(FILES[sid])}, 0, '[]', '{{}}', :now)"
      for sid, pid, num in ((10, 5, 1), (11, 5, 2), (12, 6, 1))],
    *[f"INSERT INTO snapshot_files (snapshot_id, path, blob_id, origin) VALUES ({sid}, '{path}', {blob}, '{origin}')"
      for sid, rows in FILES.items() for path, blob, origin in rows],
]


def file_rows(connection) -> dict[int, set[tuple]]:
    rows = connection.execute(text("SELECT snapshot_id, path, blob_id, origin FROM snapshot_files")).all()
    found: dict[int, set[tuple]] = {}
    for sid, path, blob, origin in rows:
        found.setdefault(sid, set()).add((path, blob, origin))
    return found


def _run(application):
    from app.services.snapshots import list_snapshot_files
    from app.services.snapshots.trees import forget_cached_manifests

    with application.app_context():
        upgrade(revision="0005_teams")
        with db.engine.begin() as connection:
            for statement in SEED:
                connection.execute(text(statement), {"now": NOW})
        upgrade(revision="0006_vers")
        forget_cached_manifests()  # read the migrated trees from the database, not from this process
        for sid, rows in FILES.items():
            listed = {(e.path, e.blob_id, e.origin) for e in list_snapshot_files(db.session, sid)}
            assert listed == set(rows), sid
        db.session.remove()
        with db.engine.begin() as connection:
            links = connection.execute(text("SELECT project_id, blob_id FROM project_blobs")).all()
            assert sorted(tuple(row) for row in links) == [(5, 1), (5, 2), (5, 3), (5, 4), (5, 5), (6, 2), (6, 6)]
            # Project 5: the root and lib/ for #1 (docs/ and deep/x/y/ hold one entry each: they are
            # names in the root), a new root and lib/ for #2; project 6: its root alone.
            trees = dict(connection.execute(text(
                "SELECT project_id, COUNT(*) FROM snapshot_trees GROUP BY project_id")).all())
            assert trees == {5: 4, 6: 1}
            assert "snapshot_files" not in set(db.inspect(connection).get_table_names())
        downgrade(revision="0005_teams")
        with db.engine.begin() as connection:
            assert file_rows(connection) == {sid: set(rows) for sid, rows in FILES.items()}
            assert "snapshot_trees" not in set(db.inspect(connection).get_table_names())
        upgrade()
        forget_cached_manifests()
        assert {e.path for e in list_snapshot_files(db.session, 12)} == {"a", "a/b"}
        db.session.remove()
        db.engine.dispose()


def test_backfill_and_way_down_on_mariadb(database_url, tmp_path):
    if not database_url.startswith("mysql"):
        pytest.skip("TEST_DATABASE_URL is not MariaDB")
    url = database_url.replace("?", "_versmig?", 1) if "?" in database_url else database_url + "_versmig"
    recreate_mysql_database(url)
    _run(create_app(build_config(str(tmp_path), DATABASE_URL=url)))


def test_backfill_and_way_down_on_sqlite(tmp_path):
    _run(create_app(build_config(str(tmp_path), DATABASE_URL=f"sqlite:///{tmp_path / 'v.db'}")))
