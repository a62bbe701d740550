"""A per-process cache of API bearer token look-ups, for a few seconds.

A script's calls come in bursts; each one looked its token up by hash and joined its user. For
`TOKEN_CACHE_TTL_S` seconds after a look-up, this process answers from here instead: the token's id,
scope, expiry and last-used time, and its user's column values (rebuilt into a detached `User` that the
request's session adopts without a query).

What stays exact, and what may lag:
- **Expiry** is checked on every use against the cached `expires_at`: an expired token is refused at once.
- **Revocation, deletion and disabling in this process** drop the entries at once (`forget_token`,
  `forget_user`), before the request that did it returns.
- **Revocation in another process** (another web worker, a CLI) is seen here within `TOKEN_CACHE_TTL_S`:
  no entry lives longer. That is the price of not asking the database on every call; a token that must
  die everywhere at once dies on the next look-up in each process, at most that many seconds later.
- The cache holds at most `TOKEN_CACHE_ENTRIES` tokens (least recently used out first) and is keyed by the
  token's SHA-256, never the token itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.runtime.lru import BoundedLRU

TOKEN_CACHE_TTL_S = 5.0
TOKEN_CACHE_ENTRIES = 1024


@dataclass
class CachedToken:
    token_id: int
    user_id: int
    scope: str
    expires_at: datetime | None
    last_used_at: datetime | None
    user_values: dict[str, Any]  # the user's column values, read when the token was looked up


class TokenCache:
    """Look-ups by token hash, each valid `ttl_s` seconds of `clock`; at most `capacity` of them."""

    def __init__(self, ttl_s: float = TOKEN_CACHE_TTL_S, capacity: int = TOKEN_CACHE_ENTRIES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.clock = clock
        self._items = BoundedLRU(capacity)  # digest -> (stored at, entry)

    def get(self, digest: str) -> CachedToken | None:
        item = self._items.get(digest)
        if item is None:
            return None
        stored_at, entry = item
        if self.clock() - stored_at >= self.ttl_s:
            self._items.pop(digest)
            return None
        return entry

    def put(self, digest: str, entry: CachedToken) -> None:
        self._items.put(digest, (self.clock(), entry))

    def forget_token(self, token_id: int) -> None:
        self._items.discard_where(lambda item: item[1].token_id == token_id)

    def forget_user(self, user_id: int) -> None:
        self._items.discard_where(lambda item: item[1].user_id == user_id)

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


# The process's cache; `app.services.api_tokens` reads and fills it.
CACHE = TokenCache()


def forget_token(token_id: int) -> None:
    CACHE.forget_token(token_id)


def forget_user(user_id: int) -> None:
    CACHE.forget_user(user_id)
