"""Snapshots over content-addressed blobs: dedup, carry-over, deletion, limits, redaction, diff, zip, restore,
garbage collection. Runs on the real database (the rules are about rows and locks)."""

from __future__ import annotations

import hashlib
import io
import threading
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.errors import Conflict, InvalidRequest, NotFound, TooLarge
from app.extensions import db
from app.models import Blob, ProjectBlob, Snapshot, SnapshotTree
from app.services import access
from app.services import projects as project_service
from app.services import snapshots as svc
from tests.snapshot_helpers import (
    GENEROUS_LIMITS,
    attach_files,
    count,
    files_of,
    make_project,
    make_reply,
    make_snapshot,
    reply_with,
)


def origins_of(snapshot_id: int) -> dict[str, str]:
    return {e.path: e.origin for e in svc.list_snapshot_files(db.session, snapshot_id)}


def test_two_snapshots_sharing_199_of_200_files_store_201_blobs(app, make_user, db_session):
    user = make_user()
    project_id = make_project(app, user)
    files = {f"src/module_{i:03}.py": f"VALUE = {i}\n" for i in range(200)}
    make_snapshot(app, user, project_id, files)
    files["src/module_007.py"] = "VALUE = 'changed'\n"
    second = make_snapshot(app, user, project_id, files)
    assert count(Blob) == 201
    # Two versions of one folder (src/, the root's only entry): one manifest each, not 400 file rows.
    assert count(SnapshotTree) == 2 and count(ProjectBlob) == 201
    assert len(svc.list_snapshot_files(db.session, second)) == 200
    assert files_of(second)["src/module_007.py"] == b"VALUE = 'changed'\n"


def test_blob_ids_are_sha256_and_git_blob_ids_computed_locally(app, make_user, db_session):
    user = make_user()
    make_snapshot(app, user, make_project(app, user), {"hello.txt": "hello\n"})
    blob = db_session.scalars(select(Blob)).one()
    assert blob.sha256 == hashlib.sha256(b"hello\n").hexdigest()
    assert blob.git_sha == "ce013625030ba8dba906f756967f9e9ca394464a"  # `printf 'hello\n' | git hash-object --stdin`
    assert blob.size == 6 and blob.is_binary is False


def test_a_reply_builds_on_the_previous_snapshot_and_records_origins(app, make_user, db_session):
    user = make_user()
    project_id = make_project(app, user)
    make_snapshot(app, user, project_id, {"a.py": "a = 1\n", "b.py": "b = 1\n", "c.py": "c = 1\n"})
    reply = reply_with({"b.py": "b = 2\n", "d.py": "d = 1\n", "c.py": "c = 1\n"})
    message_id = make_reply(app, user, project_id, reply)
    result = svc.take_snapshot_from_message(
        db_session, user_id=user.id, project_id=project_id, message_id=message_id, limits=GENEROUS_LIMITS
    )
    snap = result.snapshot
    assert (result.added, result.changed, result.unchanged, result.carried) == (["d.py"], ["b.py"], ["c.py"], 1)
    assert files_of(snap.id) == {"a.py": b"a = 1\n", "b.py": b"b = 2\n", "c.py": b"c = 1\n", "d.py": b"d = 1\n"}
    assert origins_of(snap.id) == {"a.py": "carried", "b.py": "reply", "c.py": "reply", "d.py": "reply"}
    assert snap.number == 2 and snap.parent_id is not None and snap.source_message_id == message_id
    assert snap.notes["added"] == ["d.py"] and snap.notes["changed"] == ["b.py"]


def test_a_reply_deletes_a_file_only_when_it_says_so(app, make_user, db_session):
    user = make_user()
    project_id = make_project(app, user)
    make_snapshot(app, user, project_id, {"keep.py": "k\n", "old.py": "o\n"})
    message_id = make_reply(app, user, project_id, "```path=old.py delete\n```\n```path=new.py\nn\n```\n")
    result = svc.take_snapshot_from_message(
        db_session, user_id=user.id, project_id=project_id, message_id=message_id, limits=GENEROUS_LIMITS
    )
    assert result.deleted == ["old.py"]
    assert set(files_of(result.snapshot.id)) == {"keep.py", "new.py"}


