"""Accounts: created and refreshed from a GitHub identity, disabled, exported and deleted.

The stable key of an account is GitHub's numeric user id (`GithubAccount.github_user_id`, unique);
the login is refreshed at every sign-in because GitHub users can rename themselves.

Guarantees:
- `sign_in_with_github` creates at most one account per GitHub user id, even when two callbacks race
  (the unique indexes decide; the loser re-reads the winner's row), and stores the access token only
  encrypted (AES-256-GCM, bound to the user id and `GITHUB_TOKEN_PURPOSE`).
- The signup grant is posted through the ledger with an idempotency key derived from the GitHub user id,
  so replayed or racing callbacks grant once. The key is an HMAC, not the id itself: after the account
  is deleted the anonymised ledger still refuses a second grant to the same GitHub user, without naming
  them.
- `delete_account` removes everything the product holds about the user and keeps their ledger entries
  with no user attached, for accounting.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, selectinload

from app.models import (
    ApiToken,
    BillingCustomer,
    Blob,
    ChatMessage,
    CreditBalance,
    CreditHold,
    GithubAccount,
    LedgerEntry,
    Project,
    Push,
    Snapshot,
    SnapshotFile,
    Subscription,
    User,
)
from app.models.base import utcnow
from app.providers.github import GithubGrant, GithubIdentity
from app.services import credits
from app.services.crypto import DecryptionError, Keyring, decrypt_secret, encrypt_secret
from app.services.errors import Conflict, Forbidden, NotFound
from app.services.transactions import is_lock_conflict

log = logging.getLogger(__name__)

GITHUB_TOKEN_PURPOSE = "github_token"
TOKEN_VALID = "valid"
TOKEN_REVOKED = "revoked"
# Sign-in retries when a racing callback wins a unique index first.
SIGN_IN_ATTEMPTS = 3
# A login held by an account whose GitHub user renamed away gets this marker (not valid in GitHub
# logins) until that user signs in again and their current login is written.
STALE_LOGIN_MARK = "~"
# Subscription statuses that still bill the user: deleting the account must not orphan them.
BILLING_STATUSES = ("active", "trialing", "past_due", "unpaid", "incomplete")


@dataclass(frozen=True)
class SignInResult:
    user_id: int
    created: bool
    signup_credits: int  # credits granted by this sign-in (0 when the grant already existed)


def signup_grant_key(secret_key: str, github_user_id: int) -> str:
    """The signup grant's idempotency key: stable per GitHub user, meaningless without SECRET_KEY."""
    digest = hmac.new(secret_key.encode(), f"signup-grant:github:{github_user_id}".encode(), hashlib.sha256)
    return "signup:" + digest.hexdigest()[:48]


def encrypt_github_token(keyring: Keyring, access_token: str, user_id: int) -> str:
    return encrypt_secret(keyring, access_token, purpose=GITHUB_TOKEN_PURPOSE, owner=user_id)


# -- sign-in -------------------------------------------------------------------------------------


def sign_in_with_github(
    session: Session,
    *,
    identity: GithubIdentity,
    grant: GithubGrant,
    keyring: Keyring,
    signup_credits: int,
    secret_key: str,
) -> SignInResult:
    """Create or refresh the account of `identity`, store its token, and grant signup credits once.

    Commits (the account, then the ledger entry). Raises `Forbidden` for a disabled account, which is
    left untouched. Safe to run concurrently for the same GitHub user.
    """
    user_id, created = _upsert_account(session, identity, grant, keyring)
    granted = 0
    if signup_credits > 0:
        # Posted on every sign-in, not only at creation: the key makes repeats no-ops, and an account
        # whose process died between the two commits gets its grant at the next sign-in.
        posting = credits.post_ledger_entry(
            session,
            user_id=user_id,
            delta=signup_credits,
            reason=credits.REASON_SIGNUP,
            idempotency_key=signup_grant_key(secret_key, identity.id),
        )
        granted = signup_credits if posting.created else 0
    log.info("sign-in: user=%s github_user=%s created=%s granted=%s", user_id, identity.id, created, granted)
    return SignInResult(user_id=user_id, created=created, signup_credits=granted)


