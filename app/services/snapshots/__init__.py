"""Snapshots: what files a reply contains, and immutable file sets over content-addressed blobs.

A snapshot is a numbered, immutable set of files of one project. Its file list is a tree of directory
manifests (`snapshot_trees`, see `trees`) naming `blobs`, one row per distinct content (SHA-256), stored
once however many snapshots or projects share it; a version writes only the manifests it changed.

One concern per module; callers import from this package:

- `reply_files`: the reply parser (`parse_reply_files`) and the path rules (`check_path`), with the
  specification of what counts as a file;
- `secrets`: redaction of keys and tokens in previews and diffs;
- `blobs`: hashing, storing and reading contents, and garbage collection of unused blobs;
- `trees`: a version's files as content-addressed directory manifests, and which blobs a project holds;
- `reading`: access to projects and snapshots, and a snapshot's file list;
- `quota`: the per-user storage quota over distinct contents;
- `store`: the limits, and taking and restoring snapshots (one transaction each, under the project lock);
- `diff`, `preview`, `archive`: how a snapshot is compared, shown and downloaded.
"""

from app.services.snapshots.archive import (
    ZIP_READ_CHUNK_FILES,
    archive_folder_name,
    stream_snapshot_zip,
    stream_zip,
)
from app.services.snapshots.blobs import (
    collect_all_garbage_blobs,
    collect_garbage_blobs,
    git_blob_sha,
    looks_binary,
    read_blob_contents,
    sha256_hex,
    store_blobs,
    unreferenced_blob_ids,
)
from app.services.snapshots.diff import (
    DiffHunk,
    DiffRow,
    FileDiff,
    SnapshotDiff,
    diff_file,
    diff_lines,
    diff_snapshots,
    previous_snapshot,
)
from app.services.snapshots.preview import (
    PreviewText,
    api_preview,
    language_for_path,
    lexer_class_for_path,
    preview_text,
)
from app.services.snapshots.quota import StorageUsage, readable_bytes, storage_usage, storage_used_bytes
from app.services.snapshots.reading import (
    ORIGIN_CARRIED,
    ORIGIN_REPLY,
    ORIGIN_RESTORED,
    ORIGIN_UPLOAD,
    FileEntry,
    latest_snapshot,
    list_snapshot_files,
    list_snapshots,
    read_snapshot_file,
    snapshot_blob_ids,
    snapshot_file_entry,
)
from app.services.snapshots.reply_files import (
    ParsedFiles,
    RefusedPath,
    ReplyFile,
    check_path,
    clean_path,
    parse_reply_files,
)
from app.services.snapshots.secrets import Redaction, contains_secret, is_env_file, redact_secrets
from app.services.snapshots.store import (
    IncomingFile,
    SnapshotLimits,
    SnapshotResult,
    refuse_unsafe_paths,
    restore_snapshot,
    take_snapshot_from_files,
    take_snapshot_from_message,
)

__all__ = [
    "ORIGIN_CARRIED", "ORIGIN_REPLY", "ORIGIN_RESTORED", "ORIGIN_UPLOAD",
    "DiffHunk", "DiffRow", "FileDiff", "FileEntry", "IncomingFile", "ParsedFiles", "PreviewText", "Redaction",
    "RefusedPath", "ReplyFile", "SnapshotDiff", "SnapshotLimits", "SnapshotResult",
    "api_preview", "archive_folder_name", "check_path", "clean_path", "collect_all_garbage_blobs",
    "collect_garbage_blobs", "contains_secret", "diff_file", "diff_lines", "diff_snapshots",
    "git_blob_sha", "is_env_file",
    "language_for_path", "latest_snapshot", "lexer_class_for_path", "list_snapshot_files", "list_snapshots",
    "looks_binary", "parse_reply_files", "preview_text", "previous_snapshot", "read_blob_contents",
    "read_snapshot_file", "snapshot_blob_ids", "snapshot_file_entry", "redact_secrets", "refuse_unsafe_paths", "restore_snapshot", "sha256_hex",
    "store_blobs", "stream_snapshot_zip", "stream_zip", "ZIP_READ_CHUNK_FILES", "take_snapshot_from_files", "take_snapshot_from_message",
    "unreferenced_blob_ids", "StorageUsage", "readable_bytes", "storage_usage", "storage_used_bytes",
]
