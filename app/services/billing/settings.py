"""The settings billing needs, as plain values, and the Stripe gateway they name."""

from __future__ import annotations

from dataclasses import dataclass

from app.providers import stripe_client
from app.providers.stripe_client import StripeGateway
from config import Config


@dataclass(frozen=True)
class BillingSettings:
    """What billing reads from the configuration (built from `Config` by the routes and the CLI)."""

    stripe_secret_key: str
    stripe_api_base: str
    webhook_secret: str
    price_basic: str
    price_pro: str
    credits_basic: int
    credits_pro: int

    @classmethod
    def from_config(cls, config: Config) -> BillingSettings:
        return cls(
            stripe_secret_key=config.STRIPE_SECRET_KEY,
            stripe_api_base=config.STRIPE_API_BASE,
            webhook_secret=config.STRIPE_WEBHOOK_SECRET,
            price_basic=config.STRIPE_PRICE_BASIC,
            price_pro=config.STRIPE_PRICE_PRO,
            credits_basic=config.PLAN_CREDITS_BASIC,
            credits_pro=config.PLAN_CREDITS_PRO,
        )


def stripe_gateway(settings: BillingSettings) -> StripeGateway:
    """The process's Stripe gateway for these settings (key and `STRIPE_API_BASE`)."""
    return stripe_client.gateway_for(settings.stripe_secret_key, settings.stripe_api_base)
