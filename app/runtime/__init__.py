"""Per-process handles built from configuration: the encryption keyring and the Redis client.

Routes pass these to services as plain values; nothing here holds business rules.
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
