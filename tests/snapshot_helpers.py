"""Helpers shared by the snapshot tests: replies with fenced files, messages and snapshots made directly."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from app.extensions import db
from app.models import ChatMessage, Project
from app.services import snapshots as svc
from app.services.snapshots import IncomingFile, SnapshotLimits, take_snapshot_from_files

GENEROUS_LIMITS = SnapshotLimits(max_files=5000, max_file_bytes=5_000_000, max_total_bytes=200_000_000)


def fenced_file(path: str, content: str, language: str = "") -> str:
    """A file as the contract asks the model to write it. The fence is longer than any backtick run that
    starts a content line, so it closes where it should."""
    longest = max((len(m.group(0)) for m in re.finditer(r"(?m)^ *(`{3,})", content)), default=0)
    fence = "`" * max(3, longest + 1)
    if any(ch.isspace() for ch in path) or '"' in path:
        path = f"'{path}'" if '"' in path else f'"{path}"'
    info = f"{language} path={path}" if language else f"path={path}"
    body = content if content.endswith("\n") or not content else content + "\n"
    return f"{fence}{info}\n{body}{fence}\n"


def reply_with(files: dict[str, str], *, intro: str = "Here are the files.") -> str:
    blocks = [fenced_file(path, content, "text") for path, content in files.items()]
    return intro + "\n\n" + "\n".join(blocks) + "\nThat's all."


def make_project(app, user, name: str = "Demo app") -> int:
    with app.app_context():
        project = Project(user_id=user.id, name=name, description="A test project")
        db.session.add(project)
        db.session.commit()
        return project.id


def make_reply(app, user, project_id: int | None, content: str, *, status: str = "complete") -> int:
    with app.app_context():
        question = ChatMessage(user_id=user.id, project_id=project_id, role="user", content="Write it")
        db.session.add(question)
        db.session.flush()
        reply = ChatMessage(
            user_id=user.id, project_id=project_id, role="assistant", content=content, status=status,
            model="gpt-5", reply_to_id=question.id,
        )
        db.session.add(reply)
        db.session.commit()
        return reply.id


def make_snapshot(app, user, project_id: int, files: dict[str, str | bytes], **kwargs) -> int:
    with app.app_context():
        incoming = [
            IncomingFile(path, content if isinstance(content, bytes) else content.encode(), "upload")
            for path, content in files.items()
        ]
        result = take_snapshot_from_files(
            db.session, user_id=user.id, project_id=project_id, files=incoming, limits=GENEROUS_LIMITS, **kwargs
        )
        return result.snapshot.id


def assert_not_found_and_nothing_leaked(responses, secret: bytes) -> None:
    """Every response is a 404 that does not contain `secret` (another user's data)."""
    for response in responses:
        assert response.status_code == 404, (response.request.path, response.status_code)
        assert secret not in response.data


def attach_files(session, snapshot, files: dict[str, int], *, origin: str = "reply") -> None:
    """Give a snapshot made directly on the schema exactly these files (`path -> blob id`), the way the
    store records them: its tree, the project's hold on the blobs, one origin for all. Does not commit."""
    from app.services.snapshots.trees import link_project_blobs, write_tree

    if snapshot.project_id is None:
        session.flush()
    snapshot.root_tree = write_tree(session, snapshot.project_id, files)
    link_project_blobs(session, snapshot.project_id, files.values())
    snapshot.origins = {"": origin}


def count(model) -> int:
    """Rows of `model`'s table (inside an app context)."""
    return db.session.scalar(select(func.count()).select_from(model))


def files_of(snapshot_id: int) -> dict[str, bytes]:
    """A version's files and their bytes (inside an app context)."""
    entries = svc.list_snapshot_files(db.session, snapshot_id)
    contents = svc.read_blob_contents(db.session, [e.blob_id for e in entries])
    return {e.path: contents[e.blob_id] for e in entries}
