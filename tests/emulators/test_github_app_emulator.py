"""The GitHub emulator's GitHub Apps: the JWT is checked against the app's public key, installation
tokens reach only their installation's repositories and expire."""

from __future__ import annotations

import time

import jwt
import pytest
import requests

from tests.rsa_keys import rsa_pem_pair


@pytest.fixture(scope="module")
def keys() -> tuple[str, str]:
    return rsa_pem_pair()


def app_jwt(private: str, app_id: str = "77", lifetime_s: int = 540, issued_ago_s: int = 60) -> str:
    now = int(time.time()) - issued_ago_s
    return jwt.encode({"iat": now, "exp": now + lifetime_s, "iss": app_id}, private, algorithm="RS256")


def call(github_url: str, method: str, path: str, token: str, scheme: str = "Bearer") -> requests.Response:
    return requests.request(method, f"{github_url}/api/v3{path}", headers={"Authorization": f"{scheme} {token}"},
                            timeout=5)


def setup_repo(github_url: str, github_ctl, name: str) -> None:
    owner = github_ctl.issue_token("octocat", ["repo"])
    requests.post(f"{github_url}/api/v3/user/repos", json={"name": name, "private": True},
                  headers={"Authorization": f"token {owner}"}, timeout=5).raise_for_status()
    github_ctl.push_as_someone_else("octocat", name, {"a.txt": "a\n"})


def test_the_jwt_is_verified_with_the_apps_public_key(github_url, github_ctl, keys):
    private, public = keys
    github_ctl.register_github_app("77", "sorya", public)
    assert call(github_url, "GET", "/app/installations", app_jwt(private)).status_code == 200
    other = call(github_url, "GET", "/app/installations", app_jwt(rsa_pem_pair()[0]))
    assert other.status_code == 401 and "could not be decoded" in other.json()["message"]
    expired = call(github_url, "GET", "/app/installations", app_jwt(private, issued_ago_s=700, lifetime_s=600))
    assert expired.status_code == 401 and "'Expiration time'" in expired.json()["message"]
    too_long = call(github_url, "GET", "/app/installations", app_jwt(private, lifetime_s=3600))
    assert too_long.status_code == 401
    assert call(github_url, "GET", "/app/installations", app_jwt(private, app_id="78")).status_code == 401


def test_installation_tokens_reach_their_repositories_only_and_expire(github_url, github_ctl, keys):
    private, public = keys
    github_ctl.register_github_app("77", "sorya", public, token_ttl_s=2)
    setup_repo(github_url, github_ctl, "chosen")
    setup_repo(github_url, github_ctl, "other")
    installation = github_ctl.install_github_app("77", "octocat", ["octocat/chosen"])
    found = call(github_url, "GET", "/repos/octocat/chosen/installation", app_jwt(private))
    assert found.status_code == 200 and found.json()["id"] == installation
    assert found.json()["account"]["login"] == "octocat"
    assert call(github_url, "GET", "/repos/octocat/other/installation", app_jwt(private)).status_code == 404
    minted = call(github_url, "POST", f"/app/installations/{installation}/access_tokens", app_jwt(private))
    assert minted.status_code == 201
    token = minted.json()["token"]
    assert token.startswith("ghs_") and minted.json()["expires_at"].endswith("Z")
    chosen = call(github_url, "GET", "/repos/octocat/chosen", token, "token")
    assert chosen.status_code == 200 and "X-OAuth-Scopes" not in chosen.headers
    assert call(github_url, "GET", "/repos/octocat/other", token, "token").status_code == 404
    listed = call(github_url, "GET", "/installation/repositories", token, "token").json()
    assert [r["full_name"] for r in listed["repositories"]] == ["octocat/chosen"]
    time.sleep(2.2)
    assert call(github_url, "GET", "/repos/octocat/chosen", token, "token").status_code == 401
    # Removed from the repository: the app no longer covers it.
    github_ctl.remove_github_app(installation, "octocat/chosen")
    assert call(github_url, "GET", "/repos/octocat/chosen/installation", app_jwt(private)).status_code == 404
