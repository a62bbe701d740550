"""Pulling what changed on GitHub into a new version, and noticing that something did.

- **Noticing** (`remote_status`): one conditional read of the branch head (`If-None-Match` with the
  stored ETag: an unchanged branch answers 304, free of rate limit), at most once a minute per project
  (`project_syncs.checked_at`); only a moved head costs a compare request, which counts the new commits.
- **Pulling** (`pull`): base = the sync base (`projects.repo_head_sha`, whose files are the version
  `projects.sync_snapshot_id`, or GitHub's own tree when that is `SYNC_BASE_REMOTE_TREE`), ours = the
  latest version, theirs = the branch head. Per file: changed on one side only -> that side; on both ->
  a line-level merge (`merge.py`); a real conflict keeps git's markers and is listed on
  `project_syncs.conflicts`. The result is one new version (nothing when GitHub has nothing new); the
  sync base moves to the head. Requests: the head, the compare, then GitHub's contents (one blob read
  per file up to `BLOB_READS_MAX`, else the tarball: two requests).
- **One at a time**: a pull holds `project_syncs.pull_started_at` and refuses while a push runs; a push
  refuses while a pull runs (`pull_running`).
- **History rewritten** (the sync base is not an ancestor of the head, or gone): refused with
  `reason="history_rewritten"` and the offer to take the branch as it is now as a new version
  (`take_remote_as_new_version`); Sorya's versions stay.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import Conflict, Forbidden, NotFound
from app.models import Project
from app.models.base import utcnow
from app.models.publish import ProjectSync
from app.providers.github import GithubError, GithubNotFound, GithubRepoClient
from app.providers.github.archive import stream_archive
from app.providers.github.sync import ChangedFile, branch_head_if_changed, compare, read_blob
from app.services import access
from app.services.publish.access import client_for, guard_token
from app.services.publish.history import running_push
from app.services.publish.merge import has_conflict_markers, merge_text
from app.services.publish.settings import (
    PULL_STALE_AFTER_S,
    SYNC_BASE_REMOTE_TREE,
    SYNC_CHECK_EVERY_S,
    PublishSettings,
)
from app.services.snapshots import (
    ORIGIN_UPLOAD,
    IncomingFile,
    SnapshotLimits,
    latest_snapshot,
    list_snapshot_files,
    read_snapshot_file,
    take_snapshot_from_files,
)

log = logging.getLogger(__name__)

BLOB_READS_MAX = 3
REASON_REWRITTEN = "history_rewritten"
REASON_PULL_RUNNING = "pull_in_progress"


@dataclass(frozen=True)
class RemoteStatus:
    new_commits: int
    rewritten: bool
    checked_at: datetime | None


@dataclass
class PullResult:
    snapshot_id: int | None
    commit_sha: str
    files_changed: int
    conflicts: list[str] = field(default_factory=list)
    new_commits: int = 0


def sync_row(session: Session, project_id: int) -> ProjectSync:
    row = session.get(ProjectSync, project_id)
    if row is None:
        row = ProjectSync(project_id=project_id, conflicts=[], ahead_by=0, rewritten=False)
        session.add(row)
        try:
            session.flush()
        except IntegrityError:
            session.rollback()
            row = session.get(ProjectSync, project_id)
            assert row is not None
    return row


def _linked(project: Project) -> None:
    if not project.repo_full_name:
        raise Conflict("Link this project to a GitHub repository first.", reason="not_linked")
    if not project.repo_head_sha:
        raise Conflict("Push this project to GitHub (or import it) first: Sorya pulls only what changed "
                       "since a commit it knows.", reason="no_sync_base")


def remote_status(session: Session, *, project: Project, user_id: int, settings: PublishSettings,
                  now: datetime | None = None) -> RemoteStatus | None:
    """How many commits GitHub's branch has that Sorya's sync base lacks (cached for a minute; a 304 when
    unchanged). None when the project is not synced or GitHub could not be asked (the page shows nothing)."""
    if not project.repo_full_name or not project.repo_head_sha:
        return None
    now = now or utcnow()
    row = sync_row(session, project.id)
    if row.checked_at is not None and now - _aware(row.checked_at) < timedelta(seconds=SYNC_CHECK_EVERY_S):
        return RemoteStatus(row.ahead_by, row.rewritten, row.checked_at)
    try:
        client = client_for(session, user_id, settings, full_name=project.repo_full_name)
        check = branch_head_if_changed(client, project.repo_full_name, project.repo_branch or "main", row.etag)
        if check.modified:
            row.etag, row.remote_head = check.etag, check.head
            row.ahead_by, row.rewritten = _count_new(client, project, check.head)
    except (GithubError, Conflict, Forbidden, NotFound) as exc:
        log.info("project=%s new-commits check failed: %s", project.id, exc)
        session.rollback()
        return None
    row.checked_at = now
    session.commit()
    return RemoteStatus(row.ahead_by, row.rewritten, row.checked_at)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=utcnow().tzinfo)


def _count_new(client: GithubRepoClient, project: Project, head: str | None) -> tuple[int, bool]:
    if head is None or head == project.repo_head_sha:
        return 0, False
    try:
        comparison = compare(client, project.repo_full_name or "", project.repo_head_sha or "", head)
    except GithubNotFound:
        return 0, True
    return comparison.ahead_by, comparison.status in ("behind", "diverged")


def pull_running(session: Session, project_id: int) -> bool:
    row = session.get(ProjectSync, project_id)
    return bool(row and row.pull_started_at
                and _aware(row.pull_started_at) > utcnow() - timedelta(seconds=PULL_STALE_AFTER_S))


def _take_pull_lock(session: Session, project_id: int) -> None:
    sync_row(session, project_id)
    session.commit()
    now = utcnow()
    taken = session.execute(
        update(ProjectSync).where(ProjectSync.project_id == project_id, or_(
            ProjectSync.pull_started_at.is_(None),
            ProjectSync.pull_started_at < now - timedelta(seconds=PULL_STALE_AFTER_S)))
        .values(pull_started_at=now)).rowcount
    session.commit()
    if not taken:
        raise Conflict("A pull of this project is already running. Wait for it to finish.",
                       reason=REASON_PULL_RUNNING)
    if running_push(session, project_id) is not None:
        _release_pull_lock(session, project_id)
        raise Conflict("A push of this project is running. Pull once it has finished.",
                       reason="push_in_progress")


def _release_pull_lock(session: Session, project_id: int) -> None:
    session.rollback()
    session.execute(update(ProjectSync).where(ProjectSync.project_id == project_id).values(pull_started_at=None))
    session.commit()


def pull(session: Session, *, project_id: int, user_id: int, settings: PublishSettings,
         limits: SnapshotLimits) -> PullResult:
    """Merge GitHub's new commits into a new version (see the module docstring). Commits."""
    project = access.owned_project(session, user_id=user_id, project_id=project_id)
    _linked(project)
    _take_pull_lock(session, project.id)
    try:
        client = client_for(session, user_id, settings, full_name=project.repo_full_name)
        try:
            return _pull(session, project, user_id, client, limits)
        except GithubError as exc:
            guard_token(session, user_id, exc)
            raise
    finally:
        _release_pull_lock(session, project_id)


