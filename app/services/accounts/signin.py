"""Signing in with GitHub: accounts created and refreshed from a GitHub identity.

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
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from app.crypto import Keyring
from app.errors import Conflict, Forbidden
from app.models import GithubAccount, User
from app.models.base import utcnow
from app.providers.github import GithubGrant, GithubIdentity
from app.services import credits, workspaces
from app.services.accounts.github_token import TOKEN_VALID, encrypt_github_token
from app.services.transactions import is_lock_conflict, retry_on_lock_conflict

log = logging.getLogger(__name__)

# Sign-in retries when a racing callback wins a unique index first.
SIGN_IN_ATTEMPTS = 3
# A login held by an account whose GitHub user renamed away gets this marker (not valid in GitHub
# logins) until that user signs in again and their current login is written.
STALE_LOGIN_MARK = "~"

@dataclass(frozen=True)
class SignInResult:
    user_id: int
    created: bool
    signup_credits: int  # credits granted by this sign-in (0 when the grant already existed)


def signup_grant_key(secret_key: str, github_user_id: int) -> str:
    """The signup grant's idempotency key: stable per GitHub user, meaningless without SECRET_KEY."""
    digest = hmac.new(secret_key.encode(), f"signup-grant:github:{github_user_id}".encode(), hashlib.sha256)
    return "signup:" + digest.hexdigest()[:48]


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
    def upsert() -> tuple[int, bool]:
        account = find_github_account(session, identity.id)
        if account is None:
            user_id, created = _create_account(session, identity, grant, keyring), True
        else:
            _refresh_account(session, account, identity, grant, keyring)
            user_id, created = account.user_id, False
        # Every person has a personal workspace; invitations to their login become memberships.
        workspaces.ensure_personal_workspace(session, user_id=user_id, login=identity.login)
        workspaces.accept_invitations(session, user_id=user_id, login=identity.login)
        session.commit()
        return user_id, created

    # Another callback for this GitHub user (or for a user taking over a renamed login) committing
    # first, or InnoDB choosing this transaction as a deadlock victim: read again.
    try:
        return retry_on_lock_conflict(session, upsert, attempts=SIGN_IN_ATTEMPTS, also_retry=(IntegrityError,),
                                      label=f"sign-in: github_user={identity.id}")
    except (IntegrityError, OperationalError) as exc:
        session.rollback()
        if isinstance(exc, OperationalError) and not is_lock_conflict(exc):
            raise
        raise Conflict("Signing in collided with another sign-in of the same account. Please try again.") from exc


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
    if not _keeps_repository_grant(account, grant):
        account.access_token_encrypted = encrypt_github_token(keyring, grant.access_token, user.id)
        account.scopes = ",".join(grant.scopes)
    account.token_status = TOKEN_VALID
    account.token_checked_at = utcnow()
    session.flush()


def _keeps_repository_grant(account: GithubAccount, grant: GithubGrant) -> bool:
    """Whether the stored token stays: it holds a repository scope the new sign-in token lacks (sign-in
    asks only for the profile, and GitHub gives each token exactly the scopes its consent listed; the
    older token keeps working). A revoked stored token never stays."""
    repository_scopes = {"repo", "public_repo"}
    return (account.token_status == TOKEN_VALID and bool(repository_scopes & set(account.scopes.split(",")))
            and not repository_scopes & set(grant.scopes))


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
