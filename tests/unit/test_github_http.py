"""The one GitHub HTTP layer, on github3.py: where the API lives, github3's session speaking for Sorya, one
retry policy and one error family for every call (github3's own methods and the session's direct calls
alike), and a provider package that reads nothing from Flask or the app's runtime."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import github3
import pytest
import requests
from github3.session import GitHubSession

from app.providers import github
from app.providers.github.http import CountingAdapter, GithubHttp

PACKAGE = Path(__file__).resolve().parents[2] / "app" / "providers" / "github"


@pytest.mark.parametrize(("github_url", "api_url"), [
    ("https://github.com", "https://api.github.com"),
    ("https://github.com/", "https://api.github.com"),
    ("https://ghe.example.com", "https://ghe.example.com/api/v3"),
    ("https://ghe.example.com/", "https://ghe.example.com/api/v3"),
    ("http://127.0.0.1:8123", "http://127.0.0.1:8123/api/v3"),
])
def test_api_url_per_contract(github_url, api_url):
    assert github.api_url_for(github_url) == api_url


def answer(status: int, body: object = None, headers: dict[str, str] | None = None) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = (b"null" if body is None else json.dumps(body).encode())
    response.headers.update(headers or {})
    return response


class Scripted(CountingAdapter):
    """Stands in for the network under github3's session: each request takes the next scripted answer
    (or raises it), and is counted like a real one."""

    def __init__(self, *answers: object) -> None:
        super().__init__()
        self.answers = list(answers)
        self.requests: list[requests.PreparedRequest] = []

    def transmit(self, request: requests.PreparedRequest, **_: object) -> requests.Response:
        self.requests.append(request)
        item = self.answers.pop(0)
        if isinstance(item, Exception):
            raise item
        assert isinstance(item, requests.Response)
        item.request, item.url = request, request.url or ""
        return item


def http_with(*answers: object, **kwargs: object) -> tuple[GithubHttp, Scripted, list[float]]:
    sleeps: list[float] = []
    http = GithubHttp(api_url="https://ghe.example.com/api/v3", token="t0ken", sleep=sleeps.append, **kwargs)
    scripted = Scripted(*answers)
    http.session.mount("https://", scripted)
    http.adapter = scripted
    return http, scripted, sleeps


def test_the_session_is_github3s_speaking_for_sorya_with_the_token():
    http, scripted, _ = http_with(answer(200, {"ok": 1}))
    assert isinstance(http.gh, github3.GitHubEnterprise) and isinstance(http.session, GitHubSession)
    assert http.session.base_url == "https://ghe.example.com/api/v3"
    http.call_json("read the branch", "GET", http.url("user"))
    sent = scripted.requests[0]
    assert sent.headers["User-Agent"] == "Sorya"
    assert sent.headers["Accept"] == "application/vnd.github+json"
    assert sent.headers["Authorization"] == "token t0ken"
    dotcom = GithubHttp(api_url=github.api_url_for("https://github.com"), token="t0ken")
    assert type(dotcom.gh) is github3.GitHub and dotcom.session.base_url == "https://api.github.com"
    assert dotcom.session.timeout == (5.0, 15.0)


def test_an_api_base_outside_the_url_rule_is_refused():
    with pytest.raises(ValueError):
        GithubHttp(api_url="https://ghe.example.com/rest", token="t0ken")


def test_idempotent_calls_are_retried_after_a_5xx_and_a_dropped_connection():
    http, scripted, sleeps = http_with(answer(502), requests.ConnectionError("reset"), answer(200, {"ok": 1}))
    assert http.call_json("read the branch", "GET", http.url("user")) == {"ok": 1}
    assert len(scripted.requests) == 3 and http.requests_made == 3
    assert len(sleeps) == 2 and all(0 < s <= 4 for s in sleeps)


def test_github3s_own_methods_follow_the_same_policy():
    repo = {"message": "Not Found"}
    http, scripted, sleeps = http_with(answer(503), requests.Timeout("slow"), answer(404, repo, {"X-OAuth-Scopes": "repo"}))
    with pytest.raises(github.GithubNotFound) as caught:
        http.call("read the repository", lambda: http.gh.repository("a", "b"))
    assert [r.url for r in scripted.requests] == ["https://ghe.example.com/api/v3/repos/a/b"] * 3
    assert len(sleeps) == 2 and caught.value.github_status == 404


def test_a_call_that_is_not_idempotent_is_never_retried():
    http, scripted, _ = http_with(answer(503), answer(201, {}))
    with pytest.raises(github.GithubUnavailable) as caught:
        http.call_json("create the repository", "POST", http.url("user", "repos"), expected=201, idempotent=False)
    assert len(scripted.requests) == 1
    assert "GitHub answered with an error (503)" in caught.value.message


def test_retries_stop_after_max_attempts():
    http, scripted, _ = http_with(*[requests.Timeout("slow")] * 3, max_attempts=3)
    with pytest.raises(github.GithubUnavailable) as caught:
        http.call_json("read the repository", "GET", http.url("repos", "a", "b"))
    assert len(scripted.requests) == 3 and http.requests_made == 3 and caught.value.retryable
    assert "could not be reached or did not answer in time" in caught.value.message


def test_a_short_rate_limit_is_waited_out_and_costs_no_attempt():
    http, scripted, sleeps = http_with(answer(429, {}, {"Retry-After": "2"}), answer(502), answer(200, {}),
                                       max_attempts=2)
    http.call_json("read the branch", "GET", http.url("user"))
    assert len(scripted.requests) == 3 and sleeps[0] == 2.5


def test_a_caller_that_cannot_wait_gets_the_rate_limit_at_once():
    http, scripted, sleeps = http_with(answer(403, {}, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "9999999999"}),
                                       rate_limit_max_wait_s=0)
    with pytest.raises(github.GithubRateLimited) as caught:
        http.call("read your GitHub account", http.gh.me)
    assert len(scripted.requests) == 1 and sleeps == []
    assert caught.value.github_status == 429 and "rate limit" in caught.value.message


@pytest.mark.parametrize(("status", "headers", "body", "error"), [
    (401, {}, {"message": "Bad credentials"}, github.GithubTokenRevoked),
    (403, {}, {"message": "Resource not accessible"}, github.GithubMissingScope),
    (404, {"X-OAuth-Scopes": "read:user, user:email"}, {}, github.GithubMissingScope),
    (404, {"X-OAuth-Scopes": "repo"}, {}, github.GithubNotFound),
    (409, {}, {"message": "Git Repository is empty."}, github.GithubRepoEmpty),
    (422, {}, {"message": "Validation Failed", "errors": [{"code": "custom"}]}, github.GithubRejected),
])
def test_every_answer_maps_to_one_error_family(status, headers, body, error):
    for call in ("request", "github3"):
        http, _, _ = http_with(answer(status, body, headers))
        with pytest.raises(error) as caught:
            if call == "request":
                http.call_json("read the repository", "GET", http.url("repos", "a", "b"))
            else:
                http.call("read the repository", lambda gh=http.gh: gh.repository("a", "b"))
        assert isinstance(caught.value, github.GithubError) and caught.value.github_status == status
        assert "t0ken" not in caught.value.message


def test_an_answer_github3_cannot_read_is_a_github_error():
    http, _, _ = http_with(answer(200, {"login": "octocat"}))
    with pytest.raises(github.GithubError) as caught:
        http.call("read your GitHub account", http.gh.me)
    assert "could not read" in caught.value.message


def test_the_provider_package_reads_nothing_from_flask_or_the_runtime_and_talks_through_github3():
    refused = ("flask", "app.runtime", "authlib.integrations.flask_client")
    imported: set[str] = set()
    for module in sorted(PACKAGE.glob("*.py")):
        tree = ast.parse(module.read_text())
        names = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
        names += [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
        bad = [n for n in names if n.split(".")[0] == "flask" or n.startswith(refused)]
        assert bad == [], f"{module.name} imports {bad}"
        imported.update(n.split(".")[0] for n in names)
    assert "github3" in imported
