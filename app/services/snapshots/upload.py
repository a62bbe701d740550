"""Uploading files, or a `.zip` of them, as a project's next version.

The uploaded files go over the project's latest version (its other files are carried over), under the
same rules as any snapshot: the path rules (`check_path`: no `..`, no absolute path, no `.git`…), the
per-file, file-count and total limits, and the storage quota (`store.take_snapshot_from_files`).

A `.zip` is read member by member (`zipfile`, never extracted to disk). Refused, with a sentence naming
the member: a path that would escape the project (zip-slip), a symbolic link, an encrypted member. A zip
bomb is refused twice: by the sizes its directory declares (count, each file, the total) before anything
is inflated, and by the bytes actually inflated, read in chunks and stopped at the first byte past the
declared size or a limit. Folders, `__MACOSX/` and `.DS_Store` entries are skipped; when every file sits
in one top folder (a downloaded repository), that folder is dropped.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from typing import BinaryIO

from sqlalchemy.orm import Session

from app.errors import InvalidRequest, TooLarge
from app.services import access
from app.services.snapshots.reading import ORIGIN_UPLOAD
from app.services.snapshots.reply_files import check_path, clean_path
from app.services.snapshots.store import (
    IncomingFile,
    SnapshotLimits,
    SnapshotResult,
    take_snapshot_from_files,
)

READ_CHUNK_BYTES = 64 * 1024
SKIPPED_PARTS = ("__MACOSX",)
SKIPPED_NAMES = (".DS_Store", "Thumbs.db")
S_IFMT, S_IFLNK = 0o170000, 0o120000


@dataclass(frozen=True)
class Upload:
    """One uploaded file as the browser sent it: its name (a relative path for a folder upload) and body."""

    name: str
    stream: BinaryIO


class _Budget:
    """The bytes and files read so far, against the limits."""

    def __init__(self, limits: SnapshotLimits) -> None:
        self.limits, self.files, self.total = limits, 0, 0

    def add(self, path: str, size: int) -> None:
        self.files += 1
        self.total += size
        if self.files > self.limits.max_files:
            raise TooLarge(f"This upload has more than {self.limits.max_files:,} files; the limit is "
                           f"{self.limits.max_files:,}.", limit="files", maximum=self.limits.max_files)
        if self.total > self.limits.max_total_bytes:
            raise TooLarge(f"This upload holds more than {self.limits.max_total_bytes:,} bytes; the limit is "
                           f"{self.limits.max_total_bytes:,} bytes.", limit="total_bytes",
                           maximum=self.limits.max_total_bytes)


def _read_capped(stream: BinaryIO, cap: int, refusal: str, maximum: int) -> bytes:
    """At most `cap` bytes of `stream`, or `TooLarge` at the first byte past it (never reads the rest)."""
    chunks, size = [], 0
    while True:
        chunk = stream.read(min(READ_CHUNK_BYTES, cap + 1 - size))
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > cap:
            raise TooLarge(refusal, limit="file_bytes", maximum=maximum)
        chunks.append(chunk)


def _safe_path(raw: str, where: str) -> str:
    path = clean_path(raw.replace("\\", "/") if where == "zip" else raw)
    reason = check_path(path)
    if reason is not None:
        raise InvalidRequest(f"Cannot store {raw!r}: it {reason}.", fields={"files": raw}, paths={raw: reason})
    return path


def _skipped(path: str) -> bool:
    parts = path.split("/")
    return parts[-1] in SKIPPED_NAMES or any(part in SKIPPED_PARTS for part in parts)


def _zip_members(archive: zipfile.ZipFile, name: str, limits: SnapshotLimits) -> list[zipfile.ZipInfo]:
    """The archive's file members, checked by what its directory declares (before inflating a byte)."""
    members = []
    declared_total = 0
    for info in archive.infolist():
        if info.is_dir() or _skipped(info.filename):
            continue
        if (info.external_attr >> 16) & S_IFMT == S_IFLNK:
            raise InvalidRequest(f"{name}: {info.filename!r} is a symbolic link; an upload takes files only.",
                                 fields={"files": info.filename})
        if info.flag_bits & 0x1:
            raise InvalidRequest(f"{name}: {info.filename!r} is encrypted; upload an archive without a password.",
                                 fields={"files": info.filename})
        _safe_path(info.filename, "zip")
        if info.file_size > limits.max_file_bytes:
            raise TooLarge(f"{name}: {info.filename} is {info.file_size:,} bytes; a file may be at most "
                           f"{limits.max_file_bytes:,} bytes.", limit="file_bytes", maximum=limits.max_file_bytes)
        declared_total += info.file_size
        members.append(info)
    if len(members) > limits.max_files:
        raise TooLarge(f"{name} holds {len(members):,} files; the limit is {limits.max_files:,}.",
                       limit="files", maximum=limits.max_files)
    if declared_total > limits.max_total_bytes:
        raise TooLarge(f"{name} expands to {declared_total:,} bytes; the limit is {limits.max_total_bytes:,} bytes.",
                       limit="total_bytes", maximum=limits.max_total_bytes)
    return members


