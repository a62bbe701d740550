"""The GitHub adapter, one package: `errors` (one family of failures), `http` (where the API lives, one
github3.py client and session per token, one retry policy, one translation of github3's failures), `oauth` (the sign-in flow's
rules), `identity` (who a token belongs to), `repos` (the git data operations of a push), `app` (a GitHub App's
JWT and installation tokens), `archive` (import), `sync` and `pulls`.

Settings come in as plain values (`github_url`, `api_url`, timeouts): nothing here reads Flask or the app's
runtime. The Flask-bound half of the OAuth flow is `app/web/github_auth.py`.
"""

from app.providers.github.errors import (
    PROVIDER,
    BranchProtected,
    GithubError,
    GithubInstallationTokenRefused,
    GithubMissingScope,
    GithubNotFound,
    GithubRateLimited,
    GithubRejected,
    GithubRepoEmpty,
    GithubTokenRevoked,
    GithubUnavailable,
    NotFastForward,
    RefExists,
    SignInRefused,
)
from app.providers.github.http import (
    GITHUB_DOTCOM,
    REPO_SCOPES,
    GithubHttp,
    api_url_for,
    parse_scopes,
    web_url_for,
)
from app.providers.github.identity import GithubIdentity, check_token, fetch_identity, primary_verified_email
from app.providers.github.oauth import (
    FLOW_REPOSITORIES,
    FLOW_SIGN_IN,
    OAUTH_CLIENT_NAME,
    OAUTH_STATE_TTL_S,
    SIGN_IN_SCOPES,
    GithubGrant,
    SignInFlow,
    grant_from_token,
    grants_repositories,
    oauth_base_url,
    refusal_for,
    repository_scope,
    requested_scopes,
)
from app.providers.github.repos import Author, CommitInfo, GithubRepoClient, RemoteTree, RepoInfo

__all__ = [
    "REPO_SCOPES",
    "FLOW_REPOSITORIES", "FLOW_SIGN_IN", "SIGN_IN_SCOPES", "grants_repositories", "repository_scope",
    "BranchProtected", "GITHUB_DOTCOM", "OAUTH_CLIENT_NAME", "OAUTH_STATE_TTL_S", "PROVIDER", "Author", "CommitInfo", "GithubError",
    "GithubGrant", "GithubHttp", "GithubInstallationTokenRefused", "GithubIdentity", "GithubMissingScope", "GithubNotFound", "GithubRateLimited",
    "GithubRejected", "GithubRepoClient", "GithubRepoEmpty", "GithubTokenRevoked", "GithubUnavailable",
    "NotFastForward", "RefExists", "RemoteTree", "RepoInfo", "SignInFlow", "SignInRefused", "api_url_for",
    "check_token", "fetch_identity", "grant_from_token", "oauth_base_url", "parse_scopes",
    "primary_verified_email", "refusal_for", "requested_scopes", "web_url_for",
]
