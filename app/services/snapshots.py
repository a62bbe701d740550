"""Snapshots: what files a reply contains, and immutable file sets over content-addressed blobs.

A snapshot is a numbered, immutable set of files of one project. Its file list is small rows
(`snapshot_files`: path, blob id, origin) pointing at `blobs`, one row per distinct content (SHA-256),
stored once however many snapshots or projects share it. A snapshot taken from a reply builds on the
project's previous one: files the reply does not mention are carried over (`origin="carried"`), files it
writes are `origin="reply"`, and a file is removed only when the reply deletes it explicitly.

Guarantees, per function docstring: every `take_*`/`restore_*` function validates everything first
(paths, limits), then writes the snapshot and its rows in one transaction, under a lock on the project
row (so snapshot numbers and carry-over never race) and commits. Blobs are inserted race-free (the unique
SHA-256 decides; the loser reuses the winner's row) and reused blobs are read `FOR SHARE`, so
`collect_garbage_blobs` cannot delete a blob a snapshot being written points at.

The parser (`parse_reply_files`) is a pure function over a string, with no database and no Flask: the chat
page calls it for every reply it shows, so it stays fast (one pass over the lines).

## What counts as a file

The reply is read line by line after turning CRLF and lone CR into LF.

1. **A fence** is a line of three or more backticks or tildes, indented by spaces only (any amount, since
   models put files inside list items). What follows the fence on that line is its *info string*; a
   backtick fence whose info string holds a backtick is inline code, not a fence.
2. **A fenced block is a file** when it names a path, in one of two ways:
   - in the info string, as `path=...`, `file=...` or `filename=...` (the value may be quoted with `"`
     or `'`), anywhere among its words: ```` ```python path=app/main.py ````, ```` ```path=app/main.py ````,
     ```` ```js file="src/my app.js" ````;
   - or, when the info string names none, on the block's first line as a comment: `// path: x`,
     `# file: x`, `-- path: x`, `; path: x`, `/* path: x */`, `<!-- path: x -->` (keys `path`, `file`,
     `filename`, any case). That first line is metadata and is not part of the file.
   A block that names no path is an example snippet, not a file: it is skipped silently.
3. **The block ends** at a line made only of the same fence character, at least as long as the opening
   fence. Nested fences are tolerated, because models write READMEs that contain code blocks with the
   same ```` ``` ```` fence: inside a file, a fence line *with* an info string (```` ```bash ````) opens a
   nested block, and the next bare fence closes that nested block instead of the file. (So a bare
   ```` ``` ```` opening a nested block without a language is read as the end of the file: ambiguous,
   and rare, since models label nested blocks.)
4. **The content** is the lines between the fences, each stripped of the opening fence's indentation
   (spaces only), joined with LF, ending with one LF unless the block is empty (empty block: empty file).
5. **Deletion**: a block whose info string also holds the word `delete` or `deleted` (or
   `action=delete`) deletes that path from the project: ```` ```path=old.py delete ````; its body is
   ignored.
6. **The same path twice**: the last block wins, and a warning says so.
7. **A missing closing fence** at the end of the reply: when the reply finished normally
   (`reply_finished=True`), the model merely forgot the fence, so the file is kept up to the end of the
   reply, with a warning. When the reply was stopped or failed, the file was cut off mid-way: it is left
   out (so a snapshot keeps the previous version of it), with a warning.
8. **Paths** are trimmed, unquoted, NFC-normalised, and a leading `./` is dropped. Then `check_path`
   refuses, with a reason: empty paths, control characters (NUL included), backslashes, absolute paths,
   drive letters, `.` or `..` segments, empty segments (`a//b`), a trailing `/`, any `.git` segment
   (any case), a segment over 255 bytes or a path over 1,024 bytes (UTF-8). Refused paths are listed in
   `ParsedFiles.refused`; they never appear in `files`.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import logging
import re
import unicodedata
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.models import Blob, ChatMessage, Project, Snapshot, SnapshotFile
from app.models.base import utcnow
from app.models.chat import ROLE_ASSISTANT, STATUS_COMPLETE, STATUS_PENDING, STATUS_STREAMING
from app.runtime import jobs
from app.services.errors import Conflict, InvalidRequest, NotFound, TooLarge
from app.services.transactions import is_lock_conflict

log = logging.getLogger(__name__)

MAX_PATH_BYTES = 1024
MAX_SEGMENT_BYTES = 255
PATH_KEYS = ("path", "file", "filename")
DELETE_WORDS = ("delete", "deleted")

FENCE_RE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
INFO_PAIR_RE = re.compile(r"""(?P<key>[A-Za-z_][\w-]*)=(?:"(?P<dq>[^"]*)"|'(?P<sq>[^']*)'|(?P<bare>\S+))""")
FIRST_LINE_PATH_RE = re.compile(
    r"^\s*(?://|#|--|;|/\*|<!--)\s*(?:path|file|filename)\s*:\s*(?P<path>.+?)\s*(?:\*/|-->)?\s*$",
    re.IGNORECASE,
)
DRIVE_LETTER_RE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True)
class ReplyFile:
    """One file block of a reply. `deleted` blocks carry no content; `truncated` lacked a closing fence."""

    path: str
    content: str
    language: str | None = None
    deleted: bool = False
    truncated: bool = False
    line: int = 0  # 1-based line of the opening fence in the reply


@dataclass(frozen=True)
class RefusedPath:
    path: str
    reason: str

    def sentence(self) -> str:
        return f"{self.path!r} {self.reason}."


@dataclass(frozen=True)
class ParsedFiles:
    """The files a reply writes or deletes (last block per path wins), and what the person should know."""

    files: list[ReplyFile] = field(default_factory=list)
    refused: list[RefusedPath] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def has_files(self) -> bool:
        return bool(self.files)

    @property
    def written(self) -> list[ReplyFile]:
        return [f for f in self.files if not f.deleted]

    @property
    def deleted_paths(self) -> list[str]:
        return [f.path for f in self.files if f.deleted]


