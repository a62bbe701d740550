"""What the publish panel of a project shows, read in one place for the route that renders it."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import GithubAccount, Project, Snapshot
from app.models.publish import PUSH_RUNNING
from app.services.accounts import TOKEN_REVOKED
from app.services.publish.history import PushView, push_history
from app.services.publish.repos import repo_name_for

# The snapshot picker lists this many, newest first.
PANEL_SNAPSHOTS_SHOWN = 50


@dataclass(frozen=True)
class PublishPanel:
    """Everything the panel shows for the owner of `project`; `back` is where its forms return."""

    account: GithubAccount | None
    token_revoked: bool
    snapshots: list[Snapshot]
    history: list[PushView]
    running: PushView | None
    latest: PushView | None
    allow_private: bool
    default_name: str
    github_url: str
    back: str


def publish_panel(session: Session, project: Project, *, github_url: str, allow_private: bool,
                  back: str) -> PublishPanel:
    """Read the panel's state fresh (no writes). The caller has checked that the person owns `project`."""
    account = session.execute(
        select(GithubAccount).where(GithubAccount.user_id == project.user_id)).scalar_one_or_none()
    snapshots = session.execute(
        select(Snapshot).where(Snapshot.project_id == project.id).order_by(Snapshot.number.desc())
        .limit(PANEL_SNAPSHOTS_SHOWN)).scalars().all()
    history = push_history(session, project, github_url=github_url)
    latest = history[0] if history else None
    return PublishPanel(
        account=account,
        token_revoked=account is not None and account.token_status == TOKEN_REVOKED,
        snapshots=list(snapshots),
        history=history,
        running=latest if latest and latest.status == PUSH_RUNNING else None,
        latest=latest,
        allow_private=allow_private,
        default_name=repo_name_for(project.name),
        github_url=github_url,
        back=back,
    )
