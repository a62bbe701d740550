"""Snapshot storage: what 100 successive snapshots of a 300-file project cost, beside the naive way.

Each snapshot after the first comes from an assistant reply that rewrites 3 files (the realistic path:
parse the reply, carry the other 297 files over, store the 3 new blobs). Measured in the same run:

- bytes stored: Sorya's rows (blob contents once per distinct content + the directory manifests each
  version wrote + project blob links + snapshot rows), beside the naive baseline of one JSON copy of every
  file per snapshot. Both are counted logically (payload bytes) and as InnoDB's on-disk size (data + index
  bytes from `information_schema` after `OPTIMIZE TABLE` and `ANALYZE TABLE`), the naive copies being
  written to a table of their own in the same database.
- rows written: every INSERTed row (an event listener counts executemany parameter sets), by table; the
  listing rows (snapshot + new manifests: what says which files a version holds) apart from the content
  rows (a blob and the project's link to it, once per new content); and after the first version.
- time to take one snapshot: the 1st (300 new files) and the 100th; also the median of the 2nd-6th
  against the 96th-100th, which isolates growth with history (the 1st writes 300 blobs, the rest 3).

Targets (issue #21): on-disk bytes ratio <= 0.05; rows written vs one row per version <= 5 (the listing
rows); time ratio (100th / 1st) <= 1.5.

Run: `.venv/bin/python bench/snapshot_storage.py [--quick]` with MariaDB up (`BENCH_DATABASE_URL`, default
`mysql+pymysql://sorya:sorya@127.0.0.1:3306/sorya_bench_snapshots?charset=utf8mb4`, dropped and rebuilt).
"""

from __future__ import annotations

import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pymysql  # noqa: E402
from sqlalchemy import bindparam, event, func, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from bench.common import Report, parse_args  # noqa: E402

DEFAULT_URL = "mysql+pymysql://sorya:sorya@127.0.0.1:3306/sorya_bench_snapshots?charset=utf8mb4"
FILES = 300
CHANGED_PER_SNAPSHOT = 3
ROW_ID_BYTES = 8


