"""`flask credits ...` commands (minimal form: the credits domain adds grant, balance and reconcile)."""

from __future__ import annotations

from collections.abc import Callable

import click

from app import runtime
from app.cli.groups import credits as credits_group
from app.extensions import db


def sweep_stale_generations() -> str:
    from app.services.chat import ChatSettings
    from app.services.chat import sweep_stale_generations as sweep
    from app.services.streams import streams_for

    ended = sweep(
        db.session, settings=ChatSettings.from_config(runtime.settings()), streams=streams_for(runtime.redis_client())
    )
    return f"{ended} abandoned replies marked failed"


def sweep_expired_holds() -> str:
    from app.services.credits import sweep_expired_holds as sweep

    return f"{sweep(db.session)} expired holds released"


# Run in this order: an abandoned reply settles its hold for the text it produced before the hold
# sweep could release that hold unpaid.
SWEEPS: list[Callable[[], str]] = [sweep_stale_generations, sweep_expired_holds]


@credits_group.command("sweep")
def sweep_command() -> None:
    """Release expired holds and mark abandoned generations failed."""
    for run in SWEEPS:
        click.echo(run())
