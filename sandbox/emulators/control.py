"""A small client of the emulators' ``/_emulator/`` control endpoints, for tests and benches.

    ctl = EmulatorControl(server.urls["openai"])   # the server root; a trailing /v1 is ignored
    ctl.reset()
    ctl.script_reply("Hello!", chunk_delay_ms=20)
    ctl.fault("POST", r"^/v1/chat/completions$", kind="rate_limit", retry_after=2)
    ctl.calls()                                     # [{"seq", "method", "path", "status", ...}]

One class serves all three emulators; the per-emulator helpers simply call that emulator's routes
(calling a GitHub helper on the OpenAI emulator answers 404).
"""

from __future__ import annotations

import base64
from typing import Any

import requests

CONTROL_TIMEOUT_S = 10.0


class EmulatorControl:
    def __init__(self, base_url: str, session: requests.Session | None = None):
        root = base_url.rstrip("/")
        if root.endswith("/v1"):
            root = root[: -len("/v1")]
        self.base_url = root
        self.session = session or requests.Session()

    # --- plumbing ------------------------------------------------------------------------------------
    def _call(self, method: str, path: str, body: Any = None, params: dict | None = None,
              timeout_s: float = CONTROL_TIMEOUT_S) -> Any:
        response = self.session.request(method, f"{self.base_url}/_emulator/{path}", json=body,
                                        params=params, timeout=timeout_s)
        response.raise_for_status()
        return response.json()

    # --- every emulator ------------------------------------------------------------------------------
    def health(self) -> dict:
        return self._call("GET", "health")

    def reset(self) -> None:
        self._call("POST", "reset")

    def calls(self, since: int = 0, clear: bool = False) -> list[dict]:
        params = {"since": since, **({"clear": 1} if clear else {})}
        return self._call("GET", "calls", params=params)["calls"]

    def mark(self) -> int:
        """The sequence number of the latest call, to pass later as ``calls(since=...)``."""
        return self._call("GET", "calls", params={"since": 1 << 62})["next_since"]

    def clear_calls(self) -> None:
        self._call("DELETE", "calls")

    def fault(self, method: str = "*", path: str = ".*", *, count: int | None = 1, kind: str | None = None,
              status: int | None = None, body: Any = None, headers: dict[str, str] | None = None,
              latency_ms: float = 0, hang: bool = False, hang_s: float | None = None, **options: Any) -> int:
        """Script a fault (see ``base.py``); ``count=None`` keeps it until reset. Returns the rule id."""
        rule: dict[str, Any] = {"method": method, "path": path, "count": count, "kind": kind, "status": status,
                                "body": body, "headers": headers or {}, "latency_ms": latency_ms,
                                "hang": hang, **options}
        if hang_s is not None:
            rule["hang_s"] = hang_s
        return self._call("POST", "faults", {k: v for k, v in rule.items() if v is not None or k == "count"}
                          )["ids"][0]

    def faults(self) -> list[dict]:
        return self._call("GET", "faults")["faults"]

    def clear_faults(self) -> None:
        self._call("DELETE", "faults")

    def configure(self, **changes: Any) -> dict:
        return self._call("POST", "config", changes)

    # --- OpenAI --------------------------------------------------------------------------------------
    def script_reply(self, text: str | None = None, **options: Any) -> int:
        """Queue one reply: text (None = generated), chunks, chunk_size, chunk_delay_ms,
        first_byte_delay_ms, finish_reason, cut_after_chunks, omit_usage, or an error (kind/status/body/
        headers/hang). Returns the queue length."""
        spec = {"text": text, **options} if text is not None else dict(options)
        return self._call("POST", "script", spec)["queued"]

    def clear_script(self) -> None:
        self._call("DELETE", "script")

    def revoke_key(self, key: str) -> None:
        self._call("POST", "keys/revoke", {"key": key})

    def chat_requests(self) -> list[dict]:
        return self._call("GET", "chat_requests")["requests"]

    # --- GitHub --------------------------------------------------------------------------------------
    def create_user(self, login: str, name: str | None = None, emails: list[dict] | None = None,
                    user_id: int | None = None) -> dict:
        body = {"login": login, "name": name, "emails": emails, "id": user_id}
        return self._call("POST", "users", {k: v for k, v in body.items() if v is not None})

    def users(self) -> list[dict]:
        return self._call("GET", "users")["users"]

    def issue_token(self, login: str, scopes: list[str] | str = ("repo", "read:user", "user:email")) -> str:
        scope_list = scopes.split(",") if isinstance(scopes, str) else list(scopes)
        return self._call("POST", "tokens", {"login": login, "scopes": scope_list})["token"]

    def revoke_token(self, token: str) -> None:
        self._call("POST", "tokens/revoke", {"token": token})

    def register_oauth_app(self, client_id: str, client_secret: str, name: str = "Sorya",
                           callback_url: str | None = None) -> dict:
        return self._call("POST", "oauth_apps", {"client_id": client_id, "client_secret": client_secret,
                                                 "name": name, "callback_url": callback_url})

    def repo_files(self, owner: str, repo: str, ref: str | None = None) -> dict[str, str]:
        params = {"ref": ref} if ref else None
        return self._call("GET", f"repos/{owner}/{repo}/files", params=params)

    def push_as_someone_else(self, owner: str, repo: str, files: dict[str, str | None],
                             branch: str | None = None, message: str = "Edit from elsewhere",
                             author: dict | None = None, binary_files: dict[str, bytes] | None = None,
                             submodules: dict[str, str] | None = None) -> str:
        """A commit on ``branch`` changing ``files`` (None deletes a path), writing ``binary_files`` and
        gitlinks ``submodules`` (path -> commit sha); returns its sha."""
        body = {"files": files, "branch": branch, "message": message, "author": author,
                "files_b64": {p: base64.b64encode(d).decode() for p, d in (binary_files or {}).items()} or None,
                "submodules": submodules}
        return self._call("POST", f"repos/{owner}/{repo}/push",
                          {k: v for k, v in body.items() if v is not None})["commit_sha"]

    def force_push(self, owner: str, repo: str, files: dict[str, str], branch: str | None = None) -> str:
        """Rewrite ``branch``'s history: it now points at a new root commit holding exactly ``files``."""
        body = {"files": files, "branch": branch}
        return self._call("POST", f"repos/{owner}/{repo}/force_push",
                          {k: v for k, v in body.items() if v is not None})["commit_sha"]

    def merge_pull(self, owner: str, repo: str, number: int) -> dict:
        return self._call("POST", f"repos/{owner}/{repo}/pulls/{number}/merge", {})

    def close_pull(self, owner: str, repo: str, number: int) -> dict:
        return self._call("POST", f"repos/{owner}/{repo}/pulls/{number}/close", {})

    def protect_branch(self, owner: str, repo: str, branch: str = "main") -> dict:
        return self._call("POST", f"repos/{owner}/{repo}/protect", {"branch": branch})

    # --- Stripe --------------------------------------------------------------------------------------
    def register_github_app(self, app_id: str, slug: str, public_key: str, token_ttl_s: int = 3600) -> dict:
        return self._call("POST", "apps", {"app_id": app_id, "slug": slug, "public_key": public_key,
                                                      "token_ttl_s": token_ttl_s})

    def install_github_app(self, app_id: str, account: str, repos: list[str]) -> int:
        return int(self._call("POST", f"apps/{app_id}/installations",
                              {"account": account, "repos": repos})["id"])

    def remove_github_app(self, installation_id: int, repo: str | None = None) -> dict:
        return self._call("POST", f"installations/{installation_id}/remove", {"repo": repo} if repo else {})

    def set_webhook(self, url: str | None = None, secret: str | None = None, collect: bool | None = None,
                    api_version: str | None = None) -> dict:
        """Where and how events are delivered; ``api_version`` renders them as that version would."""
        body = {"url": url, "secret": secret, "collect": collect, "api_version": api_version}
        return self._call("POST", "webhook", {k: v for k, v in body.items() if v is not None})

    def advance_clock(self, seconds: int) -> int:
        """Step the Stripe emulator's clock ``seconds`` forward (objects and events only); its new now."""
        return self._call("POST", "clock", {"advance_s": seconds})["now"]

    def delivery_mode(self, **mode: Any) -> dict:
        """duplicate (int extra copies), order ('normal'|'reverse'|'shuffle'), delay_ms,
        bad_signature, stale_timestamp_s, future_timestamp_s, max_attempts, retry_backoff_ms."""
        return self._call("POST", "delivery_mode", mode)

    def deliveries(self, clear: bool = False) -> list[dict]:
        return self._call("GET", "deliveries", params={"clear": 1} if clear else None)["deliveries"]

    def flush_deliveries(self, timeout_s: float = 10.0) -> None:
        """Wait until every queued webhook delivery (retries included) has finished."""
        self._call("POST", "deliveries/flush", {"timeout_s": timeout_s}, timeout_s=timeout_s + 5)

    def complete_checkout(self, session_id: str) -> dict:
        """What pressing *Pay* on the hosted page does; returns the completed session."""
        return self._call("POST", f"checkout/{session_id}/complete")

    def subscription_command(self, subscription_id: str, command: str, **body: Any) -> dict:
        """command: renew | change_plan (price=...) | cancel_at_period_end | resume | cancel |
        fail_payment. Returns the subscription."""
        return self._call("POST", f"subscriptions/{subscription_id}/{command}", body)

    def events(self) -> list[dict]:
        return self._call("GET", "events")["events"]
