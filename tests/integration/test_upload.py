"""Uploading files or a .zip as a project's next version: the path rules, zip-slip, symlinks, zip bombs,
the limits and the quota; the form without JavaScript, htmx and JSON."""

from __future__ import annotations

import io
import zipfile

import pytest
from sqlalchemy import select

from app.errors import DomainError
from app.models import Snapshot
from app.services.snapshots import SnapshotLimits, list_snapshot_files
from app.services.snapshots.upload import Upload, take_snapshot_from_upload
from tests.conftest import csrf_token_for, sign_in
from tests.snapshot_helpers import make_project, make_snapshot

LIMITS = SnapshotLimits(max_files=5, max_file_bytes=1000, max_total_bytes=3000)


def zip_of(members: dict[str, bytes], *, symlinks: tuple[str, ...] = ()) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            if name in symlinks:
                info.external_attr = (0o120777 << 16)
            archive.writestr(info, content)
    return buffer.getvalue()


def lie_about_size(data: bytes, name: str, declared: int) -> bytes:
    """The archive with `name`'s declared (uncompressed) size rewritten in both headers: a zip bomb."""
    raw = bytearray(data)
    encoded = name.encode()
    for signature, size_offset, name_offset in ((b"PK\x03\x04", 22, 30), (b"PK\x01\x02", 24, 46)):
        start = 0
        while (start := raw.find(signature, start)) != -1:
            if raw[start + name_offset:start + name_offset + len(encoded)] == encoded:
                raw[start + size_offset:start + size_offset + 4] = declared.to_bytes(4, "little")
            start += 4
    return bytes(raw)


def upload(db_session, user, project_id, *files: tuple[str, bytes], limits=LIMITS, folder=""):
    return take_snapshot_from_upload(db_session, user_id=user.id, project_id=project_id, limits=limits,
                                     uploads=[Upload(name, io.BytesIO(data)) for name, data in files], folder=folder)


@pytest.fixture
def owner(make_user):
    return make_user("owner")


def test_files_and_a_zip_go_over_the_latest_version(app, owner, db_session):
    project_id = make_project(app, owner)
    make_snapshot(app, owner, project_id, {"README.md": "# old\n", "app.js": "old()\n"})
    result = upload(db_session, owner, project_id, ("app.js", b"new()\n"),
                    ("site.zip", zip_of({"site/index.html": b"<h1>x</h1>", "site/css/style.css": b"h1{}",
                                         "site/__MACOSX/._x": b"junk", "site/.DS_Store": b"junk"})))
    files = {e.path for e in list_snapshot_files(db_session, result.snapshot.id)}
    # The zip's one top folder is dropped; system files are skipped; README.md is carried over.
    assert files == {"README.md", "app.js", "index.html", "css/style.css"}
    assert result.snapshot.summary == "Uploaded 3 files" and result.changed == ["app.js"]
    assert upload(db_session, owner, project_id, ("page.html", b"<p>"), folder="docs").added == ["docs/page.html"]


@pytest.mark.parametrize(
    ("files", "status", "words"),
    [
        ([("evil.zip", zip_of({"../../etc/passwd": b"x"}))], 400, "'../../etc/passwd'"),
        ([("evil.zip", zip_of({"/abs.txt": b"x"}))], 400, "is absolute"),
        ([("evil.zip", zip_of({"ok.txt": b"x", ".git/config": b"x"}))], 400, ".git"),
        ([("link.zip", zip_of({"ok.txt": b"x", "passwd": b"/etc/passwd"}, symlinks=("passwd",)))], 400,
         "symbolic link"),
        ([("many.zip", zip_of({f"f{i}.txt": b"x" for i in range(6)}))], 413, "the limit is 5"),
        ([("big.zip", zip_of({"big.txt": b"x" * 1001}))], 413, "at most 1,000 bytes"),
        ([("total.zip", zip_of({f"f{i}.txt": b"x" * 900 for i in range(4)}))], 413, "expands to 3,600 bytes"),
        ([("bomb.zip", lie_about_size(zip_of({"bomb.txt": b"0" * 900}), "bomb.txt", 10))], 400,
         "bomb.txt does not match what the archive declares"),
        ([("broken.zip", b"PK\x03\x04 not really")], 400, "not a zip archive"),
        ([("../up.txt", b"x")], 400, "'../up.txt'"),
        ([("big.txt", b"x" * 1001)], 413, "larger than 1,000 bytes"),
        ([(f"f{i}.txt", b"x") for i in range(6)], 413, "more than 5 files"),
    ],
)
def test_unsafe_or_oversized_uploads_are_refused_and_nothing_is_stored(app, owner, db_session, files, status, words):
    project_id = make_project(app, owner)
    with pytest.raises(DomainError) as caught:
        upload(db_session, owner, project_id, *files)
    assert caught.value.status == status and words in caught.value.message
    assert db_session.scalars(select(Snapshot).where(Snapshot.project_id == project_id)).all() == []


