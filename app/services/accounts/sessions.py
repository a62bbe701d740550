"""Signed-in browser sessions, kept server-side so that signing out really ends them.

Flask keeps its session in a signed cookie, and the remember-me cookie is signed too: the server cannot
take either back, so a copied cookie outlived sign-out, and (on SQLite, which reused a deleted row's id)
a deleted account's cookie named the next account. Each sign-in therefore creates a `UserSession` row
whose random id travels in both cookies with the user id ("<user id>:<session id>", see
`User.get_id`); a cookie loads its user only while that row exists.

Decisions:
- Signing out ends this browser's session only (its row goes): a copy of its cookies dies with it, and
  the user's other devices stay signed in, as a person expects of "sign out".
- "Sign out everywhere" ends every session of the account, this one included. API tokens are not
  sessions: they keep working until revoked on the account page.
- Deleting or disabling the account: deletion removes the rows; a disabled account loads nobody.
- A session row older than the longest a remember-me cookie lives is useless and is pruned at the
  user's next sign-in.
"""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.models import User, UserSession
from app.models.base import utcnow

log = logging.getLogger(__name__)

# 32 random bytes, URL-safe base64: 43 characters, as unguessable as the secret key's signature.
SESSION_ID_BYTES = 32


def start_session(session: Session, user_id: int, *, max_age: timedelta) -> str:
    """Open a signed-in session for the user and return its id. Commits.

    Prunes the user's sessions older than `max_age` (the remember-me cookie's lifetime), which no
    cookie can still name.
    """
    session.execute(
        delete(UserSession).where(UserSession.user_id == user_id, UserSession.created_at < utcnow() - max_age)
    )
    session_id = secrets.token_urlsafe(SESSION_ID_BYTES)
    session.add(UserSession(id=session_id, user_id=user_id))
    session.commit()
    return session_id


def user_for_session(session: Session, cookie_id: str) -> User | None:
    """The active user a session cookie names ("<user id>:<session id>"), or None. One query.

    None for a malformed value (a bare user id from before sessions were kept), a session that was
    ended, another user's session id, and a disabled or deleted account.
    """
    user_part, _, session_id = cookie_id.partition(":")
    if not user_part.isdigit() or not session_id:
        return None
    user = session.execute(
        select(User)
        .join(UserSession, UserSession.user_id == User.id)
        .where(User.id == int(user_part), UserSession.id == session_id)
    ).unique().scalar_one_or_none()
    if user is None or not user.is_active:
        return None
    user.signed_in_session_id = session_id
    return user


def end_session(session: Session, session_id: str | None) -> None:
    """End one signed-in session (sign out): its cookies, and any copy of them, sign nobody in. Commits;
    idempotent."""
    if session_id:
        session.execute(delete(UserSession).where(UserSession.id == session_id))
    session.commit()


def end_all_sessions(session: Session, user_id: int) -> int:
    """End every signed-in session of the user ("sign out everywhere"). Commits; returns how many."""
    ended = session.execute(delete(UserSession).where(UserSession.user_id == user_id)).rowcount or 0
    session.commit()
    log.info("user=%s signed out everywhere (%s sessions)", user_id, ended)
    return ended
