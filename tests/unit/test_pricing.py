import pytest

from app.services.credits import Price, price_for_model, reply_cost


@pytest.mark.parametrize(
    ("tokens_in", "tokens_out", "price", "expected"),
    [
        (0, 0, Price(10, 10), 0),
        (1, 0, Price(10, 10), 1),  # 0.01 credits rounds up to a whole credit
        (1000, 1000, Price(10, 10), 20),
        (1234, 567, Price(10, 30), 30),  # (12340 + 17010) / 1000 = 29.35 -> 30
        (100, 100, Price(5, 5), 1),
        (200, 0, Price(5, 5), 1),
        (1000, 0, Price(3, 7), 3),
    ],
)
def test_reply_cost_is_the_ceiling_of_the_exact_price(tokens_in, tokens_out, price, expected):
    assert reply_cost(tokens_in, tokens_out, price) == expected


def test_model_prices_override_the_default():
    prices = {"gpt-5": (10, 30)}
    assert price_for_model("gpt-5", prices, 4) == Price(10, 30)
    assert price_for_model("gpt-5-mini", prices, 4) == Price(4, 4)


def test_the_cost_of_a_whole_completion_limit_covers_every_reply_within_it():
    price = Price(10, 30)
    assert reply_cost(1000, 8000, price) == 10 + 240
    # What a hold reserves is never below the real cost of any reply within the limit.
    assert all(reply_cost(500, 4000, price) >= reply_cost(500, out, price) for out in range(0, 4001, 250))


def test_negative_token_counts_are_refused():
    with pytest.raises(ValueError):
        reply_cost(-1, 0, Price(1, 1))