def test_taking_the_same_reply_twice_returns_the_same_snapshot(app, make_user, db_session):
    user = make_user()
    project_id = make_project(app, user)
    message_id = make_reply(app, user, project_id, reply_with({"a.py": "1\n"}))
    first = svc.take_snapshot_from_message(db_session, user_id=user.id, project_id=project_id,
                                           message_id=message_id, limits=GENEROUS_LIMITS)
    again = svc.take_snapshot_from_message(db_session, user_id=user.id, project_id=project_id,
                                           message_id=message_id, limits=GENEROUS_LIMITS)
    assert again.created is False and again.snapshot.id == first.snapshot.id
    assert count(Snapshot) == 1


def test_replies_without_files_unsafe_paths_or_still_streaming_are_refused(app, make_user, db_session):
    user = make_user()
    project_id = make_project(app, user)
    no_files = make_reply(app, user, project_id, "Just an explanation, with ```python\nprint(1)\n```\n")
    unsafe = make_reply(app, user, project_id, "```path=../../etc/cron.d/x\nboom\n```\n```path=ok.py\nok\n```\n")
    streaming = make_reply(app, user, project_id, reply_with({"a.py": "1\n"}), status="streaming")
    kwargs = {"user_id": user.id, "project_id": project_id, "limits": GENEROUS_LIMITS}
    with pytest.raises(InvalidRequest, match="no files"):
        svc.take_snapshot_from_message(db_session, message_id=no_files, **kwargs)
    with pytest.raises(InvalidRequest) as refused:
        svc.take_snapshot_from_message(db_session, message_id=unsafe, **kwargs)
    assert "'../../etc/cron.d/x' goes above the project folder (..)" in refused.value.message
    with pytest.raises(Conflict):
        svc.take_snapshot_from_message(db_session, message_id=streaming, **kwargs)
    assert count(Snapshot) == 0 and count(Blob) == 0


def test_a_stopped_reply_keeps_the_previous_version_of_its_cut_file(app, make_user, db_session):
    user = make_user()
    project_id = make_project(app, user)
    make_snapshot(app, user, project_id, {"app.py": "print('v1')\n"})
    message_id = make_reply(app, user, project_id, "```path=other.py\nx\n```\n```python path=app.py\nprint('v", status="stopped")
    result = svc.take_snapshot_from_message(db_session, user_id=user.id, project_id=project_id,
                                            message_id=message_id, limits=GENEROUS_LIMITS)
    assert files_of(result.snapshot.id)["app.py"] == b"print('v1')\n"
    assert any("cut off" in warning for warning in result.warnings)


def test_other_users_projects_messages_and_snapshots_are_not_found(app, make_user, db_session):
    owner, intruder = make_user("owner"), make_user("intruder")
    project_id = make_project(app, owner)
    snapshot_id = make_snapshot(app, owner, project_id, {"a.py": "1\n"})
    message_id = make_reply(app, owner, project_id, reply_with({"b.py": "2\n"}))
    intruder_project = make_project(app, intruder)
    with pytest.raises(NotFound):
        access.owned_snapshot(db_session, user_id=intruder.id, snapshot_id=snapshot_id)
    with pytest.raises(NotFound):
        svc.take_snapshot_from_message(db_session, user_id=intruder.id, project_id=intruder_project,
                                       message_id=message_id, limits=GENEROUS_LIMITS)
    with pytest.raises(NotFound):
        svc.restore_snapshot(db_session, user_id=intruder.id, snapshot_id=snapshot_id, limits=GENEROUS_LIMITS)
    with pytest.raises(NotFound):
        svc.diff_snapshots(db_session, user_id=intruder.id, snapshot_id=snapshot_id)
    with pytest.raises(NotFound):
        project_service.delete_project(db_session, user_id=intruder.id, project_id=project_id)


@pytest.mark.parametrize(
    ("limits", "files", "message"),
    [
        (svc.SnapshotLimits(2, 100, 1000), {"a": "1", "b": "2", "c": "3"}, "would have 3 files; the limit is 2"),
        (svc.SnapshotLimits(10, 5, 1000), {"big.txt": "123456"}, "big.txt is 6 bytes; a file may be at most 5 bytes"),
        (svc.SnapshotLimits(10, 100, 10), {"a": "123456", "b": "123456"}, "would hold 12 bytes; the limit is 10 bytes"),
    ],
)
def test_limits_refuse_with_the_numbers(app, make_user, db_session, limits, files, message):
    user = make_user()
    project_id = make_project(app, user)
    incoming = [svc.IncomingFile(p, c.encode(), "upload") for p, c in files.items()]
    with pytest.raises(TooLarge) as error:
        svc.take_snapshot_from_files(db_session, user_id=user.id, project_id=project_id, files=incoming, limits=limits)
    assert message in error.value.message
    assert error.value.to_json()["error"]["code"] == "too_large"
    assert count(Snapshot) == 0 and count(Blob) == 0


