"""The GitHub App's JWT and install link (`app/providers/github/app.py`)."""

from __future__ import annotations

import jwt
import pytest

from app.providers.github.app import APP_JWT_TTL_S, AppCredentials, app_jwt, install_url
from tests.rsa_keys import rsa_pem_pair


@pytest.fixture(scope="module")
def keys() -> tuple[str, str]:
    return rsa_pem_pair()


def test_the_jwt_is_rs256_names_the_app_and_lives_under_ten_minutes(keys):
    pem, public = keys
    token = app_jwt(AppCredentials(app_id="123", private_key=pem, slug="s"), now=1_800_000_000)
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    claims = jwt.decode(token, public, algorithms=["RS256"], options={"verify_exp": False, "verify_iat": False, "verify_nbf": False})
    assert claims["iss"] == "123"
    assert claims["iat"] < 1_800_000_000  # back-dated for clock drift
    assert claims["exp"] - claims["iat"] <= 10 * 60
    assert claims["exp"] == 1_800_000_000 + APP_JWT_TTL_S
    other = rsa_pem_pair()[1]
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, other, algorithms=["RS256"], options={"verify_exp": False, "verify_iat": False, "verify_nbf": False})


def test_the_credentials_never_print_the_key(keys):
    assert "PRIVATE" not in repr(AppCredentials(app_id="1", private_key=keys[0], slug="s"))


def test_install_links_for_github_and_enterprise():
    assert install_url("https://github.com", "sorya") == "https://github.com/apps/sorya/installations/new"
    assert install_url("https://ghe.example.com/", "sorya") == "https://ghe.example.com/github-apps/sorya/installations/new"
