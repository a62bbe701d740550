"""*Download my data* as a background job: prepare the export, keep it for an hour, hand it to its owner.

`start_export(user_id)` records an export named by an unguessable token and enqueues
`build_export(session, token)` (`app.runtime.jobs`: an RQ job with Redis, a thread without). The job
writes `accounts.export_account` as gzip-compressed JSON into the export store; the account page polls
`current_export(user_id)` until it is ready, then links to the download, which `open_export` serves only
to the export's owner (anyone else gets NotFound, exactly as for a token that never existed).

The export store is the one piece of state, behind one small interface (`ExportStore`: `put`, `get`,
`delete`, each entry with a time to live):

- with `REDIS_URL` set, Redis keys with a TTL (`sorya:export:<token>:meta`, `...:data`, and
  `sorya:export:user:<id>` naming the user's latest export), readable by every web process and worker;
- without Redis (the embedded default, one process), a dict in the app (`app.extensions`), guarded by a
  lock, with the same expiry checked on read. It is lost on restart, which only means preparing again.

Nothing is written to MariaDB: an export is a copy of what is already there, kept `EXPORT_TTL_S`.

`stream_account_zip` is the synchronous export (`GET /account/export`, for scripts): the same document as a
zip written while it is sent, each file content beside it as `blobs/<sha256>`, read a few at a time, so
the request never holds every content in memory.
Preparing while an export is already being prepared returns that one (one job per user at a time); an
export still "preparing" after `STALE_AFTER_S` (its job was lost with a worker) counts as failed, so the
user can start again.
"""

from __future__ import annotations

import gzip
import json
import secrets
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import runtime
from app.errors import NotFound
from app.models import Blob
from app.runtime import jobs
from app.services import accounts
from app.services.snapshots import ZIP_READ_CHUNK_FILES, read_blob_contents, stream_zip

EXPORT_TTL_S = 60 * 60
# A job runs at most jobs.JOB_TIMEOUT_S; past that plus a margin, no job is working on it any more.
STALE_AFTER_S = jobs.JOB_TIMEOUT_S + 60
KEY_PREFIX = "sorya:export:"
STREAM_CHUNK_BYTES = 64 * 1024

PREPARING, READY, FAILED = "preparing", "ready", "failed"


def clock() -> float:
    return time.time()


# -- the store -------------------------------------------------------------------------------------


class ExportStore(Protocol):
    def put(self, key: str, value: bytes, ttl_s: int) -> None: ...
    def get(self, key: str) -> bytes | None: ...
    def delete(self, key: str) -> None: ...


class RedisExportStore:
    """Redis keys with a TTL: shared by every process, expired by Redis itself."""

    def __init__(self, client) -> None:
        self.client = client

    def put(self, key: str, value: bytes, ttl_s: int) -> None:
        self.client.set(KEY_PREFIX + key, value, ex=ttl_s)

    def get(self, key: str) -> bytes | None:
        return self.client.get(KEY_PREFIX + key)

    def delete(self, key: str) -> None:
        self.client.delete(KEY_PREFIX + key)


class LocalExportStore:
    """A dict in this process (no Redis: the embedded default runs one process). Expired entries are
    invisible to `get` and dropped on the next `put`."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: dict[str, tuple[float, bytes]] = {}

    def put(self, key: str, value: bytes, ttl_s: int) -> None:
        now = clock()
        with self.lock:
            for stale in [k for k, (expires, _) in self.entries.items() if expires <= now]:
                del self.entries[stale]
            self.entries[key] = (now + ttl_s, value)

    def get(self, key: str) -> bytes | None:
        with self.lock:
            entry = self.entries.get(key)
        if entry is None or entry[0] <= clock():
            return None
        return entry[1]

    def delete(self, key: str) -> None:
        with self.lock:
            self.entries.pop(key, None)


def store() -> ExportStore:
    """The store for this app: Redis when configured, else the app's own in-process store."""
    client = runtime.redis_client()
    if client is not None:
        return RedisExportStore(client)
    return current_app.extensions.setdefault("sorya.exports", LocalExportStore())


# -- exports ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Export:
    token: str
    user_id: int
    status: str
    created_at: float
    expires_at: float
    size: int | None = None  # bytes of JSON, once ready

    @property
    def preparing(self) -> bool:
        return self.status == PREPARING

    @property
    def ready(self) -> bool:
        return self.status == READY

    @property
    def failed(self) -> bool:
        return self.status == FAILED

    def minutes_left(self) -> int:
        return max(1, round((self.expires_at - clock()) / 60))


def _meta_key(token: str) -> str:
    return f"{token}:meta"


def _data_key(token: str) -> str:
    return f"{token}:data"


def _user_key(user_id: int) -> str:
    return f"user:{user_id}"


def _save(export: Export) -> None:
    ttl_s = max(1, int(export.expires_at - clock()))
    store().put(_meta_key(export.token), json.dumps(export.__dict__).encode(), ttl_s)


