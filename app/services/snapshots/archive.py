"""Snapshots as zip files, written incrementally: memory holds a few files at a time, never the archive."""

from __future__ import annotations

import logging
import re
import zipfile
from collections.abc import Iterable, Iterator

from sqlalchemy.orm import Session

from app.models import Project, Snapshot
from app.services.snapshots.blobs import read_blob_contents
from app.services.snapshots.reading import list_snapshot_files
from app.services.snapshots.reply_files import check_path

log = logging.getLogger(__name__)

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip can record: fixed, so bytes are stable
ZIP_FILE_MODE = 0o100644
ZIP_READ_CHUNK_FILES = 32


class _ChunkSink:
    """A write-only, unseekable file for zipfile: what it writes is handed out as chunks."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.chunks.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def drain(self) -> bytes:
        out = b"".join(self.chunks)
        self.chunks.clear()
        return out


def archive_folder_name(project: Project, snapshot: Snapshot) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", project.name).strip("-._").lower()[:60] or "project"
    return f"{slug}-snapshot-{snapshot.number}"


def stream_zip(entries: Iterable[tuple[str, bytes]]) -> Iterator[bytes]:
    """A zip of these (name, content) entries, written as they come and handed out in chunks: fixed
    timestamps and modes, so the same entries always give the same bytes. Memory holds the entry being
    written, never the archive; `entries` may be a generator reading contents a few at a time."""
    sink = _ChunkSink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for name, content in entries:
            info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix, so the mode below is honoured
            info.external_attr = ZIP_FILE_MODE << 16
            archive.writestr(info, content)
            yield sink.drain()
    yield sink.drain()


def stream_snapshot_zip(session: Session, snapshot: Snapshot, folder: str) -> Iterator[bytes]:
    """The snapshot as a zip, in chunks: files sorted by path under `folder/`, so the same snapshot
    always gives the same bytes. Memory holds at most a few files at once.

    Every entry name is checked again (`check_path`): a row that could escape the extraction folder
    is left out and logged, never written.
    """
    return stream_zip(_snapshot_entries(session, snapshot, folder))


def _snapshot_entries(session: Session, snapshot: Snapshot, folder: str) -> Iterator[tuple[str, bytes]]:
    entries = list_snapshot_files(session, snapshot.id)
    for start in range(0, len(entries), ZIP_READ_CHUNK_FILES):
        chunk = entries[start : start + ZIP_READ_CHUNK_FILES]
        contents = read_blob_contents(session, [e.blob_id for e in chunk])
        for entry in chunk:
            if check_path(entry.path) is not None:
                log.error("snapshot %s holds unsafe path %r; left out of the zip", snapshot.id, entry.path)
                continue
            yield f"{folder}/{entry.path}", contents[entry.blob_id]
