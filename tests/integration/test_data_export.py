"""*Download my data* as a background job, in both modes: a thread of the web process with the in-process
store (no Redis) and a real RQ worker writing to Redis. Owner check, expiry, CSRF, htmx polling and the
no-JavaScript path."""

from __future__ import annotations

import io
import json
import re
import time
import zipfile

import pytest
from rq import Queue

from app import create_app
from app.models import ChatMessage, Project
from app.runtime import jobs
from app.services import exports
from tests.conftest import build_config, csrf_token_for, sign_in
from tests.servers import JobsWorker

HX = {"HX-Request": "true"}


@pytest.fixture
def threaded_app(app, app_config, tmp_path):
    """The same database without Redis: the export job is a thread, its file the in-process store."""
    return create_app(build_config(str(tmp_path), DATABASE_URL=app_config.DATABASE_URL, REDIS_URL=""))


def client_for(app, user):
    client = app.test_client()
    sign_in(client, user)
    return client


def add_history(app, user_id: int, text: str) -> None:
    from app.extensions import db

    with app.app_context():
        project = Project(user_id=user_id, name="Site")
        db.session.add(project)
        db.session.flush()
        db.session.add(ChatMessage(user_id=user_id, project_id=project.id, role="user", content=text))
        db.session.commit()
        db.session.remove()


def prepare(client, *, htmx: bool = False):
    headers = {"X-CSRFToken": csrf_token_for(client), **(HX if htmx else {})}
    return client.post("/account/export", headers=headers)


def poll_until_ready(client, timeout_s: float = 20) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        section = client.get("/account/export/status", headers=HX).get_data(as_text=True)
        if "Preparing your data…" not in section:
            return section
        time.sleep(0.1)
    raise AssertionError("the export was still being prepared after 20 s")


def download_url(section: str) -> str:
    match = re.search(r'href="(/account/export/[A-Za-z0-9_-]{43})"', section)
    assert match, section
    return match.group(1)


def test_without_redis_the_export_is_a_thread_and_downloads_from_memory(threaded_app, make_user):
    user = make_user("threaded", balance=100)
    add_history(threaded_app, user.id, "make a <script>site</script> ✓")
    client = client_for(threaded_app, user)

    started = prepare(client, htmx=True).get_data(as_text=True)
    section = poll_until_ready(client)

    assert 'id="data-export"' in started
    assert 'hx-trigger="every 1s"' not in section and "Your data is ready" in section
    response = client.get(download_url(section))
    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == 'attachment; filename="sorya-threaded-data.json"'
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_data(as_text=True)
    # What the synchronous export returns: the same document (but for when it was made) in a zip, with
    # each file content beside it instead of inside it.
    archive = zipfile.ZipFile(io.BytesIO(client.get("/account/export").get_data()))
    synchronous = json.loads(archive.read("sorya-threaded-data/account.json"))
    document = json.loads(body)
    assert body == json.dumps(document, ensure_ascii=False, indent=2)
    blobs = document.pop("blobs")
    assert "blobs/<sha256>" in synchronous.pop("file_contents")
    assert {**document, "exported_at": None} == {**synchronous, "exported_at": None}
    for sha, blob in blobs.items():
        assert archive.read(f"sorya-threaded-data/blobs/{sha}").decode() == blob["content"]
    assert json.loads(body)["chat_messages"][0]["content"] == "make a <script>site</script> ✓"
    with threaded_app.app_context():
        assert isinstance(exports.store(), exports.LocalExportStore)