def _upsert_account(
    session: Session, identity: GithubIdentity, grant: GithubGrant, keyring: Keyring
) -> tuple[int, bool]:
    for attempt in range(SIGN_IN_ATTEMPTS):
        try:
            account = find_github_account(session, identity.id)
            if account is None:
                user_id = _create_account(session, identity, grant, keyring)
                created = True
            else:
                _refresh_account(session, account, identity, grant, keyring)
                user_id, created = account.user_id, False
            session.commit()
            return user_id, created
        except (IntegrityError, OperationalError) as exc:
            # Another callback for this GitHub user (or for a user taking over a renamed login)
            # committed first, or InnoDB chose this transaction as a deadlock victim: read again.
            session.rollback()
            if isinstance(exc, OperationalError) and not is_lock_conflict(exc):
                raise
            log.info("sign-in: github_user=%s lost a race (attempt %s), retrying", identity.id, attempt + 1)
    raise Conflict("Signing in collided with another sign-in of the same account. Please try again.")


def find_github_account(session: Session, github_user_id: int) -> GithubAccount | None:
    return session.execute(
        select(GithubAccount).where(GithubAccount.github_user_id == github_user_id)
    ).scalar_one_or_none()


def _create_account(session: Session, identity: GithubIdentity, grant: GithubGrant, keyring: Keyring) -> int:
    _release_login(session, identity.login, keep_user_id=None)
    user = User(login=identity.login, name=identity.name[:255], email=_clean_email(identity.email))
    session.add(user)
    session.flush()  # the id binds the encrypted token to this user
    session.add(
        GithubAccount(
            user_id=user.id,
            github_user_id=identity.id,
            login=identity.login,
            access_token_encrypted=encrypt_github_token(keyring, grant.access_token, user.id),
            scopes=",".join(grant.scopes),
            token_status=TOKEN_VALID,
            token_checked_at=utcnow(),
        )
    )
    # The balance row is born with the account, in the transaction only the race's winner commits:
    # racing grant posts then queue on its row lock instead of racing to insert it (InnoDB deadlocks
    # when several transactions wait on the same duplicate key and then all ask for the lock).
    credits.lock_balance(session, user.id)
    session.flush()
    return user.id


def _refresh_account(
    session: Session, account: GithubAccount, identity: GithubIdentity, grant: GithubGrant, keyring: Keyring
) -> None:
    user = session.get(User, account.user_id)
    assert user is not None  # github_accounts.user_id is a NOT NULL foreign key
    if not user.is_active:
        session.rollback()
        raise Forbidden("This Sorya account has been disabled. Contact the operator of this Sorya to restore it.")
    if user.login != identity.login:
        _release_login(session, identity.login, keep_user_id=user.id)
        log.info("sign-in: user=%s renamed on GitHub", user.id)
        user.login = identity.login
    user.name = identity.name[:255]
    if identity.email:  # optional: a failed or empty email read keeps what we knew
        user.email = _clean_email(identity.email)
    account.login = identity.login
    account.access_token_encrypted = encrypt_github_token(keyring, grant.access_token, user.id)
    account.scopes = ",".join(grant.scopes)
    account.token_status = TOKEN_VALID
    account.token_checked_at = utcnow()
    session.flush()


def _release_login(session: Session, login: str, *, keep_user_id: int | None) -> None:
    """Free `login` for its current GitHub owner: any other account holding it renamed away on GitHub.

    GitHub logins are unique case-insensitively at any moment, so another account with this login
    carries a stale one; it gets a marked placeholder until its owner signs in again.
    """
    holders = session.execute(
        select(User).where(func.lower(User.login) == login.lower(), User.id != (keep_user_id or 0))
    ).scalars()
    for holder in holders:
        holder.login = f"{holder.login}{STALE_LOGIN_MARK}{holder.id}"[:100]
        log.info("sign-in: user=%s held a login renamed away on GitHub", holder.id)
    session.flush()


