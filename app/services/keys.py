"""Re-encrypting stored secrets under the current `ENCRYPTION_KEY` (`flask keys rotate`).

Rotating the key: put the new key in `ENCRYPTION_KEY`, move the old one to `ENCRYPTION_OLD_KEYS`,
restart, run `flask keys rotate`, and once it reports nothing left under an old key, drop the old key.

`SEALED_COLUMNS` lists every column that holds a value from `crypto.encrypt_secret`, with the purpose
and owner it was sealed for; a feature that stores a new kind of secret adds its column there.

`rotate_stored_secrets` guarantees:
- resumable: rows are taken in id order, in batches, each batch committed on its own; rows already
  under the current key are skipped, so a run stopped half-way (or run twice) simply continues;
- safe beside live traffic: each batch locks its rows (`FOR UPDATE`), so a sign-in that rewrites a
  token at the same moment waits for the batch and is never overwritten by a stale re-seal;
- a value that no configured key opens is counted as failed and left untouched (never blanked), so
  an operator who forgot an old key can add it to `ENCRYPTION_OLD_KEYS` and run again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.crypto import DecryptionError, Keyring, needs_rotation, reseal_secret
from app.models import GithubAccount

log = logging.getLogger(__name__)

ROTATION_BATCH_SIZE = 200


@dataclass(frozen=True)
class SealedColumn:
    """One encrypted column: its model, attribute, the purpose it is bound to and who owns a row."""

    label: str
    model: type
    attribute: str
    purpose: str
    owner_of: Callable[[Any], int | str]


SEALED_COLUMNS: tuple[SealedColumn, ...] = (
    # Purpose and owner as app/services/accounts.py seals GitHub tokens (GITHUB_TOKEN_PURPOSE, user id).
    SealedColumn("github_accounts.access_token_encrypted", GithubAccount, "access_token_encrypted",
                 "github_token", lambda row: row.user_id),
)


@dataclass
class RotationReport:
    """Counts per column: examined, resealed, already current, failed (ids of the failures kept)."""

    examined: int = 0
    resealed: int = 0
    current: int = 0
    failed: int = 0
    failed_ids: list[tuple[str, int]] = field(default_factory=list)


def rotate_stored_secrets(
    session: Session,
    keyring: Keyring,
    *,
    batch_size: int = ROTATION_BATCH_SIZE,
    on_batch: Callable[[str, RotationReport], None] | None = None,
) -> RotationReport:
    """Re-seal every stored secret that is not under the current key. Commits per batch (see above)."""
    report = RotationReport()
    for column in SEALED_COLUMNS:
        model = column.model
        last_id = 0
        while True:
            rows = session.execute(
                select(model).where(model.id > last_id).order_by(model.id).limit(batch_size).with_for_update()
            ).scalars().all()
            if not rows:
                session.rollback()
                break
            for row in rows:
                last_id = row.id
                report.examined += 1
                stored = getattr(row, column.attribute)
                if not stored or not needs_rotation(keyring, stored):
                    report.current += 1
                    continue
                try:
                    setattr(row, column.attribute, reseal_secret(
                        keyring, stored, purpose=column.purpose, owner=column.owner_of(row)))
                    report.resealed += 1
                except DecryptionError as exc:
                    report.failed += 1
                    report.failed_ids.append((column.label, row.id))
                    log.warning("keys rotate: %s id=%s cannot be opened: %s", column.label, row.id, exc)
            session.commit()
            if on_batch:
                on_batch(column.label, report)
    log.info(
        "keys rotate: examined=%s resealed=%s current=%s failed=%s",
        report.examined, report.resealed, report.current, report.failed,
    )
    return report
