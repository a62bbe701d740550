"""Configuration read from the environment, with the names of the public contract (shared/CONTRACT.md).

`Config.from_env()` builds the settings once per process; tests build one with overrides. Values that the
contract defaults to "generated once into instance/" (SECRET_KEY, ENCRYPTION_KEY) are only generated in
sandbox mode; outside it they are required and checked at start-up by `check_production_settings`.
"""

from __future__ import annotations

import base64
import os
import secrets
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent
DEFAULT_INSTANCE_DIR = BASE_DIR / "instance"

# The request body any route may send unless it raises its own limit: forms, chat messages and API calls
# are a few kilobytes; a Stripe event stays under this too.
MAX_REQUEST_BODY_BYTES = 1_000_000

# The default `GITHUB_URL`; where its API lives is `app.providers.github.api_url_for` (the one rule).
GITHUB_DOTCOM = "https://github.com"


class ConfigError(RuntimeError):
    """A setting is missing or malformed; the message says how to fix it."""


def _env_int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}.") from exc


def _env_bool(env: dict[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    return raw in {"1", "true", "yes", "on"}


def _env_list(env: dict[str, str], name: str) -> list[str]:
    return [item.strip() for item in env.get(name, "").split(",") if item.strip()]


def _read_or_create_secret(path: Path, make: Any) -> str:
    """Read a sandbox secret from instance/, creating it on first use so restarts keep sessions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        return path.read_text().strip()
    value = make()
    # O_EXCL: two processes starting together must not write two different keys.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    return value


def parse_model_prices(raw: str) -> dict[str, tuple[int, int]]:
    """Parse `MODEL_PRICES`: `model=in/out,model=in/out`, credits per 1,000 input/output tokens."""
    prices: dict[str, tuple[int, int]] = {}
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        name, _, pair = item.partition("=")
        price_in, _, price_out = pair.partition("/")
        try:
            prices[name.strip()] = (int(price_in), int(price_out or price_in))
        except ValueError as exc:
            raise ConfigError(
                f"MODEL_PRICES entry {item!r} must look like model=IN/OUT with whole credits, "
                "for example gpt-5=10/30."
            ) from exc
    return prices


@dataclass
class Config:
    """Every setting Sorya reads. Field names are the environment variable names."""

    SECRET_KEY: str = ""
    DATABASE_URL: str = ""
    REDIS_URL: str = ""
    PUBLIC_URL: str = "http://localhost:5000"
    ENCRYPTION_KEY: str = ""
    ENCRYPTION_OLD_KEYS: list[str] = field(default_factory=list)

    GITHUB_CLIENT_ID: str = ""
    GITHUB_CLIENT_SECRET: str = ""
    GITHUB_URL: str = GITHUB_DOTCOM
    # Operators who only allow public repositories ask for the narrower public_repo scope.
    GITHUB_ALLOW_PRIVATE_REPOS: bool = True
    # Seconds to wait for one GitHub API answer before retrying (idempotent steps) or giving up.
    GITHUB_TIMEOUT_S: int = 15
    # Optional GitHub App: with all three set, repository access goes through its installations
    # (installation tokens) instead of the person's OAuth `repo` scope; OAuth stays for sign-in.
    GITHUB_APP_ID: str = ""
    GITHUB_APP_PRIVATE_KEY: str = ""
    GITHUB_APP_SLUG: str = ""

    OPENAI_API_KEY: str = ""
    OPENAI_BASE_URL: str = "https://api.openai.com/v1"
    OPENAI_MODEL: str = "gpt-5"
    OPENAI_MODELS: list[str] = field(default_factory=list)
    OPENAI_TIMEOUT_S: int = 60
    OPENAI_MAX_COMPLETION_TOKENS: int = 8000

    STRIPE_SECRET_KEY: str = ""
    STRIPE_WEBHOOK_SECRET: str = ""
    STRIPE_API_BASE: str = "https://api.stripe.com"
    STRIPE_PRICE_BASIC: str = ""
    STRIPE_PRICE_PRO: str = ""
    PLAN_CREDITS_BASIC: int = 20000
    PLAN_CREDITS_PRO: int = 100000

    CREDITS_SIGNUP_GRANT: int = 5000
    CREDITS_PER_1K_TOKENS: int = 10
    MODEL_PRICES: dict[str, tuple[int, int]] = field(default_factory=dict)

    MAX_MESSAGE_CHARS: int = 20000
    # Replies change existing files with edit blocks and earlier replies are sent without their file
    # bodies (issue 18); false: whole files and the full history, as before.
    CHAT_EDIT_REPLIES: bool = True
    # The most of the prompt turns before the last exchange may take (tokens, newest kept first); 0: the
    # context window. Earlier replies are sent elided, so 600 holds some ten short exchanges.
    CHAT_HISTORY_BUDGET_TOKENS: int = 600
    # Flask-Limiter syntax; one budget per user shared by the chat page and POST /api/chat.
    CHAT_RATE_LIMIT: str = "20 per minute;300 per hour"
    SNAPSHOT_MAX_FILES: int = 500
    SNAPSHOT_MAX_FILE_BYTES: int = 1_000_000
    SNAPSHOT_MAX_TOTAL_BYTES: int = 20_000_000
    # Bytes of distinct file contents all of a user's snapshots may hold; 0 for no quota.
    STORAGE_QUOTA_BYTES: int = 200_000_000

    # Operations (deploy/README.md). Proxies in front of the app that set X-Forwarded-*: trusted only
    # when counted here, since a client could send those headers itself.
    TRUSTED_PROXY_HOPS: int = 0
    # Bearer token that /metrics demands; unset, /metrics answers only direct loopback callers.
    METRICS_TOKEN: str = ""
    # "json" (one object per line) or "text"; default json, text in the sandbox.
    LOG_FORMAT: str = ""
    LOG_LEVEL: str = "INFO"
    # Flask-Limiter limit applied to every /api call per user (or per address before sign-in); empty = none.
    API_RATE_LIMIT: str = "600 per minute"
    # On SIGTERM, how long running generations get to finish before they are marked failed.
    SHUTDOWN_GRACE_S: int = 20

    # Set by the sandbox launcher (`python -m sandbox`): every page then says no real provider is used.
    SORYA_SANDBOX: bool = False
    INSTANCE_DIR: str = str(DEFAULT_INSTANCE_DIR)
    TESTING: bool = False

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: Any) -> Config:
        env = dict(os.environ if env is None else env)
        config = cls(
            SECRET_KEY=env.get("SECRET_KEY", ""),
            DATABASE_URL=env.get("DATABASE_URL", ""),
            REDIS_URL=env.get("REDIS_URL", ""),
            PUBLIC_URL=env.get("PUBLIC_URL", "").rstrip("/") or cls.PUBLIC_URL,
            ENCRYPTION_KEY=env.get("ENCRYPTION_KEY", ""),
            ENCRYPTION_OLD_KEYS=_env_list(env, "ENCRYPTION_OLD_KEYS"),
            GITHUB_CLIENT_ID=env.get("GITHUB_CLIENT_ID", ""),
            GITHUB_CLIENT_SECRET=env.get("GITHUB_CLIENT_SECRET", ""),
            GITHUB_URL=env.get("GITHUB_URL", "").rstrip("/") or GITHUB_DOTCOM,
            GITHUB_ALLOW_PRIVATE_REPOS=_env_bool(env, "GITHUB_ALLOW_PRIVATE_REPOS", True),
            GITHUB_TIMEOUT_S=_env_int(env, "GITHUB_TIMEOUT_S", cls.GITHUB_TIMEOUT_S),
            GITHUB_APP_ID=env.get("GITHUB_APP_ID", "").strip(),
            # A PEM in one environment line may carry its line breaks as "\n".
            GITHUB_APP_PRIVATE_KEY=env.get("GITHUB_APP_PRIVATE_KEY", "").replace("\\n", "\n").strip(),
            GITHUB_APP_SLUG=env.get("GITHUB_APP_SLUG", "").strip(),
            OPENAI_API_KEY=env.get("OPENAI_API_KEY", ""),
            OPENAI_BASE_URL=env.get("OPENAI_BASE_URL", "").rstrip("/") or cls.OPENAI_BASE_URL,
            OPENAI_MODEL=env.get("OPENAI_MODEL", "") or cls.OPENAI_MODEL,
            OPENAI_MODELS=_env_list(env, "OPENAI_MODELS"),
            OPENAI_TIMEOUT_S=_env_int(env, "OPENAI_TIMEOUT_S", cls.OPENAI_TIMEOUT_S),
            OPENAI_MAX_COMPLETION_TOKENS=_env_int(
                env, "OPENAI_MAX_COMPLETION_TOKENS", cls.OPENAI_MAX_COMPLETION_TOKENS
            ),
            CHAT_EDIT_REPLIES=_env_bool(env, "CHAT_EDIT_REPLIES", cls.CHAT_EDIT_REPLIES),
            CHAT_HISTORY_BUDGET_TOKENS=_env_int(env, "CHAT_HISTORY_BUDGET_TOKENS", cls.CHAT_HISTORY_BUDGET_TOKENS),
            STRIPE_SECRET_KEY=env.get("STRIPE_SECRET_KEY", ""),
            STRIPE_WEBHOOK_SECRET=env.get("STRIPE_WEBHOOK_SECRET", ""),
            STRIPE_API_BASE=env.get("STRIPE_API_BASE", "").rstrip("/") or cls.STRIPE_API_BASE,
            STRIPE_PRICE_BASIC=env.get("STRIPE_PRICE_BASIC", ""),
            STRIPE_PRICE_PRO=env.get("STRIPE_PRICE_PRO", ""),
            PLAN_CREDITS_BASIC=_env_int(env, "PLAN_CREDITS_BASIC", cls.PLAN_CREDITS_BASIC),
            PLAN_CREDITS_PRO=_env_int(env, "PLAN_CREDITS_PRO", cls.PLAN_CREDITS_PRO),
            CREDITS_SIGNUP_GRANT=_env_int(env, "CREDITS_SIGNUP_GRANT", cls.CREDITS_SIGNUP_GRANT),
            CREDITS_PER_1K_TOKENS=_env_int(env, "CREDITS_PER_1K_TOKENS", cls.CREDITS_PER_1K_TOKENS),
            MODEL_PRICES=parse_model_prices(env.get("MODEL_PRICES", "")),
            MAX_MESSAGE_CHARS=_env_int(env, "MAX_MESSAGE_CHARS", cls.MAX_MESSAGE_CHARS),
            CHAT_RATE_LIMIT=env.get("CHAT_RATE_LIMIT", "").strip() or cls.CHAT_RATE_LIMIT,
            SNAPSHOT_MAX_FILES=_env_int(env, "SNAPSHOT_MAX_FILES", cls.SNAPSHOT_MAX_FILES),
            SNAPSHOT_MAX_FILE_BYTES=_env_int(env, "SNAPSHOT_MAX_FILE_BYTES", cls.SNAPSHOT_MAX_FILE_BYTES),
            SNAPSHOT_MAX_TOTAL_BYTES=_env_int(env, "SNAPSHOT_MAX_TOTAL_BYTES", cls.SNAPSHOT_MAX_TOTAL_BYTES),
            STORAGE_QUOTA_BYTES=_env_int(env, "STORAGE_QUOTA_BYTES", cls.STORAGE_QUOTA_BYTES),
            TRUSTED_PROXY_HOPS=_env_int(env, "TRUSTED_PROXY_HOPS", cls.TRUSTED_PROXY_HOPS),
            METRICS_TOKEN=env.get("METRICS_TOKEN", ""),
            LOG_FORMAT=env.get("LOG_FORMAT", "").strip().lower(),
            LOG_LEVEL=env.get("LOG_LEVEL", "").strip().upper() or cls.LOG_LEVEL,
            API_RATE_LIMIT=env.get("API_RATE_LIMIT", cls.API_RATE_LIMIT).strip(),
            SHUTDOWN_GRACE_S=_env_int(env, "SHUTDOWN_GRACE_S", cls.SHUTDOWN_GRACE_S),
            SORYA_SANDBOX=_env_bool(env, "SORYA_SANDBOX", False),
            INSTANCE_DIR=env.get("SORYA_INSTANCE_DIR", "") or str(DEFAULT_INSTANCE_DIR),
        )
        for name, value in overrides.items():
            if not hasattr(config, name):
                raise ConfigError(f"Unknown setting {name!r}.")
            setattr(config, name, value)
        config.fill_defaults()
        return config

    # -- derived values -------------------------------------------------------------------------

    @property
    def providers_configured(self) -> bool:
        return bool(self.OPENAI_API_KEY or self.GITHUB_CLIENT_ID or self.STRIPE_SECRET_KEY)

    @property
    def uses_generated_secrets(self) -> bool:
        """Sandbox and tests may generate SECRET_KEY/ENCRYPTION_KEY; production must set them."""
        return self.SORYA_SANDBOX or self.TESTING or not self.providers_configured

    @property
    def public_url_is_https(self) -> bool:
        return self.PUBLIC_URL.startswith("https://")

    def fill_defaults(self) -> None:
        """Apply the contract's defaults that depend on other settings or on instance/."""
        instance = Path(self.INSTANCE_DIR)
        if not self.DATABASE_URL:
            instance.mkdir(parents=True, exist_ok=True)
            self.DATABASE_URL = f"sqlite:///{instance / 'sorya.db'}"
        if not self.LOG_FORMAT:
            self.LOG_FORMAT = "text" if self.SORYA_SANDBOX else "json"
        if self.LOG_FORMAT not in ("json", "text"):
            raise ConfigError(f"LOG_FORMAT must be json or text, not {self.LOG_FORMAT!r}.")
        if not self.OPENAI_MODELS:
            self.OPENAI_MODELS = [self.OPENAI_MODEL]
        elif self.OPENAI_MODEL not in self.OPENAI_MODELS:
            self.OPENAI_MODELS.insert(0, self.OPENAI_MODEL)
        if self.uses_generated_secrets:
            if not self.SECRET_KEY:
                self.SECRET_KEY = _read_or_create_secret(
                    instance / "secret_key", lambda: secrets.token_urlsafe(48)
                )
            if not self.ENCRYPTION_KEY:
                self.ENCRYPTION_KEY = _read_or_create_secret(
                    instance / "encryption_key", lambda: base64.b64encode(os.urandom(32)).decode()
                )

    def secret_values(self) -> list[str]:
        """Every configured secret, so the log formatter can blank them out wherever they appear."""
        return [
            self.SECRET_KEY, self.ENCRYPTION_KEY, *self.ENCRYPTION_OLD_KEYS, self.GITHUB_CLIENT_SECRET,
            self.GITHUB_APP_PRIVATE_KEY,
            self.OPENAI_API_KEY, self.STRIPE_SECRET_KEY, self.STRIPE_WEBHOOK_SECRET, self.METRICS_TOKEN,
        ]

    def check_production_settings(self) -> None:
        """Refuse to start outside the sandbox without the secrets that protect users."""
        if self.uses_generated_secrets:
            return
        problems = []
        if len(self.SECRET_KEY) < 32:
            problems.append(
                "SECRET_KEY must be set to a long random value, for example the output of "
                "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`."
            )
        if not self.ENCRYPTION_KEY:
            problems.append(
                "ENCRYPTION_KEY must be set to base64 of 32 random bytes, for example the output of "
                "`python -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())'`."
            )
        if problems:
            raise ConfigError("Sorya cannot start: " + " ".join(problems))

    def to_flask(self) -> dict[str, Any]:
        """The mapping loaded into `app.config`, with Flask's own keys derived from ours."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        # No `pool_pre_ping`: `extensions.ping_idle_connections` pings only connections that sat idle, sparing a
        # round trip on every checkout.
        # `extensions.reset_only_dirty_connections` rolls back returning connections that need it.
        engine_options: dict[str, Any] = {"pool_reset_on_return": None}
        if self.DATABASE_URL.startswith("mysql"):
            # READ COMMITTED: a re-check after taking a row lock sees rows other transactions committed,
            # and InnoDB takes no gap locks, so concurrent ledger posts do not deadlock.
            engine_options.update(
                pool_recycle=280, pool_size=10, max_overflow=20, isolation_level="READ COMMITTED"
            )
        values.update(
            SQLALCHEMY_DATABASE_URI=self.DATABASE_URL,
            SQLALCHEMY_ENGINE_OPTIONS=engine_options,
            SQLALCHEMY_TRACK_MODIFICATIONS=False,
            SESSION_COOKIE_HTTPONLY=True,
            SESSION_COOKIE_SAMESITE="Lax",
            SESSION_COOKIE_SECURE=self.public_url_is_https,
            REMEMBER_COOKIE_HTTPONLY=True,
            REMEMBER_COOKIE_SAMESITE="Lax",
            REMEMBER_COOKIE_SECURE=self.public_url_is_https,
            PREFERRED_URL_SCHEME="https" if self.public_url_is_https else "http",
            # Every route reads at most this much; the few that take more (a snapshot upload) raise their own
            # limit with app.web.request_limits.limit_body. Larger bodies get a 413 before anything parses them.
            MAX_CONTENT_LENGTH=MAX_REQUEST_BODY_BYTES,
            WTF_CSRF_TIME_LIMIT=None,
            RATELIMIT_STORAGE_URI=self.REDIS_URL or "memory://",
            RATELIMIT_HEADERS_ENABLED=True,
        )
        return values