def _clean_email(email: str | None) -> str | None:
    return email[:320] if email else None


# -- the stored GitHub token ---------------------------------------------------------------------


def github_access_token(session: Session, keyring: Keyring, user_id: int) -> str:
    """The user's GitHub access token, decrypted, for a call on their behalf.

    Raises `Conflict` when the account has no usable token (never connected, revoked, or sealed with a
    key this server no longer has): the person must reconnect GitHub.
    """
    account = session.execute(
        select(GithubAccount).where(GithubAccount.user_id == user_id)
    ).scalar_one_or_none()
    if account is None or account.token_status != TOKEN_VALID:
        raise Conflict("Reconnect GitHub from your account page: Sorya's access to your GitHub account has ended.")
    try:
        return decrypt_secret(keyring, account.access_token_encrypted, purpose=GITHUB_TOKEN_PURPOSE, owner=user_id)
    except DecryptionError as exc:
        log.error("github token of user=%s cannot be decrypted: %s", user_id, exc)
        raise Conflict("Reconnect GitHub from your account page: the stored access could not be read.") from exc


def mark_github_token_revoked(session: Session, user_id: int) -> None:
    """Record that GitHub answered 401 to the user's token. Commits; idempotent.

    Call it wherever a GitHub call on the user's behalf raises `GithubTokenRevoked`; the account page
    then says so and offers to reconnect.
    """
    session.execute(
        update(GithubAccount)
        .where(GithubAccount.user_id == user_id)
        .values(token_status=TOKEN_REVOKED, token_checked_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    session.commit()
    log.info("github token of user=%s marked revoked", user_id)


def token_check_due(account: GithubAccount, *, max_age_s: int, now: datetime | None = None) -> bool:
    """Whether the stored token's validity should be asked of GitHub again."""
    if account.token_status != TOKEN_VALID:
        return False
    checked = account.token_checked_at
    return checked is None or (now or utcnow()) - checked >= timedelta(seconds=max_age_s)


def record_token_check(session: Session, user_id: int, *, revoked: bool) -> None:
    """Store the outcome of asking GitHub about the token. Commits."""
    if revoked:
        mark_github_token_revoked(session, user_id)
        return
    session.execute(
        update(GithubAccount)
        .where(GithubAccount.user_id == user_id)
        .values(token_checked_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    session.commit()


# -- operator actions and listings ---------------------------------------------------------------


@dataclass(frozen=True)
class UserSummary:
    id: int
    login: str
    plan: str
    balance: int
    disabled: bool


def list_users(session: Session) -> list[UserSummary]:
    """Every account with its balance, oldest first (one query)."""
    rows = session.execute(
        select(User.id, User.login, User.plan, User.disabled_at, CreditBalance.balance)
        .outerjoin(CreditBalance, CreditBalance.user_id == User.id)
        .order_by(User.id)
    ).all()
    return [
        UserSummary(id=r.id, login=r.login, plan=r.plan, balance=r.balance or 0, disabled=r.disabled_at is not None)
        for r in rows
    ]


def get_user(session: Session, user_id: int) -> User | None:
    """The user with this id, disabled or not, or None."""
    return session.get(User, user_id)


def find_user_by_login(session: Session, login: str) -> User:
    """The account whose login is `login` (exact first, then case-insensitive), or `NotFound`."""
    user = session.execute(select(User).where(User.login == login)).scalar_one_or_none()
    if user is None:
        matches = session.execute(select(User).where(func.lower(User.login) == login.lower())).scalars().all()
        user = matches[0] if len(matches) == 1 else None
    if user is None:
        raise NotFound(f"No account has the login {login!r}.")
    return user


def disable_user(session: Session, login: str) -> User:
    """Block sign-in, sessions and API tokens for the account, keeping its data. Commits; idempotent."""
    user = find_user_by_login(session, login)
    if user.disabled_at is None:
        user.disabled_at = utcnow()
        session.commit()
        log.info("user=%s disabled", user.id)
    return user


def enable_user(session: Session, login: str) -> User:
    """Undo `disable_user`. Commits; idempotent."""
    user = find_user_by_login(session, login)
    if user.disabled_at is not None:
        user.disabled_at = None
        session.commit()
        log.info("user=%s enabled", user.id)
    return user


# -- the account page ----------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountOverview:
    user: User
    github: GithubAccount | None
    balance: int
    held: int

    @property
    def scopes(self) -> list[str]:
        return [s for s in (self.github.scopes.split(",") if self.github else []) if s]

    @property
    def github_revoked(self) -> bool:
        return self.github is not None and self.github.token_status == TOKEN_REVOKED


def account_overview(session: Session, user_id: int) -> AccountOverview:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("There is no such account.")
    github = session.execute(select(GithubAccount).where(GithubAccount.user_id == user_id)).scalar_one_or_none()
    balance = credits.read_balance(session, user_id)
    return AccountOverview(
        user=user,
        github=github,
        balance=balance.balance if balance else 0,
        held=balance.held if balance else 0,
    )


# -- export and deletion -------------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _blob_json(blob: Blob) -> dict[str, Any]:
    if not blob.is_binary:
        try:
            return {"encoding": "utf-8", "content": blob.content.decode("utf-8")}
        except UnicodeDecodeError:
            pass
    return {"encoding": "base64", "content": base64.b64encode(blob.content).decode()}


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
    snapshots = (
        session.execute(
            select(Snapshot).where(Snapshot.project_id.in_(project_ids)).order_by(Snapshot.project_id, Snapshot.number)
            .options(*([] if include_contents else [
                selectinload(Snapshot.files).joinedload(SnapshotFile.blob).defer(Blob.content, raiseload=True)
            ]))
        ).scalars().all()
        if project_ids else []
    )
    blobs: dict[str, dict[str, Any]] = {}
    snapshots_by_project: dict[int, list[dict[str, Any]]] = {}
    for snapshot in snapshots:
        files = []
        for file in snapshot.files:
            files.append({"path": file.path, "sha256": file.blob.sha256, "size": file.blob.size, "origin": file.origin})
            if include_contents:
                blobs.setdefault(file.blob.sha256, _blob_json(file.blob))
        snapshots_by_project.setdefault(snapshot.project_id, []).append({
            "id": snapshot.id, "number": snapshot.number, "summary": snapshot.summary,
            "source_message_id": snapshot.source_message_id, "created_at": _iso(snapshot.created_at),
            "files": files,
        })
    pushes = (
        session.execute(select(Push).where(Push.project_id.in_(project_ids)).order_by(Push.id)).scalars().all()
        if project_ids else []
    )
    messages = session.execute(
        select(ChatMessage).where(ChatMessage.user_id == user_id).order_by(ChatMessage.id)
    ).scalars().all()
    ledger = session.execute(
        select(LedgerEntry).where(LedgerEntry.user_id == user_id).order_by(LedgerEntry.id)
    ).scalars().all()
    customer = session.execute(
        select(BillingCustomer).where(BillingCustomer.user_id == user_id)
    ).scalar_one_or_none()
    subscriptions = session.execute(
        select(Subscription).where(Subscription.user_id == user_id).order_by(Subscription.id)
    ).scalars().all()
    all_tokens = session.execute(
        select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.id)
    ).scalars().all()
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
        "api_tokens": [
            {"id": t.id, "name": t.name, "prefix": t.display_prefix, "created_at": _iso(t.created_at),
             "last_used_at": _iso(t.last_used_at), "revoked_at": _iso(t.revoked_at)}
            for t in all_tokens
        ],
        "credits": {
            "balance": overview.balance, "held": overview.held,
            "ledger": [
                {"id": e.id, "delta": e.delta, "reason": e.reason, "balance_after": e.balance_after,
                 "model": e.model, "meta": e.meta, "created_at": _iso(e.created_at)}
                for e in ledger
            ],
        },
        "projects": [
            {"id": p.id, "name": p.name, "description": p.description, "status": p.status,
             "repo_full_name": p.repo_full_name, "repo_html_url": p.repo_html_url,
             "created_at": _iso(p.created_at), "updated_at": _iso(p.updated_at),
             "snapshots": snapshots_by_project.get(p.id, [])}
            for p in projects
        ],
        "pushes": [
            {"id": p.id, "project_id": p.project_id, "snapshot_id": p.snapshot_id, "repo_full_name": p.repo_full_name,
             "branch": p.branch, "status": p.status, "commit_sha": p.commit_sha, "created_at": _iso(p.created_at)}
            for p in pushes
        ],
        "chat_messages": [
            {"id": m.id, "project_id": m.project_id, "role": m.role, "content": m.content, "model": m.model,
             "status": m.status, "tokens_in": m.tokens_in, "tokens_out": m.tokens_out, "cost": m.cost,
             "created_at": _iso(m.created_at)}
            for m in messages
        ],
        "billing": {
            "stripe_customer_id": customer.stripe_customer_id if customer else None,
            "subscriptions": [
                {"id": s.stripe_subscription_id, "plan": s.plan, "status": s.status,
                 "current_period_end": _iso(s.current_period_end), "cancel_at_period_end": s.cancel_at_period_end}
                for s in subscriptions
            ],
        },
        **({"blobs": blobs} if include_contents else {}),
    }


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

    project_ids = select(Project.id).where(Project.user_id == user_id).scalar_subquery()
    snapshot_ids = select(Snapshot.id).where(Snapshot.project_id.in_(project_ids)).scalar_subquery()
    blob_ids = set(session.execute(
        select(SnapshotFile.blob_id).where(SnapshotFile.snapshot_id.in_(snapshot_ids))
    ).scalars())
    session.execute(delete(Push).where(Push.project_id.in_(project_ids)))
    session.execute(update(Push).where(Push.user_id == user_id).values(user_id=None))
    session.execute(delete(SnapshotFile).where(SnapshotFile.snapshot_id.in_(snapshot_ids)))
    session.execute(update(Snapshot).where(Snapshot.project_id.in_(project_ids)).values(parent_id=None))
    session.execute(delete(Snapshot).where(Snapshot.project_id.in_(project_ids)))
    session.execute(
        update(ChatMessage).where(ChatMessage.user_id == user_id).values(reply_to_id=None)
    )
    session.execute(delete(ChatMessage).where(ChatMessage.user_id == user_id))
    session.execute(delete(Project).where(Project.user_id == user_id))
    if blob_ids:
        still_used = set(session.execute(
            select(SnapshotFile.blob_id).where(SnapshotFile.blob_id.in_(blob_ids))
        ).scalars())
        orphaned = blob_ids - still_used
        if orphaned:
            session.execute(delete(Blob).where(Blob.id.in_(orphaned)))
    session.execute(delete(CreditHold).where(CreditHold.user_id == user_id))
    credits.detach_ledger_entries(session, user_id)
    session.execute(delete(CreditBalance).where(CreditBalance.user_id == user_id))
    session.execute(update(BillingCustomer).where(BillingCustomer.user_id == user_id).values(user_id=None))
    session.execute(update(Subscription).where(Subscription.user_id == user_id).values(user_id=None))
    session.execute(delete(ApiToken).where(ApiToken.user_id == user_id))
    session.execute(delete(GithubAccount).where(GithubAccount.user_id == user_id))
    session.execute(delete(User).where(User.id == user_id))
    session.commit()
    log.info("user=%s deleted; ledger entries kept without a user", user_id)