def test_the_file_limit_counts_carried_files_too(app, make_user, db_session):
    user = make_user()
    project_id = make_project(app, user)
    make_snapshot(app, user, project_id, {"a": "1", "b": "2"})
    message_id = make_reply(app, user, project_id, reply_with({"c": "3"}))
    with pytest.raises(TooLarge, match="would have 3 files; the limit is 2"):
        svc.take_snapshot_from_message(db_session, user_id=user.id, project_id=project_id, message_id=message_id,
                                       limits=svc.SnapshotLimits(2, 100, 1000))


def test_uploads_refuse_unsafe_and_repeated_paths(app, make_user, db_session):
    user = make_user()
    project_id = make_project(app, user)
    take = lambda files: svc.take_snapshot_from_files(  # noqa: E731
        db_session, user_id=user.id, project_id=project_id, limits=GENEROUS_LIMITS,
        files=[svc.IncomingFile(p, b"x", "upload") for p in files])
    with pytest.raises(InvalidRequest) as error:
        take(["ok.txt", ".git/config", "/abs"])
    assert error.value.extra["paths"] == {
        ".git/config": "is inside .git, which holds Git's own data",
        "/abs": "is absolute; paths must be relative to the project folder",
    }
    with pytest.raises(InvalidRequest, match="repeated: a.txt"):
        take(["a.txt", "a.txt"])


SECRETS = {
    "config.py": "AWS_KEY = 'AKIAIOSFODNN7EXAMPLE'\naws_secret_access_key = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY'\n",
    "deploy.sh": "export GITHUB_TOKEN=ghp_" + "a1B2c3D4e5" * 4 + "\n",
    "pay.js": "const stripe = Stripe('sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc" + "');\n",
    "ai.py": "client = OpenAI(api_key='sk-proj-" + "Abc123_-" * 5 + "')\n",
    "id_rsa": "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
    ".env": "DATABASE_URL=postgres://u:p@h/db\nDEBUG=\n# comment\n",
}


@pytest.mark.parametrize("path", sorted(SECRETS))
def test_secrets_are_redacted_in_previews(path):
    redaction = svc.redact_secrets(path, SECRETS[path])
    assert redaction.count >= 1 and "[redacted " in redaction.text
    for fragment in ("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI", "ghp_a1B2", "sk_live_4eC", "sk-proj-Abc", "b3BlbnNz",
                     "postgres://"):
        assert fragment not in redaction.text


def test_redaction_leaves_ordinary_code_and_env_examples_alone():
    code = "skip = 'sk-short'\nDEBUG=true\npk_live_public_key_is_fine = 1\n"
    assert svc.redact_secrets("app.py", code).count == 0
    assert svc.redact_secrets(".env.example", "DATABASE_URL=postgres://user:pass@localhost/db\n").count == 0
    assert svc.redact_secrets(".env", "EMPTY=\n").count == 0


def test_snapshots_flag_paths_with_secrets_and_carry_the_flags_over(app, make_user, db_session):
    user = make_user()
    project_id = make_project(app, user)
    first = make_snapshot(app, user, project_id, {**SECRETS, "clean.py": "x = 1\n"})
    assert db_session.get(Snapshot, first).flagged_paths == sorted(SECRETS)
    message_id = make_reply(app, user, project_id, reply_with({"pay.js": "const stripe = Stripe(key);\n"}))
    result = svc.take_snapshot_from_message(db_session, user_id=user.id, project_id=project_id,
                                            message_id=message_id, limits=GENEROUS_LIMITS)
    assert result.snapshot.flagged_paths == sorted(set(SECRETS) - {"pay.js"})


def test_preview_text_truncates_large_files_with_the_numbers():
    content = "".join(f"line {i}\n" for i in range(10_000)).encode()
    preview = svc.preview_text("big.txt", content, max_lines=100)
    assert preview.truncated and preview.shown_lines == 100 and preview.total_lines == 10_000
    small = svc.preview_text("small.txt", b"a\nb\n")
    assert not small.truncated and small.total_lines == 2


def test_binary_files_are_recognised():
    assert svc.looks_binary(b"\x89PNG\r\n\x1a\n\x00\x00")
    assert svc.looks_binary(b"\xff\xfe not utf-8")
    assert not svc.looks_binary("héllo ✓\n".encode())


