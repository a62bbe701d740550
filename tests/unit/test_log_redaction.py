"""No token, key or password reaches a log line, whatever carries it there."""

import io
import json
import logging

import pytest

from app import logs


@pytest.fixture
def json_log(monkeypatch):
    monkeypatch.setattr(logs, "_configured_secrets", [])
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger("test.redaction")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)


SECRETS = [
    "sk-proj-AbCdEf0123456789xyz",
    "sk_live_51HxYzAbCdEf0123",
    "rk_test_51HxYzAbCdEf0123",
    "whsec_abcdef0123456789",
    "gho_16C7e42F292c6912E7710c838347Ae178B4a",
    "github_pat_11ABCDEFG0123456789_abcdef",
    "sorya_Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5",
]


@pytest.mark.parametrize("secret", SECRETS)
def test_provider_keys_and_api_tokens_are_redacted(json_log, secret):
    logger, stream = json_log
    logger.info("calling with %s", secret, extra={"detail": f"key={secret}"})
    line = stream.getvalue()
    assert secret not in line
    assert json.loads(line)["message"] == f"calling with {logs.REDACTED}"


def test_bearer_headers_url_credentials_and_tracebacks_are_redacted(json_log):
    logger, stream = json_log
    logs.set_known_secrets(["configured-secret-key-value-0123456789"])
    try:
        raise ValueError("Authorization: Bearer opaque-token-value rejected; key configured-secret-key-value-0123456789")
    except ValueError:
        logger.exception("GET /auth/github/callback?code=abc123oauthcode&state=xyz failed")
    output = stream.getvalue()
    for leaked in ("opaque-token-value", "abc123oauthcode", "configured-secret-key-value-0123456789"):
        assert leaked not in output
    event = json.loads(output)
    assert "state=xyz" in event["message"]  # what is not a credential stays readable
    assert "Traceback" in event["exc"]


def test_short_configured_values_are_not_matched_literally(monkeypatch):
    monkeypatch.setattr(logs, "_configured_secrets", [])
    logs.set_known_secrets(["abc"])
    assert logs.redact("abc is an ordinary word") == "abc is an ordinary word"
