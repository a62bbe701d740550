"""How a push ends: its outcome, the errors only a push raises, and the one way a push row is closed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from app.errors import Conflict, DomainError
from app.models import Push
from app.models.base import utcnow
from app.services.publish.settings import ERROR_CONFLICT


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


def finish_push(session: Session, push: Push, status: str, *, error_code: str | None = None,
                error_message: str | None = None) -> None:
    """Record the push's end and release the project's push lock, in one commit."""
    push.status = status
    push.running_lock = None
    push.finished_at = utcnow()
    push.error_code = error_code
    push.error_message = error_message
    session.commit()

