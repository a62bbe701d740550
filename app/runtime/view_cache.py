"""Rendered views of immutable things (a blob's highlighted file view), cached by content hash.

A version never changes and a blob is named by its hash, so what is rendered from them can be kept for
as long as there is room: in Redis when `REDIS_URL` is set (shared by every process, expiring after
`VIEW_CACHE_TTL_S`), else in a small in-process LRU. A Redis error only costs the rendering again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from app import runtime
from app.runtime.lru import BoundedLRU

log = logging.getLogger(__name__)

VIEW_CACHE_PREFIX = "sorya:view:"
VIEW_CACHE_TTL_S = 24 * 3600
LOCAL_CACHE_ENTRIES = 256


LOCAL = BoundedLRU(LOCAL_CACHE_ENTRIES)


def cached_view(key: str, build: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The JSON-serialisable view stored under `key` (a content hash and what else it depends on), or
    `build()`'s, stored for next time."""
    client = runtime.redis_client()
    if client is None:
        value = LOCAL.get(key)
        if value is None:
            value = build()
            LOCAL.put(key, value)
        return value
    import redis

    full_key = VIEW_CACHE_PREFIX + key
    try:
        raw = client.get(full_key)
        if raw is not None:
            return json.loads(raw)
    except redis.RedisError:
        log.warning("view cache: read failed", exc_info=True)
    value = build()
    try:
        client.set(full_key, json.dumps(value, separators=(",", ":")), ex=VIEW_CACHE_TTL_S)
    except redis.RedisError:
        log.warning("view cache: write failed", exc_info=True)
    return value
