"""The OpenAI emulator, driven through the openai SDK (and raw HTTP where the bytes matter)."""

from __future__ import annotations

import time

import httpx2
import openai
import pytest
import requests

from sandbox.emulators.openai_emulator import count_tokens, cut_to_tokens, split_chunks

CODE_PROMPT = "Write a flask app that tracks habits with streaks and reminders"


def ask(client, content, **kwargs):
    return client.chat.completions.create(model="gpt-5", messages=[{"role": "user", "content": content}], **kwargs)


def collect(stream):
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return chunks, text


# --- token counting rule ---------------------------------------------------------------------------
def test_token_rule_counts_words_punctuation_and_long_words():
    assert count_tokens("Hello, world!") == 4
    assert count_tokens("internationalization") == 3  # 20 characters: 8 + 8 + 4
    assert count_tokens("") == 0


def test_cut_to_tokens_stops_after_the_nth_token():
    assert cut_to_tokens("one two, three four", 3) == ("one two,", True)
    assert cut_to_tokens("one two", 5) == ("one two", False)


def test_default_chunks_cover_the_text_and_stay_small():
    text = "def main():\n    return  'x'\n"
    pieces = split_chunks(text)
    assert "".join(pieces) == text
    assert len(pieces) > 3 and max(len(p.strip()) for p in pieces) <= 8


# --- replies -------------------------------------------------------------------------------------------
def test_code_prompt_gets_fenced_files_that_depend_on_the_prompt(openai_client):
    reply = ask(openai_client, CODE_PROMPT)
    other = ask(openai_client, "Build a script that renames photos by date")
    content = reply.choices[0].message.content
    assert reply.object == "chat.completion" and reply.choices[0].finish_reason == "stop"
    assert "```python path=app/main.py\n" in content
    assert content.count("```") >= 4  # at least two fenced files
    assert "habits" in content
    assert other.choices[0].message.content != content


def test_prose_prompt_gets_prose(openai_client):
    content = ask(openai_client, "Why is the sky blue?").choices[0].message.content
    assert "```" not in content and "sky" in content


