"""The settings chat needs, as plain values built from `Config` (the routes build them, services take them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.providers.openai_client import ClientSettings
from app.services import credits
from app.services.snapshots.store import SnapshotLimits

if TYPE_CHECKING:
    from config import Config


@dataclass(frozen=True)
class ChatSettings:
    """The settings chat needs, as plain values (built from `Config` by the routes)."""

    models: list[str]
    default_model: str
    max_message_chars: int
    max_completion_tokens: int
    model_prices: dict[str, tuple[int, int]]
    default_price_per_1k: int
    provider: ClientSettings
    # Ask for edit blocks and elide file bodies from earlier replies (False: whole files, full history).
    edit_replies: bool = True
    history_budget_tokens: int | None = 600  # None: as much history as the context window holds
    # The limits of the version a finished reply of a project makes (None: replies make no version).
    snapshot_limits: SnapshotLimits | None = None

    @classmethod
    def from_config(cls, config: Config) -> ChatSettings:
        return cls(
            models=list(config.OPENAI_MODELS),
            default_model=config.OPENAI_MODEL,
            max_message_chars=config.MAX_MESSAGE_CHARS,
            max_completion_tokens=config.OPENAI_MAX_COMPLETION_TOKENS,
            model_prices=dict(config.MODEL_PRICES),
            default_price_per_1k=config.CREDITS_PER_1K_TOKENS,
            provider=ClientSettings(
                base_url=config.OPENAI_BASE_URL, api_key=config.OPENAI_API_KEY, timeout_s=config.OPENAI_TIMEOUT_S
            ),
            edit_replies=config.CHAT_EDIT_REPLIES,
            history_budget_tokens=config.CHAT_HISTORY_BUDGET_TOKENS or None,
            snapshot_limits=SnapshotLimits.from_settings(config),
        )

    def price(self, model: str) -> credits.Price:
        return credits.price_for_model(model, self.model_prices, self.default_price_per_1k)