def _pull(session: Session, project: Project, user_id: int, client: GithubRepoClient,
          limits: SnapshotLimits) -> PullResult:
    full_name, branch, base = project.repo_full_name or "", project.repo_branch or "main", project.repo_head_sha or ""
    head = client.get_branch_head(full_name, branch)
    if head is None or head == base:
        _record_sync(session, project.id, head=base, conflicts=None)
        return PullResult(snapshot_id=None, commit_sha=base, files_changed=0)
    try:
        comparison = compare(client, full_name, base, head)
    except GithubNotFound:
        comparison = None
    if comparison is None or comparison.status in ("behind", "diverged"):
        raise Conflict(
            f"The history of {branch} on GitHub was rewritten (force-pushed): the commit Sorya last synced "
            "with is no longer part of it, so there is nothing to merge with. Your versions are kept. "
            f"Take {branch} as it is now as a new version instead.", reason=REASON_REWRITTEN,
            offer="take_remote_as_new_version")
    merger = _Merger(session, project, client, base)
    merger.run(comparison.files, head)
    latest_before = latest_snapshot(session, project.id)
    snapshot_id = None
    if merger.incoming or merger.deletions:
        commits = comparison.ahead_by
        summary = (f"Pulled {commits} commit{'s' if commits != 1 else ''} from GitHub ({head[:7]})"
                   + (f" with {len(merger.conflicts)} conflict{'s' if len(merger.conflicts) != 1 else ''}"
                      if merger.conflicts else ""))
        result = take_snapshot_from_files(session, user_id=user_id, project_id=project.id,
                                          files=merger.incoming, deletions=merger.deletions,
                                          carry_over=True, limits=limits, summary=summary)
        snapshot_id = result.snapshot.id
    project = access.owned_project(session, user_id=user_id, project_id=project.id)
    project.repo_head_sha = head
    clean = not merger.local_changes and not merger.conflicts
    project.sync_snapshot_id = (snapshot_id or (latest_before.id if latest_before else None)) if clean \
        else SYNC_BASE_REMOTE_TREE
    conflicts = [{"path": path, "ours_snapshot_id": latest_before.id if latest_before else None,
                  "theirs_sha": sha} for path, sha in sorted(merger.conflicts.items())]
    _record_sync(session, project.id, head=head, conflicts=conflicts)
    log.info("project=%s pulled %s..%s: %s files, %s conflicts, %s requests", project.id, base[:7], head[:7],
             len(merger.incoming) + len(merger.deletions), len(conflicts), client.requests_made)
    return PullResult(snapshot_id=snapshot_id, commit_sha=head,
                      files_changed=len(merger.incoming) + len(merger.deletions),
                      conflicts=sorted(merger.conflicts), new_commits=comparison.ahead_by)


