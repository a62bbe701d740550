import pytest

from config import Config, ConfigError, parse_model_prices


def test_defaults_follow_the_contract(tmp_path):
    config = Config.from_env(env={"SORYA_INSTANCE_DIR": str(tmp_path)})
    assert config.DATABASE_URL == f"sqlite:///{tmp_path / 'sorya.db'}"
    assert config.PUBLIC_URL == "http://localhost:5000"
    assert config.OPENAI_BASE_URL == "https://api.openai.com/v1"
    assert config.OPENAI_MODEL == "gpt-5" and config.OPENAI_MODELS == ["gpt-5"]
    assert config.STRIPE_API_BASE == "https://api.stripe.com"
    assert (config.PLAN_CREDITS_BASIC, config.PLAN_CREDITS_PRO) == (20000, 100000)
    assert config.CREDITS_SIGNUP_GRANT == 5000 and config.CREDITS_PER_1K_TOKENS == 10
    assert config.REDIS_URL == ""


def test_sandbox_secrets_are_generated_once_into_instance(tmp_path):
    first = Config.from_env(env={"SORYA_INSTANCE_DIR": str(tmp_path)})
    second = Config.from_env(env={"SORYA_INSTANCE_DIR": str(tmp_path)})
    assert first.SECRET_KEY and first.SECRET_KEY == second.SECRET_KEY
    assert first.ENCRYPTION_KEY and first.ENCRYPTION_KEY == second.ENCRYPTION_KEY


def test_production_requires_secrets(tmp_path):
    env = {"SORYA_INSTANCE_DIR": str(tmp_path), "OPENAI_API_KEY": "sk-live"}
    config = Config.from_env(env=env)
    with pytest.raises(ConfigError, match="SECRET_KEY must be set") as caught:
        config.check_production_settings()
    assert "ENCRYPTION_KEY must be set" in str(caught.value)
    assert not (tmp_path / "secret_key").exists()


def test_models_list_includes_the_default(tmp_path):
    config = Config.from_env(
        env={"SORYA_INSTANCE_DIR": str(tmp_path), "OPENAI_MODEL": "gpt-5", "OPENAI_MODELS": "gpt-5-mini, gpt-4.1"}
    )
    assert config.OPENAI_MODELS == ["gpt-5", "gpt-5-mini", "gpt-4.1"]


def test_bad_numbers_are_explained(tmp_path):
    with pytest.raises(ConfigError, match="PLAN_CREDITS_PRO must be a whole number"):
        Config.from_env(env={"SORYA_INSTANCE_DIR": str(tmp_path), "PLAN_CREDITS_PRO": "lots"})


def test_model_prices():
    assert parse_model_prices("gpt-5=10/30, gpt-5-mini=2") == {"gpt-5": (10, 30), "gpt-5-mini": (2, 2)}
    with pytest.raises(ConfigError):
        parse_model_prices("gpt-5=cheap")