def clean_path(raw: str) -> str:
    """The path as written, minus quotes, surrounding spaces and a leading `./`; NFC-normalised."""
    path = raw.strip().strip("`\"'").strip()
    path = unicodedata.normalize("NFC", path)
    while path.startswith("./"):
        path = path[2:]
    return path


def check_path(path: str) -> str | None:
    """Why `path` cannot be stored in a snapshot, as the end of a sentence, or None when it is safe.

    A safe path is relative, uses `/`, and cannot escape or disturb the folder it is extracted into.
    """
    if not path:
        return "is empty"
    if any(ord(ch) < 32 or 127 <= ord(ch) < 160 for ch in path):
        return "contains a control character"
    if "\\" in path:
        return "uses a backslash; separate folders with /"
    if path.startswith("/"):
        return "is absolute; paths must be relative to the project folder"
    if DRIVE_LETTER_RE.match(path):
        return "starts with a drive letter; paths must be relative to the project folder"
    if path.endswith("/"):
        return "names a folder, not a file"
    if len(path.encode("utf-8")) > MAX_PATH_BYTES:
        return f"is longer than {MAX_PATH_BYTES:,} bytes"
    for segment in path.split("/"):
        if segment == "":
            return "has an empty folder name (//)"
        if segment == "..":
            return "goes above the project folder (..)"
        if segment == ".":
            return "has a '.' folder name"
        if segment.lower() == ".git":
            return "is inside .git, which holds Git's own data"
        if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
            return f"has a name longer than {MAX_SEGMENT_BYTES} bytes"
    return None


@dataclass
class _Opener:
    fence_char: str
    fence_len: int
    indent: int
    info: str
    line: int


def _read_info(info: str) -> tuple[str | None, str | None, bool]:
    """(language, path, deleted) from a fence's info string."""
    path = None
    deleted = False
    for match in INFO_PAIR_RE.finditer(info):
        key = match.group("key").lower()
        value = match.group("dq") if match.group("dq") is not None else match.group("sq")
        if value is None:
            value = match.group("bare")
        if key in PATH_KEYS and path is None:
            path = value
        elif key == "action" and value.lower() in DELETE_WORDS:
            deleted = True
    words = INFO_PAIR_RE.sub(" ", info).split()
    if any(word.lower() in DELETE_WORDS for word in words):
        deleted = True
    language = next((w for w in words if w.lower() not in DELETE_WORDS), None)
    return language, path, deleted


def _is_closing(line: str, opener: _Opener) -> bool:
    stripped = line.strip()
    return len(stripped) >= opener.fence_len and stripped == opener.fence_char * len(stripped)


def _fence_opener(line: str, number: int) -> _Opener | None:
    match = FENCE_RE.match(line)
    if match is None:
        return None
    fence, info = match.group("fence"), match.group("info")
    if fence[0] == "`" and "`" in info:
        return None  # ```inline``` code on one line, not a fence
    return _Opener(fence[0], len(fence), len(match.group("indent")), info.strip(), number)


def _dedent(line: str, indent: int) -> str:
    spaces = len(line) - len(line.lstrip(" "))
    return line[min(spaces, indent):]


