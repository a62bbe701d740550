"""Schemathesis against the running app: generated requests for every documented operation, signed
in with a personal API token, each response checked for a server error and against its schema.

Bounded: `EXAMPLES_PER_OPERATION` valid and as many invalid requests per operation, derandomized so a
failure reproduces. A failure names the operation and the request that broke it.
"""

from __future__ import annotations

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from app.web.openapi import build_openapi_document
from tests.servers import ThreadedServer

EXAMPLES_PER_OPERATION = 12
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]


@pytest.fixture
def api_token(app, make_user) -> str:
    """A personal API token from `flask tokens create`: the fuzz never runs signed out."""
    make_user("fuzzer", balance=1_000_000)
    result = app.test_cli_runner().invoke(args=["tokens", "create", "fuzzer", "--name", "fuzz"])
    assert result.exit_code == 0, f"flask tokens create failed: {result.output}"
    token = result.stdout.strip()  # the token alone on stdout; a note goes to stderr
    assert token.startswith("sorya_") and "\n" not in token, result.stdout
    return token


def documented_operation_count() -> int:
    return sum(len(item) for item in build_openapi_document()["paths"].values())


def fuzz_operation(operation, base_url: str, session: requests.Session, headers: dict, mode,
                   statuses: dict[str, set[int]]) -> None:
    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck), print_blob=True)
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case) -> None:
        response = case.call(base_url=base_url, session=session, headers=headers, timeout=30)
        statuses.setdefault(operation.label, set()).add(response.status_code)
        case.validate_response(response, checks=CHECKS)

    run()


# Hundreds of requests (every operation, valid and invalid cases): about two minutes alone on a loaded
# two-core machine, more beside other runs, so more than the suite's 120 s per test.
@pytest.mark.timeout(600)
def test_api_fuzz_finds_no_server_error_and_no_schema_violation(app, api_token, monkeypatch):
    # The fuzz sends hundreds of calls from one user in seconds: the API-wide budget is not under test here.
    monkeypatch.setattr(app.extensions["sorya.config"], "API_RATE_LIMIT", "")
    headers = {"Authorization": f"Bearer {api_token}"}
    failures = []
    operations = 0
    statuses: dict[str, set[int]] = {}
    with ThreadedServer(app) as server, requests.Session() as session:
        schema = schemathesis.openapi.from_dict(build_openapi_document(server.url))
        for result in schema.get_all_operations():
            operation = result.ok()
            operations += 1
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                try:
                    fuzz_operation(operation, server.url, session, headers, mode, statuses)
                except Unsatisfiable:
                    # No parameter and no body: nothing can be made invalid for this operation.
                    assert mode is GenerationMode.NEGATIVE, operation.label
                except Exception as exc:  # noqa: BLE001 - collect every operation's failure, report all
                    failures.append(f"{operation.label} [{mode.value}]: {exc}")
    assert operations == documented_operation_count()
    assert not failures, "\n\n".join(failures)
    assert set(statuses) == {result.ok().label for result in schema.get_all_operations()}  # every one was called
    # Signed in for real: the token opened the API, so no operation answered only 401.
    assert 200 in statuses["GET /api/me"], statuses["GET /api/me"]
    only_401 = sorted(label for label, codes in statuses.items() if codes == {401})
    assert not only_401, f"these answered nothing but 401 to a valid token: {only_401}"
    assert any(code < 300 for label, codes in statuses.items() if label.startswith("POST ") for code in codes)
