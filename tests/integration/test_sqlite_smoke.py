"""The embedded default (SQLite under instance/, no Redis) keeps the quick start true."""

from flask_migrate import upgrade

from app import create_app
from tests.conftest import build_config


def test_sqlite_default_migrates_and_serves(tmp_path):
    config = build_config(str(tmp_path))  # no DATABASE_URL: the contract's default
    assert config.DATABASE_URL == f"sqlite:///{tmp_path / 'sorya.db'}"
    application = create_app(config)
    with application.app_context():
        upgrade()
    client = application.test_client()
    assert client.get("/").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json["checks"] == {"database": "ok", "migrations": "ok", "redis": "not configured"}