def parse_reply_files(text: str, *, reply_finished: bool = True) -> ParsedFiles:
    """The files a reply writes or deletes, by the rules in this module's docstring. Never raises."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    found: dict[str, ReplyFile] = {}
    seen_count: dict[str, int] = {}
    refused: list[RefusedPath] = []
    warnings: list[str] = []

    def keep(block: ReplyFile | None, raw_path: str) -> None:
        if block is None:
            return
        reason = check_path(block.path)
        if reason is not None:
            refused.append(RefusedPath(raw_path.strip() or block.path, reason))
            return
        seen_count[block.path] = seen_count.get(block.path, 0) + 1
        found.pop(block.path, None)  # re-insert so the order is that of the winning block
        found[block.path] = block

    index = 0
    total = len(lines)
    while index < total:
        opener = _fence_opener(lines[index], index + 1)
        index += 1
        if opener is None:
            continue
        body: list[str] = []
        nested = 0
        closed = False
        while index < total:
            line = lines[index]
            index += 1
            if _is_closing(line, opener):
                if nested == 0:
                    closed = True
                    break
                nested -= 1
            else:
                inner = _fence_opener(line, index)
                # Only a fence that could also close this block needs counting: a shorter one cannot.
                if (
                    inner is not None
                    and inner.info
                    and inner.fence_char == opener.fence_char
                    and inner.fence_len >= opener.fence_len
                ):
                    nested += 1
            body.append(_dedent(line, opener.indent))
        block, raw_path = _block_to_file(opener, body, truncated=not closed)
        if block is not None and block.truncated:
            if reply_finished and not block.deleted:
                warnings.append(f"{block.path} has no closing fence; it was taken up to the end of the reply.")
            else:
                warnings.append(f"{block.path} was cut off when the reply stopped, so it was left out.")
                block = None
        keep(block, raw_path)

    for path, count in seen_count.items():
        if count > 1:
            warnings.append(f"{path} appears {count} times in this reply; the last one was kept.")
    for item in refused:
        warnings.append(f"Refused {item.sentence()}")
    return ParsedFiles(files=list(found.values()), refused=refused, warnings=warnings)


def _block_to_file(opener: _Opener, body: list[str], *, truncated: bool) -> tuple[ReplyFile | None, str]:
    language, raw_path, deleted = _read_info(opener.info)
    if raw_path is None and body:
        match = FIRST_LINE_PATH_RE.match(body[0])
        if match is not None:
            raw_path = match.group("path")
            body = body[1:]
    if raw_path is None:
        return None, ""
    content = "" if deleted or not body else "\n".join(body) + "\n"
    return (
        ReplyFile(
            path=clean_path(raw_path),
            content=content,
            language=language,
            deleted=deleted,
            truncated=truncated,
            line=opener.line,
        ),
        raw_path,
    )


def render_reply_file(path: str, content: str, language: str = "") -> str:
    """A file as the contract asks the model to write it; the inverse of `parse_reply_files`.

    The fence is made longer than any backtick run at the start of a content line, so it always closes
    where it should.
    """
    longest = max((len(m.group(0)) for m in re.finditer(r"(?m)^ *(`{3,})", content)), default=0)
    fence = "`" * max(3, longest + 1)
    if any(ch.isspace() for ch in path) or '"' in path:
        path = f"'{path}'" if '"' in path else f'"{path}"'
    info = f"{language} path={path}" if language else f"path={path}"
    body = content if content.endswith("\n") or not content else content + "\n"
    return f"{fence}{info}\n{body}{fence}\n"


# -- secrets in previews ---------------------------------------------------------------------------

REDACTED = "[redacted {kind}]"
PRIVATE_KEY_RE = re.compile(
    r"-----BEGIN (?P<label>[A-Z0-9 ]*PRIVATE KEY)-----.*?(?:-----END (?P=label)-----|\Z)", re.DOTALL
)
SECRET_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("AWS access key", re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b")),
    (
        "AWS secret key",
        re.compile(r"(?i)(?<=aws_secret_access_key)(?P<sep>[\"']?\s*[:=]\s*[\"']?)(?P<secret>[A-Za-z0-9/+=]{40})"),
    ),
    ("GitHub token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b")),
    ("Stripe key", re.compile(r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,255}\b|\bwhsec_[A-Za-z0-9]{20,255}\b")),
    ("OpenAI key", re.compile(r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,255}\b")),
)
ENV_LINE_RE = re.compile(
    r"^(?P<head>[ \t]*(?:export[ \t]+)?[A-Za-z_][A-Za-z0-9_.-]*[ \t]*=[ \t]*)(?P<value>[^\n]*[^\s])[ \t]*$", re.M
)
# Example and template env files hold placeholders by convention; their values are not redacted
# (a real-looking key in them is still caught by SECRET_PATTERNS).
ENV_TEMPLATE_SUFFIXES = (".example", ".sample", ".template", ".dist", ".defaults")


@dataclass(frozen=True)
class Redaction:
    """Text with its secrets replaced, and what was replaced (kinds are e.g. "Stripe key")."""

    text: str
    count: int
    kinds: tuple[str, ...]


def is_env_file(path: str) -> bool:
    name = path.rsplit("/", 1)[-1].lower()
    if not (name == ".env" or name.startswith(".env.") or name.endswith(".env")):
        return False
    return not name.endswith(ENV_TEMPLATE_SUFFIXES)


def redact_secrets(path: str, text: str) -> Redaction:
    """`text` with keys and tokens replaced by a visible marker: AWS, GitHub, Stripe and OpenAI keys,
    PEM private keys, and every value of a `.env` file. Linear in the text; never raises."""
    count = 0
    kinds: list[str] = []

    def note(kind: str) -> str:
        nonlocal count
        count += 1
        if kind not in kinds:
            kinds.append(kind)
        return REDACTED.format(kind=kind)

    text = PRIVATE_KEY_RE.sub(lambda m: note("private key"), text)
    for kind, pattern in SECRET_PATTERNS:
        if "secret" in pattern.groupindex:
            text = pattern.sub(lambda m, kind=kind: m.group("sep") + note(kind), text)
        else:
            text = pattern.sub(lambda m, kind=kind: note(kind), text)
    if is_env_file(path):

        def env_value(match: re.Match[str]) -> str:
            value = match.group("value")
            if value.startswith("[redacted ") or value in ('""', "''"):
                return match.group(0)
            return match.group("head") + note(".env value")

        text = ENV_LINE_RE.sub(env_value, text)
    return Redaction(text=text, count=count, kinds=tuple(kinds))


def contains_secret(path: str, content: bytes) -> bool:
    """True when the preview of this file would redact something (binary files are not scanned)."""
    if looks_binary(content):
        return False
    return redact_secrets(path, content.decode("utf-8", errors="replace")).count > 0


# -- blobs -----------------------------------------------------------------------------------------

BINARY_SNIFF_BYTES = 8192


def sha256_hex(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def git_blob_sha(content: bytes) -> str:
    """Git's object id for this content as a blob (`git hash-object`), computed locally."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content, usedforsecurity=False).hexdigest()


def looks_binary(content: bytes) -> bool:
    """Binary when the start holds a NUL byte or the bytes are not UTF-8 (as Git and most editors do)."""
    if b"\0" in content[:BINARY_SNIFF_BYTES]:
        return True
    try:
        content.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def store_blobs(session: Session, contents: list[bytes]) -> dict[str, int]:
    """Blob ids by SHA-256 for these contents, inserting the ones not stored yet. Does not commit.

    Existing blobs are read `FOR SHARE`: garbage collection cannot delete them before this transaction
    ends. Two transactions inserting the same new content race on the unique SHA-256; the loser falls
    back to reading the winner's row.
    """
    by_sha = {sha256_hex(content): content for content in contents}
    ids = _existing_blob_ids(session, list(by_sha))
    missing = [sha for sha in by_sha if sha not in ids]
    if not missing:
        return ids
    rows = [
        {
            "sha256": sha,
            "git_sha": git_blob_sha(by_sha[sha]),
            "size": len(by_sha[sha]),
            "is_binary": looks_binary(by_sha[sha]),
            "content": by_sha[sha],
            "created_at": utcnow(),
        }
        for sha in missing
    ]
    try:
        with session.begin_nested():
            session.execute(insert(Blob), rows)
    except IntegrityError:
        for row in rows:  # another snapshot stored some of them first: insert one by one
            try:
                with session.begin_nested():
                    session.execute(insert(Blob), [row])
            except IntegrityError:
                log.info("blob %s stored concurrently; reusing it", row["sha256"][:12])
    ids.update(_existing_blob_ids(session, missing))
    return ids


def _existing_blob_ids(session: Session, shas: list[str]) -> dict[str, int]:
    ids: dict[str, int] = {}
    for start in range(0, len(shas), IN_CHUNK):
        chunk = shas[start : start + IN_CHUNK]
        rows = session.execute(
            select(Blob.sha256, Blob.id).where(Blob.sha256.in_(chunk)).with_for_update(read=True)
        )
        ids.update({sha: blob_id for sha, blob_id in rows})
    return ids


