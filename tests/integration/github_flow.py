"""Drive the GitHub OAuth web flow against the emulator from a Flask test client.

The test client plays the browser on Sorya's side; `requests` plays it on the emulator's consent page
(the form a person submits), so every hop is the real one: Sorya's redirect, GitHub's consent, the
callback with `code` and `state`.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import requests


@dataclass
class Consent:
    authorize_url: str
    params: dict[str, str]  # client_id, redirect_uri, scope, state as Sorya sent them


def start(client, *, next_path: str | None = None, remember: bool = False) -> Consent:
    query = {}
    if next_path is not None:
        query["next"] = next_path
    if remember:
        query["remember"] = "1"
    response = client.get("/auth/github", query_string=query)
    assert response.status_code == 302, response.get_data(as_text=True)
    location = response.headers["Location"]
    params = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    return Consent(authorize_url=location, params=params)


def consent(github_url: str, flow: Consent, *, login: str = "octocat", action: str = "authorize") -> str:
    """Submit the emulator's consent form; returns the callback URL GitHub redirects to."""
    form = {k: flow.params[k] for k in ("client_id", "redirect_uri", "scope", "state") if k in flow.params}
    form.update(login=login, action=action)
    answer = requests.post(f"{github_url}/login/oauth/authorize", data=form, allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    return answer.headers["Location"]


def callback_path(callback_url: str) -> str:
    parts = urlsplit(callback_url)
    return f"{parts.path}?{parts.query}"


def sign_in(client, github_url: str, *, login: str = "octocat", next_path: str | None = None,
            remember: bool = False):
    """The whole flow; returns Sorya's answer to the callback."""
    flow = start(client, next_path=next_path, remember=remember)
    return client.get(callback_path(consent(github_url, flow, login=login)))