def test_diff_lists_added_removed_and_changed_with_a_unified_diff(app, make_user, db_session):
    user = make_user()
    project_id = make_project(app, user)
    old = make_snapshot(app, user, project_id, {"a.py": "one\ntwo\nthree\n", "gone.txt": "bye\n", "same.txt": "s\n",
                                                "img.png": b"\x89PNG\x00\x01"})
    new = make_snapshot(app, user, project_id, {"a.py": "one\n2\nthree\n", "new.txt": "hi\n", "same.txt": "s\n",
                                                "img.png": b"\x89PNG\x00\x02"})
    result = svc.diff_snapshots(db_session, user_id=user.id, snapshot_id=new)
    assert result.base.id == old
    assert [e.path for e in result.added] == ["new.txt"]
    assert [e.path for e in result.removed] == ["gone.txt"]
    changed = {c.path: c for c in result.changed}
    assert changed["a.py"].unified_diff == "--- a/a.py\n+++ b/a.py\n@@ -1,3 +1,3 @@\n one\n-two\n+2\n three\n"
    assert (changed["a.py"].additions, changed["a.py"].deletions) == (1, 1)
    assert changed["img.png"].is_binary and "Binary files" in changed["img.png"].unified_diff
    assert result.unchanged_count == 1
    reverse = svc.diff_snapshots(db_session, user_id=user.id, snapshot_id=old, against_id=new)
    assert [e.path for e in reverse.added] == ["gone.txt"] and [e.path for e in reverse.removed] == ["new.txt"]


def test_diff_matches_difflib_and_redacts_secrets(app, make_user, db_session):
    import difflib

    old_text = "".join(f"line {i}\n" for i in range(50))
    new_text = old_text.replace("line 10\n", "line ten\n").replace("line 40\n", "") + "tail\n"
    hunks = svc.diff_lines(old_text.splitlines(), new_text.splitlines())
    ours = svc.FileDiff("f", "changed", 0, 0, hunks=hunks).unified_diff
    theirs = "\n".join(difflib.unified_diff(old_text.splitlines(), new_text.splitlines(), "a/f", "b/f", lineterm="")) + "\n"
    assert ours == theirs
    secret = svc.diff_file("k.py", b"key = 1\n", b"key = 'sk_live_4eC39HqLyjWDarjtT1zdp7dc'\n")
    assert "sk_live" not in secret.unified_diff and secret.redacted


def test_diff_refuses_a_snapshot_of_another_project(app, make_user, db_session):
    user = make_user()
    a = make_snapshot(app, user, make_project(app, user, "A"), {"x": "1"})
    b = make_snapshot(app, user, make_project(app, user, "B"), {"x": "2"})
    with pytest.raises(NotFound):
        svc.diff_snapshots(db_session, user_id=user.id, snapshot_id=a, against_id=b)


def zip_bytes(snapshot_id: int, folder: str = "demo-snapshot-1") -> bytes:
    snapshot = db.session.get(Snapshot, snapshot_id)
    return b"".join(svc.stream_snapshot_zip(db.session, snapshot, folder))


def test_the_zip_is_deterministic_and_holds_every_file(app, make_user, db_session):
    user = make_user()
    project_id = make_project(app, user)
    files = {"b/z.txt": "z\n", "a.txt": "a\n", "bin/blob.dat": b"\x00\x01\x02", "ünï.md": "ü\n"}
    first = make_snapshot(app, user, project_id, files)
    again = make_snapshot(app, user, project_id, dict(reversed(list(files.items()))))
    one, two = zip_bytes(first), zip_bytes(again)
    assert one == two  # same files, same bytes, whatever the order they were given in
    assert hashlib.sha256(one).hexdigest() == hashlib.sha256(zip_bytes(first)).hexdigest()
    archive = zipfile.ZipFile(io.BytesIO(one))
    assert archive.namelist() == ["demo-snapshot-1/a.txt", "demo-snapshot-1/b/z.txt", "demo-snapshot-1/bin/blob.dat",
                                  "demo-snapshot-1/ünï.md"]
    assert archive.read("demo-snapshot-1/bin/blob.dat") == b"\x00\x01\x02"
    assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    assert archive.testzip() is None