def read_blob_contents(session: Session, blob_ids: list[int]) -> dict[int, bytes]:
    """Contents by blob id, in chunked queries (a handful of queries whatever the file count)."""
    contents: dict[int, bytes] = {}
    unique = sorted(set(blob_ids))
    for start in range(0, len(unique), IN_CHUNK):
        rows = session.execute(select(Blob.id, Blob.content).where(Blob.id.in_(unique[start : start + IN_CHUNK])))
        contents.update({blob_id: bytes(content) for blob_id, content in rows})
    return contents


def collect_garbage_blobs(session: Session, candidate_ids: list[int] | None = None) -> int:
    """Delete blobs no snapshot file points at (among `candidate_ids`, or all); returns how many. Commits.

    Each candidate is locked `FOR UPDATE` before the reference check, so a snapshot that is reusing it
    (it holds the blob `FOR SHARE`) either finishes first, and the blob is then referenced and kept, or
    waits and stores the content again after this commits.
    """
    if candidate_ids is None:
        candidate_ids = unreferenced_blob_ids(session)
    removed = 0
    for start in range(0, len(candidate_ids), IN_CHUNK):
        chunk = candidate_ids[start : start + IN_CHUNK]
        locked = list(session.scalars(select(Blob.id).where(Blob.id.in_(chunk)).with_for_update()))
        if not locked:
            continue
        referenced = set(
            session.scalars(select(SnapshotFile.blob_id).where(SnapshotFile.blob_id.in_(locked)).distinct())
        )
        unused = [blob_id for blob_id in locked if blob_id not in referenced]
        if unused:
            removed += session.execute(delete(Blob).where(Blob.id.in_(unused))).rowcount or 0
        session.commit()
    if removed:
        log.info("collected %d unused blobs", removed)
    return removed


def unreferenced_blob_ids(session: Session) -> list[int]:
    """Blobs no snapshot file points at, by an anti-join on the `blob_id` index (not a scan of every id).

    Only candidates: `collect_garbage_blobs` re-checks each under its lock before deleting it.
    """
    referenced = select(SnapshotFile.id).where(SnapshotFile.blob_id == Blob.id)
    return list(session.scalars(select(Blob.id).where(~referenced.exists())))


def collect_all_garbage_blobs(session: Session) -> int:
    """The periodic job: every unreferenced blob, e.g. after a project delete that died midway."""
    return collect_garbage_blobs(session)


jobs.register_periodic("collect_garbage_blobs", "app.services.snapshots:collect_all_garbage_blobs", 3600)


# -- limits ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SnapshotLimits:
    """Per-snapshot limits, from `SNAPSHOT_MAX_FILES`, `SNAPSHOT_MAX_FILE_BYTES`, `SNAPSHOT_MAX_TOTAL_BYTES`."""

    max_files: int
    max_file_bytes: int
    max_total_bytes: int

    @classmethod
    def from_settings(cls, settings: Any) -> SnapshotLimits:
        return cls(settings.SNAPSHOT_MAX_FILES, settings.SNAPSHOT_MAX_FILE_BYTES, settings.SNAPSHOT_MAX_TOTAL_BYTES)

    def check(self, sizes: dict[str, int]) -> None:
        """Raise `TooLarge` with the numbers when a snapshot of these file sizes is over a limit."""
        if len(sizes) > self.max_files:
            raise TooLarge(
                f"This snapshot would have {len(sizes):,} files; the limit is {self.max_files:,}.",
                limit="files", maximum=self.max_files, actual=len(sizes),
            )
        for path, size in sizes.items():
            if size > self.max_file_bytes:
                raise TooLarge(
                    f"{path} is {size:,} bytes; a file may be at most {self.max_file_bytes:,} bytes.",
                    limit="file_bytes", maximum=self.max_file_bytes, actual=size, path=path,
                )
        total = sum(sizes.values())
        if total > self.max_total_bytes:
            raise TooLarge(
                f"This snapshot would hold {total:,} bytes; the limit is {self.max_total_bytes:,} bytes.",
                limit="total_bytes", maximum=self.max_total_bytes, actual=total,
            )


# -- reading snapshots -----------------------------------------------------------------------------

IN_CHUNK = 500

ORIGIN_REPLY = "reply"
ORIGIN_CARRIED = "carried"
ORIGIN_UPLOAD = "upload"
ORIGIN_RESTORED = "restored"


@dataclass(frozen=True)
class FileEntry:
    """One file of a snapshot, without its content."""

    path: str
    blob_id: int
    size: int
    sha256: str
    git_sha: str
    is_binary: bool
    origin: str


def get_project_for_user(session: Session, user_id: int, project_id: int) -> Project:
    """The user's project, or `NotFound` (also for someone else's: never say it exists)."""
    project = session.get(Project, project_id)
    if project is None or project.user_id != user_id:
        raise NotFound("There is no such project, or it is not yours.")
    return project


def get_snapshot(session: Session, user_id: int, snapshot_id: int, project_id: int | None = None) -> Snapshot:
    """The snapshot when its project is the user's (and is `project_id` when given), else `NotFound`."""
    row = session.execute(
        select(Snapshot)
        .join(Project, Project.id == Snapshot.project_id)
        .where(Snapshot.id == snapshot_id, Project.user_id == user_id)
    ).scalar_one_or_none()
    if row is None or (project_id is not None and row.project_id != project_id):
        raise NotFound("There is no such snapshot, or it is not yours.")
    return row


def latest_snapshot(session: Session, project_id: int) -> Snapshot | None:
    return session.execute(
        select(Snapshot).where(Snapshot.project_id == project_id).order_by(Snapshot.number.desc()).limit(1)
    ).scalar_one_or_none()