def _record_sync(session: Session, project_id: int, *, head: str, conflicts: list[dict] | None) -> None:
    row = sync_row(session, project_id)
    row.remote_head, row.ahead_by, row.rewritten, row.etag, row.checked_at = head, 0, False, None, None
    if conflicts is not None:
        row.conflicts = conflicts
    session.commit()


class _Merger:
    """The per-file decisions of one pull: `incoming` files and `deletions` for the new version, and the
    conflicting paths (path -> GitHub's blob sha, None when GitHub deleted it)."""

    def __init__(self, session: Session, project: Project, client: GithubRepoClient, base_sha: str) -> None:
        self.session, self.project, self.client, self.base_sha = session, project, client, base_sha
        self.full_name = project.repo_full_name or ""
        latest = latest_snapshot(session, project.id)
        self.ours_id = latest.id if latest else None
        self.ours = {e.path: e.git_sha for e in list_snapshot_files(session, latest.id)} if latest else {}
        self.base_snapshot_id = project.sync_snapshot_id if project.sync_snapshot_id else None
        if self.base_snapshot_id is not None:
            self.base = {e.path: e.git_sha for e in list_snapshot_files(session, self.base_snapshot_id)}
        else:
            self.base = dict(client.get_tree(self.full_name, base_sha).files)
        self.local_changes = any(self.ours.get(p) != self.base.get(p) for p in set(self.ours) | set(self.base))
        self.incoming: list[IncomingFile] = []
        self.deletions: list[str] = []
        self.conflicts: dict[str, str | None] = {}

    def run(self, changed: list[ChangedFile], head: str) -> None:
        theirs: dict[str, str | None] = {}
        for item in changed:
            if item.status == "renamed" and item.previous_path:
                theirs[item.previous_path] = None
            theirs[item.path] = item.sha
        need_theirs = [p for p, sha in theirs.items() if sha is not None and self.ours.get(p) != sha]
        contents = self._theirs_contents({p: theirs[p] or "" for p in need_theirs}, head)
        for path, their_sha in sorted(theirs.items()):
            ours_sha, base_sha = self.ours.get(path), self.base.get(path)
            if ours_sha == their_sha:
                continue
            if ours_sha == base_sha:  # changed on GitHub only
                self._take(path, contents.get(path))
            elif their_sha is None or ours_sha is None:  # deleted on one side, changed on the other
                self.conflicts[path] = their_sha
                if ours_sha is None:
                    self._take(path, contents.get(path))
            else:
                merged = merge_text(self._base_content(path, base_sha), self._ours_content(path),
                                    contents[path])
                if merged.conflicted:
                    self.conflicts[path] = their_sha
                self.incoming.append(IncomingFile(path, merged.content, ORIGIN_UPLOAD))

    def _take(self, path: str, content: bytes | None) -> None:
        if content is None:
            if path in self.ours:
                self.deletions.append(path)
        else:
            self.incoming.append(IncomingFile(path, content, ORIGIN_UPLOAD))

    def _theirs_contents(self, wanted: dict[str, str], head: str) -> dict[str, bytes]:
        if len(wanted) <= BLOB_READS_MAX:
            return {path: read_blob(self.client, self.full_name, sha) for path, sha in wanted.items()}
        return dict(stream_archive(self.client, self.full_name, head, set(wanted)))

    def _ours_content(self, path: str) -> bytes:
        assert self.ours_id is not None
        return read_snapshot_file(self.session, self.ours_id, path)[1]

    def _base_content(self, path: str, sha: str | None) -> bytes | None:
        if sha is None:
            return None
        if self.base_snapshot_id is not None:
            return read_snapshot_file(self.session, self.base_snapshot_id, path)[1]
        return read_blob(self.client, self.full_name, sha)


