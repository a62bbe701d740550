"""Deleting an account: everything it owns goes, its ledger entries stay without a user."""

from __future__ import annotations

import logging

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from app.errors import Conflict, NotFound
from app.models import (
    ApiToken,
    BillingCustomer,
    Blob,
    ChatMessage,
    CreditBalance,
    CreditHold,
    GithubAccount,
    Project,
    ProjectBlob,
    Push,
    Snapshot,
    SnapshotTree,
    Subscription,
    User,
    UserSession,
    Workspace,
    WorkspaceMember,
)
from app.runtime import token_cache
from app.services import credits
from app.services.usage import rollups

log = logging.getLogger(__name__)

# Subscription statuses that still bill the user: deleting the account must not orphan them.
BILLING_STATUSES = ("active", "trialing", "past_due", "unpaid", "incomplete")


def delete_account(session: Session, user_id: int) -> None:
    """Delete the account and everything it owns; keep its ledger entries without a user. Commits.

    Refuses (`Conflict`) while a subscription still bills the user. Deletes explicitly, child rows
    first, rather than trusting ON DELETE rules, so the embedded SQLite default (which enforces no
    foreign keys) deletes the same rows as MariaDB. File contents shared with another user's snapshot
    stay; contents only this user's snapshots held are removed.
    """
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("There is no such account.")
    billing = session.execute(
        select(Subscription.id).where(Subscription.user_id == user_id, Subscription.status.in_(BILLING_STATUSES))
    ).first()
    if billing is not None:
        raise Conflict("Cancel your subscription before deleting your account, so you are not billed again.")

    _delete_projects(session, user_id)
    session.execute(delete(CreditHold).where(CreditHold.user_id == user_id))
    credits.detach_ledger_entries(session, user_id)
    rollups.forget_person(session, user_id)
    session.execute(delete(CreditBalance).where(CreditBalance.user_id == user_id))
    session.execute(update(BillingCustomer).where(BillingCustomer.user_id == user_id).values(user_id=None))
    session.execute(update(Subscription).where(Subscription.user_id == user_id).values(user_id=None))
    session.execute(delete(ApiToken).where(ApiToken.user_id == user_id))
    session.execute(delete(GithubAccount).where(GithubAccount.user_id == user_id))
    session.execute(delete(UserSession).where(UserSession.user_id == user_id))  # its cookies die with it
    # What ON DELETE CASCADE does on MariaDB, explicitly for SQLite: their memberships, their personal workspace.
    session.execute(delete(WorkspaceMember).where(WorkspaceMember.user_id == user_id))
    personal = select(Workspace.id).where(Workspace.account_user_id == user_id).scalar_subquery()
    session.execute(delete(WorkspaceMember).where(WorkspaceMember.workspace_id.in_(personal)))
    session.execute(delete(Workspace).where(Workspace.account_user_id == user_id))
    session.execute(delete(User).where(User.id == user_id))
    session.commit()
    token_cache.forget_user(user_id)
    log.info("user=%s deleted; ledger entries kept without a user", user_id)


def _delete_projects(session: Session, user_id: int) -> None:
    """The user's projects, snapshots, pushes and messages, and the file contents no one else uses."""
    project_ids = select(Project.id).where(Project.user_id == user_id).scalar_subquery()
    blob_ids = set(session.execute(
        select(ProjectBlob.blob_id).where(ProjectBlob.project_id.in_(project_ids))
    ).scalars())
    session.execute(delete(Push).where(Push.project_id.in_(project_ids)))
    session.execute(update(Push).where(Push.user_id == user_id).values(user_id=None))
    session.execute(delete(ProjectBlob).where(ProjectBlob.project_id.in_(project_ids)))
    session.execute(delete(SnapshotTree).where(SnapshotTree.project_id.in_(project_ids)))
    session.execute(update(Snapshot).where(Snapshot.project_id.in_(project_ids)).values(parent_id=None))
    session.execute(delete(Snapshot).where(Snapshot.project_id.in_(project_ids)))
    session.execute(
        update(ChatMessage).where(ChatMessage.user_id == user_id).values(reply_to_id=None)
    )
    session.execute(delete(ChatMessage).where(ChatMessage.user_id == user_id))
    session.execute(delete(Project).where(Project.user_id == user_id))
    if blob_ids:
        still_used = set(session.execute(
            select(ProjectBlob.blob_id).where(ProjectBlob.blob_id.in_(blob_ids))
        ).scalars())
        orphaned = blob_ids - still_used
        if orphaned:
            session.execute(delete(Blob).where(Blob.id.in_(orphaned)))
