"""Publishing projects to GitHub: link a repository, push snapshots as real commits, keep the history.

What this module guarantees:
- **One commit per push, few requests.** A push compares the snapshot's git blob shas (computed locally,
  stored on `blobs.git_sha`) with the remote tree and sends only the files whose sha differs: text inline
  in one tree request on `base_tree` (deleted files removed with `sha: null`), binary files as one blob
  request each; then one commit whose parent is the branch head, and one ref update that never forces.
  An incremental push costs 4 requests plus one per changed binary file (so at most 4 plus the changed
  files). An empty repository first gets one file through the Contents API (GitHub's Git Data API
  refuses to work without a commit), then the rest as the snapshot's commit.
- **Never clobber.** Sorya remembers the commit it last pushed (`projects.repo_head_sha`) and the snapshot
  it pushed there. A push changes only the paths the new snapshot changes relative to that snapshot,
  applied on top of whatever the branch holds now: if the branch moved on GitHub and none of those paths
  was touched there, the commit is rebuilt on the new head; if one was, the push stops, names the files,
  and offers to push to a new branch instead (with a pull-request link once there).
- **Idempotent.** Pushing a snapshot whose changes are already on the branch records an "up to date" push
  and writes nothing on GitHub.
- **One push at a time per project.** A push holds `pushes.running_lock = project_id` (a unique column)
  from start to finish; a second push is refused while it runs, never interleaved. A push older than
  `PUSH_STALE_AFTER_S` still holding the lock is taken to have died and is marked failed.
- **A push that dies leaves nothing recorded as pushed.** `projects.repo_head_sha` and the push's
  `succeeded` status are written together, after GitHub accepted the ref update. Blobs, trees and commits
  are content-addressed, so retrying after any failure is safe: at worst GitHub keeps unreferenced objects.
- **Secrets.** A snapshot with `flagged_paths` is pushed only with an explicit confirmation.

Background work: `run_push(push_id)` is a plain function (call it in a thread with an app context, or
as a job); progress is written to the push row as it goes.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.models import Blob, GithubAccount, Project, Push, Snapshot, SnapshotFile, User
from app.models.base import utcnow
from app.models.publish import PUSH_FAILED, PUSH_RUNNING, PUSH_SUCCEEDED, PUSH_UP_TO_DATE
from app.providers.github_git import (
    Author,
    GithubError,
    GithubNotFound,
    GithubRejected,
    GithubRepoClient,
    GithubTokenRevoked,
    NotFastForward,
    RefExists,
    RemoteTree,
)
from app.runtime import jobs
from app.services.accounts import GITHUB_TOKEN_PURPOSE, TOKEN_REVOKED, mark_github_token_revoked
from app.services.crypto import DecryptionError, Keyring, decrypt_secret
from app.services.errors import Conflict, DomainError, InvalidRequest, NotFound

log = logging.getLogger(__name__)

# The sealing of `github_accounts.access_token_encrypted` (services/accounts.py seals it the same way).

REPO_NAME_MAX_CHARS = 100
REPO_DESCRIPTION_MAX_CHARS = 350
REPO_NAME_RE = re.compile(r"^[A-Za-z0-9._-]+$")
# Pushes of snapshots with more files than this run in the background from the page.
PUSH_INLINE_MAX_FILES = 40
PUSH_STALE_AFTER_S = 15 * 60
# How many times a push rebuilds its commit on a branch that keeps moving before giving up.
MAX_REBASE_ROUNDS = 3
MAX_BRANCH_NAME_TRIES = 5
PROGRESS_WRITE_EVERY = 10
PROGRESS_WRITE_MIN_STEPS = 5
# Text sent inline per tree request; larger pushes build their tree in several chained requests.
INLINE_TREE_MAX_BYTES = 4_000_000
HISTORY_LIMIT = 10

# Push error codes, stored on `pushes.error_code` and returned as the API error's `reason`.
ERROR_CONFLICT = "push_conflict"
ERROR_REPO_MISSING = "repo_missing"
ERROR_TOKEN_REVOKED = "github_token_revoked"
ERROR_MISSING_SCOPE = "github_missing_scope"
ERROR_BRANCH_MOVED = "branch_moved"
ERROR_INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class PublishSettings:
    """What publishing needs from configuration, passed in as plain values."""

    github_url: str
    keyring: Keyring
    allow_private_repos: bool = True
    timeout_s: float = 15.0


@dataclass
class PushOutcome:
    """What a finished push did; `error` is the domain error to show when it failed."""

    push: Push
    error: DomainError | None = None
    flagged_paths: list[str] = field(default_factory=list)
    conflicting_paths: list[str] = field(default_factory=list)
    compare_url: str | None = None


class PushCrashed(DomainError):
    """An unexpected error inside Sorya stopped the push (logged); nothing was recorded as pushed."""

    status, code = 500, "internal_error"


class PushConflict(Conflict):
    """The branch changed on GitHub in files this snapshot changes too."""

    def __init__(self, message: str, *, conflicting_paths: list[str], **extra: Any) -> None:
        super().__init__(message, reason=ERROR_CONFLICT, conflicting_paths=conflicting_paths,
                         offer="push_to_new_branch", **extra)
        self.conflicting_paths = conflicting_paths


# --- names and ownership -----------------------------------------------------------------------------


def repo_name_for(project_name: str) -> str:
    """A GitHub-friendly slug of a project's name: `My App (v2)` -> `my-app-v2`."""
    ascii_name = unicodedata.normalize("NFKD", project_name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", ascii_name).strip("-._").lower()
    slug = re.sub(r"-{2,}", "-", slug)[:REPO_NAME_MAX_CHARS].strip("-._")
    return slug or "sorya-project"


def validate_repo_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise InvalidRequest("Give the repository a name.", fields={"name": "required"})
    if len(name) > REPO_NAME_MAX_CHARS:
        raise InvalidRequest(f"A repository name has at most {REPO_NAME_MAX_CHARS} characters.",
                             fields={"name": "too long"})
    if not REPO_NAME_RE.match(name) or name in (".", "..") or name.lower().endswith(".git"):
        raise InvalidRequest(
            "A repository name may use letters, digits, '-', '_' and '.', and may not end in .git.",
            fields={"name": "letters, digits, '-', '_' and '.' only"})
    return name


def validate_description(description: str | None) -> str:
    text = (description or "").strip()
    if len(text) > REPO_DESCRIPTION_MAX_CHARS:
        raise InvalidRequest(f"A description has at most {REPO_DESCRIPTION_MAX_CHARS} characters.",
                             fields={"description": "too long"})
    if any(unicodedata.category(ch) == "Cc" for ch in text):
        raise InvalidRequest("The description may not contain control characters.",
                             fields={"description": "control characters"})
    return text


def owned_project(session: Session, project_id: int, user_id: int) -> Project:
    """The project if it belongs to the user; `NotFound` otherwise (never revealing that it exists)."""
    project = session.get(Project, project_id)
    if project is None or project.user_id != user_id:
        raise NotFound("There is no such project, or it is not yours.")
    return project


def github_account_for(session: Session, user_id: int) -> GithubAccount:
    account = session.execute(select(GithubAccount).where(GithubAccount.user_id == user_id)).scalar_one_or_none()
    if account is None:
        raise Conflict("Connect your GitHub account first: Sorya publishes with your own GitHub access.",
                       reason="github_not_connected")
    if account.token_status == TOKEN_REVOKED:
        raise Conflict("GitHub no longer accepts Sorya's access to your account. Reconnect GitHub, then "
                       "try again.", reason=ERROR_TOKEN_REVOKED)
    return account


def client_for(session: Session, user_id: int, settings: PublishSettings) -> GithubRepoClient:
    account = github_account_for(session, user_id)
    try:
        token = decrypt_secret(settings.keyring, account.access_token_encrypted,
                               purpose=GITHUB_TOKEN_PURPOSE, owner=user_id)
    except DecryptionError as exc:
        log.warning("github token of user=%s cannot be decrypted: %s", user_id, exc)
        raise Conflict("Sorya can no longer read your stored GitHub access. Reconnect GitHub, then try "
                       "again.", reason=ERROR_TOKEN_REVOKED) from exc
    return GithubRepoClient(github_url=settings.github_url, token=token, timeout_s=settings.timeout_s)


def _guard_token(session: Session, user_id: int, exc: GithubError) -> None:
    if isinstance(exc, GithubTokenRevoked):
        session.rollback()
        mark_github_token_revoked(session, user_id)


# --- linking a repository ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RepoLink:
    full_name: str
    html_url: str
    private: bool
    linked_existing: bool


def create_repository(
    session: Session,
    *,
    project_id: int,
    user_id: int,
    settings: PublishSettings,
    name: str | None = None,
    description: str | None = None,
    private: bool | None = None,
    link_existing: bool = False,
) -> RepoLink:
    """Create a GitHub repository for the project (or link the person's existing one) and store the link.

    Private by default when the operator allows private repositories (`GITHUB_ALLOW_PRIVATE_REPOS`),
    public otherwise. A name already on the person's account raises `Conflict(reason="repo_exists")`
    offering to link it, unless `link_existing` asks for exactly that (then it must be theirs and
    pushable). Commits the link; nothing is stored when GitHub fails.
    """
    project = owned_project(session, project_id, user_id)
    if project.repo_full_name:
        raise Conflict(f"This project is already linked to {project.repo_full_name}. Unlink it first to "
                       "use another repository.", reason="already_linked")
    repo_name = validate_repo_name(name if name else repo_name_for(project.name))
    text = validate_description(description if description is not None else project.description)
    if private is None:
        private = settings.allow_private_repos
    if private and not settings.allow_private_repos:
        raise InvalidRequest("This Sorya server publishes public repositories only.",
                             fields={"private": "private repositories are not allowed here"})
    client = client_for(session, user_id, settings)
    account_login = github_account_for(session, user_id).login
    try:
        if link_existing:
            info = _existing_repo(client, account_login, repo_name)
            linked = True
        else:
            try:
                info = client.create_repository(repo_name, description=text, private=private)
                linked = False
            except GithubRejected as exc:
                if not _name_taken(exc):
                    raise InvalidRequest(exc.message, fields={"name": exc.message}) from exc
                info = _existing_repo(client, account_login, repo_name)
                raise Conflict(
                    f"You already have a repository named {info.full_name} on GitHub. Link it to this "
                    "project instead, or choose another name.", reason="repo_exists",
                    repo_full_name=info.full_name, html_url=info.html_url, offer="link_existing",
                    fields={"name": "already exists on your account"}) from exc
    except GithubError as exc:
        _guard_token(session, user_id, exc)
        raise
    project.repo_full_name = info.full_name
    project.repo_html_url = info.html_url
    project.repo_branch = info.default_branch
    project.repo_head_sha = None
    session.commit()
    log.info("project=%s linked to %s (existing=%s)", project.id, info.full_name, linked)
    return RepoLink(full_name=info.full_name, html_url=info.html_url, private=info.private,
                    linked_existing=linked)


def _name_taken(exc: GithubRejected) -> bool:
    text = " ".join(str(e.get("message", "")) if isinstance(e, dict) else str(e) for e in exc.errors)
    return "already exists" in (text + exc.message).lower()


def _existing_repo(client: GithubRepoClient, account_login: str, name: str):
    full_name = f"{account_login}/{name}"
    try:
        info = client.get_repository(full_name)
    except GithubNotFound as exc:
        raise InvalidRequest(f"There is no repository {full_name} on your GitHub account.",
                             fields={"name": "not found on your account"}) from exc
    if info.owner_login.lower() != account_login.lower() or not info.can_push:
        raise InvalidRequest(f"{info.full_name} is not a repository you can push to; choose another name.",
                             fields={"name": "not yours to push to"})
    return info


def unlink_repository(session: Session, *, project_id: int, user_id: int) -> None:
    """Forget the project's repository (nothing changes on GitHub). Refused while a push runs."""
    project = owned_project(session, project_id, user_id)
    if running_push(session, project.id) is not None:
        raise Conflict("A push of this project is running; wait for it to finish.", reason="push_in_progress")
    project.repo_full_name = project.repo_html_url = project.repo_branch = project.repo_head_sha = None
    session.commit()


# --- starting a push -----------------------------------------------------------------------------------


def running_push(session: Session, project_id: int) -> Push | None:
    return session.execute(select(Push).where(Push.running_lock == project_id)).scalar_one_or_none()


def start_push(
    session: Session,
    *,
    project_id: int,
    user_id: int,
    snapshot_id: int | None = None,
    confirm_flagged: bool = False,
    new_branch: bool = False,
) -> Push:
    """Record a push of the snapshot (latest by default) holding the project's push lock, and commit.

    Refuses (`Conflict`) when the project has no repository, a push of it is running, or the snapshot
    has flagged files and `confirm_flagged` is false. The caller then runs `run_push(push.id)` inline or
    in the background.
    """
    project = owned_project(session, project_id, user_id)
    if not project.repo_full_name:
        raise Conflict("Create or link a GitHub repository for this project first.", reason="not_linked")
    github_account_for(session, user_id)
    snapshot = _snapshot_to_push(session, project.id, snapshot_id)
    flagged = list(snapshot.flagged_paths or [])
    if flagged and not confirm_flagged:
        raise Conflict(
            f"Snapshot #{snapshot.number} has files that look like they contain secrets: "
            f"{', '.join(flagged)}. Confirm that you want to publish them.",
            reason="confirmation_required", flagged_paths=flagged)
    push = Push(project_id=project.id, snapshot_id=snapshot.id, user_id=user_id,
                repo_full_name=project.repo_full_name, branch=project.repo_branch or "main",
                status=PUSH_RUNNING, running_lock=project.id, progress_total=snapshot.file_count)
    # A new branch is chosen when the push runs; the marker survives in `branch` until then.
    if new_branch:
        push.branch = f"sorya/snapshot-{snapshot.number}"
    for _ in range(2):
        session.add(push)
        try:
            session.commit()
            return push
        except IntegrityError:
            session.rollback()
            if not _clear_stale_lock(session, project.id):
                holder = running_push(session, project.id)
                number = holder and session.get(Snapshot, holder.snapshot_id)
                which = f" (snapshot #{number.number})" if number else ""
                raise Conflict(f"A push of this project is already running{which}. Wait for it to finish, "
                               "then push again.", reason="push_in_progress") from None
    raise Conflict("A push of this project is already running.", reason="push_in_progress")


def _snapshot_to_push(session: Session, project_id: int, snapshot_id: int | None) -> Snapshot:
    query = select(Snapshot).where(Snapshot.project_id == project_id)
    if snapshot_id is not None:
        snapshot = session.execute(query.where(Snapshot.id == snapshot_id)).scalar_one_or_none()
        if snapshot is None:
            raise NotFound("There is no such snapshot in this project.")
        return snapshot
    snapshot = session.execute(query.order_by(Snapshot.number.desc()).limit(1)).scalar_one_or_none()
    if snapshot is None:
        raise Conflict("This project has no snapshot yet: ask Sorya for some code first.", reason="no_snapshot")
    return snapshot


def _clear_stale_lock(session: Session, project_id: int) -> bool:
    """Release the lock of a push that has held it for too long (its process died); True if released."""
    holder = running_push(session, project_id)
    if holder is None:
        return True  # released between our insert and this read
    if holder.created_at > utcnow() - timedelta(seconds=PUSH_STALE_AFTER_S):
        return False
    _finish(session, holder, PUSH_FAILED, error_code=ERROR_INTERRUPTED,
            error_message="This push stopped before finishing; nothing was recorded as pushed.")
    return True


# --- running a push --------------------------------------------------------------------------------------


def run_push(session: Session, push_id: int) -> None:
    """Job entry point (`jobs.enqueue`): run a recorded push to the end. Never raises."""
    from app import runtime

    execute_push(session, push_id, settings_from_app(runtime.settings(), runtime.keyring()))


def settings_from_app(config: Any, keyring: Keyring) -> PublishSettings:
    return PublishSettings(github_url=config.GITHUB_URL, keyring=keyring,
                           allow_private_repos=config.GITHUB_ALLOW_PRIVATE_REPOS,
                           timeout_s=float(getattr(config, "GITHUB_TIMEOUT_S", 15)))


def start_push_in_background(push_id: int) -> jobs.EnqueuedJob:
    """Queue the push as a background job: an RQ job when Redis is configured (any worker host may run
    it), a thread of this process otherwise. Its progress and outcome are on the push row."""
    return jobs.enqueue("app.services.publish:run_push", push_id)


def execute_push(session: Session, push_id: int, settings: PublishSettings) -> PushOutcome:
    """Run the push to GitHub and record its result; releases the lock whatever happens."""
    push = session.get(Push, push_id)
    if push is None or push.status != PUSH_RUNNING:
        raise NotFound("There is no such running push.")
    snapshot = session.get(Snapshot, push.snapshot_id)
    project = session.get(Project, push.project_id)
    assert snapshot is not None and project is not None
    flagged = list(snapshot.flagged_paths or [])
    client: GithubRepoClient | None = None
    try:
        client = client_for(session, push.user_id, settings)
        job = _PushJob(session, push, project, snapshot, client)
        outcome = job.run()
        outcome.flagged_paths = flagged
        return outcome
    except DomainError as exc:
        session.rollback()
        if isinstance(exc, GithubError):
            _guard_token(session, push.user_id or 0, exc)
        error = _domain_error_for_push(exc, project)
        push = session.get(Push, push_id)
        assert push is not None
        if client is not None:
            push.requests_made = client.requests_made
        _finish(session, push, PUSH_FAILED, error_code=_error_code(error), error_message=error.message[:1000])
        log.info("push=%s project=%s failed: %s", push.id, push.project_id, _error_code(error))
        conflicting = error.conflicting_paths if isinstance(error, PushConflict) else []
        return PushOutcome(push=push, error=error, flagged_paths=flagged, conflicting_paths=conflicting)
    except Exception:
        log.exception("push=%s crashed", push_id)
        session.rollback()
        push = session.get(Push, push_id)
        assert push is not None
        _finish(session, push, PUSH_FAILED, error_code="internal_error",
                error_message="Something went wrong on our side; nothing was recorded as pushed. Try again.")
        return PushOutcome(push=push, error=PushCrashed(push.error_message or ""), flagged_paths=flagged)


def _error_code(error: DomainError) -> str:
    return str(error.extra.get("reason") or error.code)


def _domain_error_for_push(exc: DomainError, project: Project) -> DomainError:
    """The error a person should see for a failed push, with what to do next."""
    if isinstance(exc, GithubNotFound):
        return Conflict(
            f"The repository {project.repo_full_name} no longer exists on GitHub, or was renamed or made "
            "private to you. Relink the project to the repository's new name, or recreate it.",
            reason=ERROR_REPO_MISSING, offer="relink_or_recreate")
    if isinstance(exc, NotFastForward):
        return Conflict(
            f"The branch {project.repo_branch} of {project.repo_full_name} kept changing on GitHub while "
            "Sorya pushed. Nothing was recorded as pushed; push again.", reason=ERROR_BRANCH_MOVED)
    return exc


def _finish(session: Session, push: Push, status: str, *, error_code: str | None = None,
            error_message: str | None = None) -> None:
    push.status = status
    push.running_lock = None
    push.finished_at = utcnow()
    push.error_code = error_code
    push.error_message = error_message
    session.commit()


def _previous_snapshot_files(session: Session, project: Project) -> dict[str, str]:
    """Path -> git sha of the snapshot Sorya last pushed to the project's branch (empty if none)."""
    if not project.repo_head_sha:
        return {}
    snapshot_id = session.execute(
        select(Push.snapshot_id).where(
            Push.project_id == project.id, Push.repo_full_name == project.repo_full_name,
            Push.branch == project.repo_branch, Push.status.in_((PUSH_SUCCEEDED, PUSH_UP_TO_DATE)))
        .order_by(Push.id.desc()).limit(1)).scalar_one_or_none()
    if snapshot_id is None:
        return {}
    return _snapshot_files(session, snapshot_id)


def _snapshot_files(session: Session, snapshot_id: int) -> dict[str, str]:
    rows = session.execute(select(SnapshotFile).where(SnapshotFile.snapshot_id == snapshot_id)).scalars()
    return {row.path: row.blob.git_sha for row in rows}


@dataclass
class _Plan:
    entries: dict[str, str | None]  # path -> blob sha to write, or None to delete
    conflicts: list[str]


def plan_changes(desired: dict[str, str], previous: dict[str, str], remote: dict[str, str],
                 *, overwrite: bool = False) -> _Plan:
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
    return _Plan(entries=entries, conflicts=conflicts)


class _PushJob:
    """The steps of one push. Writes progress to the push row; raises domain errors on failure."""

    def __init__(self, session: Session, push: Push, project: Project, snapshot: Snapshot,
                 client: GithubRepoClient) -> None:
        self.session = session
        self.push = push
        self.project = project
        self.snapshot = snapshot
        self.client = client
        self.full_name = push.repo_full_name
        files = session.execute(select(SnapshotFile).where(SnapshotFile.snapshot_id == snapshot.id)).scalars()
        # Held here: the session's identity map keeps objects only weakly, and re-reading each blob
        # costs a query per file.
        self.blobs: dict[str, Blob] = {row.path: row.blob for row in files}
        self.desired = {path: blob.git_sha for path, blob in self.blobs.items()}
        self.previous = _previous_snapshot_files(session, project)
        self.uploaded: set[str] = set()
        self.write_progress = False
        user = session.get(User, push.user_id) if push.user_id else None
        self.author = _author_for(user)
        self.message = commit_message(project, snapshot)

    # -- the main line --

    def run(self) -> PushOutcome:
        main_branch = self.project.repo_branch or "main"
        if self.push.branch != main_branch:
            return self._push_to_new_branch(main_branch)
        last = self.project.repo_head_sha
        if last:
            # Optimistic: the branch is most likely where Sorya left it; the ref update proves it.
            try:
                remote = self.client.get_tree(self.full_name, last)
                parent = last
            except GithubNotFound:
                self._check_repo_exists()
                parent, remote = self._current_head(main_branch)
        else:
            parent, remote = self._current_head(main_branch)
        if parent is None:
            return self._first_push(main_branch)
        for _ in range(MAX_REBASE_ROUNDS):
            assert remote is not None
            plan = plan_changes(self.desired, self.previous, remote.files)
            if plan.conflicts:
                raise self._conflict(plan.conflicts)
            if not plan.entries:
                return self._up_to_date(parent)
            commit_sha = self._write_commit(plan.entries, remote, parent)
            try:
                self.client.update_branch(self.full_name, main_branch, commit_sha)
            except NotFastForward:
                head, remote = self._current_head(main_branch)
                if head is None or head == parent:
                    # GitHub refused although the branch is where the commit expects it: rebuilding
                    # would not help, and forcing is never an option.
                    raise GithubError(
                        f"GitHub refused to move {main_branch} of {self.full_name} to the new commit (not a "
                        "fast forward) although the branch had not changed. Nothing was recorded as "
                        "pushed; try again.", status=422) from None
                parent = head
                continue
            return self._succeeded(commit_sha, len(plan.entries))
        raise NotFastForward("The branch kept moving on GitHub.")

    def _current_head(self, branch: str) -> tuple[str | None, RemoteTree | None]:
        head = self.client.get_branch_head(self.full_name, branch)
        if head is None:
            return None, None
        return head, self.client.get_tree(self.full_name, head)

    def _check_repo_exists(self) -> None:
        """Tell a deleted or renamed repository (raises GithubNotFound) from a rewritten history."""
        self.client.get_repository(self.full_name)

    def _write_commit(self, entries: dict[str, str | None], remote: RemoteTree, parent: str | None) -> str:
        """Upload what GitHub lacks, build the tree on `remote`, and create the commit (not the ref).

        Text files travel inline in the tree request (GitHub makes their blobs); binary files, and text
        that is not UTF-8, need a blob request each. Inline text is sent in batches of at most
        `INLINE_TREE_MAX_BYTES`, each tree built on the previous one.
        """
        present = set(remote.files.values())
        by_sha: dict[str, str | None] = {}
        batches: list[dict[str, str]] = [{}]
        batch_bytes = 0
        binary: list[str] = []
        for path, sha in sorted(entries.items()):
            if sha is None or sha in present or sha in self.uploaded:
                by_sha[path] = sha
                continue
            blob = self.blobs[path]
            text = None if blob.is_binary else _utf8(blob.content)
            if text is None:
                binary.append(path)
                by_sha[path] = sha
                continue
            if batch_bytes and batch_bytes + len(blob.content) > INLINE_TREE_MAX_BYTES:
                batches.append({})
                batch_bytes = 0
            batches[-1][path] = text
            batch_bytes += len(blob.content)
        self.push.progress_total = len(binary) + len(batches) + 2
        self.push.progress_done = 0
        # Writing progress costs a database commit per step: worth it only for a push that takes a while.
        self.write_progress = self.push.progress_total > PROGRESS_WRITE_MIN_STEPS
        if self.write_progress:
            self.session.commit()
        self._upload_blobs(binary)
        tree = remote.sha
        for index, batch in enumerate(batches):
            tree = self.client.create_tree(self.full_name, by_sha if index == 0 else {}, base_tree=tree,
                                           contents=batch)
            self._progress(extra=1)
        commit = self.client.create_commit(self.full_name, message=self.message, tree=tree,
                                           parents=[parent] if parent else [], author=self.author)
        self._progress(extra=1)
        return commit.sha

    def _upload_blobs(self, paths: list[str]) -> None:
        for index, path in enumerate(paths, start=1):
            sha = self.desired[path]
            if sha in self.uploaded:
                continue
            made = self.client.create_blob(self.full_name, self.blobs[path].content)
            if made != sha:
                raise GithubError(f"GitHub stored {path} under another id ({made[:12]}) than Sorya computed "
                                  f"({sha[:12]}); nothing was pushed.")
            self.uploaded.add(sha)
            self.push.progress_done = index
            if index % PROGRESS_WRITE_EVERY == 0:
                self.push.requests_made = self.client.requests_made
                self.session.commit()

    def _progress(self, *, extra: int) -> None:
        self.push.progress_done = min(self.push.progress_total, self.push.progress_done + extra)
        self.push.requests_made = self.client.requests_made
        if self.write_progress:
            self.session.commit()

    # -- special cases --

    def _first_push(self, branch: str) -> PushOutcome:
        """An empty repository: one file through the Contents API, then the rest as the snapshot commit."""
        plan = plan_changes(self.desired, {}, {})
        if not plan.entries:
            raise Conflict("This snapshot has no files to publish.", reason="empty_snapshot")
        first_path = sorted(plan.entries)[0]
        content = self.blobs[first_path].content
        rest = {p: s for p, s in plan.entries.items() if p != first_path}
        message = self.message if not rest else f"Start {self.project.name} for snapshot #{self.snapshot.number}"
        first = self.client.create_first_file(self.full_name, branch=branch, path=first_path, content=content,
                                              message=message, author=self.author)
        if not rest:
            return self._succeeded(first.sha, 1)
        remote = RemoteTree(sha=first.tree_sha, files={first_path: plan.entries[first_path] or ""})
        commit_sha = self._write_commit(rest, remote, first.sha)
        self.client.update_branch(self.full_name, branch, commit_sha)
        return self._succeeded(commit_sha, len(plan.entries))

    def _push_to_new_branch(self, main_branch: str) -> PushOutcome:
        """Push onto a new branch from Sorya's last commit (or the branch head), for a pull request."""
        base = self.project.repo_head_sha or self.client.get_branch_head(self.full_name, main_branch)
        if base is None:
            raise Conflict("The repository is empty: push to its main branch instead.", reason="repo_empty")
        remote = self.client.get_tree(self.full_name, base)
        plan = plan_changes(self.desired, self.previous, remote.files, overwrite=True)
        if not plan.entries:
            return self._up_to_date(None)
        commit_sha = self._write_commit(plan.entries, remote, base)
        name = self.push.branch
        for attempt in range(1, MAX_BRANCH_NAME_TRIES + 1):
            candidate = name if attempt == 1 else f"{name}-{attempt}"
            try:
                self.client.create_branch(self.full_name, candidate, commit_sha)
            except RefExists:
                continue
            self.push.branch = candidate
            outcome = self._succeeded(commit_sha, len(plan.entries), record_head=False)
            outcome.compare_url = self.client.compare_url(self.full_name, main_branch, candidate)
            return outcome
        raise Conflict(f"Branches named {name} already exist; delete some on GitHub and try again.",
                       reason="branch_exists")

    def _conflict(self, paths: list[str]) -> PushConflict:
        shown = ", ".join(paths[:10]) + (f" and {len(paths) - 10} more" if len(paths) > 10 else "")
        return PushConflict(
            f"Someone changed files on GitHub that snapshot #{self.snapshot.number} changes too: {shown}. "
            f"Sorya did not overwrite them. Push this snapshot to a new branch instead, then open a pull "
            "request to merge the two.", conflicting_paths=paths)

    # -- recording --

    def _up_to_date(self, head: str | None) -> PushOutcome:
        if head and head != self.project.repo_head_sha:
            self.project.repo_head_sha = head
        self.push.commit_sha = head or self.project.repo_head_sha
        if self.push.commit_sha:
            self.push.html_url = self.client.commit_url(self.full_name, self.push.commit_sha)
        self.push.files_changed = 0
        self.push.requests_made = self.client.requests_made
        _finish(self.session, self.push, PUSH_UP_TO_DATE)
        log.info("push=%s project=%s up to date", self.push.id, self.project.id)
        return PushOutcome(push=self.push)

    def _succeeded(self, commit_sha: str, files_changed: int, *, record_head: bool = True) -> PushOutcome:
        self.push.commit_sha = commit_sha
        self.push.html_url = self.client.commit_url(self.full_name, commit_sha)
        self.push.files_changed = files_changed
        self.push.progress_done = self.push.progress_total
        self.push.requests_made = self.client.requests_made
        if record_head:
            self.project.repo_head_sha = commit_sha
        _finish(self.session, self.push, PUSH_SUCCEEDED)
        log.info("push=%s project=%s commit=%s files=%s requests=%s", self.push.id, self.project.id,
                 commit_sha, files_changed, self.push.requests_made)
        return PushOutcome(push=self.push)


def _utf8(content: bytes) -> str | None:
    """The text of a file that can travel inline as JSON, or None for binary content.

    A NUL byte marks binary content (git's own heuristic) and is kept out of JSON strings."""
    if b"\x00" in content:
        return None
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _author_for(user: User | None) -> Author | None:
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


# --- reading for pages -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PushView:
    id: int
    snapshot_number: int | None
    status: str
    commit_sha: str | None
    html_url: str | None
    branch: str
    compare_url: str | None
    files_changed: int
    who: str
    created_at: datetime
    finished_at: datetime | None
    error_code: str | None
    error_message: str | None
    progress_done: int
    progress_total: int
    requests_made: int


def push_history(session: Session, project: Project, *, github_url: str, limit: int = HISTORY_LIMIT) -> list[PushView]:
    rows = session.execute(
        select(Push, Snapshot.number, User.login)
        .outerjoin(Snapshot, Snapshot.id == Push.snapshot_id)
        .outerjoin(User, User.id == Push.user_id)
        .where(Push.project_id == project.id).order_by(Push.id.desc()).limit(limit)).all()
    views = []
    for push, number, login in rows:
        compare = None
        if push.status == PUSH_SUCCEEDED and project.repo_branch and push.branch != project.repo_branch:
            compare = (f"{github_url.rstrip('/')}/{push.repo_full_name}/compare/"
                       f"{project.repo_branch}...{push.branch}?expand=1")
        views.append(PushView(
            id=push.id, snapshot_number=number, status=push.status, commit_sha=push.commit_sha,
            html_url=push.html_url, branch=push.branch, compare_url=compare, files_changed=push.files_changed,
            who=login or "a deleted account", created_at=push.created_at, finished_at=push.finished_at,
            error_code=push.error_code, error_message=push.error_message, progress_done=push.progress_done,
            progress_total=push.progress_total, requests_made=push.requests_made))
    return views


def get_push(session: Session, *, project_id: int, user_id: int, push_id: int) -> Push:
    owned_project(session, project_id, user_id)
    push = session.get(Push, push_id)
    if push is None or push.project_id != project_id:
        raise NotFound("There is no such push in this project.")
    return push