def test_zip_entries_cannot_escape_the_extraction_folder(app, make_user, db_session, tmp_path: Path):
    user = make_user()
    project_id = make_project(app, user)
    snapshot_id = make_snapshot(app, user, project_id, {"ok/file.txt": "fine\n"})
    # A row that bypassed the service (a bug, a manual edit): the zip writer must still refuse it.
    blob_id = db_session.scalar(select(Blob.id))
    evil = {path: blob_id for path in ("../escape.txt", "/abs.txt", "a/../../up.txt", ".git/config")}
    snapshot = db_session.get(Snapshot, snapshot_id)
    attach_files(db_session, snapshot, {"ok/file.txt": blob_id, **evil}, origin="upload")
    db_session.commit()
    assert {e.path for e in svc.list_snapshot_files(db_session, snapshot_id)} == {"ok/file.txt", *evil}
    data = zip_bytes(snapshot_id)
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert archive.namelist() == ["demo-snapshot-1/ok/file.txt"]
    target = tmp_path / "extract"
    archive.extractall(target)
    extracted = [p.resolve() for p in target.rglob("*") if p.is_file()]
    assert extracted and all(p.is_relative_to(target.resolve()) for p in extracted)


def test_restore_makes_a_new_latest_snapshot_without_copying_content(app, make_user, db_session):
    user = make_user()
    project_id = make_project(app, user)
    first = make_snapshot(app, user, project_id, {"a.py": "v1\n", "b.py": "b\n"})
    make_snapshot(app, user, project_id, {"a.py": "v2\n"})
    blobs_before = count(Blob)
    result = svc.restore_snapshot(db_session, user_id=user.id, snapshot_id=first, limits=GENEROUS_LIMITS)
    assert result.snapshot.number == 3 and result.snapshot.notes["restored_from"] == first
    assert files_of(result.snapshot.id) == {"a.py": b"v1\n", "b.py": b"b\n"}
    assert set(origins_of(result.snapshot.id).values()) == {"restored"}
    assert svc.latest_snapshot(db_session, project_id).id == result.snapshot.id
    assert count(Blob) == blobs_before


def test_deleting_a_project_collects_only_the_blobs_no_snapshot_uses(app, make_user, db_session):
    user = make_user()
    doomed = make_project(app, user, "Doomed")
    kept = make_project(app, user, "Kept")
    make_snapshot(app, user, doomed, {"shared.txt": "shared\n", "only-doomed.txt": "mine\n"})
    make_reply(app, user, doomed, reply_with({"x.py": "1\n"}))
    make_snapshot(app, user, kept, {"shared.txt": "shared\n", "only-kept.txt": "yours\n"})
    collected = project_service.delete_project(db_session, user_id=user.id, project_id=doomed)
    assert collected == 1
    contents = set(db_session.scalars(select(Blob.content)))
    assert contents == {b"shared\n", b"yours\n"}
    assert db_session.scalar(select(func.count()).select_from(Snapshot).where(Snapshot.project_id == doomed)) == 0


def test_collect_garbage_blobs_without_candidates_sweeps_everything_unused(app, make_user, db_session):
    user = make_user()
    make_snapshot(app, user, make_project(app, user), {"used.txt": "used\n"})
    db_session.add(Blob(sha256="0" * 64, git_sha="0" * 40, size=1, is_binary=False, content=b"x"))
    db_session.commit()
    assert svc.collect_garbage_blobs(db_session) == 1
    assert count(Blob) == 1


def run_together(app, calls) -> list[BaseException]:
    """Run each call in its own thread and connection, released at the same moment; return their errors."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(calls))

    def run(call) -> None:
        with app.app_context():
            try:
                barrier.wait()
                call()
            except BaseException as error:  # noqa: BLE001 - reported to the test
                errors.append(error)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_concurrent_snapshots_of_the_same_new_content_share_one_blob(app, make_user):
    """Two projects store the same new files at the same moment: the unique SHA-256 decides, nobody fails."""
    user = make_user()
    projects = [make_project(app, user, f"P{i}") for i in range(2)]
    files = {f"f{i}.txt": f"same content {i}\n" for i in range(50)}
    errors = run_together(app, [lambda p=p: make_snapshot(app, user, p, files) for p in projects])
    assert errors == []
    with app.app_context():
        assert count(Blob) == 50
        assert count(ProjectBlob) == 100


def test_concurrent_snapshots_of_one_project_get_distinct_numbers(app, make_user):
    """The project row lock serialises them: numbers 1, 2, 3 and no unique-index failure."""
    user = make_user()
    project_id = make_project(app, user)
    errors = run_together(app, [lambda i=i: make_snapshot(app, user, project_id, {"a.txt": f"{i}\n"}) for i in range(3)])
    assert errors == []
    with app.app_context():
        numbers = sorted(db.session.scalars(select(Snapshot.number).where(Snapshot.project_id == project_id)))
        assert numbers == [1, 2, 3]
