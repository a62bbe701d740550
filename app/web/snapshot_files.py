"""One file of a version, as the Files tab and the snapshot page show it, and as its *Raw* address serves it.

- `opening_file`: the file a version opens on: what its reply changed (then added, then wrote), never
  README first when the reply touched something else.
- `file_view`: read one file and prepare it for display: redacted, truncated, highlighted; a Markdown file
  also rendered (the reply renderer's Markdown and nh3 allow-list, `app.web.reply_markdown`) unless its
  source is asked for.
- `raw_file_response`: the file as `text/plain` (redacted like every view: the zip holds the real bytes),
  tagged by its blob so a second visit is a 304 that reads nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from urllib.parse import quote

from flask import Response, url_for
from flask_login import current_user
from markupsafe import Markup

from app.extensions import db
from app.models import Snapshot
from app.runtime.view_cache import cached_view
from app.services import snapshots as snapshot_service
from app.services.snapshots import FileEntry
from app.web.reply_markdown import render_reply_html
from app.web.snapshot_preview import preview_token

HTML_EXTENSIONS = (".html", ".htm")
MARKDOWN_EXTENSIONS = (".md", ".markdown")

# A file of a version never changes; the browser keeps it and asks again with its tag.
FILE_VIEW_CACHE_CONTROL = "private, no-cache"
PREVIEW_FILE_CACHE_CONTROL = "private, max-age=300"


def default_file(entries: list[FileEntry]) -> FileEntry | None:
    by_path = {e.path: e for e in entries}
    for candidate in ("README.md", "readme.md", "README", "index.html"):
        if candidate in by_path:
            return by_path[candidate]
    return entries[0] if entries else None


def changed_paths(snap: Snapshot) -> list[str]:
    """What the version's reply (or upload) changed, then what it added, from its notes."""
    notes = snap.notes or {}
    return sorted(notes.get("changed", [])) + sorted(notes.get("added", []))


def opening_file(entries: list[FileEntry], snap: Snapshot) -> FileEntry | None:
    """The file a version opens on: what its reply changed (a changed file before an added one), else a
    file the reply wrote, else README or the first file."""
    by_path = {e.path: e for e in entries}
    touched = [p for p in changed_paths(snap) if p in by_path]
    if touched:
        return by_path[touched[0]]
    written = [e for e in entries if e.origin == "reply"]
    return written[0] if written else default_file(entries)


def is_markdown(entry: FileEntry) -> bool:
    return entry.path.lower().endswith(MARKDOWN_EXTENSIONS) and not entry.is_binary


@dataclass
class FileView:
    entry: FileEntry
    highlighted: Markup | None
    preview: snapshot_service.PreviewText | None
    language: str
    is_html: bool
    rendered_url: str | None
    markdown: Markup | None = None  # a Markdown file rendered (sanitised); None for its source or other files

    @property
    def is_markdown(self) -> bool:
        return is_markdown(self.entry)


def file_view(snapshot: Snapshot, entry: FileEntry, *, rendered: bool, source: bool = False) -> FileView:
    """Read one file (one query) and prepare it for display: redacted, truncated, highlighted. `rendered`:
    an HTML file as a page (in a sandboxed frame); a Markdown file is rendered unless `source`."""
    is_html = entry.path.lower().endswith(HTML_EXTENSIONS) and not entry.is_binary
    language = snapshot_service.language_for_path(entry.path)
    if entry.is_binary:
        return FileView(entry, None, None, language, False, None)
    if rendered and is_html:
        url = url_for("projects.rendered_file", token=preview_token(snapshot, current_user.id), path=entry.path)
        return FileView(entry, None, None, language, True, url)
    cached = cached_view(f"file:v1:{entry.sha256}:{_path_key(entry)}", lambda: _render_file(entry))
    text, truncated, total_lines, shown_lines, redactions, kinds = cached["preview"]
    preview = snapshot_service.PreviewText(text, truncated, total_lines, shown_lines, redactions, tuple(kinds))
    markdown = None
    if is_markdown(entry) and not source:
        # The redacted text, so a secret hidden in the source view stays hidden here too.
        markdown = render_reply_html(preview.text, id_prefix=f"md-{entry.sha256[:12]}")
    return FileView(entry, Markup(cached["html"]), preview, language, is_html, None, markdown)


def _path_key(entry: FileEntry) -> str:
    return hashlib.sha256(entry.path.encode()).hexdigest()[:32]


def _render_file(entry: FileEntry) -> dict:
    """A blob's view (redacted by path, highlighted): kept by content hash and path, since a blob never changes."""
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import TextLexer

    content = snapshot_service.read_blob_contents(db.session, [entry.blob_id])[entry.blob_id]
    preview = snapshot_service.preview_text(entry.path, content)
    lexer_class = snapshot_service.lexer_class_for_path(entry.path) or TextLexer
    formatter = HtmlFormatter(cssclass="highlight", linenos="table", wrapcode=True)
    html = highlight(preview.text, lexer_class(stripnl=False, ensurenl=False), formatter)
    return {"html": html, "preview": [preview.text, preview.truncated, preview.total_lines, preview.shown_lines,
                                      preview.redactions, list(preview.redacted_kinds)]}


def file_view_etag(snap: Snapshot, entry: FileEntry, *, source: bool) -> str:
    """One file view of an immutable version: the version, the blob, and (for Markdown) which view."""
    mode = ("-src" if source else "-md") if is_markdown(entry) else ""
    return f"fv-{snap.id}-{entry.sha256[:32]}{mode}"


def raw_etag(entry: FileEntry) -> str:
    """The same bytes at the same path (redaction depends on the path): the same raw answer."""
    return f"r-{entry.sha256[:40]}-{_path_key(entry)[:8]}"


def raw_file_response(entry: FileEntry) -> Response:
    """The file as plain text (never rendered or sniffed by the browser); a binary file as a download."""
    content = snapshot_service.read_blob_contents(db.session, [entry.blob_id])[entry.blob_id]
    if entry.is_binary:
        response = Response(content, mimetype="application/octet-stream")
        name = quote(entry.path.rsplit("/", 1)[-1])
        response.headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{name}"
    else:
        text = snapshot_service.redact_secrets(entry.path, content.decode("utf-8", errors="replace")).text
        response = Response(text, headers={"Content-Type": "text/plain; charset=utf-8"})
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = FILE_VIEW_CACHE_CONTROL
    response.set_etag(raw_etag(entry))
    return response