def list_snapshots(session: Session, project_id: int, *, limit: int | None = None) -> list[Snapshot]:
    """The project's snapshots, newest first."""
    query = select(Snapshot).where(Snapshot.project_id == project_id).order_by(Snapshot.number.desc())
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def list_snapshot_files(session: Session, snapshot_id: int) -> list[FileEntry]:
    """The snapshot's files sorted by path, in one query that reads no content."""
    rows = session.execute(
        select(
            SnapshotFile.path,
            SnapshotFile.blob_id,
            Blob.size,
            Blob.sha256,
            Blob.git_sha,
            Blob.is_binary,
            SnapshotFile.origin,
        )
        .join(Blob, Blob.id == SnapshotFile.blob_id)
        .where(SnapshotFile.snapshot_id == snapshot_id)
    )
    return sorted((FileEntry(*row) for row in rows), key=lambda entry: entry.path)


def read_snapshot_file(session: Session, snapshot_id: int, path: str) -> tuple[FileEntry, bytes]:
    """One file of a snapshot and its content, or `NotFound`. Two queries whatever the snapshot's size."""
    entry = next((e for e in list_snapshot_files(session, snapshot_id) if e.path == path), None)
    if entry is None:
        raise NotFound(f"This snapshot has no file {path!r}.")
    return entry, read_blob_contents(session, [entry.blob_id])[entry.blob_id]


# -- taking snapshots ------------------------------------------------------------------------------


@dataclass(frozen=True)
class IncomingFile:
    """A file to write into a snapshot, with the origin its row will record."""

    path: str
    content: bytes
    origin: str = ORIGIN_REPLY


@dataclass
class SnapshotResult:
    """A snapshot and what this call did: `created` is False when an identical one already existed."""

    snapshot: Snapshot
    created: bool = True
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    carried: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def from_this_source(self) -> list[str]:
        return sorted(self.added + self.changed + self.unchanged)


def _lock_project(session: Session, user_id: int, project_id: int) -> Project:
    project = session.execute(
        select(Project).where(Project.id == project_id, Project.user_id == user_id).with_for_update()
    ).scalar_one_or_none()
    if project is None:
        raise NotFound("There is no such project, or it is not yours.")
    return project


def refuse_unsafe_paths(paths: list[str]) -> None:
    """`InvalidRequest` naming each unsafe path and why, or nothing."""
    problems = {path: reason for path in paths if (reason := check_path(path)) is not None}
    if problems:
        listed = "; ".join(f"{path!r} {reason}" for path, reason in problems.items())
        raise InvalidRequest(f"Some paths cannot be stored: {listed}.", fields={"files": listed}, paths=problems)


def _write_snapshot(
    session: Session,
    project: Project,
    *,
    incoming: list[IncomingFile],
    deletions: list[str],
    carry_over: bool,
    limits: SnapshotLimits,
    summary: str,
    source_message_id: int | None = None,
    notes: dict[str, Any] | None = None,
) -> SnapshotResult:
    """Write the next snapshot of the locked `project`; the caller commits (or rolls back on error)."""
    refuse_unsafe_paths([f.path for f in incoming] + deletions)
    base = latest_snapshot(session, project.id)
    base_files = {e.path: e for e in list_snapshot_files(session, base.id)} if base and carry_over else {}
    result = SnapshotResult(snapshot=None)  # type: ignore[arg-type]

    # path -> (blob id or None for new content, size, origin, sha256)
    plan: dict[str, tuple[int | None, int, str, str]] = {
        path: (entry.blob_id, entry.size, ORIGIN_CARRIED, entry.sha256) for path, entry in base_files.items()
    }
    new_content: dict[str, bytes] = {}
    for item in incoming:
        sha = sha256_hex(item.content)
        previous = base_files.get(item.path)
        if previous is None:
            result.added.append(item.path)
        elif previous.sha256 == sha:
            result.unchanged.append(item.path)
        else:
            result.changed.append(item.path)
        plan[item.path] = (None, len(item.content), item.origin, sha)
        new_content[item.path] = item.content
    for path in deletions:
        if path in plan and path not in new_content:
            del plan[path]
            result.deleted.append(path)
        elif path not in new_content:
            result.warnings.append(f"{path} was to be deleted but is not in the previous snapshot.")
    if not plan:
        raise InvalidRequest("A snapshot needs at least one file; this one would be empty.")
    limits.check({path: size for path, (_, size, _, _) in plan.items()})

    blob_ids = store_blobs(session, list(new_content.values()))
    inherited_flags = set(base.flagged_paths or []) if base and carry_over else set()
    flagged = sorted(
        path
        for path, (_, _, origin, _) in plan.items()
        if (path in new_content and contains_secret(path, new_content[path]))
        or (origin == ORIGIN_CARRIED and path in inherited_flags)
    )
    number = (session.scalar(select(func.max(Snapshot.number)).where(Snapshot.project_id == project.id)) or 0) + 1
    result.carried = sum(1 for _, _, origin, _ in plan.values() if origin == ORIGIN_CARRIED)
    snapshot = Snapshot(
        project_id=project.id,
        number=number,
        summary=summary[:500],
        parent_id=base.id if base else None,
        source_message_id=source_message_id,
        file_count=len(plan),
        total_bytes=sum(size for _, size, _, _ in plan.values()),
        flagged_paths=flagged,
        notes={
            **(notes or {}),
            "added": sorted(result.added),
            "changed": sorted(result.changed),
            "unchanged": sorted(result.unchanged),
            "deleted": sorted(result.deleted),
            "carried": result.carried,
            "warnings": result.warnings,
        },
    )
    session.add(snapshot)
    session.flush()
    session.execute(
        insert(SnapshotFile),
        [
            {
                "snapshot_id": snapshot.id,
                "path": path,
                "blob_id": blob_id if blob_id is not None else blob_ids[sha],
                "origin": origin,
            }
            for path, (blob_id, _, origin, sha) in sorted(plan.items())
        ],
    )
    project.updated_at = utcnow()
    result.snapshot = snapshot
    return result


SNAPSHOT_WRITE_ATTEMPTS = 4


