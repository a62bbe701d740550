"""Fixtures shared by the integration tests: the chat modules' signed-in user, and a guard that no reply is
still generating into the next test's database."""

import pytest

from app.services import chat as chat_service
from tests.conftest import sign_in


@pytest.fixture(autouse=True)
def _replies_finish():
    """A test must not leave a reply generating into the next test's database."""
    yield
    assert chat_service.GENERATIONS.wait_idle(15), "a reply was still generating after the test"


@pytest.fixture
def user(make_user):
    return make_user("octo", balance=5000)


@pytest.fixture
def client_for(client, user):
    sign_in(client, user)
    return client
