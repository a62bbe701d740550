"""The account export: everything Sorya holds about a user, as one JSON-ready document."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import (
    ApiToken,
    BillingCustomer,
    ChatMessage,
    LedgerEntry,
    Project,
    Push,
    Snapshot,
    Subscription,
)
from app.models.base import utcnow
from app.services.accounts.overview import account_overview
from app.services.snapshots.blobs import read_blob_contents
from app.services.snapshots.reading import FileEntry, list_snapshot_files


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _content_json(content: bytes, is_binary: bool) -> dict[str, Any]:
    if not is_binary:
        try:
            return {"encoding": "utf-8", "content": content.decode("utf-8")}
        except UnicodeDecodeError:
            pass
    return {"encoding": "base64", "content": base64.b64encode(content).decode()}


def _add_contents(session: Session, blobs: dict[str, dict[str, Any]], entries: list[FileEntry]) -> None:
    """Each content of `entries` not in `blobs` yet, read once (versions share most of theirs)."""
    wanted = {e.blob_id: e for e in entries if e.sha256 not in blobs}
    for blob_id, content in read_blob_contents(session, list(wanted)).items():
        entry = wanted[blob_id]
        blobs[entry.sha256] = _content_json(content, entry.is_binary)


def export_account(session: Session, user_id: int, *, include_contents: bool = True) -> dict[str, Any]:
    """Everything Sorya holds about the user, as one JSON-ready document. Reads only.

    Secrets are described, never included: the GitHub token is reported by its status and scopes, API
    tokens by name and prefix. File contents appear once per distinct blob (`files` refer to them by
    sha256), so a file carried through many snapshots is not repeated. Without `include_contents` they
    are neither read nor included (no `blobs`): the streamed export writes them one by one beside it.
    """
    overview = account_overview(session, user_id)
    user, github = overview.user, overview.github
    projects = session.execute(select(Project).where(Project.user_id == user_id).order_by(Project.id)).scalars().all()
    project_ids = [p.id for p in projects]
    blobs: dict[str, dict[str, Any]] = {}
    snapshots_by_project = _snapshots_json(session, project_ids, blobs if include_contents else None)
    return {
        "format": "sorya-account-export",
        "version": 1,
        "exported_at": _iso(utcnow()),
        "account": {
            "id": user.id, "login": user.login, "name": user.name, "email": user.email, "plan": user.plan,
            "created_at": _iso(user.created_at), "disabled_at": _iso(user.disabled_at),
        },
        "github": None if github is None else {
            "user_id": github.github_user_id, "login": github.login, "scopes": overview.scopes,
            "token_status": github.token_status, "connected_at": _iso(github.created_at),
            "access_token": "stored encrypted; not exported",
        },
        "api_tokens": _api_tokens_json(session, user_id),
        "credits": {
            "balance": overview.balance, "held": overview.held, "ledger": _ledger_json(session, user_id),
        },
        "projects": [
            {"id": p.id, "name": p.name, "description": p.description, "status": p.status,
             "repo_full_name": p.repo_full_name, "repo_html_url": p.repo_html_url,
             "created_at": _iso(p.created_at), "updated_at": _iso(p.updated_at),
             "snapshots": snapshots_by_project.get(p.id, [])}
            for p in projects
        ],
        "pushes": _pushes_json(session, project_ids),
        "chat_messages": _messages_json(session, user_id),
        "billing": _billing_json(session, user_id),
        **({"blobs": blobs} if include_contents else {}),
    }


def _snapshots_json(
    session: Session, project_ids: list[int], blobs: dict[str, dict[str, Any]] | None
) -> dict[int, list[dict[str, Any]]]:
    """Each project's snapshots, oldest first; adds every file's content to `blobs` once (with no
    `blobs`, contents are not even read)."""
    if not project_ids:
        return {}
    snapshots = session.execute(
        select(Snapshot).where(Snapshot.project_id.in_(project_ids)).order_by(Snapshot.project_id, Snapshot.number)
    ).scalars().all()
    snapshots_by_project: dict[int, list[dict[str, Any]]] = {}
    for snapshot in snapshots:
        entries = list_snapshot_files(session, snapshot.id)
        files = [{"path": e.path, "sha256": e.sha256, "size": e.size, "origin": e.origin} for e in entries]
        if blobs is not None:
            _add_contents(session, blobs, entries)
        snapshots_by_project.setdefault(snapshot.project_id, []).append({
            "id": snapshot.id, "number": snapshot.number, "summary": snapshot.summary,
            "source_message_id": snapshot.source_message_id, "created_at": _iso(snapshot.created_at),
            "files": files,
        })
    return snapshots_by_project


def _api_tokens_json(session: Session, user_id: int) -> list[dict[str, Any]]:
    all_tokens = session.execute(
        select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.id)
    ).scalars().all()
    return [
        {"id": t.id, "name": t.name, "prefix": t.display_prefix, "created_at": _iso(t.created_at),
         "last_used_at": _iso(t.last_used_at), "revoked_at": _iso(t.revoked_at)}
        for t in all_tokens
    ]


def _ledger_json(session: Session, user_id: int) -> list[dict[str, Any]]:
    ledger = session.execute(
        select(LedgerEntry).where(LedgerEntry.user_id == user_id).order_by(LedgerEntry.id)
    ).scalars().all()
    return [
        {"id": e.id, "delta": e.delta, "reason": e.reason, "balance_after": e.balance_after,
         "model": e.model, "meta": e.meta, "created_at": _iso(e.created_at)}
        for e in ledger
    ]


def _pushes_json(session: Session, project_ids: list[int]) -> list[dict[str, Any]]:
    if not project_ids:
        return []
    pushes = session.execute(select(Push).where(Push.project_id.in_(project_ids)).order_by(Push.id)).scalars().all()
    return [
        {"id": p.id, "project_id": p.project_id, "snapshot_id": p.snapshot_id, "repo_full_name": p.repo_full_name,
         "branch": p.branch, "status": p.status, "commit_sha": p.commit_sha, "created_at": _iso(p.created_at)}
        for p in pushes
    ]


def _messages_json(session: Session, user_id: int) -> list[dict[str, Any]]:
    messages = session.execute(
        select(ChatMessage).where(ChatMessage.user_id == user_id).order_by(ChatMessage.id)
    ).scalars().all()
    return [
        {"id": m.id, "project_id": m.project_id, "role": m.role, "content": m.content, "model": m.model,
         "status": m.status, "tokens_in": m.tokens_in, "tokens_out": m.tokens_out, "cost": m.cost,
         "created_at": _iso(m.created_at)}
        for m in messages
    ]


def _billing_json(session: Session, user_id: int) -> dict[str, Any]:
    customer = session.execute(
        select(BillingCustomer).where(BillingCustomer.user_id == user_id)
    ).scalar_one_or_none()
    subscriptions = session.execute(
        select(Subscription).where(Subscription.user_id == user_id).order_by(Subscription.id)
    ).scalars().all()
    return {
        "stripe_customer_id": customer.stripe_customer_id if customer else None,
        "subscriptions": [
            {"id": s.stripe_subscription_id, "plan": s.plan, "status": s.status,
             "current_period_end": _iso(s.current_period_end), "cancel_at_period_end": s.cancel_at_period_end}
            for s in subscriptions
        ],
    }
