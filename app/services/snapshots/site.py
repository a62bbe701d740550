"""A version as a site: which page a preview opens, whether a browser can run it at all, and the project's
preview setting (may its pages load from https: CDNs).

Pure rules over paths, except `set_preview_allow_cdn`. How the files are served (tokens, headers, the
injected console script) is app/web/snapshot_preview.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from sqlalchemy.orm import Session

from app.models import Project
from app.models.base import utcnow
from app.services import access

SITE_STATIC = "static"
SITE_NOT_RUNNABLE = "not_runnable"
HTML_SUFFIXES = (".html", ".htm")

# What a version without a page is, by the files that say so (first match wins), for the sentence the
# Preview tab shows instead of a broken page.
_KINDS = (
    (("manage.py", "app.py", "wsgi.py", "main.py", "requirements.txt", "pyproject.toml"), ".py", "a Python app"),
    (("package.json",), ".js", "a Node.js project"),
    (("go.mod",), ".go", "a Go program"),
    (("Cargo.toml",), ".rs", "a Rust program"),
)


def _is_html(path: str) -> bool:
    return path.lower().endswith(HTML_SUFFIXES)


def _depth_then_path(path: str) -> tuple[int, str]:
    return path.count("/"), path


def preview_entry_path(files: list[str], touched_paths: list[str] | tuple[str, ...] = ()) -> str | None:
    """The page a preview of these files opens: `index.html`, else the only HTML file, else the HTML file
    the version's reply touched, else the shallowest `index.html` (a site in `public/`, `site/`…), else the
    shallowest HTML file; None when there is no HTML at all (nothing a browser can run)."""
    pages = sorted((p for p in files if _is_html(p)), key=_depth_then_path)
    if not pages:
        return None
    if "index.html" in pages:
        return "index.html"
    if len(pages) == 1:
        return pages[0]
    touched = [p for p in pages if p in set(touched_paths)]
    if touched:
        return touched[0]
    indexes = [p for p in pages if PurePosixPath(p).name.lower() in ("index.html", "index.htm")]
    return (indexes or pages)[0]


@dataclass(frozen=True)
class SitePlan:
    """What the Preview tab does with a version: open `entry` (a static site) or say `message`."""

    entry: str | None
    site_kind: str
    message: str | None


def site_plan(files: list[str], touched_paths: list[str] | tuple[str, ...] = ()) -> SitePlan:
    entry = preview_entry_path(files, touched_paths)
    if entry is not None:
        return SitePlan(entry, SITE_STATIC, None)
    if not files:
        return SitePlan(None, SITE_NOT_RUNNABLE, "This version has no files yet.")
    names = {PurePosixPath(p).name for p in files}
    suffixes = {PurePosixPath(p).suffix for p in files}
    for markers, suffix, what in _KINDS:
        if names & set(markers) or suffix in suffixes:
            return SitePlan(None, SITE_NOT_RUNNABLE,
                            f"This version is {what}; a browser cannot run it. Its files are under Files.")
    return SitePlan(None, SITE_NOT_RUNNABLE,
                    "This version has no HTML page, so there is nothing for a browser to show. Its files are "
                    "under Files.")


def set_preview_allow_cdn(session: Session, *, user_id: int, project_id: int, allow: bool) -> Project:
    """Let (or stop) the project's previews load scripts, styles and fonts from https: CDNs. Commits."""
    project = access.owned_project(session, user_id=user_id, project_id=project_id)
    project.preview_allow_cdn = bool(allow)
    project.updated_at = utcnow()
    session.commit()
    return project