def test_usage_follows_the_documented_rule(openai_client):
    reply = openai_client.chat.completions.create(model="gpt-5", messages=[
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello, world!"}])
    # system: 3 + 3 tokens ("Be", "brief", "."), user: 3 + 4, reply priming: 3
    assert reply.usage.prompt_tokens == 16
    assert reply.usage.completion_tokens == count_tokens(reply.choices[0].message.content)
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_stream_matches_the_non_streamed_reply_and_ends_with_usage(openai_client):
    whole = ask(openai_client, CODE_PROMPT)
    chunks, text = collect(ask(openai_client, CODE_PROMPT, stream=True, stream_options={"include_usage": True}))
    assert text == whole.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content_chunks) > 20  # a word or less per chunk, so streaming is visible
    assert all(c.object == "chat.completion.chunk" and c.id == chunks[0].id for c in chunks)
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert chunks[-1].usage.prompt_tokens_details.cached_tokens == 0


def test_stream_without_include_usage_has_no_usage(openai_client):
    chunks, _ = collect(ask(openai_client, "hi", stream=True))
    assert all(c.usage is None for c in chunks) and chunks[-1].choices[0].finish_reason == "stop"


def test_raw_sse_bytes_follow_the_api_framing(emulators):
    response = requests.post(f"{emulators.sdk_urls['openai']}/chat/completions", headers={
        "Authorization": "Bearer sk-raw"}, json={"model": "gpt-5", "stream": True, "messages": [
            {"role": "user", "content": "hi"}], "stream_options": {"include_usage": True}})
    assert response.headers["Content-Type"] == "text/event-stream; charset=utf-8"
    events = response.text.split("\n\n")
    assert events[-1] == "" and events[-2] == "data: [DONE]"
    assert all(e.startswith("data: {") for e in events[:-2])
    assert '"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null' in events[0]
    assert '"choices":[],"usage":{"prompt_tokens":' in events[-3]


@pytest.mark.parametrize("limit_key", ["max_completion_tokens", "max_tokens"])
def test_token_limit_cuts_the_reply_with_finish_reason_length(openai_client, limit_key):
    reply = ask(openai_client, CODE_PROMPT, **{limit_key: 7})
    assert reply.choices[0].finish_reason == "length" and reply.usage.completion_tokens == 7
    chunks, text = collect(ask(openai_client, CODE_PROMPT, stream=True, **{limit_key: 7}))
    assert text == reply.choices[0].message.content and chunks[-1].choices[0].finish_reason == "length"


def test_script_queue_is_fifo_then_falls_back_to_the_generator(openai_client, openai_ctl):
    openai_ctl.script_reply("first")
    openai_ctl.script_reply("second", chunks=["sec", "ond"])
    assert ask(openai_client, "x").choices[0].message.content == "first"
    chunks, text = collect(ask(openai_client, "x", stream=True))
    assert [c.choices[0].delta.content for c in chunks[1:3]] == ["sec", "ond"] and text == "second"
    assert "```" in ask(openai_client, CODE_PROMPT).choices[0].message.content


def test_models_list_and_retrieve(openai_client, openai_ctl):
    assert [m.id for m in openai_client.models.list()] == ["gpt-5", "gpt-5-mini", "gpt-4.1"]
    assert openai_client.models.retrieve("gpt-5-mini").owned_by == "system"
    with pytest.raises(openai.NotFoundError):
        openai_client.models.retrieve("gpt-0")
    openai_ctl.configure(models=["local-model"])
    assert [m.id for m in openai_client.models.list()] == ["local-model"]
    with pytest.raises(openai.NotFoundError) as caught:
        ask(openai_client, "hi")
    assert caught.value.code == "model_not_found"


# --- auth and faults -----------------------------------------------------------------------------------
def test_unknown_missing_and_revoked_keys_get_401(emulators, openai_ctl):
    url = emulators.sdk_urls["openai"]
    for key in ("not-a-key", "sk-revoked"):
        if key == "sk-revoked":
            openai_ctl.revoke_key(key)
        client = openai.OpenAI(base_url=url, api_key=key, max_retries=0)
        with pytest.raises(openai.AuthenticationError) as caught:
            ask(client, "hi")
        assert caught.value.code == "invalid_api_key" and caught.value.type == "invalid_request_error"
    missing = requests.post(f"{url}/chat/completions", json={})
    assert missing.status_code == 401 and set(missing.json()["error"]) == {"message", "type", "param", "code"}


def test_scripted_401(openai_client, openai_ctl):
    openai_ctl.fault("POST", r"^/v1/chat/completions$", kind="unauthorized")
    with pytest.raises(openai.AuthenticationError):
        ask(openai_client, "hi")
    assert ask(openai_client, "hi").choices  # count=1: the next call succeeds


def test_rate_limit_has_retry_headers_and_the_sdk_retries(emulators, openai_client, openai_ctl):
    openai_ctl.fault("POST", "chat/completions", kind="rate_limit", retry_after=3)
    with pytest.raises(openai.RateLimitError) as caught:
        ask(openai_client, "hi")
    headers = caught.value.response.headers
    assert headers["retry-after"] == "3" and headers["x-ratelimit-remaining-requests"] == "0"
    assert caught.value.code == "rate_limit_exceeded"

    mark = openai_ctl.mark()
    openai_ctl.fault("POST", "chat/completions", kind="rate_limit", retry_after=0.01)
    retrying = openai.OpenAI(base_url=emulators.sdk_urls["openai"], api_key="sk-x", max_retries=1)
    assert ask(retrying, "hi").choices
    assert [c["status"] for c in openai_ctl.calls(since=mark)] == [429, 200]


def test_server_error_and_per_reply_scripted_error(openai_client, openai_ctl):
    openai_ctl.fault("POST", "chat/completions", kind="server_error")
    with pytest.raises(openai.InternalServerError):
        ask(openai_client, "hi")
    openai_ctl.script_reply(status=503, kind="overloaded")
    with pytest.raises(openai.InternalServerError) as caught:
        ask(openai_client, "hi", stream=True)
    assert caught.value.status_code == 503


def test_hang_before_first_byte_times_out(emulators, openai_ctl):
    client = openai.OpenAI(base_url=emulators.sdk_urls["openai"], api_key="sk-x", max_retries=0, timeout=0.5)
    openai_ctl.fault("POST", "chat/completions", hang=True)
    with pytest.raises(openai.APITimeoutError):
        ask(client, "hi", stream=True)
    openai_ctl.script_reply(hang=True)
    with pytest.raises(openai.APITimeoutError):
        ask(client, "hi")


def test_stream_cut_mid_way_raises_without_done(openai_client, openai_ctl):
    openai_ctl.script_reply("abcdefghijklmnopqrstuvwxyz", chunk_size=2, cut_after_chunks=4)
    received = []
    with pytest.raises((httpx2.RemoteProtocolError, openai.APIError)):
        for chunk in ask(openai_client, "hi", stream=True, stream_options={"include_usage": True}):
            received.append(chunk.choices[0].delta.content if chunk.choices else None)
    assert received == ["", "ab", "cd", "ef"]


def test_stream_that_never_reports_usage(openai_client, openai_ctl):
    openai_ctl.script_reply("no usage here", omit_usage=True)
    chunks, text = collect(ask(openai_client, "hi", stream=True, stream_options={"include_usage": True}))
    assert text == "no usage here" and all(c.usage is None for c in chunks)


def test_chunk_latency_spaces_the_stream(openai_client, openai_ctl):
    openai_ctl.script_reply("a b c d e f", chunk_size=2, chunk_delay_ms=40)
    started = time.monotonic()
    arrivals = [time.monotonic() for _ in ask(openai_client, "hi", stream=True)]
    assert arrivals[-1] - started >= 0.9 * 6 * 0.040  # six pieces, 40 ms apart at least
    openai_ctl.configure(chunk_delay_ms=30)
    started = time.monotonic()
    ask(openai_client, "hi", stream=False, max_completion_tokens=5)
    assert time.monotonic() - started >= 0.9 * 5 * 0.030


def test_request_latency_fault_then_normal_answer(openai_client, openai_ctl):
    openai_ctl.fault("POST", "chat/completions", latency_ms=150)
    started = time.monotonic()
    assert ask(openai_client, "hi").choices[0].finish_reason == "stop"
    assert time.monotonic() - started >= 0.14


def test_chat_requests_are_recorded(openai_client, openai_ctl):
    ask(openai_client, "remember me", max_completion_tokens=9)
    (seen,) = openai_ctl.chat_requests()
    assert seen["messages"][0]["content"] == "remember me" and seen["max_completion_tokens"] == 9


def test_a_page_prompt_gets_a_static_web_app_that_parses_into_a_runnable_version(openai_client):
    from app.services.snapshots import parse_reply_files
    from app.services.snapshots.site import site_plan

    content = ask(openai_client, "Build a page that lists my favourite books").choices[0].message.content
    parsed = parse_reply_files(content)
    files = {f.path: f.content for f in parsed.written}
    assert set(files) == {"index.html", "style.css", "app.js", "counter.js"} and not parsed.warnings
    assert '<link rel="stylesheet" href="style.css">' in files["index.html"]
    assert '<script type="module" src="app.js"></script>' in files["index.html"]
    assert 'import { createCounter } from "./counter.js";' in files["app.js"]
    assert "export function createCounter" in files["counter.js"]
    assert '"favourite", "books"' in files["app.js"]
    assert site_plan(list(files)).entry == "index.html"


def test_asked_for_a_new_look_it_rewrites_only_the_stylesheet(openai_client):
    from app.services.snapshots import parse_reply_files

    first = parse_reply_files(ask(openai_client, "Create a website for my bakery").choices[0].message.content)
    original = next(f.content for f in first.written if f.path == "style.css")
    for prompt, colour in (("Make it blue", "#1a56db"), ("Change the CSS please", None)):
        written = parse_reply_files(ask(openai_client, prompt).choices[0].message.content).written
        assert [f.path for f in written] == ["style.css"]
        assert written[0].content != original
        if colour:
            assert f"--accent: {colour};" in written[0].content
