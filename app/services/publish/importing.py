"""Importing a GitHub repository as a new project: its branch's files become the first version, and the
commit they came from becomes the project's sync base (`projects.repo_head_sha` + `sync_snapshot_id`).

Requests: the repository, the branch head, the recursive tree (with sizes), the tarball (GitHub's 302,
then the codeload stream): five in all, whatever the number of files.

What fits: the tree's sizes decide before anything is downloaded. Submodules, symlinks, unsafe paths,
files over the per-file limit and files past the count limit are skipped and listed; Git LFS pointers are
recognised in the stream and skipped too. When what is left still exceeds the total-size limit, the import
is refused up front with the numbers.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from app.errors import Conflict, InvalidRequest, TooLarge
from app.models import Project, Snapshot
from app.providers.github import GithubError, GithubNotFound
from app.providers.github.archive import RepoPage, TreeEntry, list_repositories, list_tree, stream_archive
from app.services import projects as project_service
from app.services.publish.access import client_for, github_account_for, guard_token
from app.services.publish.app_access import app_repositories
from app.services.publish.settings import PublishSettings
from app.services.snapshots import (
    ORIGIN_UPLOAD,
    IncomingFile,
    SnapshotLimits,
    check_path,
    take_snapshot_from_files,
)

log = logging.getLogger(__name__)

FULL_NAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")
BRANCH_MAX_CHARS = 255
LFS_POINTER_PREFIX = b"version https://git-lfs.github.com/spec/v1"
SYMLINK_MODE = "120000"

SKIP_SUBMODULE = "submodule"
SKIP_SYMLINK = "symlink"
SKIP_TOO_BIG = "over the size limit"
SKIP_COUNT = "past the file-count limit"
SKIP_UNSAFE = "unsafe path"
SKIP_LFS = "Git LFS pointer"


@dataclass
class ImportResult:
    project: Project
    snapshot: Snapshot
    commit_sha: str
    branch: str
    skipped: list[dict[str, str]] = field(default_factory=list)

    @property
    def sentence(self) -> str:
        """"312 files imported; skipped: 2 over the size limit, 1 submodule"."""
        text = f"{self.snapshot.file_count:,} file{'s' if self.snapshot.file_count != 1 else ''} imported"
        if not self.skipped:
            return text
        counts = Counter(item["reason"] for item in self.skipped)
        return text + "; skipped: " + ", ".join(f"{n} {reason}" for reason, n in sorted(counts.items()))


def validate_full_name(repo: object) -> str:
    if not isinstance(repo, str) or not FULL_NAME_RE.match(repo.strip()):
        raise InvalidRequest("Name the repository as owner/name, for example octocat/hello-world.",
                             fields={"repo": "expected owner/name"})
    return repo.strip()


def validate_branch(branch: object) -> str | None:
    if branch is None or branch == "":
        return None
    if (not isinstance(branch, str) or len(branch) > BRANCH_MAX_CHARS or branch.startswith(("/", "-"))
            or ".." in branch or any(ch in branch for ch in " ~^:?*[\\") or any(ord(ch) < 32 for ch in branch)):
        raise InvalidRequest("That is not a valid branch name.", fields={"branch": "invalid branch name"})
    return branch


def plan_import(entries: list[TreeEntry], limits: SnapshotLimits) -> tuple[dict[str, int], list[dict[str, str]]]:
    """(path -> size of the files to download, skipped entries with their reasons), or `TooLarge` when the
    files that would be kept still exceed the total-size limit."""
    skipped: list[dict[str, str]] = []
    keep: dict[str, int] = {}
    for entry in sorted(entries, key=lambda e: e.path):
        reason = None
        if entry.kind == "commit":
            reason = SKIP_SUBMODULE
        elif entry.mode == SYMLINK_MODE:
            reason = SKIP_SYMLINK
        elif check_path(entry.path) is not None:
            reason = SKIP_UNSAFE
        elif entry.size > limits.max_file_bytes:
            reason = SKIP_TOO_BIG
        elif len(keep) >= limits.max_files:
            reason = SKIP_COUNT
        if reason:
            skipped.append({"path": entry.path, "reason": reason})
        else:
            keep[entry.path] = entry.size
    total = sum(keep.values())
    if total > limits.max_total_bytes:
        raise TooLarge(
            f"This repository holds {total:,} bytes in the {len(keep):,} files Sorya could keep; a project "
            f"version may hold at most {limits.max_total_bytes:,} bytes. Nothing was downloaded.",
            limit="total_bytes", maximum=limits.max_total_bytes, actual=total)
    if not keep:
        raise Conflict("This branch has no file Sorya can import"
                       + (f" ({len(skipped)} skipped)." if skipped else "."), reason="nothing_to_import")
    return keep, skipped


def importable_repositories(session: Session, *, user_id: int, settings: PublishSettings, page: int = 1,
                            query: str = "") -> RepoPage:
    """The repositories the person may import: those they gave the GitHub App (app mode, one page), or
    their own and their organisations' through their OAuth token (which needs the repository scope:
    `RepositoryAccessRequired` until they granted it)."""
    if settings.app is not None:
        found = app_repositories(github_account_for(session, user_id), settings)
        needle = query.strip().lower()
        return RepoPage([r for r in found if needle in r.full_name.lower()], page=1, has_next=False)
    client = client_for(session, user_id, settings)
    try:
        return list_repositories(client, page=page, query=query)
    except GithubError as exc:
        guard_token(session, user_id, exc)
        raise


def import_repository(session: Session, *, user_id: int, repo: object, branch: object = None,
                      settings: PublishSettings, limits: SnapshotLimits) -> ImportResult:
    """A new project of the user holding the branch's files (default branch by default), linked to the
    repository, its sync base the imported commit. Commits; nothing is kept when any step fails."""
    full_name = validate_full_name(repo)
    wanted_branch = validate_branch(branch)
    client = client_for(session, user_id, settings, full_name=full_name)
    try:
        info = client.get_repository(full_name)
        branch_name = wanted_branch or info.default_branch
        head = client.get_branch_head(full_name, branch_name)
        if head is None:
            raise Conflict(f"{info.full_name} has no commits yet: there is nothing to import.",
                           reason="repo_empty")
        entries = list_tree(client, info.full_name, head)
        keep, skipped = plan_import(entries, limits)
        files: list[IncomingFile] = []
        for path, content in stream_archive(client, info.full_name, head, set(keep)):
            if content.startswith(LFS_POINTER_PREFIX):
                skipped.append({"path": path, "reason": SKIP_LFS})
                continue
            files.append(IncomingFile(path, content, ORIGIN_UPLOAD))
    except GithubNotFound as exc:
        guard_token(session, user_id, exc)
        raise Conflict(
            f"GitHub has no repository {full_name} you can read, or no branch "
            f"{wanted_branch or 'by that name'}. Check the name (it may have been renamed or deleted).",
            reason="repo_missing") from exc
    except GithubError as exc:
        guard_token(session, user_id, exc)
        raise
    missing = set(keep) - {f.path for f in files} - {s["path"] for s in skipped}
    if missing:
        raise GithubError(f"GitHub's archive lacked {len(missing)} of the branch's files; nothing was "
                          "imported. Try again.", retryable=True)
    project = project_service.create_project(session, user_id=user_id, name=info.full_name.split("/")[1],
                                             description=f"Imported from {info.full_name}")
    try:
        result = take_snapshot_from_files(
            session, user_id=user_id, project_id=project.id, files=files, limits=limits,
            summary=f"Imported {info.full_name} at {branch_name} ({head[:7]})")
    except Exception:
        session.rollback()
        session.delete(session.get(Project, project.id))
        session.commit()
        raise
    project.repo_full_name = info.full_name
    project.repo_html_url = info.html_url
    project.repo_branch = branch_name
    project.repo_head_sha = head
    project.sync_snapshot_id = result.snapshot.id
    session.commit()
    log.info("project=%s imported from %s@%s (%s files, %s skipped, %s requests)", project.id, info.full_name,
             head[:7], len(files), len(skipped), client.requests_made)
    skipped.sort(key=lambda item: item["path"])
    return ImportResult(project=project, snapshot=result.snapshot, commit_sha=head, branch=branch_name,
                        skipped=skipped)


def take_remote_as_new_version(session: Session, *, project_id: int, user_id: int, settings: PublishSettings,
                               limits: SnapshotLimits) -> ImportResult:
    """After GitHub's history was rewritten: the branch as it is now becomes the project's next version
    (replacing its files; earlier versions stay) and the new sync base."""
    from app.services import access
    from app.services.publish.pull import _record_sync

    project = access.owned_project(session, user_id=user_id, project_id=project_id)
    if not project.repo_full_name:
        raise Conflict("Link this project to a GitHub repository first.", reason="not_linked")
    full_name, branch = project.repo_full_name, project.repo_branch or "main"
    client = client_for(session, user_id, settings, full_name=full_name)
    try:
        head = client.get_branch_head(full_name, branch)
        if head is None:
            raise Conflict(f"{full_name} has no commits on {branch}.", reason="repo_empty")
        keep, skipped = plan_import(list_tree(client, full_name, head), limits)
        files = [IncomingFile(path, content, ORIGIN_UPLOAD)
                 for path, content in stream_archive(client, full_name, head, set(keep))
                 if not content.startswith(LFS_POINTER_PREFIX)]
    except GithubError as exc:
        guard_token(session, user_id, exc)
        raise
    result = take_snapshot_from_files(session, user_id=user_id, project_id=project_id, files=files,
                                      limits=limits, summary=f"Took {branch} from GitHub as it is now ({head[:7]})")
    project = access.owned_project(session, user_id=user_id, project_id=project_id)
    project.repo_head_sha, project.sync_snapshot_id = head, result.snapshot.id
    _record_sync(session, project.id, head=head, conflicts=[])
    return ImportResult(project=project, snapshot=result.snapshot, commit_sha=head, branch=branch,
                        skipped=skipped)
