"""What publishing needs from configuration, its limits, and the error codes a failed push records."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.crypto import Keyring
from app.providers.github.app import AppCredentials

if TYPE_CHECKING:
    from config import Config

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
# `projects.sync_snapshot_id` after a pull that merged: no version equals GitHub's tree at
# `repo_head_sha`, so that tree itself is the base a push diffs against.
SYNC_BASE_REMOTE_TREE = 0
# At most one "new commits?" check per project per this many seconds; unchanged branches answer 304.
SYNC_CHECK_EVERY_S = 60
PULL_STALE_AFTER_S = 10 * 60

# Push error codes, stored on `pushes.error_code` and returned as the API error's `reason`.
ERROR_CONFLICT = "push_conflict"
ERROR_REPO_MISSING = "repo_missing"
ERROR_TOKEN_REVOKED = "github_token_revoked"
ERROR_MISSING_SCOPE = "github_missing_scope"
# The person has not granted repository access yet: the answer carries the consent to ask for it.
ERROR_SCOPE_REQUIRED = "github_scope_required"
# GitHub App mode: the app is not installed on the repository (the answer carries the install link).
ERROR_APP_NOT_INSTALLED = "github_app_not_installed"
ERROR_BRANCH_MOVED = "branch_moved"
ERROR_INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class PublishSettings:
    """What publishing needs from configuration, as plain values (built from `Config` by the caller).

    `keyring` opens the stored GitHub tokens (`github_accounts.access_token_encrypted`, sealed by
    services/accounts.py). `app` is the GitHub App whose installations reach repositories, when the
    operator configured one (else the person's OAuth token with the repository scope does)."""

    github_url: str
    keyring: Keyring
    allow_private_repos: bool = True
    timeout_s: float = 15.0
    app: AppCredentials | None = None

    @classmethod
    def from_config(cls, config: Config, keyring: Keyring) -> PublishSettings:
        app = None
        if config.GITHUB_APP_ID and config.GITHUB_APP_PRIVATE_KEY and config.GITHUB_APP_SLUG:
            app = AppCredentials(app_id=config.GITHUB_APP_ID, private_key=config.GITHUB_APP_PRIVATE_KEY,
                                 slug=config.GITHUB_APP_SLUG)
        return cls(github_url=config.GITHUB_URL, keyring=keyring,
                   allow_private_repos=config.GITHUB_ALLOW_PRIVATE_REPOS,
                   timeout_s=float(config.GITHUB_TIMEOUT_S), app=app)
