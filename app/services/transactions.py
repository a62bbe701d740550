"""What every service that takes row locks needs to know about MySQL/MariaDB lock conflicts."""

from __future__ import annotations

from sqlalchemy.exc import OperationalError

# 1213 deadlock and 1205 lock wait timeout roll the whole transaction back, so the work is safe to
# retry from the start. 1305 "SAVEPOINT does not exist" is how a deadlock inside a nested transaction
# (begin_nested) surfaces: InnoDB already rolled everything back, savepoint included.
LOCK_CONFLICT_CODES = frozenset({1205, 1213, 1305})


def is_lock_conflict(exc: BaseException) -> bool:
    """True when `exc` is a lock conflict that rolled the transaction back (retry from the start)."""
    if not isinstance(exc, OperationalError):
        return False
    args = getattr(exc.orig, "args", ())
    return bool(args) and args[0] in LOCK_CONFLICT_CODES
