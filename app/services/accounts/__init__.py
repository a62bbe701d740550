"""Accounts: created and refreshed from a GitHub identity, disabled, exported and deleted.

One module per concern, public names re-exported here (`accounts.delete_account`). A test that
monkeypatches a name patches the module that holds it.

- `delete_account` removes everything the product holds about the user and keeps their ledger entries
  with no user attached, for accounting.
"""

from app.services.accounts.deletion import BILLING_STATUSES, delete_account
from app.services.accounts.export import export_account
from app.services.accounts.github_token import (
    GITHUB_TOKEN_PURPOSE,
    TOKEN_REVOKED,
    TOKEN_VALID,
    encrypt_github_token,
    github_access_token,
    mark_github_token_revoked,
    record_token_check,
    store_repository_grant,
    token_check_due,
)
from app.services.accounts.operators import (
    UserSummary,
    disable_user,
    enable_user,
    find_user_by_login,
    get_user,
    list_users,
)
from app.services.accounts.overview import AccountOverview, account_overview
from app.services.accounts.sessions import end_all_sessions, end_session, start_session, user_for_session
from app.services.accounts.signin import (
    SIGN_IN_ATTEMPTS,
    STALE_LOGIN_MARK,
    SignInResult,
    find_github_account,
    sign_in_with_github,
    signup_grant_key,
)

__all__ = [
    "BILLING_STATUSES", "GITHUB_TOKEN_PURPOSE", "SIGN_IN_ATTEMPTS", "STALE_LOGIN_MARK", "TOKEN_REVOKED",
    "TOKEN_VALID", "AccountOverview", "SignInResult", "UserSummary", "account_overview", "delete_account",
    "disable_user", "enable_user", "encrypt_github_token", "export_account", "find_github_account",
    "find_user_by_login", "get_user", "github_access_token", "list_users", "mark_github_token_revoked",
    "store_repository_grant",
    "record_token_check", "sign_in_with_github", "signup_grant_key", "token_check_due", "end_all_sessions",
    "end_session", "start_session", "user_for_session",
]
