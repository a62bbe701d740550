"""Entry points of the periodic jobs whose services take settings: each builds the settings from this
process's configuration, then calls the service (services never read the configuration themselves).

Registered here, at import, with `runtime.jobs.register_periodic`; the CLI imports this module, so every
`flask jobs worker` and `flask jobs run-periodic` knows them.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from app import runtime
from app.runtime import jobs
from app.runtime.streams import streams_for
from app.services import sweeps
from app.services.chat import ChatSettings


def run_sweeps_job(session: Session) -> dict[str, int]:
    """`sweeps.run_sweeps` with this process's chat settings and reply streams."""
    return sweeps.run_sweeps(
        session, chat_settings=ChatSettings.from_config(runtime.settings()), streams=streams_for(runtime.redis_client())
    )


jobs.register_periodic("sweeps", "app.jobs:run_sweeps_job", 60)