def _load(token: str) -> Export | None:
    raw = store().get(_meta_key(token))
    if raw is None:
        return None
    export = Export(**json.loads(raw))
    if export.preparing and clock() - export.created_at > STALE_AFTER_S:
        return Export(**{**export.__dict__, "status": FAILED})
    return export


def current_export(user_id: int) -> Export | None:
    """The user's latest export while it is kept (preparing, ready or failed), else None. Reads only."""
    token = store().get(_user_key(user_id))
    if token is None:
        return None
    export = _load(token.decode())
    return export if export is not None and export.user_id == user_id else None


def start_export(user_id: int) -> Export:
    """Start preparing the user's export in the background, unless one is already being prepared (then
    that one is returned: one job per user at a time). A ready or failed export is replaced."""
    existing = current_export(user_id)
    if existing is not None and existing.preparing:
        return existing
    if existing is not None:
        discard(existing)
    now = clock()
    export = Export(token=secrets.token_urlsafe(32), user_id=user_id, status=PREPARING,
                    created_at=now, expires_at=now + EXPORT_TTL_S)
    _save(export)
    store().put(_user_key(user_id), export.token.encode(), EXPORT_TTL_S)
    jobs.enqueue("app.services.exports:build_export", export.token)
    return export


def build_export(session: Session, token: str) -> int | None:
    """The job: write the export's JSON (gzip-compressed) to the store and mark it ready; returns its
    size in bytes. An export that expired or was discarded meanwhile is skipped (None). On failure the
    export is marked failed and the error re-raised (the jobs service logs it)."""
    export = _load(token)
    if export is None or not export.preparing:
        return None
    try:
        document = accounts.export_account(session, export.user_id)
        body = json.dumps(document, ensure_ascii=False, indent=2).encode()
        store().put(_data_key(token), gzip.compress(body, compresslevel=6),
                    max(1, int(export.expires_at - clock())))
    except Exception:
        _save(Export(**{**export.__dict__, "status": FAILED}))
        raise
    _save(Export(**{**export.__dict__, "status": READY, "size": len(body)}))
    return len(body)


def open_export(user_id: int, token: str) -> tuple[Export, Iterator[bytes]]:
    """The ready export `token` of `user_id` and its JSON as a stream of chunks. NotFound when the token
    is unknown, expired, not ready or someone else's: the answer never tells them apart."""
    export = _load(token)
    if export is None or export.user_id != user_id or not export.ready:
        raise NotFound("This export does not exist or has expired.")
    compressed = store().get(_data_key(token))
    if compressed is None:
        raise NotFound("This export does not exist or has expired.")
    return export, _decompressed(compressed)


def _decompressed(compressed: bytes) -> Iterator[bytes]:
    decompressor = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)  # gzip framing
    for start in range(0, len(compressed), STREAM_CHUNK_BYTES):
        chunk = decompressor.decompress(compressed[start:start + STREAM_CHUNK_BYTES])
        if chunk:
            yield chunk
    tail = decompressor.flush()
    if tail:
        yield tail


def discard(export: Export) -> None:
    """Forget an export now (its data and record). Idempotent."""
    for key in (_data_key(export.token), _meta_key(export.token)):
        store().delete(key)


def discard_for_user(user_id: int) -> None:
    """Forget the user's latest export (account deletion). Idempotent."""
    export = current_export(user_id)
    if export is not None:
        discard(export)
    store().delete(_user_key(user_id))



# -- the synchronous export ------------------------------------------------------------------------

FILE_CONTENTS_NOTE = "Each file's content is blobs/<sha256> in this zip, named by the sha256 its entries list."


def stream_account_zip(session: Session, user_id: int, folder: str) -> Iterator[bytes]:
    """The user's export as a zip, in chunks, under `folder/`: `account.json` (the export document without
    contents) and `blobs/<sha256>` for each distinct file content, read `ZIP_READ_CHUNK_FILES` at a time.
    Reads only; a generator, so nothing is read before the first chunk is asked for."""
    document = accounts.export_account(session, user_id, include_contents=False)
    document["file_contents"] = FILE_CONTENTS_NOTE
    shas = sorted({f["sha256"] for p in document["projects"] for s in p["snapshots"] for f in s["files"]})

    def entries() -> Iterator[tuple[str, bytes]]:
        yield f"{folder}/account.json", json.dumps(document, ensure_ascii=False, indent=2).encode()
        for start in range(0, len(shas), ZIP_READ_CHUNK_FILES):
            chunk = shas[start : start + ZIP_READ_CHUNK_FILES]
            ids = dict(session.execute(select(Blob.sha256, Blob.id).where(Blob.sha256.in_(chunk))).all())
            contents = read_blob_contents(session, list(ids.values()))
            for sha in chunk:
                yield f"{folder}/blobs/{sha}", contents[ids[sha]]

    yield from stream_zip(entries())
