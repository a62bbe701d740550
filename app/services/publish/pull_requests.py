"""The state of the pull requests pushes opened (open / merged / closed), refreshed with conditional
requests: each open pull request is asked at most once a minute, with its ETag (a 304 costs no rate
limit); merged and closed ones are final and never asked again."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import DomainError
from app.models import Project, Push
from app.models.base import utcnow
from app.providers.github import GithubError
from app.providers.github.pulls import pull_request_if_changed
from app.services.publish.access import client_for
from app.services.publish.settings import HISTORY_LIMIT, SYNC_CHECK_EVERY_S, PublishSettings

log = logging.getLogger(__name__)


def refresh_pull_requests(session: Session, project: Project, *, user_id: int, settings: PublishSettings,
                          now: datetime | None = None) -> None:
    """Update the state of the project's open pull requests that were not checked in the last minute."""
    now = now or utcnow()
    pushes = session.execute(select(Push).where(Push.project_id == project.id, Push.pull_request.is_not(None))
                             .order_by(Push.id.desc()).limit(HISTORY_LIMIT)).scalars().all()
    due = [p for p in pushes if (p.pull_request or {}).get("state") == "open" and _due(p.pull_request, now)]
    if not due:
        return
    try:
        client = client_for(session, user_id, settings, full_name=project.repo_full_name)
        for push in due:
            pr = dict(push.pull_request or {})
            info, etag = pull_request_if_changed(client, push.repo_full_name, int(pr["number"]), pr.get("etag"))
            if info is not None:
                pr.update(state=info.state, url=info.url)
            pr.update(etag=etag, checked_at=now.isoformat())
            push.pull_request = pr
    except (GithubError, DomainError) as exc:
        log.info("project=%s pull request refresh failed: %s", project.id, exc)
        session.rollback()
        return
    session.commit()


def _due(pr: dict, now: datetime) -> bool:
    checked = pr.get("checked_at")
    if not checked:
        return True
    return now - datetime.fromisoformat(checked) >= timedelta(seconds=SYNC_CHECK_EVERY_S)
