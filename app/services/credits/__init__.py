"""Credits: the ledger, holds, prices, reading the ledger, and reconciliation.

One module per concern; the public names are re-exported here, so callers write `credits.place_hold`.
A test that monkeypatches a name patches the module that holds it (`credits.ledger.post_ledger_entry`),
since the functions here call each other through their own modules.
"""

from app.services.credits.history import (
    LEDGER_PAGE_DEFAULT,
    LEDGER_PAGE_MAX,
    UNKNOWN_MODEL,
    DailyUsage,
    LedgerPage,
    daily_usage,
    iter_ledger_entries,
    list_ledger_entries,
)
from app.services.credits.holds import (
    HOLD_ACTIVE,
    HOLD_EXPIRED,
    HOLD_RELEASED,
    HOLD_SETTLED,
    HOLD_TTL_S,
    OPPORTUNISTIC_SWEEP_LIMIT,
    Release,
    Settlement,
    find_hold,
    log_release,
    log_settlement,
    place_hold,
    place_hold_in_transaction,
    release_hold,
    release_hold_in_transaction,
    settle_hold,
    settle_hold_in_transaction,
    sweep_expired_holds,
)
from app.services.credits.ledger import (
    IDEMPOTENCY_KEY_MAX_CHARS,
    MAX_CREDITS_PER_ENTRY,
    NOTE_MAX_CHARS,
    REASON_ADJUSTMENT,
    REASON_ADMIN_GRANT,
    REASON_CHAT,
    REASON_PLAN_GRANT,
    REASON_REFUND,
    REASON_SIGNUP,
    REASONS,
    CreditSummary,
    Posting,
    credit_summary,
    detach_ledger_entries,
    find_entry,
    grant_credits,
    lock_balance,
    post_ledger_entry,
    read_balance,
)
from app.services.credits.pricing import Price, price_for_model, reply_cost
from app.services.credits.reconcile import Discrepancy, find_discrepancies

__all__ = [
    "HOLD_ACTIVE", "HOLD_EXPIRED", "HOLD_RELEASED", "HOLD_SETTLED", "HOLD_TTL_S", "IDEMPOTENCY_KEY_MAX_CHARS",
    "LEDGER_PAGE_DEFAULT", "LEDGER_PAGE_MAX", "MAX_CREDITS_PER_ENTRY", "NOTE_MAX_CHARS",
    "OPPORTUNISTIC_SWEEP_LIMIT", "REASONS", "REASON_ADJUSTMENT", "REASON_ADMIN_GRANT", "REASON_CHAT",
    "REASON_PLAN_GRANT", "REASON_REFUND", "REASON_SIGNUP", "UNKNOWN_MODEL", "CreditSummary", "DailyUsage",
    "Discrepancy", "LedgerPage", "Posting", "Price", "Release", "Settlement", "credit_summary", "daily_usage",
    "detach_ledger_entries", "find_discrepancies", "find_entry", "find_hold", "grant_credits",
    "iter_ledger_entries", "list_ledger_entries", "lock_balance", "log_release", "log_settlement",
    "place_hold", "place_hold_in_transaction", "post_ledger_entry", "price_for_model", "read_balance",
    "release_hold", "release_hold_in_transaction", "reply_cost", "settle_hold", "settle_hold_in_transaction",
    "sweep_expired_holds",
]
