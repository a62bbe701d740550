"""Previews: a file's text as a page or the API shows it (redacted, truncated) and its language."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from app.models import Snapshot
from app.services.snapshots.blobs import read_blob_contents
from app.services.snapshots.reading import list_snapshot_files
from app.services.snapshots.secrets import redact_secrets

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

