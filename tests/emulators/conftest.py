"""Fixtures for the emulator tests: one server per test session (per xdist worker), reset per test."""

from __future__ import annotations

import github3
import openai
import pytest
import stripe

from sandbox.emulators import EmulatorServer, GitHubEmulator, OpenAIEmulator, StripeEmulator
from sandbox.emulators.control import EmulatorControl

OPENAI_KEY = "sk-test-emulators"
STRIPE_KEY = "sk_test_emulators"
WEBHOOK_SECRET = "whsec_test_emulators"


@pytest.fixture(scope="session")
def emulators():
    server = EmulatorServer(OpenAIEmulator(), GitHubEmulator(), StripeEmulator(webhook_secret=WEBHOOK_SECRET))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def controls(emulators):
    return {name: EmulatorControl(url) for name, url in emulators.urls.items()}


@pytest.fixture(autouse=True)
def _reset_emulators(controls):
    for control in controls.values():
        control.reset()


@pytest.fixture
def openai_ctl(controls) -> EmulatorControl:
    return controls["openai"]


@pytest.fixture
def github_ctl(controls) -> EmulatorControl:
    return controls["github"]


@pytest.fixture
def stripe_ctl(controls) -> EmulatorControl:
    return controls["stripe"]


@pytest.fixture
def openai_client(emulators) -> openai.OpenAI:
    return openai.OpenAI(base_url=emulators.sdk_urls["openai"], api_key=OPENAI_KEY, max_retries=0, timeout=10)


@pytest.fixture
def github_url(emulators) -> str:
    return emulators.sdk_urls["github"]


@pytest.fixture
def gh_token(github_ctl) -> str:
    return github_ctl.issue_token("octocat", ["repo", "read:user", "user:email", "delete_repo"])


@pytest.fixture
def gh(github_url, gh_token) -> github3.GitHubEnterprise:
    return github3.GitHubEnterprise(github_url, token=gh_token)


@pytest.fixture
def stripe_url(emulators) -> str:
    return emulators.sdk_urls["stripe"]


@pytest.fixture
def stripe_client(stripe_url) -> stripe.StripeClient:
    return stripe.StripeClient(STRIPE_KEY, base_addresses={"api": stripe_url}, max_network_retries=0)