def unresolved_conflicts(session: Session, project_id: int) -> list[str]:
    """The paths a pull left conflicting whose latest content still holds the conflict markers."""
    row = session.get(ProjectSync, project_id)
    if row is None or not row.conflicts:
        return []
    latest = latest_snapshot(session, project_id)
    if latest is None:
        return []
    present = {e.path for e in list_snapshot_files(session, latest.id)}
    left = []
    for item in row.conflicts:
        path = item["path"]
        if path in present and has_conflict_markers(read_snapshot_file(session, latest.id, path)[1]):
            left.append(path)
    return left


def resolve_conflict(session: Session, *, project_id: int, user_id: int, path: str, side: str,
                     settings: PublishSettings, limits: SnapshotLimits) -> int:
    """Resolve one of a pull's conflicts by taking Sorya's side (`ours`: the file as it was before the
    pull) or GitHub's (`theirs`): a new version with that file. Returns the new version's id."""
    project = access.owned_project(session, user_id=user_id, project_id=project_id)
    if side not in ("ours", "theirs"):
        raise Conflict("Choose ours or theirs.", reason="invalid_side")
    row = session.get(ProjectSync, project.id)
    item = next((c for c in (row.conflicts if row else []) if c["path"] == path), None)
    if item is None:
        raise Conflict(f"{path} has no conflict to resolve.", reason="no_conflict")
    content: bytes | None = None
    if side == "ours" and item.get("ours_snapshot_id"):
        try:
            content = read_snapshot_file(session, item["ours_snapshot_id"], path)[1]
        except Exception:  # noqa: BLE001 - the file did not exist on our side: taking ours deletes it
            content = None
    elif side == "theirs" and item.get("theirs_sha"):
        client = client_for(session, user_id, settings, full_name=project.repo_full_name)
        try:
            content = read_blob(client, project.repo_full_name or "", item["theirs_sha"])
        except GithubError as exc:
            guard_token(session, user_id, exc)
            raise
    label = "Sorya's" if side == "ours" else "GitHub's"
    result = take_snapshot_from_files(
        session, user_id=user_id, project_id=project.id, carry_over=True, limits=limits,
        files=[IncomingFile(path, content, ORIGIN_UPLOAD)] if content is not None else [],
        deletions=[] if content is not None else [path], summary=f"Resolved {path}: took {label} side")
    row = session.get(ProjectSync, project.id)
    assert row is not None
    row.conflicts = [c for c in row.conflicts if c["path"] != path]
    session.commit()
    return result.snapshot.id
