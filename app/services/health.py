"""Readiness: can this process serve requests right now?"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.runtime import lifecycle

log = logging.getLogger(__name__)


@dataclass
class Readiness:
    checks: dict[str, str] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return all(value == "ok" or value == "not configured" for value in self.checks.values())

    def as_json(self) -> dict[str, Any]:
        return {"status": "ready" if self.ready else "not ready", "checks": self.checks}


def migration_head(migrations_dir: Path) -> str | None:
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

    alembic_config = AlembicConfig()
    alembic_config.set_main_option("script_location", str(migrations_dir))
    return ScriptDirectory.from_config(alembic_config).get_current_head()


def check_readiness(session: Session, redis_client: Any, migrations_dir: Path) -> Readiness:
    """Check the database answers and is migrated to head, Redis answers when configured, and the
    process is not shutting down.

    Never raises: each failure is reported by name (without connection details) so a load balancer
    takes the process out and an operator sees why.
    """
    report = Readiness()
    if lifecycle.is_draining():
        # Shutting down: the load balancer must stop sending requests here before the process goes.
        report.checks["process"] = "draining"
    try:
        current = session.execute(text("SELECT version_num FROM alembic_version")).scalar()
        head = migration_head(migrations_dir)
        report.checks["database"] = "ok"
        report.checks["migrations"] = "ok" if current == head else f"at {current}, head is {head}"
    except Exception as exc:  # noqa: BLE001 - any database failure means not ready
        log.warning("readiness: database check failed: %s", type(exc).__name__)
        session.rollback()
        report.checks["database"] = "unreachable or not migrated"
    if redis_client is None:
        report.checks["redis"] = "not configured"
    else:
        try:
            redis_client.ping()
            report.checks["redis"] = "ok"
        except Exception as exc:  # noqa: BLE001
            log.warning("readiness: redis check failed: %s", type(exc).__name__)
            report.checks["redis"] = "unreachable"
    return report
