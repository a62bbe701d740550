"""Preview links: how a snapshot's HTML is shown, with its CSS, scripts and images, in a sandboxed iframe.

The frame has an opaque origin, so the requests its page makes (style.css, app.js) carry no cookie: a
preview link authorises itself with a signed token in its path (`/snapshot-preview/<token>/<path>`), and
relative links between the snapshot's files keep working. The token is a bearer credential, so:

- it lives `PREVIEW_TOKEN_TTL_S` (10 minutes). The snapshot page signs a fresh one each time it renders
  the preview (page load, or the Rendered tab); a link older than that answers 404 with a sentence
  that says to reload the snapshot page;
- it names the snapshot and the viewer (their user id). It opens only that snapshot, only while that
  user exists, is enabled and still owns it: deleting the account or disabling it kills every link at
  once. A request that carries a session (the frame's own document is loaded with the page's cookies;
  a person pasting the link into their browser too) must be the same user's. Sessions are signed
  cookies with no server-side record, so there is no per-user value that signing out could rotate:
  after sign-out a link dies with its 10 minutes;
- it never reaches the logs: the route is marked `path_carries_credential`, so the request log and
  error log write its route (`/snapshot-preview/<token>/<path:path>`), not its path; and its pages
  send `Referrer-Policy: no-referrer`.
"""

from __future__ import annotations

import functools
import mimetypes
import re
from pathlib import Path, PurePosixPath

from flask import Response, current_app, url_for
from flask_login import current_user
from itsdangerous import BadSignature, URLSafeTimedSerializer
from markupsafe import escape
from sqlalchemy.orm import Session

from app.errors import NotFound
from app.models import Snapshot
from app.services import access, accounts
from app.services import snapshots as snapshot_service
from app.services.snapshots import FileEntry

PREVIEW_TOKEN_SALT = "sorya.snapshot-preview"
PREVIEW_TOKEN_TTL_S = 10 * 60
EXPIRED_SENTENCE = "This preview link has expired or is not yours; reload the snapshot page."
# Types a sandboxed page needs right: under `nosniff` a browser refuses a script, module, stylesheet or
# font sent with another type, and `mimetypes` answers from the host's /etc/mime.types, which varies.
PREVIEW_MIME_TYPES = {
    ".html": "text/html",
    ".htm": "text/html",
    ".css": "text/css",
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".json": "application/json",
    ".map": "application/json",
    ".webmanifest": "application/manifest+json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".woff": "font/woff",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
    ".wasm": "application/wasm",
    ".txt": "text/plain",
    ".md": "text/markdown",
    ".xml": "application/xml",
}


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key, salt=PREVIEW_TOKEN_SALT)


def preview_token(snapshot: Snapshot, user_id: int) -> str:
    """A token that opens `snapshot`'s files for `user_id` for `PREVIEW_TOKEN_TTL_S`."""
    return _serializer().dumps({"s": snapshot.id, "u": user_id})


def snapshot_for_token(session: Session, token: str) -> Snapshot:
    """The snapshot a preview token opens, or `NotFound` when the token is forged or expired, its user is
    gone or disabled or no longer owns the snapshot, or the request's signed-in user is someone else."""
    try:
        claims = _serializer().loads(token, max_age=PREVIEW_TOKEN_TTL_S)
        user_id, snapshot_id = int(claims["u"]), int(claims["s"])
    except (BadSignature, KeyError, TypeError, ValueError):
        raise NotFound(EXPIRED_SENTENCE) from None
    if current_user.is_authenticated and current_user.id != user_id:
        raise NotFound(EXPIRED_SENTENCE)
    user = accounts.get_user(session, user_id)
    if user is None or not user.is_active:
        raise NotFound(EXPIRED_SENTENCE)
    return access.owned_snapshot(session, user_id=user_id, snapshot_id=snapshot_id)


def preview_mimetype(entry: FileEntry) -> str:
    known = PREVIEW_MIME_TYPES.get(PurePosixPath(entry.path).suffix.lower())
    guessed = known or mimetypes.guess_type(entry.path)[0]
    return guessed or ("application/octet-stream" if entry.is_binary else "text/plain")


def preview_file_response(entry: FileEntry, content: bytes) -> Response:
    """One file of the previewed page: text redacted like every preview, with its type, and loadable by
    the frame's opaque origin (`Cross-Origin-Resource-Policy: cross-origin`: with `same-origin` the
    browser blocks the page's own CSS and scripts, since the frame's origin is not this site's)."""
    mimetype = preview_mimetype(entry)
    if not entry.is_binary:
        content = snapshot_service.redact_secrets(entry.path, content.decode("utf-8", errors="replace")).text.encode()
        mimetype += "; charset=utf-8"
    response = Response(content, headers={"Content-Type": mimetype})
    response.headers["Cache-Control"] = "private, max-age=300"
    response.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


# -- a version as a site ---------------------------------------------------------------------------------
# Every HTML page the preview serves gets, first thing in its <head>, a script of Sorya's served under the
# same preview path (so the CSP's 'self' allows it): it forwards the page's errors to the workspace.

CONSOLE_SCRIPT_PATH = "__sorya__/console.js"
_CONSOLE_SCRIPT_FILE = Path(__file__).resolve().parents[2] / "static" / "js" / "preview-console.js"
_HEAD_OPEN = re.compile(rb"<head(?:\s[^>]*)?>", re.IGNORECASE)
_HTML_OPEN = re.compile(rb"<html(?:\s[^>]*)?>", re.IGNORECASE)
_DOCTYPE = re.compile(rb"^\s*(?:<!--.*?-->\s*)*<!doctype[^>]*>", re.IGNORECASE | re.DOTALL)


@functools.cache
def console_script() -> bytes:
    return _CONSOLE_SCRIPT_FILE.read_bytes()


def console_script_tag(token: str, parent_origin: str) -> bytes:
    src = url_for("projects.rendered_file", token=token, path=CONSOLE_SCRIPT_PATH)
    return (f'<script src="{escape(src)}" data-parent-origin="{escape(parent_origin)}"></script>').encode()


def inject_console_script(html: bytes, tag: bytes) -> bytes:
    """`html` with `tag` first in its <head> (after <html> or the doctype when it has no <head>), ahead of
    every script of the page's own; never before the doctype (that would put the page in quirks mode)."""
    for pattern in (_HEAD_OPEN, _HTML_OPEN, _DOCTYPE):
        found = pattern.search(html)
        if found is not None:
            return html[:found.end()] + tag + html[found.end():]
    return tag + html


def console_script_response() -> Response:
    response = Response(console_script(), headers={"Content-Type": "text/javascript; charset=utf-8"})
    response.headers["Cache-Control"] = "private, max-age=300"
    response.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def site_file_response(entry: FileEntry, content: bytes, *, token: str, parent_origin: str) -> Response:
    """A version's file served as part of its site: like `preview_file_response`, and an HTML page gets the
    console script first in its <head>."""
    response = preview_file_response(entry, content)
    if response.mimetype == "text/html":
        response.set_data(inject_console_script(response.get_data(), console_script_tag(token, parent_origin)))
    return response


def preview_url(snapshot: Snapshot, user_id: int, path: str) -> str:
    """A fresh preview address of `path` in `snapshot` for `user_id` (lives `PREVIEW_TOKEN_TTL_S`)."""
    return url_for("projects.rendered_file", token=preview_token(snapshot, user_id), path=path)
