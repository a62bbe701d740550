"""Every GitHub failure, one family: each class is a domain `UpstreamError("GitHub", ...)` with a sentence a
person understands, so a caller catches a revoked token (or a missing repository) the same way whichever
call noticed it. `SignInRefused` is the OAuth flow's own refusal (a 400, not GitHub failing)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from app.errors import InvalidRequest, UpstreamError
from app.metrics import count_provider_error

PROVIDER = "GitHub"


class GithubError(UpstreamError):
    """A GitHub call failed; `github_status` is GitHub's HTTP status (0 when no answer came)."""

    reason = "github_error"

    def __init__(self, message: str, *, status: int = 0, retryable: bool = False, **extra: Any) -> None:
        super().__init__(PROVIDER, message, retryable=retryable, reason=self.reason, **extra)
        count_provider_error(PROVIDER)  # raised only where a call failed, never rebuilt later
        self.github_status = status


class GithubTokenRevoked(GithubError):
    """GitHub answered 401 to a stored token: it was revoked, expired or the app was uninstalled.

    The caller marks the account (`accounts.mark_github_token_revoked`), so the person is asked to
    reconnect."""

    reason = "github_token_revoked"

    def __init__(
        self,
        message: str = "GitHub no longer accepts Sorya's access to your account. Reconnect GitHub from your "
        "account page.",
        *,
        status: int = 401,
        **extra: Any,
    ) -> None:
        super().__init__(message, status=status, **extra)


class GithubInstallationTokenRefused(GithubError):
    """GitHub answered 401 to a GitHub App installation token (the installation was removed, or the
    token expired early): the person's own sign-in is fine, so nothing is marked revoked; the cached
    token is dropped and the next attempt mints a new one."""

    reason = "github_app_token_refused"

    def __init__(self, message: str, *, installation_id: int, **extra: Any) -> None:
        super().__init__(message, status=401, retryable=True, **extra)
        self.installation_id = installation_id


class GithubMissingScope(GithubError):
    """403/404 that GitHub explains by the token's scopes (`lacks_repository_scope`: its X-OAuth-Scopes
    hold no repository scope), or another 403 (an archived repository, no write permission)."""

    reason = "github_missing_scope"
    lacks_repository_scope = False


class GithubNotFound(GithubError):
    reason = "github_not_found"


class GithubRateLimited(GithubError):
    reason = "github_rate_limited"

    def __init__(self, message: str, *, retry_after_s: int, **extra: Any) -> None:
        retry_at = datetime.fromtimestamp(time.time() + retry_after_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        super().__init__(message, status=429, retryable=True, retry_after_s=retry_after_s, retry_at=retry_at,
                         **extra)
        self.retry_after_s = retry_after_s


class GithubRepoEmpty(GithubError):
    reason = "github_repo_empty"


class GithubRejected(GithubError):
    """GitHub understood the request and refused it (422), e.g. a name already taken."""

    reason = "github_rejected"

    def __init__(self, message: str, *, errors: list[Any] | None = None, **extra: Any) -> None:
        super().__init__(message, status=422, **extra)
        self.errors = errors or []


class NotFastForward(GithubRejected):
    reason = "github_not_fast_forward"


class RefExists(GithubRejected):
    reason = "github_ref_exists"


class BranchProtected(GithubRejected):
    """GitHub refused to move a protected branch (rules require a pull request)."""

    reason = "branch_protected"


class GithubUnavailable(GithubError):
    """GitHub answered 5xx or did not answer in time, after the retries allowed for the step."""

    reason = "github_unavailable"


class SignInRefused(InvalidRequest):
    """The OAuth flow ended without a token. `reason` is denied, state or code."""

    def __init__(self, reason: str, message: str, *, next_path: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        # Where the person was going, when the refused flow is known: trying again keeps it.
        self.next_path = next_path
        # `repositories` when the refused flow was a signed-in person's second consent.
        self.purpose: str | None = None