def test_the_storage_quota_counts_uploads(app, owner, db_session):
    project_id = make_project(app, owner)
    quota = SnapshotLimits(max_files=5, max_file_bytes=1000, max_total_bytes=3000, storage_quota_bytes=500)
    with pytest.raises(DomainError) as caught:
        upload(db_session, owner, project_id, ("a.txt", b"a" * 600), limits=quota)
    assert caught.value.status == 413 and "your storage to 600 bytes of your 500 bytes" in caught.value.message


def test_the_upload_form_works_without_javascript_with_htmx_and_as_json(client, owner, app, db_session):
    sign_in(client, owner)
    project_id = make_project(app, owner)
    page = client.get(f"/projects/{project_id}").get_data(as_text=True)
    assert 'enctype="multipart/form-data"' in page and f'action="/projects/{project_id}/upload"' in page
    token = csrf_token_for(client)
    response = client.post(f"/projects/{project_id}/upload", content_type="multipart/form-data", data={
        "csrf_token": token, "files": [(io.BytesIO(b"<h1>hi</h1>"), "index.html"),
                                       (io.BytesIO(zip_of({"app.js": b"go()"})), "code.zip")]})
    assert response.status_code == 302 and "/snapshots/" in response.headers["Location"]
    follow = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Version 1: Uploaded 2 files." in follow

    response = client.post(f"/projects/{project_id}/upload", content_type="multipart/form-data",
                           headers={"HX-Request": "true"},
                           data={"csrf_token": token, "files": [(io.BytesIO(b"x"), "../x.txt")]})
    assert response.status_code == 400 and 'id="upload-panel"' in response.get_data(as_text=True)
    assert "../x.txt" in response.get_data(as_text=True)

    response = client.post(f"/projects/{project_id}/upload", content_type="multipart/form-data",
                           headers={"Accept": "application/json"},
                           data={"csrf_token": token, "files": [(io.BytesIO(b"body{}"), "style.css")]})
    assert response.status_code == 201 and response.json["number"] == 2 and response.json["added"] == ["style.css"]
    assert response.json["carried"] == 2

    # Larger than the 1 MB of an ordinary request, within the version's limits: accepted.
    big = b"y" * 900_000
    response = client.post(f"/projects/{project_id}/upload", content_type="multipart/form-data",
                           headers={"Accept": "application/json"},
                           data={"csrf_token": token, "files": [(io.BytesIO(big), "a.txt"), (io.BytesIO(big), "b.txt")]})
    assert response.status_code == 201, response.json


def test_someone_elses_project_is_not_found_and_csrf_is_required(client, owner, make_user, app):
    other = make_user("other")
    project_id = make_project(app, other)
    sign_in(client, owner)
    token = csrf_token_for(client)
    response = client.post(f"/projects/{project_id}/upload", content_type="multipart/form-data",
                           data={"csrf_token": token, "files": [(io.BytesIO(b"x"), "a.txt")]})
    assert response.status_code == 404
    mine = make_project(app, owner)
    response = client.post(f"/projects/{mine}/upload", content_type="multipart/form-data",
                           data={"files": [(io.BytesIO(b"x"), "a.txt")]})
    assert response.status_code == 403