def recreate_database(url: str) -> None:
    parsed = make_url(url)
    connection = pymysql.connect(host=parsed.host or "127.0.0.1", port=parsed.port or 3306,
                                 user=parsed.username, password=parsed.password or "", charset="utf8mb4")
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{parsed.database}`")
            cursor.execute(f"CREATE DATABASE `{parsed.database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    finally:
        connection.close()


def make_file(rng: random.Random, index: int, version: int) -> str:
    """A plausible source file of 0.5-3 KB: deterministic for (index, version)."""
    words = ["user", "order", "item", "total", "price", "count", "name", "value", "result", "config"]
    lines = [f'"""Module {index}, version {version}."""', "", "from __future__ import annotations", ""]
    for n in range(rng.randint(8, 40)):
        a, b = rng.choice(words), rng.choice(words)
        lines.append(f"def {a}_{b}_{n}({a}: int, {b}: int) -> int:")
        lines.append(f"    return {a} * {rng.randint(2, 99)} + {b}  # v{version}")
        lines.append("")
    return "\n".join(lines) + "\n"


def main() -> None:
    args = parse_args("Snapshot storage against a JSON copy per snapshot.")
    snapshots = 20 if args.quick else 100
    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)
    recreate_database(url)

    from flask_migrate import upgrade

    from app import create_app
    from app.extensions import db
    from app.models import ChatMessage, Project, User
    from app.services import snapshots as svc
    from config import Config

    instance = tempfile.mkdtemp(prefix="sorya-bench-")
    config = Config.from_env(env={}, DATABASE_URL=url, INSTANCE_DIR=instance, TESTING=True,
                             SECRET_KEY="bench-" + "x" * 40)
    app = create_app(config)
    rng = random.Random(7)
    with app.app_context():
        upgrade()
        rows_written = {"n": 0}
        rows_by_table: dict[str, int] = {}

        def count_rows(conn, cursor, statement, parameters, context, executemany):
            if statement.lstrip().upper().startswith("INSERT"):
                n = len(parameters) if executemany else 1
                rows_written["n"] += n
                table = statement.split()[2].strip("`")
                rows_by_table[table] = rows_by_table.get(table, 0) + n

        limits = svc.SnapshotLimits.from_settings(config)
        user = User(login="bench", name="Bench")
        db.session.add(user)
        db.session.commit()
        project = Project(user_id=user.id, name="Bench project")
        db.session.add(project)
        db.session.commit()

        paths = [f"src/pkg{i % 12}/module_{i:03}.py" for i in range(FILES)]
        current = {path: make_file(rng, i, 0) for i, path in enumerate(paths)}
        naive_bytes = 0
        naive_rows = 0
        db.session.execute(text("CREATE TABLE naive_snapshots (id BIGINT PRIMARY KEY AUTO_INCREMENT, "
                                "project_id BIGINT, files LONGTEXT) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"))
        db.session.commit()
        timings: list[float] = []

        event.listen(db.engine, "before_cursor_execute", count_rows)
        for number in range(1, snapshots + 1):
            if number == 1:
                incoming = [svc.IncomingFile(p, c.encode(), svc.ORIGIN_UPLOAD) for p, c in current.items()]
                started = time.perf_counter()
                svc.take_snapshot_from_files(db.session, user_id=user.id, project_id=project.id,
                                             files=incoming, limits=limits)
                timings.append(time.perf_counter() - started)
                first_rows = rows_written["n"]
                first_listing = rows_by_table.get("snapshots", 0) + rows_by_table.get("snapshot_trees", 0)
            else:
                changed = rng.sample(paths, CHANGED_PER_SNAPSHOT)
                for path in changed:
                    current[path] = make_file(rng, paths.index(path), number)
                reply = "Updated:\n\n" + "".join(f"```python path={p}\n{current[p]}```\n" for p in changed)
                event.remove(db.engine, "before_cursor_execute", count_rows)  # the chat's rows, not ours
                message = ChatMessage(user_id=user.id, project_id=project.id, role="assistant", content=reply,
                                      status="complete")
                db.session.add(message)
                db.session.commit()
                event.listen(db.engine, "before_cursor_execute", count_rows)
                started = time.perf_counter()
                svc.take_snapshot_from_message(db.session, user_id=user.id, project_id=project.id,
                                               message_id=message.id, limits=limits)
                timings.append(time.perf_counter() - started)
            event.remove(db.engine, "before_cursor_execute", count_rows)
            document = json.dumps(current)
            naive_bytes += len(document.encode())
            naive_rows += 1
            db.session.execute(text("INSERT INTO naive_snapshots (project_id, files) VALUES (:p, :f)"),
                               {"p": project.id, "f": document})
            db.session.commit()
            event.listen(db.engine, "before_cursor_execute", count_rows)
        event.remove(db.engine, "before_cursor_execute", count_rows)

        from app.models import Blob, ProjectBlob, Snapshot, SnapshotTree

        blob_bytes = int(db.session.scalar(select(func.sum(Blob.size))))
        blob_count = db.session.scalar(select(func.count()).select_from(Blob))
        tree_count = db.session.scalar(select(func.count()).select_from(SnapshotTree))
        manifest_bytes = int(db.session.scalar(select(func.sum(func.length(SnapshotTree.manifest)))) or 0)
        link_count = db.session.scalar(select(func.count()).select_from(ProjectBlob))
        snapshot_rows = list(db.session.scalars(select(Snapshot)))
        # Logical payload: blob content + sha256/git_sha/size/flag; each tree: ids + hash + manifest; each
        # project_blobs row: two ids; each snapshot row: ids, counters, root hash, summary, notes, origins.
        ours_bytes = (
            blob_bytes + blob_count * (ROW_ID_BYTES + 64 + 40 + 8 + 1)
            + tree_count * (2 * ROW_ID_BYTES + 64) + manifest_bytes + link_count * 2 * ROW_ID_BYTES
            + sum(4 * ROW_ID_BYTES + 64 + len(s.summary) + len(json.dumps(s.notes))
                  + len(json.dumps(s.flagged_paths)) + len(json.dumps(s.origins)) for s in snapshot_rows)
        )
        tables = ("blobs", "snapshot_trees", "project_blobs", "snapshots", "naive_snapshots")
        # OPTIMIZE rebuilds each table (InnoDB: recreate + analyze), so the sizes are what the rows need,
        # not what the insert order left; ANALYZE then refreshes information_schema's figures.
        db.session.execute(text(f"OPTIMIZE TABLE {', '.join(tables)}")).all()
        db.session.execute(text(f"ANALYZE TABLE {', '.join(tables)}")).all()
        db.session.commit()
        disk = dict(db.session.execute(text(
            "SELECT table_name, data_length + index_length FROM information_schema.tables "
            "WHERE table_schema = DATABASE() AND table_name IN :names"
        ).bindparams(bindparam("names", expanding=True)), {"names": list(tables)}).all())
        disk = {k: int(v) for k, v in disk.items()}
        ours_disk = sum(v for k, v in disk.items() if k != "naive_snapshots")

    report = Report("snapshot_storage")
    print(f"{snapshots} snapshots of a {FILES}-file project, {CHANGED_PER_SNAPSHOT} files changed each "
          f"({blob_count} blobs, {tree_count} directory manifests, {link_count} project blob links)")
    print(f"rows written by table: {rows_by_table}")
    print(f"on disk after OPTIMIZE (InnoDB data + index bytes): {disk}\n")
    # What says which files a version holds (the snapshot row and its new manifests), apart from the rows
    # that store each new content once (the blob and the project's link to it), which any design writes.
    listing_rows = rows_by_table.get("snapshots", 0) + rows_by_table.get("snapshot_trees", 0)
    report.compare("bytes_stored", ours_bytes, naive_bytes, "B", ratio_name="bytes_ratio")
    report.compare("bytes_on_disk_innodb", ours_disk, disk["naive_snapshots"], "B", ratio_name="disk_ratio")
    report.compare("rows_written", rows_written["n"], naive_rows, "rows", ratio_name="rows_ratio")
    report.compare("rows_written_listing", listing_rows, naive_rows, "rows", ratio_name="listing_rows_ratio")
    report.compare("rows_written_after_first", rows_written["n"] - first_rows, naive_rows - 1, "rows",
                   ratio_name="rows_ratio_after_first")
    report.compare("rows_written_listing_after_first", listing_rows - first_listing, naive_rows - 1, "rows",
                   ratio_name="listing_rows_ratio_after_first")
    report.compare("snapshot_time_last_s", timings[-1], timings[0], "s", ratio_name="time_ratio")
    report.compare("snapshot_time_last5_median_s", statistics.median(timings[-5:]),
                   statistics.median(timings[1:6]), "s", ratio_name="time_growth_ratio")
    report.figures["snapshots"] = snapshots
    report.figures["blobs"] = blob_count
    report.figures["snapshot_trees"] = tree_count
    report.figures["rows_by_table"] = rows_by_table
    report.figures["disk_bytes_by_table"] = disk
    report.print()


if __name__ == "__main__":
    main()
