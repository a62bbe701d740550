"""The server runner, the CLI and the shared control endpoints."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys

import openai
import pytest
import requests
import stripe

from sandbox.emulators import EmulatorServer, OpenAIEmulator
from sandbox.emulators.control import EmulatorControl


def test_server_serves_on_loopback_as_soon_as_start_returns():
    server = EmulatorServer(OpenAIEmulator()).start()
    try:
        assert server.url.startswith("http://127.0.0.1:") and server.sdk_urls["openai"] == server.url + "/v1"
        # start() returns once the port listens: the very first connection is accepted, with no retry.
        host, port = server.url.removeprefix("http://").split(":")
        socket.create_connection((host, int(port)), timeout=5).close()
        assert EmulatorControl(server.url).health() == {"name": "openai", "ok": True}
    finally:
        server.stop()
    # And stop() really closes it: nothing listens there any more.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host, int(port)), timeout=5)


def test_cli_prints_the_sdk_urls_and_stops_on_sigterm(tmp_path):
    ready = tmp_path / "ready.json"
    process = subprocess.Popen([sys.executable, "-m", "sandbox.emulators", "--ready-file", str(ready),
                                "--latency-ms", "5", "--stripe-price", "price_x:Extra:500"],
                               stdout=subprocess.PIPE, text=True)
    try:
        urls = json.loads(process.stdout.readline())
        assert set(urls) == {"openai", "github", "stripe"} and urls["openai"].endswith("/v1")
        assert json.loads(ready.read_text()) == urls
        reply = openai.OpenAI(base_url=urls["openai"], api_key="sk-cli").chat.completions.create(
            model="gpt-5", messages=[{"role": "user", "content": "hello"}])
        assert reply.choices[0].message.content
        assert requests.get(urls["github"] + "/api/v3/users/octocat").json()["login"] == "octocat"
        client = stripe.StripeClient("sk_test_cli", base_addresses={"api": urls["stripe"]})
        assert client.v1.prices.retrieve("price_x").unit_amount == 500
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0


def test_calls_since_and_clear(openai_client, openai_ctl):
    openai_client.models.list()
    mark = openai_ctl.mark()
    openai_client.models.retrieve("gpt-5")
    (call,) = openai_ctl.calls(since=mark)
    assert (call["method"], call["path"], call["status"]) == ("GET", "/v1/models/gpt-5", 200)
    assert call["seq"] > mark and call["time"] > 0
    assert len(openai_ctl.calls(clear=True)) == 2 and openai_ctl.calls() == []


def test_fault_rules_match_method_and_path_and_count(openai_client, openai_ctl):
    openai_ctl.fault("POST", "models", kind="server_error")  # wrong method: never matches a GET
    openai_ctl.fault("GET", r"^/v1/models$", kind="server_error", count=2)
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            openai_client.models.list()
    assert openai_client.models.list().data
    assert [f["method"] for f in openai_ctl.faults()] == ["POST"]
    openai_ctl.fault("GET", "models", status=418, body="teapot", count=None)
    for _ in range(3):
        with pytest.raises(openai.APIStatusError):
            openai_client.models.list()
    openai_ctl.reset()
    assert openai_ctl.faults() == [] and openai_client.models.list().data


def test_bad_fault_pattern_is_refused(openai_ctl):
    with pytest.raises(requests.HTTPError):
        openai_ctl.fault("GET", "([unclosed")