def _commit(session: Session, write: Any) -> SnapshotResult:
    """Run `write` and commit, retrying from the start when InnoDB picked it as a deadlock victim
    (two snapshots storing the same new blob can deadlock on the unique index; all was rolled back)."""
    for attempt in range(1, SNAPSHOT_WRITE_ATTEMPTS + 1):
        try:
            result = write()
            session.commit()
            break
        except Exception as exc:
            session.rollback()
            if attempt == SNAPSHOT_WRITE_ATTEMPTS or not is_lock_conflict(exc):
                raise
            log.info("snapshot write hit a lock conflict (attempt %s); retrying", attempt)
    log.info(
        "snapshot %s (#%s) of project %s: %d files, %d from this source, %d carried",
        result.snapshot.id, result.snapshot.number, result.snapshot.project_id,
        result.snapshot.file_count, len(result.from_this_source), result.carried,
    )
    return result


def find_message_for_user(session: Session, user_id: int, message_id: int) -> ChatMessage:
    """The user's assistant reply, or `NotFound` (also for someone else's message)."""
    message = session.get(ChatMessage, message_id)
    if message is None or message.user_id != user_id or message.role != ROLE_ASSISTANT:
        raise NotFound("There is no such reply, or it is not yours.")
    return message


def take_snapshot_from_message(
    session: Session, *, user_id: int, project_id: int, message_id: int, limits: SnapshotLimits
) -> SnapshotResult:
    """Snapshot the files of an assistant reply on top of the project's previous snapshot. Commits.

    Files the reply does not mention are carried over; files it marks deleted are removed. Idempotent for
    a double click: when the project's latest snapshot was already taken from this reply, that one is
    returned with `created=False`. A reply still being written is a `Conflict`; one with no files, or
    with unsafe paths, is an `InvalidRequest` naming them; over a limit, `TooLarge`.
    """
    message = find_message_for_user(session, user_id, message_id)
    if message.project_id is not None and message.project_id != project_id:
        raise InvalidRequest("This reply belongs to another project.", fields={"project_id": "not this reply's"})
    if message.status in (STATUS_PENDING, STATUS_STREAMING):
        raise Conflict("This reply is still being written; take the snapshot when it has finished.")
    parsed = parse_reply_files(message.content or "", reply_finished=message.status == STATUS_COMPLETE)
    if parsed.refused:
        listed = "; ".join(item.sentence() for item in parsed.refused)
        raise InvalidRequest(
            f"This reply has paths that cannot be stored: {listed}",
            fields={"message_id": listed},
            paths={item.path: item.reason for item in parsed.refused},
        )
    if not parsed.has_files:
        raise InvalidRequest(
            "This reply has no files to snapshot: files are code blocks that name a path, "
            "like ```python path=app/main.py.",
            fields={"message_id": "no files"},
        )

    def write() -> SnapshotResult:
        project = _lock_project(session, user_id, project_id)
        base = latest_snapshot(session, project.id)
        if base is not None and base.source_message_id == message.id:
            return SnapshotResult(
                snapshot=base,
                created=False,
                **{key: list(base.notes.get(key, [])) for key in ("added", "changed", "unchanged", "deleted")},
                carried=int(base.notes.get("carried", 0)),
                warnings=list(base.notes.get("warnings", [])),
            )
        written = parsed.written
        names = ", ".join(f.path for f in written[:3]) + (f" and {len(written) - 3} more" if len(written) > 3 else "")
        summary = f"From reply #{message.id}: {names}" if written else f"From reply #{message.id}: deletions"
        result = _write_snapshot(
            session,
            project,
            incoming=[IncomingFile(f.path, f.content.encode("utf-8"), ORIGIN_REPLY) for f in written],
            deletions=parsed.deleted_paths,
            carry_over=True,
            limits=limits,
            summary=summary,
            source_message_id=message.id,
            notes={"parser_warnings": parsed.warnings},
        )
        result.warnings = parsed.warnings + result.warnings
        return result

    result = _commit(session, write)
    return result


def take_snapshot_from_files(
    session: Session,
    *,
    user_id: int,
    project_id: int,
    files: list[IncomingFile],
    limits: SnapshotLimits,
    summary: str = "",
    deletions: list[str] | None = None,
    carry_over: bool = False,
) -> SnapshotResult:
    """Snapshot an uploaded file list. Commits.

    By default the list is the whole snapshot (an upload replaces the project's files); with
    `carry_over=True` it builds on the previous snapshot like a reply, and `deletions` removes paths.
    The same path twice is refused; so are unsafe paths and anything over a limit.
    """
    seen: set[str] = set()
    duplicates = sorted({f.path for f in files if f.path in seen or seen.add(f.path)})
    if duplicates:
        raise InvalidRequest(
            f"Each path may appear once; repeated: {', '.join(duplicates)}.", fields={"files": "repeated paths"}
        )
    if not files and not (carry_over and deletions):
        raise InvalidRequest("Send at least one file.", fields={"files": "empty"})

    def write() -> SnapshotResult:
        project = _lock_project(session, user_id, project_id)
        return _write_snapshot(
            session,
            project,
            incoming=files,
            deletions=deletions or [],
            carry_over=carry_over,
            limits=limits,
            summary=summary or f"Uploaded {len(files)} file{'s' if len(files) != 1 else ''}",
        )

    return _commit(session, write)


def restore_snapshot(session: Session, *, user_id: int, snapshot_id: int, limits: SnapshotLimits) -> SnapshotResult:
    """A new latest snapshot of the project holding exactly the files of `snapshot_id`. Commits.

    No content is copied: the new rows point at the same blobs.
    """
    old = get_snapshot(session, user_id, snapshot_id)

    def write() -> SnapshotResult:
        project = _lock_project(session, user_id, old.project_id)
        entries = list_snapshot_files(session, old.id)
        limits.check({e.path: e.size for e in entries})
        number = (session.scalar(select(func.max(Snapshot.number)).where(Snapshot.project_id == project.id)) or 0) + 1
        base = latest_snapshot(session, project.id)
        snapshot = Snapshot(
            project_id=project.id,
            number=number,
            summary=f"Restored snapshot #{old.number}",
            parent_id=base.id if base else None,
            file_count=len(entries),
            total_bytes=sum(e.size for e in entries),
            flagged_paths=list(old.flagged_paths or []),
            notes={"restored_from": old.id, "restored_from_number": old.number},
        )
        session.add(snapshot)
        session.flush()
        if entries:
            # Hold the blobs for this transaction, as store_blobs does, so GC cannot race the insert.
            _existing_blob_ids(session, [e.sha256 for e in entries])
            session.execute(
                insert(SnapshotFile),
                [
                    {"snapshot_id": snapshot.id, "path": e.path, "blob_id": e.blob_id, "origin": ORIGIN_RESTORED}
                    for e in entries
                ],
            )
        project.updated_at = utcnow()
        return SnapshotResult(snapshot=snapshot, unchanged=[e.path for e in entries])

    return _commit(session, write)


