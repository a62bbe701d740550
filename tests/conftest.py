"""The test harness (shared/TESTING.md).

- MariaDB by default (`TEST_DATABASE_URL`), one database per xdist worker (`<name>_gw0`, `<name>_gw1`),
  dropped and rebuilt by running the Alembic migrations once per session (so migrations are tested).
- Redis (`TEST_REDIS_URL`), one logical database per worker, flushed between tests.
- Isolation: after each test every table is emptied, so tests pass in any order and may use real
  threads and connections (a rollback-per-test session would hide the races that matter).
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pymysql
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from config import Config

DEFAULT_TEST_DATABASE_URL = "mysql+pymysql://sorya:sorya@127.0.0.1:3306/sorya_test?charset=utf8mb4"
DEFAULT_TEST_REDIS_URL = "redis://127.0.0.1:6379/0"
TEST_ENCRYPTION_KEY = base64.b64encode(b"k" * 32).decode()


def worker_id() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "gw0")


def worker_index() -> int:
    match = re.search(r"(\d+)$", worker_id())
    return int(match.group(1)) if match else 0


def recreate_mysql_database(url: str) -> None:
    """Drop and create the worker's database, so a session starts from the migrations alone."""
    parsed = make_url(url)
    connection = pymysql.connect(
        host=parsed.host or "127.0.0.1",
        port=parsed.port or 3306,
        user=parsed.username,
        password=parsed.password or "",
        charset="utf8mb4",
    )
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{parsed.database}`")
            cursor.execute(
                f"CREATE DATABASE `{parsed.database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
            )
    finally:
        connection.close()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    base = os.environ.get("TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL)
    if base.startswith("sqlite"):
        return f"sqlite:///{tmp_path_factory.mktemp('db') / 'sorya.db'}"
    parsed = make_url(base)
    url = parsed.set(database=f"{parsed.database}_{worker_id()}")
    rendered = url.render_as_string(hide_password=False)
    recreate_mysql_database(rendered)
    return rendered


@pytest.fixture(scope="session")
def redis_url() -> str:
    base = make_url(os.environ.get("TEST_REDIS_URL", DEFAULT_TEST_REDIS_URL).replace("redis://", "mysql://", 1))
    first_db = int(base.database or 0)
    host = base.host or "127.0.0.1"
    return f"redis://{host}:{base.port or 6379}/{first_db + worker_index()}"


def build_config(instance_dir: str, **overrides: Any) -> Config:
    """A Config as a test wants it: no ambient environment, explicit secrets, given overrides."""
    values: dict[str, Any] = {
        "TESTING": True,
        "SECRET_KEY": "test-secret-key-" + "x" * 32,
        "ENCRYPTION_KEY": TEST_ENCRYPTION_KEY,
        "INSTANCE_DIR": instance_dir,
        "PUBLIC_URL": "http://localhost:5000",
    }
    values.update(overrides)
    return Config.from_env(env={}, **values)


# -- provider emulators -----------------------------------------------------------------------------
# One server per session (per xdist worker) for the three providers; state is reset after each test
# that used the app, never restarted. The app under test sees ordinary settings pointing at them.

TEST_OPENAI_KEY = "sk-test-sorya"
TEST_STRIPE_KEY = "sk_test_sorya"
TEST_WEBHOOK_SECRET = "whsec_test_sorya"
TEST_GITHUB_CLIENT_ID = "sorya-test-client"
TEST_GITHUB_CLIENT_SECRET = "sorya-test-secret"


@dataclass
class Emulator:
    """One emulator as a test sees it: the base URL the app is configured with, and its control client."""

    url: str
    control: Any
    emulator: Any


@pytest.fixture(scope="session")
def emulator_server() -> Iterator[Any]:
    from sandbox.emulators import EmulatorServer, GitHubEmulator, OpenAIEmulator, StripeEmulator

    server = EmulatorServer(
        OpenAIEmulator(models=("gpt-5", "gpt-5-mini")),
        GitHubEmulator(client_id=TEST_GITHUB_CLIENT_ID, client_secret=TEST_GITHUB_CLIENT_SECRET),
        StripeEmulator(webhook_secret=TEST_WEBHOOK_SECRET),
    ).start()
    yield server
    server.stop()


def _emulator(server: Any, name: str) -> Emulator:
    from sandbox.emulators.control import EmulatorControl

    found = next(e for e in server.emulators if e.name == name)
    return Emulator(url=server.sdk_urls[name], control=EmulatorControl(server.urls[name]), emulator=found)


@pytest.fixture(scope="session")
def openai_emulator(emulator_server) -> Emulator:
    return _emulator(emulator_server, "openai")


@pytest.fixture(scope="session")
def github_emulator(emulator_server) -> Emulator:
    return _emulator(emulator_server, "github")


@pytest.fixture(scope="session")
def stripe_emulator(emulator_server) -> Emulator:
    return _emulator(emulator_server, "stripe")


@pytest.fixture(scope="session")
def provider_settings(emulator_server) -> dict[str, Any]:
    """Provider base URLs and keys for the app under test: the emulators, as ordinary settings."""
    urls = emulator_server.sdk_urls
    return {
        "OPENAI_API_KEY": TEST_OPENAI_KEY,
        "OPENAI_BASE_URL": urls["openai"],
        "OPENAI_MODEL": "gpt-5",
        "OPENAI_MODELS": ["gpt-5", "gpt-5-mini"],
        "GITHUB_CLIENT_ID": TEST_GITHUB_CLIENT_ID,
        "GITHUB_CLIENT_SECRET": TEST_GITHUB_CLIENT_SECRET,
        "GITHUB_URL": urls["github"],
        "STRIPE_SECRET_KEY": TEST_STRIPE_KEY,
        "STRIPE_WEBHOOK_SECRET": TEST_WEBHOOK_SECRET,
        "STRIPE_API_BASE": urls["stripe"],
        "STRIPE_PRICE_BASIC": "price_basic",
        "STRIPE_PRICE_PRO": "price_pro",
    }


def reset_emulators(server: Any) -> None:
    from sandbox.emulators.control import EmulatorControl

    for url in server.urls.values():
        EmulatorControl(url).reset()


@pytest.fixture(scope="session")
def app_config(
    database_url: str, redis_url: str, provider_settings: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Config:
    return build_config(
        str(tmp_path_factory.mktemp("instance")),
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        **provider_settings,
    )


@pytest.fixture(scope="session")
def app(app_config: Config):
    from flask_migrate import upgrade

    from app import create_app

    application = create_app(app_config)
    with application.app_context():
        upgrade()
        # A fresh database restarts its ids: forget what an earlier session left in Redis (reply streams).
        from app import runtime

        client = runtime.redis_client()
        if client is not None:
            client.flushdb()
    return application


@pytest.fixture(scope="session")
def sqlite_app(provider_settings: dict[str, Any], tmp_path_factory: pytest.TempPathFactory):
    """The embedded default: a SQLite file database (never `:memory:`), no Redis, the same emulators.

    Money and identity tests run on it and on `app` alike: SQLite is a real deployment target for one
    process, and real threads here each take their own connection to the file. A module runs on both
    engines by overriding `app` (the harness then empties whichever database the test used):

        @pytest.fixture(params=["mariadb", "sqlite"])
        def app(request, app, sqlite_app):
            return app if request.param == "mariadb" else sqlite_app
    """
    from flask_migrate import upgrade

    from app import create_app

    instance = tmp_path_factory.mktemp("sqlite-instance")
    application = create_app(build_config(str(instance), DATABASE_URL=f"sqlite:///{instance / 'sorya.db'}",
                                          **provider_settings))
    with application.app_context():
        upgrade()
    return application


@pytest.fixture(autouse=True)
def _isolate(request: pytest.FixtureRequest) -> Iterator[None]:
    """Empty every table and the worker's Redis database after each test that used the app."""
    if "app" not in request.fixturenames:
        yield
        return
    # Resolved before the test: a module's own `app` (one per engine) is torn down before this one.
    application = request.getfixturevalue("app")
    emulators = request.getfixturevalue("emulator_server")
    yield
    empty_database(application)
    from app.runtime import token_cache

    token_cache.CACHE.clear()  # per process, like the database it mirrors
    reset_emulators(emulators)


def empty_database(application) -> None:
    from app import runtime
    from app.extensions import db

    with application.app_context():
        db.session.remove()
        tables = [t.name for t in db.metadata.sorted_tables]
        with db.engine.begin() as connection:
            if connection.dialect.name in ("mysql", "mariadb"):
                connection.execute(text("SET FOREIGN_KEY_CHECKS = 0"))
                for name in tables:
                    connection.execute(text(f"DELETE FROM `{name}`"))
                connection.execute(text("SET FOREIGN_KEY_CHECKS = 1"))
            else:
                for name in reversed(tables):
                    connection.execute(text(f'DELETE FROM "{name}"'))
        client = runtime.redis_client()
        if client is not None:
            client.flushdb()


@pytest.fixture
def db_session(app):
    from app.extensions import db

    with app.app_context():
        yield db.session
        db.session.remove()


@pytest.fixture
def rows(app):
    """A session of its own for reading and arranging rows. Unlike `db_session` it keeps no app context
    pushed, so each test-client request gets a fresh one (and a fresh `g`, where Flask-Login caches
    the signed-in user): a request cannot inherit the previous request's user."""
    from sqlalchemy.orm import Session

    from app.extensions import db

    with app.app_context():
        engine = db.engine
    with Session(engine) as session:
        yield session


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def make_user(app) -> Callable[..., Any]:
    """Create an account directly (as a finished sign-in would), with a starting balance on the ledger."""
    from app.extensions import db
    from app.models import User
    from app.services.credits import REASON_ADJUSTMENT, post_ledger_entry

    counter = {"n": 0}

    def create(login: str | None = None, *, balance: int = 0, **fields: Any) -> User:
        counter["n"] += 1
        with app.app_context():
            user = User(login=login or f"user{counter['n']}", name=fields.pop("name", "Test User"), **fields)
            db.session.add(user)
            db.session.commit()
            if balance:
                post_ledger_entry(
                    db.session,
                    user_id=user.id,
                    delta=balance,
                    reason=REASON_ADJUSTMENT,
                    idempotency_key=f"test-start:{user.id}",
                )
            db.session.refresh(user)
            db.session.expunge(user)
            return user

    return create


def session_cookie_id(app, user_id: int) -> str:
    """Open a server-side signed-in session for the user, as the GitHub sign-in does, and return what
    Flask-Login keeps in the session cookie for it: "<user id>:<session id>"."""
    from datetime import timedelta

    from app.extensions import db
    from app.services import accounts

    with app.app_context():
        session_id = accounts.start_session(db.session, user_id, max_age=timedelta(days=30))
    return f"{user_id}:{session_id}"


def sign_in(client, user) -> None:
    """Put `user` in the test client's session, as Flask-Login does after a successful sign-in."""
    cookie_id = session_cookie_id(client.application, user.id)
    with client.session_transaction() as session:
        session["_user_id"] = cookie_id
        session["_fresh"] = True


def csrf_token_for(client) -> str:
    """A valid CSRF token for the client's session (read from the page's meta tag)."""
    page = client.get("/").get_data(as_text=True)
    match = re.search(r'name="csrf-token" content="([^"]+)"', page)
    assert match, "the layout must expose the CSRF token in a meta tag"
    return match.group(1)


@pytest.fixture
def alice(client, make_user):
    """A person signed in on `client`."""
    user = make_user("alice")
    sign_in(client, user)
    return user


@pytest.fixture
def signed_in_client(client, make_user):
    user = make_user("octocat", balance=5000)
    sign_in(client, user)
    client.user = user
    return client
