"""The process machinery of a web or worker process, and its handles built from configuration.

Here: `settings()`, `keyring()` and `redis_client()`, which routes pass to services as plain values.
The modules: `admission` (which requests go first), `lifecycle` (graceful shutdown), `jobs` (background
and periodic work), `streams` and `redis_streams` (the per-reply event streams). None holds a business
rule; those live in `app/services/`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Flask, current_app

from app.crypto import Keyring

if TYPE_CHECKING:
    import redis

    from config import Config


def init_app(app: Flask) -> None:
    config: Config = app.extensions["sorya.config"]
    app.extensions["sorya.keyring"] = Keyring.from_settings(
        config.ENCRYPTION_KEY, config.ENCRYPTION_OLD_KEYS
    )
    app.extensions["sorya.redis"] = None


def settings() -> Config:
    return current_app.extensions["sorya.config"]


def keyring() -> Keyring:
    return current_app.extensions["sorya.keyring"]


def redis_client() -> redis.Redis | None:
    """The shared Redis connection pool, or None in the embedded default (no REDIS_URL)."""
    url = settings().REDIS_URL
    if not url:
        return None
    client = current_app.extensions.get("sorya.redis")
    if client is None:
        import redis

        client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)
        current_app.extensions["sorya.redis"] = client
    return client