# -- diff ------------------------------------------------------------------------------------------

DIFF_CONTEXT_LINES = 3
# difflib is quadratic on pathological input: past this many lines a side, only sizes are compared.
DIFF_MAX_LINES = 20_000


@dataclass(frozen=True)
class DiffRow:
    """One row of a side-by-side view; an inline view reads `old_*` as "-" lines and `new_*` as "+"."""

    kind: str  # "context", "remove", "add" or "change"
    old_no: int | None
    old_text: str | None
    new_no: int | None
    new_text: str | None


@dataclass(frozen=True)
class DiffHunk:
    header: str
    rows: list[DiffRow]

    def inline(self) -> list[tuple[str, int | None, int | None, str]]:
        """(kind, old line number, new line number, text): a changed block's removals before its additions."""
        lines: list[tuple[str, int | None, int | None, str]] = []
        pending_adds: list[tuple[str, int | None, int | None, str]] = []
        for row in self.rows:
            if row.kind == "context":
                lines.extend(pending_adds)
                pending_adds = []
                lines.append(("context", row.old_no, row.new_no, row.old_text or ""))
                continue
            if row.old_text is not None:
                lines.append(("remove", row.old_no, None, row.old_text))
            if row.new_text is not None:
                pending_adds.append(("add", None, row.new_no, row.new_text))
        return lines + pending_adds


@dataclass(frozen=True)
class FileDiff:
    path: str
    status: str  # "added", "removed" or "changed"
    old_size: int | None
    new_size: int | None
    is_binary: bool = False
    too_large: bool = False
    hunks: list[DiffHunk] = field(default_factory=list)
    redacted: bool = False

    @property
    def unified_diff(self) -> str:
        if self.is_binary:
            return f"Binary files a/{self.path} and b/{self.path} differ\n"
        if self.too_large:
            return f"Files a/{self.path} and b/{self.path} are too large to compare line by line\n"
        out = [f"--- a/{self.path}", f"+++ b/{self.path}"]
        for hunk in self.hunks:
            out.append(hunk.header)
            for kind, _, _, text in hunk.inline():
                out.append({"context": " ", "remove": "-", "add": "+"}[kind] + text)
        return "\n".join(out) + "\n"

    @property
    def additions(self) -> int:
        return sum(1 for h in self.hunks for kind, *_ in h.inline() if kind == "add")

    @property
    def deletions(self) -> int:
        return sum(1 for h in self.hunks for kind, *_ in h.inline() if kind == "remove")


@dataclass(frozen=True)
class SnapshotDiff:
    base: Snapshot | None
    target: Snapshot
    added: list[FileEntry]
    removed: list[FileEntry]
    changed: list[FileDiff]
    unchanged_count: int


def _range(start: int, stop: int) -> str:
    """difflib's unified range notation."""
    length = stop - start
    first = start + 1
    if length == 1:
        return str(first)
    if not length:
        first -= 1
    return f"{first},{length}"


def diff_lines(old: list[str], new: list[str], context: int = DIFF_CONTEXT_LINES) -> list[DiffHunk]:
    """Hunks of a line diff, as rows a page can show inline or side by side."""
    hunks = []
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    for group in matcher.get_grouped_opcodes(context):
        header = f"@@ -{_range(group[0][1], group[-1][2])} +{_range(group[0][3], group[-1][4])} @@"
        rows: list[DiffRow] = []
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                rows.extend(DiffRow("context", i1 + k + 1, old[i1 + k], j1 + k + 1, new[j1 + k]) for k in range(i2 - i1))
                continue
            for k in range(max(i2 - i1, j2 - j1)):
                old_no = i1 + k + 1 if i1 + k < i2 else None
                new_no = j1 + k + 1 if j1 + k < j2 else None
                kind = "change" if old_no and new_no else ("remove" if old_no else "add")
                rows.append(
                    DiffRow(kind, old_no, old[i1 + k] if old_no else None, new_no, new[j1 + k] if new_no else None)
                )
        hunks.append(DiffHunk(header, rows))
    return hunks


def _text_lines(path: str, content: bytes) -> tuple[list[str], bool]:
    redaction = redact_secrets(path, content.decode("utf-8", errors="replace"))
    return redaction.text.splitlines(), redaction.count > 0


def diff_file(path: str, old: bytes, new: bytes) -> FileDiff:
    """The diff of one changed file, with secrets redacted on both sides first."""
    if looks_binary(old) or looks_binary(new):
        return FileDiff(path, "changed", len(old), len(new), is_binary=True)
    old_lines, old_redacted = _text_lines(path, old)
    new_lines, new_redacted = _text_lines(path, new)
    if max(len(old_lines), len(new_lines)) > DIFF_MAX_LINES:
        return FileDiff(path, "changed", len(old), len(new), too_large=True)
    hunks = diff_lines(old_lines, new_lines)
    if not hunks:  # only the final newline differs
        hunks = [DiffHunk("@@ end of file @@", [DiffRow("context", None, "(the last line's newline changed)", None,
                                                         "(the last line's newline changed)")])]
    return FileDiff(path, "changed", len(old), len(new), hunks=hunks, redacted=old_redacted or new_redacted)


def previous_snapshot(session: Session, snapshot: Snapshot) -> Snapshot | None:
    return session.execute(
        select(Snapshot)
        .where(Snapshot.project_id == snapshot.project_id, Snapshot.number < snapshot.number)
        .order_by(Snapshot.number.desc())
        .limit(1)
    ).scalar_one_or_none()


