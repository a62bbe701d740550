"""Pure rules of signing in: safe `next` targets, scopes, emails, token format and URLs per GITHUB_URL."""

from __future__ import annotations

import pytest

from app.errors import InvalidRequest
from app.providers import github
from app.services import api_tokens


@pytest.fixture
def request_context(tmp_path):
    from app import create_app
    from tests.conftest import build_config

    application = create_app(build_config(str(tmp_path)))
    with application.test_request_context():
        yield


@pytest.mark.parametrize("target", ["/", "/account", "/projects/3?tab=files#top", "/a/b%2F%2Fc"])
def test_paths_on_this_site_are_safe(request_context, target):
    from app.web.security import safe_next_path

    assert safe_next_path(target) == target


@pytest.mark.parametrize(
    "target",
    [None, "", "account", "//evil.example", "///evil.example", "/\\evil.example", "\\\\evil.example",
     "https://evil.example/", "http:/evil.example", "javascript:alert(1)", "/ok\nLocation: x", "/ok\x00",
     "/" + "a" * 2001],
)
def test_everything_else_is_refused(request_context, target):
    from app.web.security import safe_next_path

    assert safe_next_path(target) is None


def test_scopes_follow_the_operators_repository_policy():
    assert github.requested_scopes(True) == ("read:user", "user:email", "repo")
    assert github.requested_scopes(False) == ("read:user", "user:email", "public_repo")
    assert github.SIGN_IN_SCOPES == ("read:user", "user:email")
    # `repo` granted at an older sign-in keeps working; `public_repo` is enough only where private is off.
    assert github.grants_repositories(("read:user", "repo"), True)
    assert github.grants_repositories(("repo",), False)
    assert github.grants_repositories(("public_repo",), False)
    assert not github.grants_repositories(("public_repo",), True)
    assert not github.grants_repositories(("read:user", "user:email"), False)


@pytest.mark.parametrize(
    ("raw", "scopes"),
    [("read:user,user:email,repo", ("read:user", "user:email", "repo")), ("repo, user", ("repo", "user")),
     ("", ()), (None, ())],
)
def test_scopes_are_parsed_in_both_github_spellings(raw, scopes):
    assert github.parse_scopes(raw) == scopes


def test_only_a_primary_verified_email_is_taken():
    assert github.primary_verified_email([
        {"email": "old@example.com", "primary": False, "verified": True},
        {"email": "main@example.com", "primary": True, "verified": True},
    ]) == "main@example.com"
    assert github.primary_verified_email([{"email": "x@example.com", "primary": True, "verified": False}]) is None
    assert github.primary_verified_email({"message": "Not Found"}) is None


def test_oauth_lives_on_github_com_or_on_the_configured_server():
    assert github.oauth_base_url("https://github.com") == "https://github.com"
    assert github.oauth_base_url("https://ghe.example.com") == "https://ghe.example.com"


def test_github_com_and_enterprise_get_their_api_bases(tmp_path):
    from app import create_app
    from app.web import github_auth
    from tests.conftest import build_config

    for github_url, api_url, oauth in [
        ("https://github.com", "https://api.github.com/", "https://github.com/login/oauth/authorize"),
        ("https://ghe.example.com/", "https://ghe.example.com/api/v3/", "https://ghe.example.com/login/oauth/authorize"),
    ]:
        application = create_app(build_config(str(tmp_path), GITHUB_URL=github_url.rstrip("/"),
                                              GITHUB_CLIENT_ID="id", GITHUB_CLIENT_SECRET="secret"))
        with application.app_context():
            client = github_auth.oauth_client()
            assert (client.api_base_url, client.authorize_url) == (api_url, oauth)
            assert client.access_token_url == oauth.replace("authorize", "access_token")


def test_tokens_are_long_random_and_recognisable():
    tokens = {api_tokens.generate_token() for _ in range(50)}
    assert len(tokens) == 50
    for token in tokens:
        assert token.startswith("sorya_") and len(token) == len("sorya_") + 43
    token = tokens.pop()
    assert api_tokens.hash_token(token) != token and len(api_tokens.hash_token(token)) == 64


def test_a_grant_never_prints_its_token():
    grant = github.GithubGrant(access_token="gho_secret", scopes=("repo",))
    assert "gho_secret" not in repr(grant)


@pytest.mark.parametrize("name", ["", "  ", "a" * 101, "tab\there", "bell\x07"])
def test_bad_token_names_are_refused(name):
    with pytest.raises(InvalidRequest):
        api_tokens.clean_token_name(name)


def test_token_names_are_trimmed_and_may_use_any_script():
    assert api_tokens.clean_token_name("  déploiement 🚀 ") == "déploiement 🚀"
