"""The GitHub failures both GitHub adapters raise: sign-in and identity (`github.py`, requests) and
repositories (`github_git.py`, github3.py). One class per failure, so a caller catches a revoked token
the same way whichever adapter noticed it."""

from __future__ import annotations

from typing import Any

from app.services.errors import UpstreamError

PROVIDER = "GitHub"


class GithubError(UpstreamError):
    """A GitHub call failed; `status` is GitHub's HTTP status (0 when no answer came)."""

    reason = "github_error"

    def __init__(self, message: str, *, status: int = 0, retryable: bool = False, **extra: Any) -> None:
        super().__init__(PROVIDER, message, retryable=retryable, reason=self.reason, **extra)
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
