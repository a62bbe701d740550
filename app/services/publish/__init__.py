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

Background work: `run_push(session, push_id, settings)` is a plain function (the job entry point in
web/publish.py builds `PublishSettings` from configuration and calls it); progress is written to the push row.

Modules: `settings` (limits, error codes, `PublishSettings`), `access` (ownership, the person's GitHub
client), `repos` (create/link/unlink a repository), `push` (start and run a push), `push_job` (a push's
steps), `plan` (what a push writes), `outcome` (how a push ends), `history` (reading pushes), `panel`
(what the publish panel shows).
"""

from app.services.publish.access import client_for, github_account_for
from app.services.publish.history import (
    PushView,
    get_push,
    push_compare_url,
    push_history,
    pushed_snapshot,
    running_push,
    wait_for_push_end,
)
from app.services.publish.outcome import PushConflict, PushCrashed, PushOutcome
from app.services.publish.panel import PublishPanel, publish_panel
from app.services.publish.plan import PushPlan, commit_message, plan_changes
from app.services.publish.push import run_push, start_push
from app.services.publish.push_job import PushJob
from app.services.publish.repos import (
    RepoLink,
    create_repository,
    repo_name_for,
    unlink_repository,
    validate_description,
    validate_repo_name,
)
from app.services.publish.settings import (
    ERROR_BRANCH_MOVED,
    ERROR_CONFLICT,
    ERROR_INTERRUPTED,
    ERROR_MISSING_SCOPE,
    ERROR_REPO_MISSING,
    ERROR_TOKEN_REVOKED,
    HISTORY_LIMIT,
    PUSH_INLINE_MAX_FILES,
    PUSH_STALE_AFTER_S,
    PublishSettings,
)

__all__ = [
    "ERROR_BRANCH_MOVED", "ERROR_CONFLICT", "ERROR_INTERRUPTED", "ERROR_MISSING_SCOPE", "ERROR_REPO_MISSING",
    "ERROR_TOKEN_REVOKED", "HISTORY_LIMIT", "PUSH_INLINE_MAX_FILES", "PUSH_STALE_AFTER_S",
    "PublishPanel", "PublishSettings", "PushConflict", "PushCrashed", "PushJob", "PushOutcome", "PushPlan",
    "PushView", "RepoLink", "client_for", "commit_message", "create_repository", "get_push",
    "github_account_for", "plan_changes", "publish_panel", "push_compare_url",
    "push_history", "pushed_snapshot", "repo_name_for", "run_push", "running_push", "start_push",
    "unlink_repository", "wait_for_push_end",
    "validate_description", "validate_repo_name",
]
