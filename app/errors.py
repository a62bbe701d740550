"""Domain errors. Services raise them; one handler in app/web/errors.py turns each into a page or into
the contract's JSON error `{"error": {"code", "message"}}` with the status named here."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """An error a person can understand: `message` is shown to them as it is."""

    status = 400
    code = "invalid_request"

    def __init__(self, message: str, *, fields: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}
        self.extra = extra

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.fields:
            body["fields"] = self.fields
        body.update(self.extra)
        return {"error": body}


class InvalidRequest(DomainError):
    status, code = 400, "invalid_request"


class Unauthenticated(DomainError):
    status, code = 401, "unauthenticated"


class InsufficientCredits(DomainError):
    """402. `reason`: `balance` (the account's available credits), or `member_cap` (a team member's cap)."""

    status, code = 402, "insufficient_credits"

    def __init__(self, message: str, *, reason: str = "balance", **extra: Any) -> None:
        super().__init__(message, reason=reason, **extra)


class Forbidden(DomainError):
    status, code = 403, "forbidden"


class NotFound(DomainError):
    status, code = 404, "not_found"


class Conflict(DomainError):
    status, code = 409, "conflict"


class TooLarge(DomainError):
    status, code = 413, "too_large"


class RateLimited(DomainError):
    status, code = 429, "rate_limited"

    def __init__(self, message: str, *, retry_after_s: int, **extra: Any) -> None:
        super().__init__(message, **extra)
        self.retry_after_s = retry_after_s


class EditsFailed(DomainError):
    """A reply's edit blocks could not all be applied, so none were: `errors` says which and why."""

    status, code = 422, "unprocessable"

    def __init__(self, message: str, *, errors: list[dict[str, Any]]) -> None:
        super().__init__(message, edit_errors=errors)
        self.errors = errors


class UpstreamError(DomainError):
    """A provider failed. `provider` is "OpenAI", "GitHub" or "Stripe" and the message names it.

    Not counted here: the adapter that saw the failure counts it (`metrics.count_provider_error`), so an
    error rebuilt from a stored reply or push is not a second failure."""

    status, code = 502, "upstream_error"

    def __init__(self, provider: str, message: str, *, retryable: bool = False, **extra: Any) -> None:
        super().__init__(message, **extra)
        self.provider = provider
        self.retryable = retryable


class Unavailable(DomainError):
    status, code = 503, "unavailable"
