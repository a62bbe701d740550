"""Fixtures and builders for the publish tests: the GitHub emulator, a connected account, snapshots.

Snapshots are built here directly on the schema (blobs with their git sha, the version's tree), the way
`services/snapshots/` stores them, so these tests do not depend on how a reply becomes a snapshot.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from sandbox.emulators.control import EmulatorControl

GITHUB_LOGIN = "octocat"


def git_blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\x00" % len(data) + data).hexdigest()


@dataclass
class GithubSandbox:
    url: str
    control: EmulatorControl

    def api_calls(self, since: int) -> list[dict]:
        return [c for c in self.control.calls(since=since) if c["path"].startswith("/api/v3")]


@pytest.fixture
def github(app, github_emulator) -> Iterator[GithubSandbox]:
    """The GitHub emulator the app is configured with, reset, with quick timeouts for fault tests."""
    control = github_emulator.control
    control.reset()
    control.configure(request_latency_ms=0)
    config = app.extensions["sorya.config"]
    saved = (config.GITHUB_TIMEOUT_S, config.GITHUB_ALLOW_PRIVATE_REPOS)
    # One second, so a scripted hang costs the suite one second per attempt, not fifteen.
    config.GITHUB_TIMEOUT_S = 1
    config.GITHUB_ALLOW_PRIVATE_REPOS = True
    yield GithubSandbox(url=github_emulator.url, control=control)
    config.GITHUB_TIMEOUT_S, config.GITHUB_ALLOW_PRIVATE_REPOS = saved
    control.clear_faults()


def connect_github(app, user, github: GithubSandbox, *, scopes=("repo", "read:user", "user:email"),
                   login: str = GITHUB_LOGIN) -> str:
    """Give `user` a GitHub account row holding an emulator token sealed as sign-in seals it."""
    from app import runtime
    from app.crypto import encrypt_secret
    from app.extensions import db
    from app.models import GithubAccount
    from app.services.accounts import GITHUB_TOKEN_PURPOSE

    token = github.control.issue_token(login, list(scopes))
    with app.app_context():
        sealed = encrypt_secret(runtime.keyring(), token, purpose=GITHUB_TOKEN_PURPOSE, owner=user.id)
        db.session.add(GithubAccount(user_id=user.id, github_user_id=583231 + user.id, login=login,
                                     access_token_encrypted=sealed, scopes=",".join(scopes)))
        db.session.commit()
    return token


def make_project(app, user, name: str = "My App", **fields: Any) -> int:
    from app.extensions import db
    from app.models import Project

    with app.app_context():
        project = Project(user_id=user.id, name=name, description=fields.pop("description", ""), **fields)
        db.session.add(project)
        db.session.commit()
        return project.id


def make_snapshot(app, project_id: int, files: dict[str, str | bytes], *, summary: str = "",
                  flagged_paths: list[str] | None = None) -> int:
    """A snapshot holding exactly `files`, numbered after the project's previous ones."""
    from sqlalchemy import func, select

    from app.extensions import db
    from app.models import Blob, Snapshot
    from tests.snapshot_helpers import attach_files

    with app.app_context():
        number = (db.session.execute(select(func.max(Snapshot.number)).where(Snapshot.project_id == project_id))
                  .scalar() or 0) + 1
        snapshot = Snapshot(project_id=project_id, number=number, summary=summary, file_count=len(files),
                            total_bytes=0, flagged_paths=flagged_paths or [])
        db.session.add(snapshot)
        blob_ids: dict[str, int] = {}
        for path, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            digest = hashlib.sha256(data).hexdigest()
            blob = db.session.execute(select(Blob).where(Blob.sha256 == digest)).scalar_one_or_none()
            if blob is None:
                blob = Blob(sha256=digest, git_sha=git_blob_sha(data), size=len(data), content=data)
                db.session.add(blob)
                db.session.flush()
            snapshot.total_bytes += len(data)
            blob_ids[path] = blob.id
        attach_files(db.session, snapshot, blob_ids)
        db.session.commit()
        return snapshot.id


def project_row(app, project_id: int):
    from app.extensions import db
    from app.models import Project

    with app.app_context():
        project = db.session.get(Project, project_id)
        db.session.expunge(project)
        return project


def pushes_of(app, project_id: int) -> list:
    from sqlalchemy import select

    from app.extensions import db
    from app.models import Push

    with app.app_context():
        rows = db.session.execute(select(Push).where(Push.project_id == project_id).order_by(Push.id)).scalars().all()
        for row in rows:
            db.session.expunge(row)
        return list(rows)