def _common_top_folder(paths: list[str]) -> str:
    tops = {path.split("/", 1)[0] for path in paths}
    if len(tops) == 1 and all("/" in path for path in paths):
        return tops.pop() + "/"
    return ""


def _read_zip(upload: Upload, limits: SnapshotLimits, budget: _Budget) -> list[IncomingFile]:
    try:
        archive = zipfile.ZipFile(upload.stream)
    except (zipfile.BadZipFile, OSError, ValueError):
        raise InvalidRequest(f"{upload.name} is not a zip archive that can be read.", fields={"files": upload.name}) \
            from None
    with archive:
        members = _zip_members(archive, upload.name, limits)
        paths = [_safe_path(info.filename, "zip") for info in members]
        top = _common_top_folder(paths)
        files = []
        for info, path in zip(members, paths, strict=True):
            try:
                with archive.open(info) as member:
                    content = _read_capped(member, min(info.file_size, limits.max_file_bytes),
                                           f"{upload.name}: {info.filename} inflates past its declared size of "
                                           f"{info.file_size:,} bytes; the archive is refused.", limits.max_file_bytes)
            except (zipfile.BadZipFile, RuntimeError, NotImplementedError, OSError) as error:
                # zipfile inflates no more than the declared size, then checks the CRC: a member that
                # holds more (a bomb) or other bytes than its directory declares ends here.
                raise InvalidRequest(f"{upload.name}: {info.filename} does not match what the archive declares "
                                     f"({error}); the archive is refused.", fields={"files": info.filename}) from None
            budget.add(path, len(content))
            files.append(IncomingFile(path[len(top):], content, ORIGIN_UPLOAD))
    return files


def read_uploads(uploads: list[Upload], limits: SnapshotLimits, *, folder: str = "") -> list[IncomingFile]:
    """The files of these uploads (each `.zip` expanded), checked against the rules above."""
    budget = _Budget(limits)
    files: list[IncomingFile] = []
    prefix = clean_path(folder).strip("/")
    for upload in uploads:
        if upload.name.lower().endswith(".zip"):
            files.extend(_read_zip(upload, limits, budget))
            continue
        path = _safe_path(upload.name, "file")
        if _skipped(path):
            continue
        content = _read_capped(upload.stream, limits.max_file_bytes,
                               f"{path} is larger than {limits.max_file_bytes:,} bytes, the most a file may be.",
                               limits.max_file_bytes)
        budget.add(path, len(content))
        files.append(IncomingFile(path, content, ORIGIN_UPLOAD))
    if prefix:
        files = [IncomingFile(f"{prefix}/{f.path}", f.content, f.origin) for f in files]
        for item in files:
            _safe_path(item.path, "file")
    return files


def take_snapshot_from_upload(
    session: Session, *, user_id: int, project_id: int, uploads: list[Upload], limits: SnapshotLimits,
    folder: str = "",
) -> SnapshotResult:
    """The uploaded files (and `.zip` contents), under `folder` when given, over the project's latest
    version as its next one. Commits. `InvalidRequest` / `TooLarge` with a sentence naming the file."""
    access.owned_project(session, user_id=user_id, project_id=project_id)  # someone else's: 404 before all
    if not uploads:
        raise InvalidRequest("Choose at least one file or a .zip to upload.", fields={"files": "empty"})
    files = read_uploads(uploads, limits, folder=folder)
    if not files:
        raise InvalidRequest("This upload holds no files (only folders or system files).", fields={"files": "empty"})
    count = len(files)
    return take_snapshot_from_files(
        session, user_id=user_id, project_id=project_id, files=files, limits=limits, carry_over=True,
        summary=f"Uploaded {count} file{'s' if count != 1 else ''}",
    )