def test_with_redis_a_worker_process_prepares_the_export(app, client, make_user, app_config):
    from app import runtime

    user = make_user("queued", balance=100)
    add_history(app, user.id, "hello from the worker")
    sign_in(client, user)
    with JobsWorker(app_config) as worker:
        prepare(client, htmx=True)
        section = poll_until_ready(client)
    assert "Your data is ready" in section, worker.log()
    url = download_url(section)
    data = json.loads(client.get(url).get_data(as_text=True))
    assert data["account"]["login"] == "queued"
    assert data["chat_messages"][0]["content"] == "hello from the worker"
    with app.app_context():
        token = url.rsplit("/", 1)[1]
        redis = runtime.redis_client()
        for key in (f"{token}:meta", f"{token}:data", f"user:{user.id}"):
            ttl = redis.ttl(exports.KEY_PREFIX + key)
            assert exports.EXPORT_TTL_S - 60 < ttl <= exports.EXPORT_TTL_S, key


def test_without_javascript_the_page_says_preparing_then_links_the_download(threaded_app, make_user):
    client = client_for(threaded_app, make_user("nojs", balance=1))
    page = client.get("/account").get_data(as_text=True)
    assert "Prepare my data" in page and 'action="/account/export"' in page

    response = prepare(client)
    assert (response.status_code, response.headers["Location"]) == (302, "/account#data-export")

    # A plain status request (a bookmark, no htmx) lands on the page too.
    assert client.get("/account/export/status").headers["Location"] == "/account#data-export"
    poll_until_ready(client)
    page = client.get("/account").get_data(as_text=True)
    assert "Your data is ready" in page and 'id="export-download"' in page
    assert "<script>" not in page.split('id="data-export"')[1].split("</section>")[0]


def test_the_page_shows_preparing_with_a_check_again_link(app, client, make_user):
    # With Redis and no worker running, the job waits in the queue: the page shows it being prepared.
    sign_in(client, make_user("waiting", balance=1))
    section = prepare(client, htmx=True).get_data(as_text=True)
    assert "Preparing your data…" in section
    assert 'hx-get="/account/export/status" hx-trigger="every 1s"' in section
    assert 'href="/account#data-export" id="export-check-again"' in section
    page = client.get("/account").get_data(as_text=True)
    assert "Preparing your data…" in page and "export-check-again" in page
    # Asking again while it is prepared does not queue a second job.
    prepare(client, htmx=True)
    queue = Queue(jobs.QUEUE_NAME, connection=jobs.queue_connection(app.extensions["sorya.config"].REDIS_URL))
    assert queue.count == 1


def test_another_users_token_is_404_and_never_the_data(threaded_app, make_user):
    owner = client_for(threaded_app, make_user("owner", balance=1))
    add_history(threaded_app, owner.get("/api/me").json["id"], "owner's secret plan")
    prepare(owner)
    url = download_url(poll_until_ready(owner))
    other = client_for(threaded_app, make_user("other", balance=1))

    response = other.get(url)

    assert response.status_code == 404
    assert "secret plan" not in response.get_data(as_text=True)
    assert other.get("/account/export/" + "x" * 43).status_code == 404
    assert other.get("/account/export/status", headers=HX).get_data(as_text=True).count("Prepare my data") == 1
    assert threaded_app.test_client().get(url).status_code == 302  # signed out: sign in first
    assert owner.get(url).status_code == 200


def test_an_export_expires_after_an_hour(threaded_app, make_user, monkeypatch):
    client = client_for(threaded_app, make_user("later", balance=1))
    prepare(client)
    url = download_url(poll_until_ready(client))
    now = time.time()
    monkeypatch.setattr(exports, "clock", lambda: now + exports.EXPORT_TTL_S + 1)

    assert client.get(url).status_code == 404
    assert "Prepare my data" in client.get("/account").get_data(as_text=True)


def test_an_expired_redis_export_is_gone(app, client, make_user, app_config):
    from app import runtime

    sign_in(client, make_user("redisexp", balance=1))
    with JobsWorker(app_config):
        prepare(client)
        url = download_url(poll_until_ready(client))
    with app.app_context():
        redis = runtime.redis_client()
        for key in redis.scan_iter(exports.KEY_PREFIX + "*"):
            redis.pexpire(key, 1)
    time.sleep(0.05)
    assert client.get(url).status_code == 404
    assert "Prepare my data" in client.get("/account").get_data(as_text=True)


