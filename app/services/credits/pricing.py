"""What a reply costs: per-model prices in credits per 1,000 tokens, integer maths only."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Price:
    """Credits per 1,000 input tokens and per 1,000 output tokens."""

    per_1k_in: int
    per_1k_out: int


def price_for_model(model: str, model_prices: dict[str, tuple[int, int]], default_per_1k: int) -> Price:
    """The model's own price from MODEL_PRICES, else CREDITS_PER_1K_TOKENS for both directions."""
    per_1k_in, per_1k_out = model_prices.get(model, (default_per_1k, default_per_1k))
    return Price(per_1k_in, per_1k_out)


def reply_cost(tokens_in: int, tokens_out: int, price: Price) -> int:
    """ceil((tokens_in * price_in + tokens_out * price_out) / 1000), in whole credits (integer maths)."""
    if tokens_in < 0 or tokens_out < 0:
        raise ValueError("Token counts cannot be negative.")
    milli_credits = tokens_in * price.per_1k_in + tokens_out * price.per_1k_out
    return -(-milli_credits // 1000)

