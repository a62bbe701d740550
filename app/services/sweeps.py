"""Repairs of what a crashed process left behind, run in order by `flask credits sweep` and, as one
periodic job, by the background workers (`app.jobs.run_sweeps_job`).

Order matters: an abandoned reply first settles its hold for the text it produced; only then may the
hold sweep release holds that are still open, or it would release that hold unpaid.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.runtime.streams import ReplyStreams
from app.services import credits
from app.services.chat import ChatSettings, sweep_stale_generations
from app.services.snapshots.auto import version_missed_replies


def run_sweeps(session: Session, *, chat_settings: ChatSettings, streams: ReplyStreams) -> dict[str, int]:
    """Run every sweep in order, reporting how many leftovers each repaired; each commits its own
    repairs. Safe to run from several processes at once. A feature with leftovers of its own adds a line."""
    return {
        # Chat replies whose process died: failed, charged for what they produced (services/chat/ending.py).
        "abandoned replies marked failed": sweep_stale_generations(session, settings=chat_settings, streams=streams),
        "expired holds released": credits.sweep_expired_holds(session),
        # Finished replies whose process stopped before their version was made (services/snapshots/auto.py).
        "finished replies versioned": (
            version_missed_replies(session, limits=chat_settings.snapshot_limits)
            if chat_settings.snapshot_limits is not None else 0
        ),
    }