def test_preparing_needs_csrf_and_a_session(threaded_app, make_user):
    client = client_for(threaded_app, make_user("csrf", balance=1))
    assert client.post("/account/export").status_code == 403
    assert client.post("/account/export", data={"csrf_token": "forged"}).status_code == 403
    assert "Prepare my data" in client.get("/account").get_data(as_text=True)  # nothing started
    assert threaded_app.test_client().post("/account/export").status_code in (302, 403)


def test_a_failed_export_says_so_and_offers_to_try_again(threaded_app, make_user, monkeypatch):
    from app.services import accounts

    def broken(session, user_id):
        raise RuntimeError("database went away")

    monkeypatch.setattr(accounts, "export_account", broken)
    client = client_for(threaded_app, make_user("unlucky", balance=1))
    prepare(client)
    section = poll_until_ready(client)
    assert "Preparing your data failed" in section and "Try again" in section

    monkeypatch.undo()
    prepare(client)
    assert "Your data is ready" in poll_until_ready(client)


def test_an_export_whose_job_was_lost_counts_as_failed(app, client, make_user, monkeypatch):
    sign_in(client, make_user("lost", balance=1))
    prepare(client)  # queued; no worker will ever run it
    now = time.time()
    monkeypatch.setattr(exports, "clock", lambda: now + exports.STALE_AFTER_S + 1)
    section = client.get("/account/export/status", headers=HX).get_data(as_text=True)
    assert "Preparing your data failed" in section


def test_deleting_the_account_forgets_its_export(threaded_app, make_user):
    client = client_for(threaded_app, make_user("leaving", balance=1))
    prepare(client)
    poll_until_ready(client)
    with threaded_app.app_context():
        assert exports.store().entries

    client.post("/account/delete", data={"confirm_login": "leaving", "csrf_token": csrf_token_for(client)})

    with threaded_app.app_context():
        assert not exports.store().entries


def test_the_synchronous_export_is_a_zip_written_as_a_stream_with_every_file(app, make_user):
    from app.extensions import db
    from app.services.snapshots import ZIP_READ_CHUNK_FILES
    from tests.snapshot_helpers import make_project, make_snapshot

    user = make_user("many", balance=10)
    project_id = make_project(app, user)
    files = {f"src/file_{n}.txt": f"content {n}\n" * (n + 1) for n in range(ZIP_READ_CHUNK_FILES + 8)}
    make_snapshot(app, user, project_id, files)
    make_snapshot(app, user, project_id, {**files, "src/file_0.txt": "changed\n", "logo.png": b"\x89PNG\0\1"})

    with app.app_context():
        chunks = exports.stream_account_zip(db.session, user.id, "sorya-many-data")
        first = next(chunks)  # a generator: nothing is read until it is asked for the next piece
        rest = list(chunks)
    assert len(rest) >= ZIP_READ_CHUNK_FILES  # one piece per file at least, not one buffer at the end
    archive = zipfile.ZipFile(io.BytesIO(first + b"".join(rest)))
    document = json.loads(archive.read("sorya-many-data/account.json"))
    listed = {f["path"]: f["sha256"] for s in document["projects"][0]["snapshots"] for f in s["files"]}
    assert len(document["projects"][0]["snapshots"]) == 2
    stored = {name.rsplit("/", 1)[-1] for name in archive.namelist() if "/blobs/" in name}
    assert stored == {f["sha256"] for s in document["projects"][0]["snapshots"] for f in s["files"]}
    assert archive.read("sorya-many-data/blobs/" + listed["logo.png"]) == b"\x89PNG\0\1"
    assert archive.read("sorya-many-data/blobs/" + listed["src/file_3.txt"]) == ("content 3\n" * 4).encode()
