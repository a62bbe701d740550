"""What a push writes: the file-level three-way merge, the commit's message and author, inline text."""

from __future__ import annotations

from dataclasses import dataclass

from app.models import Project, Snapshot, User
from app.models.base import utcnow
from app.providers.github import Author


@dataclass
class PushPlan:
    entries: dict[str, str | None]  # path -> blob sha to write, or None to delete
    conflicts: list[str]


def plan_changes(desired: dict[str, str], previous: dict[str, str], remote: dict[str, str],
                 *, overwrite: bool = False) -> PushPlan:
    """A three-way merge at file level: what to write on top of `remote` to bring Sorya's changes.

    Sorya's changes are the paths where `desired` differs from `previous` (what it pushed last). For each:
    GitHub already has the wanted content -> nothing to do; GitHub still has what Sorya pushed last ->
    write it; anything else means someone changed that file on GitHub -> a conflict (unless `overwrite`,
    used for a push to a new branch).
    """
    entries: dict[str, str | None] = {}
    conflicts: list[str] = []
    for path in sorted(set(desired) | set(previous)):
        want, had = desired.get(path), previous.get(path)
        if want == had:
            continue
        there = remote.get(path)
        if there == want:
            continue
        if there != had and not overwrite:
            conflicts.append(path)
            continue
        if want is None and there is None:
            continue
        entries[path] = want
    return PushPlan(entries=entries, conflicts=conflicts)



def inline_text(content: bytes) -> str | None:
    """The text of a file that can travel inline as JSON, or None for binary content.

    A NUL byte marks binary content (git's own heuristic) and is kept out of JSON strings."""
    if b"\x00" in content:
        return None
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        return None


def author_for(user: User | None) -> Author | None:
    """The person as the commit's author; None lets GitHub use the token's own account (no email known)."""
    if user is None or not user.email:
        return None
    return Author(name=user.name or user.login, email=user.email, date=utcnow().replace(microsecond=0))


def commit_message(project: Project, snapshot: Snapshot) -> str:
    summary = " ".join((snapshot.summary or "").split())
    title = f"Snapshot #{snapshot.number}" + (f": {summary}" if summary else "")
    if len(title) > 72:
        title = title[:71].rstrip() + "…"
    body = f"Published from Sorya (project {project.name!r}, snapshot #{snapshot.number})."
    if summary and len(f"Snapshot #{snapshot.number}: {summary}") > 72:
        body = f"{summary}\n\n{body}"
    return f"{title}\n\n{body}\n"

