"""Repairs of what a crashed process left behind, run in order by `flask credits sweep` and, as one
periodic job, by the background workers (app/runtime/jobs.py).

Order matters: an abandoned reply first settles its hold for the text it produced; only then may the
hold sweep release holds that are still open, or it would release that hold unpaid.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from app.runtime import jobs
from app.services import credits


def sweep_abandoned_replies(session: Session) -> int:
    """Chat replies whose process died: failed, charged for what they produced (services/chat/ending.py)."""
    from app import runtime
    from app.runtime.streams import streams_for
    from app.services.chat import ChatSettings, sweep_stale_generations

    return sweep_stale_generations(
        session, settings=ChatSettings.from_config(runtime.settings()), streams=streams_for(runtime.redis_client())
    )


# (what it reports, a function of the session returning how many leftovers it repaired), in order.
# A feature with its own leftovers adds one line here.
SWEEPS: list[tuple[str, Callable[[Session], int]]] = [
    ("abandoned replies marked failed", sweep_abandoned_replies),
    ("expired holds released", credits.sweep_expired_holds),
]


def run_sweeps(session: Session) -> dict[str, int]:
    """Run every sweep in order; each commits its own repairs. Safe to run from several processes."""
    return {label: run(session) for label, run in SWEEPS}


jobs.register_periodic("sweeps", "app.services.sweeps:run_sweeps", 60)
