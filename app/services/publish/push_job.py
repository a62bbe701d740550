"""The steps of one push to GitHub: find the parent, plan, upload, commit, move the branch, record.

See the package docstring for what a push guarantees; each step here is one of those guarantees.
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import Conflict
from app.models import Blob, Project, Push, Snapshot, User
from app.models.publish import PUSH_SUCCEEDED, PUSH_UP_TO_DATE
from app.providers.github import (
    GithubError,
    GithubNotFound,
    GithubRepoClient,
    NotFastForward,
    RefExists,
    RemoteTree,
)
from app.providers.github.pulls import open_pull_request
from app.services.publish.outcome import PushConflict, PushOutcome, finish_push
from app.services.publish.plan import author_for, commit_message, inline_text, plan_changes
from app.services.publish.settings import (
    INLINE_TREE_MAX_BYTES,
    MAX_BRANCH_NAME_TRIES,
    MAX_REBASE_ROUNDS,
    PROGRESS_WRITE_EVERY,
    PROGRESS_WRITE_MIN_STEPS,
    SYNC_BASE_REMOTE_TREE,
)
from app.services.snapshots.blobs import IN_CHUNK
from app.services.snapshots.reading import list_snapshot_files

log = logging.getLogger(__name__)


def _previous_snapshot_files(session: Session, project: Project) -> dict[str, str] | None:
    """Path -> git sha of the sync base: the version Sorya last pushed, imported or pulled cleanly (empty
    if none); None when the base is GitHub's own tree at `repo_head_sha` (after a pull that merged)."""
    if not project.repo_head_sha:
        return {}
    if project.sync_snapshot_id == SYNC_BASE_REMOTE_TREE:
        return None
    if project.sync_snapshot_id is not None:
        return _snapshot_files(session, project.sync_snapshot_id)
    snapshot_id = session.execute(
        select(Push.snapshot_id).where(
            Push.project_id == project.id, Push.repo_full_name == project.repo_full_name,
            Push.branch == project.repo_branch, Push.status.in_((PUSH_SUCCEEDED, PUSH_UP_TO_DATE)))
        .order_by(Push.id.desc()).limit(1)).scalar_one_or_none()
    if snapshot_id is None:
        return {}
    return _snapshot_files(session, snapshot_id)


def _snapshot_files(session: Session, snapshot_id: int) -> dict[str, str]:
    return {entry.path: entry.git_sha for entry in list_snapshot_files(session, snapshot_id)}


def _snapshot_blobs(session: Session, snapshot_id: int) -> dict[str, Blob]:
    """Path -> blob (with its content) of a version, in a handful of queries whatever its size."""
    entries = list_snapshot_files(session, snapshot_id)
    by_id: dict[int, Blob] = {}
    ids = sorted({entry.blob_id for entry in entries})
    for start in range(0, len(ids), IN_CHUNK):
        by_id.update({blob.id: blob for blob in session.scalars(select(Blob).where(Blob.id.in_(ids[start:start + IN_CHUNK])))})
    return {entry.path: by_id[entry.blob_id] for entry in entries}


