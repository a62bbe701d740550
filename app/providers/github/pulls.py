"""Pull requests: open one for a pushed branch, and read its state conditionally (an unchanged pull
request answers 304, which costs no rate limit)."""

from __future__ import annotations

from dataclasses import dataclass

from app.providers.github.errors import GithubRejected
from app.providers.github.repos import GithubRepoClient


@dataclass(frozen=True)
class PullInfo:
    number: int
    url: str
    state: str  # open, closed, merged


def _info(data: dict) -> PullInfo:
    state = "merged" if data.get("merged") or data.get("merged_at") else str(data.get("state") or "open")
    return PullInfo(number=int(data["number"]), url=str(data["html_url"]), state=state)


def open_pull_request(client: GithubRepoClient, full_name: str, *, head: str, base: str, title: str,
                      body: str) -> PullInfo:
    """Open a pull request of `head` into `base`; when one is already open for `head`, that one."""
    http = client._http  # noqa: SLF001 - same package
    url = client._repo_url(full_name, "pulls")  # noqa: SLF001
    try:
        return _info(http.call_json("open the pull request", "POST", url, expected=201, idempotent=False,
                                    json={"title": title, "head": head, "base": base, "body": body}))
    except GithubRejected as exc:
        text = " ".join(str(e.get("message", "")) if isinstance(e, dict) else str(e) for e in exc.errors)
        if "already exists" not in text.lower():
            raise
    owner = full_name.split("/")[0]
    found = http.call_json("find the open pull request", "GET", url,
                           params={"state": "open", "head": f"{owner}:{head}"})
    return _info(found[0])


def pull_request_if_changed(client: GithubRepoClient, full_name: str, number: int,
                            etag: str | None) -> tuple[PullInfo | None, str | None]:
    """(the pull request, its ETag), or (None, etag) when GitHub answered 304 (unchanged)."""
    http = client._http  # noqa: SLF001
    url = client._repo_url(full_name, "pulls", str(number))  # noqa: SLF001
    headers = {"If-None-Match": etag} if etag else {}
    response = http.call("read the pull request",
                         lambda: http.request("GET", url, expected=(200, 304), headers=headers))
    if response.status_code == 304:
        return None, etag
    return _info(response.json()), response.headers.get("ETag")