def diff_snapshots(session: Session, *, user_id: int, snapshot_id: int, against_id: int | None = None) -> SnapshotDiff:
    """What changed from `against_id` (default: the previous snapshot) to `snapshot_id`.

    Both must belong to the same project of the user (else `NotFound`). Without a previous snapshot,
    every file is added. Contents are read only for changed files, in chunked queries.
    """
    target = get_snapshot(session, user_id, snapshot_id)
    if against_id is None:
        base = previous_snapshot(session, target)
    else:
        base = get_snapshot(session, user_id, against_id, project_id=target.project_id)
    new_files = {e.path: e for e in list_snapshot_files(session, target.id)}
    old_files = {e.path: e for e in list_snapshot_files(session, base.id)} if base else {}
    added = [e for path, e in new_files.items() if path not in old_files]
    removed = [e for path, e in old_files.items() if path not in new_files]
    changed_paths = [p for p, e in new_files.items() if p in old_files and old_files[p].sha256 != e.sha256]
    contents = read_blob_contents(
        session, [old_files[p].blob_id for p in changed_paths] + [new_files[p].blob_id for p in changed_paths]
    )
    changed = [
        diff_file(p, contents[old_files[p].blob_id], contents[new_files[p].blob_id]) for p in changed_paths
    ]
    unchanged = len(new_files) - len(added) - len(changed)
    return SnapshotDiff(base=base, target=target, added=added, removed=removed, changed=changed,
                        unchanged_count=unchanged)


# -- preview ---------------------------------------------------------------------------------------

PREVIEW_MAX_BYTES = 200_000
PREVIEW_MAX_LINES = 5_000
SNIPPET_MAX_LINES = 40
SNIPPET_MAX_CHARS = 4_000


@dataclass(frozen=True)
class PreviewText:
    """A file's text as a preview shows it: redacted, and truncated with a note for large files."""

    text: str
    truncated: bool
    total_lines: int
    shown_lines: int
    redactions: int
    redacted_kinds: tuple[str, ...]


def preview_text(path: str, content: bytes, *, max_bytes: int = PREVIEW_MAX_BYTES,
                 max_lines: int = PREVIEW_MAX_LINES) -> PreviewText:
    """The redacted, possibly truncated text of a (non-binary) file for display."""
    text = content.decode("utf-8", errors="replace")
    total_lines = text.count("\n") + (0 if text.endswith("\n") or not text else 1)
    truncated = False
    if len(content) > max_bytes:
        text = content[:max_bytes].decode("utf-8", errors="ignore")
        text = text[: text.rfind("\n") + 1] or text
        truncated = True
    lines = text.splitlines(keepends=True)
    if len(lines) > max_lines:
        text = "".join(lines[:max_lines])
        truncated = True
    redaction = redact_secrets(path, text)
    shown = redaction.text.count("\n") + (0 if redaction.text.endswith("\n") or not redaction.text else 1)
    return PreviewText(redaction.text, truncated, total_lines, shown, redaction.count, redaction.kinds)


def language_for_path(path: str) -> str:
    """The language Pygments recognises from the file name, or "Text"."""
    lexer = lexer_class_for_path(path)
    return lexer.name if lexer is not None else "Text"


@functools.lru_cache(maxsize=512)
def _lexer_for_name(name: str) -> Any:
    from pygments.lexers import find_lexer_class_for_filename

    try:
        return find_lexer_class_for_filename(name)
    except Exception:  # noqa: BLE001 - a broken third-party lexer plugin must not break previews
        return None


def lexer_class_for_path(path: str) -> Any:
    name = path.rsplit("/", 1)[-1]
    stem, dot, ext = name.rpartition(".")
    # Cache by extension for ordinary names ("x.py"), by whole name for special ones ("Dockerfile").
    return _lexer_for_name(f"file.{ext}" if dot and stem else name)


def api_preview(session: Session, snapshot: Snapshot) -> list[dict[str, Any]]:
    """The contract's preview entries: path, size, language, a redacted snippet, and whether it was
    redacted. Contents are read in chunked queries, a snippet's worth decoded per file."""
    entries = list_snapshot_files(session, snapshot.id)
    out = []
    for start in range(0, len(entries), 100):
        chunk = entries[start : start + 100]
        contents = read_blob_contents(session, [e.blob_id for e in chunk])
        for entry in chunk:
            item: dict[str, Any] = {"path": entry.path, "size": entry.size, "language": language_for_path(entry.path),
                                    "binary": entry.is_binary, "sha256": entry.sha256, "origin": entry.origin}
            if entry.is_binary:
                item.update(snippet=None, redacted=False)
            else:
                preview = preview_text(entry.path, contents[entry.blob_id][: SNIPPET_MAX_CHARS * 4],
                                       max_bytes=SNIPPET_MAX_CHARS, max_lines=SNIPPET_MAX_LINES)
                item.update(snippet=preview.text, redacted=preview.redactions > 0)
            out.append(item)
    return out


# -- zip -------------------------------------------------------------------------------------------

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


def stream_snapshot_zip(session: Session, snapshot: Snapshot, folder: str) -> Iterator[bytes]:
    """The snapshot as a zip, in chunks: files sorted by path under `folder/`, fixed timestamps and
    modes, so the same snapshot always gives the same bytes. Memory holds at most a few files at once.

    Every entry name is checked again (`check_path`): a row that could escape the extraction folder
    is left out and logged, never written.
    """
    entries = list_snapshot_files(session, snapshot.id)
    sink = _ChunkSink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for start in range(0, len(entries), ZIP_READ_CHUNK_FILES):
            chunk = entries[start : start + ZIP_READ_CHUNK_FILES]
            contents = read_blob_contents(session, [e.blob_id for e in chunk])
            for entry in chunk:
                if check_path(entry.path) is not None:
                    log.error("snapshot %s holds unsafe path %r; left out of the zip", snapshot.id, entry.path)
                    continue
                info = zipfile.ZipInfo(f"{folder}/{entry.path}", date_time=ZIP_EPOCH)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.create_system = 3  # Unix, so the mode below is honoured
                info.external_attr = ZIP_FILE_MODE << 16
                archive.writestr(info, contents[entry.blob_id])
                yield sink.drain()
    yield sink.drain()