class PushJob:
    """The steps of one push. Writes progress to the push row; raises domain errors on failure."""

    def __init__(self, session: Session, push: Push, project: Project, snapshot: Snapshot,
                 client: GithubRepoClient) -> None:
        self.session = session
        self.push = push
        self.project = project
        self.snapshot = snapshot
        self.client = client
        self.full_name = push.repo_full_name
        # Held here: the session's identity map keeps objects only weakly, and re-reading each blob
        # costs a query per file.
        self.blobs: dict[str, Blob] = _snapshot_blobs(session, snapshot.id)
        self.desired = {path: blob.git_sha for path, blob in self.blobs.items()}
        self.previous = _previous_snapshot_files(session, project)
        self.uploaded: set[str] = set()
        self.write_progress = False
        user = session.get(User, push.user_id) if push.user_id else None
        self.author = author_for(user)
        self.message = commit_message(project, snapshot)

    # -- the main line --

    def run(self) -> PushOutcome:
        main_branch = self.project.repo_branch or "main"
        options = self.push.options or {}
        if options.get("named_branch") and self.push.branch != main_branch:
            outcome = self._push_to_named_branch(main_branch)
            if options.get("pull_request") and outcome.error is None and self.push.status == PUSH_SUCCEEDED:
                self._open_pull_request(main_branch, options["pull_request"])
            return outcome
        if self.push.branch != main_branch:
            return self._push_to_new_branch(main_branch)
        parent, remote = self._expected_parent(main_branch)
        if parent is None:
            return self._first_push(main_branch)
        assert remote is not None
        return self._commit_onto_branch(main_branch, parent, remote)

    def _expected_parent(self, branch: str) -> tuple[str | None, RemoteTree | None]:
        """The commit the new one goes on, and its tree: Sorya's last push, else the branch head."""
        last = self.project.repo_head_sha
        if not last:
            return self._current_head(branch)
        # Optimistic: the branch is most likely where Sorya left it; the ref update proves it.
        try:
            tree = self.client.get_tree(self.full_name, last)
            if self.previous is None:
                self.previous = dict(tree.files)
            return last, tree
        except GithubNotFound:
            self._check_repo_exists()
            return self._current_head(branch)

    def _commit_onto_branch(self, main_branch: str, parent: str, remote: RemoteTree) -> PushOutcome:
        """Plan, commit and move the branch; rebuild on the new head when it moved meanwhile."""
        for _ in range(MAX_REBASE_ROUNDS):
            assert remote is not None
            plan = plan_changes(self.desired, self.previous or {}, remote.files)
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
            text = None if blob.is_binary else inline_text(blob.content)
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

    def _push_to_named_branch(self, main_branch: str) -> PushOutcome:
        """Make the named branch hold the snapshot: onto its head when it exists, else created from the
        sync base (Sorya's last commit on the main branch)."""
        name = self.push.branch
        try:
            head = self.client.get_branch_head(self.full_name, name)
        except GithubNotFound:
            head = None
        base = head or self.project.repo_head_sha or self.client.get_branch_head(self.full_name, main_branch)
        if base is None:
            raise Conflict("The repository is empty: push to its main branch first.", reason="repo_empty")
        remote = self.client.get_tree(self.full_name, base)
        plan = plan_changes(self.desired, remote.files, remote.files, overwrite=True)
        if not plan.entries:
            return self._up_to_date(head)
        commit_sha = self._write_commit(plan.entries, remote, base)
        if head is None:
            self.client.create_branch(self.full_name, name, commit_sha)
        else:
            self.client.update_branch(self.full_name, name, commit_sha)
        outcome = self._succeeded(commit_sha, len(plan.entries), record_head=False)
        outcome.compare_url = self.client.compare_url(self.full_name, main_branch, name)
        return outcome

    def _open_pull_request(self, main_branch: str, request: dict) -> None:
        """Open (or find) the branch's pull request and record it on the push; a refusal is recorded
        beside the push, which itself succeeded."""
        try:
            info = open_pull_request(self.client, self.full_name, head=self.push.branch, base=main_branch,
                                     title=request.get("title") or "", body=request.get("body") or "")
            self.push.pull_request = {"number": info.number, "url": info.url, "state": info.state}
        except GithubError as exc:
            self.session.rollback()
            self.push.pull_request = {"error": exc.message[:500]}
        self.session.commit()

    def _push_to_new_branch(self, main_branch: str) -> PushOutcome:
        """Push onto a new branch from Sorya's last commit (or the branch head), for a pull request."""
        base = self.project.repo_head_sha or self.client.get_branch_head(self.full_name, main_branch)
        if base is None:
            raise Conflict("The repository is empty: push to its main branch instead.", reason="repo_empty")
        remote = self.client.get_tree(self.full_name, base)
        if self.previous is None:
            self.previous = dict(remote.files)
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
        if self.push.branch == (self.project.repo_branch or "main"):
            if head and head != self.project.repo_head_sha:
                self.project.repo_head_sha = head
            self.project.sync_snapshot_id = self.snapshot.id
        self.push.commit_sha = head or self.project.repo_head_sha
        if self.push.commit_sha:
            self.push.html_url = self.client.commit_url(self.full_name, self.push.commit_sha)
        self.push.files_changed = 0
        self.push.requests_made = self.client.requests_made
        finish_push(self.session, self.push, PUSH_UP_TO_DATE)
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
            self.project.sync_snapshot_id = self.snapshot.id
        finish_push(self.session, self.push, PUSH_SUCCEEDED)
        log.info("push=%s project=%s commit=%s files=%s requests=%s", self.push.id, self.project.id,
                 commit_sha, files_changed, self.push.requests_made)
        return PushOutcome(push=self.push)

