"""The OpenAI adapter: one streamed chat completion, with Sorya's own retries and typed results.

What callers see:
- `stream_reply(...)` returns a `ReplyStream`: an iterator of `TextDelta`, then at most one `Usage`, then
  one `Finished`. `ReplyStream.close()` cancels the call (it closes the HTTP response).
- Every failure is an `OpenAIFailure` (an `UpstreamError` for OpenAI) whose `reason` says what happened:
  `auth`, `busy`, `server`, `timeout`, `unreachable`, `refused`, `cut`. Its message is for a person.

Retries are ours (the SDK's are off, `max_retries=0`): 429 and 5xx answers, and failures to connect, are
retried with exponential backoff before the first token only (after it, a retry would repeat text the
person has already seen). A `Retry-After` (or `retry-after-ms`) is honoured up to `MAX_RETRY_WAIT_S`;
a longer one ends the call at once as `busy`, because waiting minutes inside a chat is worse than saying
so. Timeouts are not retried: each already cost the whole `OPENAI_TIMEOUT_S`.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpcore2
import httpx2
import openai

from app.errors import UpstreamError
from app.metrics import count_provider_error

log = logging.getLogger(__name__)

PROVIDER = "OpenAI"
MAX_ATTEMPTS = 4
BASE_BACKOFF_S = 0.5
MAX_BACKOFF_S = 4.0
# The longest Retry-After we wait for inside one reply; a provider asking for more gets "busy".
MAX_RETRY_WAIT_S = 10.0
CONNECT_TIMEOUT_S = 5.0
RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class Finished:
    finish_reason: str | None


ReplyEvent = TextDelta | Usage | Finished


class OpenAIFailure(UpstreamError):
    """A failed OpenAI call. `reason` is one of auth, busy, server, timeout, unreachable, refused, cut;
    `status` is the HTTP status when there was one. Both stay out of the JSON error body."""

    def __init__(self, reason: str, message: str, *, status: int | None = None, retry_after_s: float | None = None):
        super().__init__(PROVIDER, message, retryable=reason in ("busy", "server", "timeout", "unreachable"))
        count_provider_error(PROVIDER)  # raised only where a call failed, never rebuilt later
        self.reason = reason
        self.http_status = status
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class ClientSettings:
    base_url: str
    api_key: str
    timeout_s: float


class _PacedNetworkStream(httpcore2.NetworkStream):
    """A connection that, once paced, reads the network at most every `min_read_interval_s`.

    A streamed reply arrives as one small write per token; reading each as it comes costs a wake-up
    and a trip through httpx2 per token (~0.15 ms of CPU). Paced, the tokens of the interval wait in the
    kernel's buffer and arrive in one read, parsed in one go: the cost becomes per interval.
    """

    def __init__(self, stream: httpcore2.NetworkStream) -> None:
        self._stream = stream
        self.min_read_interval_s = 0.0
        self._last_read = 0.0

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if self.min_read_interval_s:
            wait = self._last_read + self.min_read_interval_s - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        data = self._stream.read(max_bytes, timeout)
        self._last_read = time.monotonic()
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, timeout)

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore2.NetworkStream:
        return _PacedNetworkStream(self._stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _PacedBackend(httpcore2.NetworkBackend):
    def __init__(self) -> None:
        self._backend = httpcore2.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Any = None) -> httpcore2.NetworkStream:
        return _PacedNetworkStream(self._backend.connect_tcp(host, port, timeout, local_address, socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Any = None) -> httpcore2.NetworkStream:
        return _PacedNetworkStream(self._backend.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


def _http_client(timeout: httpx2.Timeout) -> httpx2.Client:
    # Every connection of a reply that ended may be kept for the next: a process following hundreds of
    # replies sends as many messages a second, and a new connection costs a DNS lookup (a thread under
    # gevent), a TCP and a TLS handshake. Idle ones close after httpx2's 5 s keep-alive expiry.
    transport = httpx2.HTTPTransport(limits=httpx2.Limits(max_connections=1000, max_keepalive_connections=1000))
    pool = getattr(transport, "_pool", None)
    if isinstance(pool, httpcore2.ConnectionPool):
        pool._network_backend = _PacedBackend()  # no public hook; without it replies are simply unpaced
    return httpx2.Client(transport=transport, timeout=timeout)


_clients: dict[ClientSettings, openai.OpenAI] = {}
_clients_lock = threading.Lock()


def client_for(settings: ClientSettings) -> openai.OpenAI:
    """One SDK client (and so one connection pool) per process and configuration."""
    with _clients_lock:
        client = _clients.get(settings)
        if client is None:
            timeout = httpx2.Timeout(settings.timeout_s, connect=min(CONNECT_TIMEOUT_S, settings.timeout_s))
            client = openai.OpenAI(
                base_url=settings.base_url,
                # The SDK refuses an empty key; a missing one surfaces as the provider's 401 instead.
                api_key=settings.api_key or "missing-openai-api-key",
                timeout=timeout,
                max_retries=0,
                http_client=_http_client(timeout),
            )
            _clients[settings] = client
        return client


class _StreamProgress:
    """What the SSE events of one completion said so far: whether `[DONE]` came, the finish reason."""

    __slots__ = ("done", "finish_reason")

    def __init__(self) -> None:
        self.done = False
        self.finish_reason: str | None = None

    def read_events(self, events: list[bytes]) -> tuple[list[str], Usage | None]:
        """The text pieces and the usage (if reported) in these complete SSE events."""
        texts: list[str] = []
        usage: Usage | None = None
        for event in events:
            for line in event.split(b"\n"):
                if not line.startswith(b"data:"):
                    continue  # comments, event names and ids carry nothing for chat
                payload = line[5:].strip()
                if payload == b"[DONE]":
                    self.done = True
                    continue
                usage = self._read_chunk(json.loads(payload), texts) or usage
        return texts, usage

    def _read_chunk(self, chunk: dict, texts: list[str]) -> Usage | None:
        if chunk.get("error"):
            raise OpenAIFailure("cut", "OpenAI reported an error in the middle of the reply.")
        for choice in chunk.get("choices") or ():
            text = (choice.get("delta") or {}).get("content")
            if text:
                texts.append(text)
            self.finish_reason = choice.get("finish_reason") or self.finish_reason
        reported = chunk.get("usage")
        if not reported:
            return None
        return Usage(
            prompt_tokens=int(reported.get("prompt_tokens") or 0),
            completion_tokens=int(reported.get("completion_tokens") or 0),
        )


class ReplyStream:
    """The events of one streamed completion. Iterate it once; `close()` cancels it.

    The SSE body is parsed here from the SDK's raw streaming response rather than through the SDK's
    typed chunks: building a pydantic object per chunk costs ~0.2 ms, which at hundreds of concurrent
    replies is most of a CPU. Everything read in one network read becomes one `TextDelta`, so a caller
    that reads less often (see `services/chat/generation.py`) gets fewer, larger deltas.
    """

    def __init__(self, response: httpx2.Response) -> None:
        self._response = response
        self._released = False
        self._cancelled = False
        network_stream = response.extensions.get("network_stream")
        self._paced = network_stream if isinstance(network_stream, _PacedNetworkStream) else None

    def pace_reads(self, min_interval_s: float) -> None:
        """Read the network at most every `min_interval_s` from now on (0 turns pacing off)."""
        if self._paced is not None:
            self._paced.min_read_interval_s = min_interval_s

    def __iter__(self) -> Iterator[ReplyEvent]:
        progress = _StreamProgress()
        buffer = b""
        try:
            for data in self._response.iter_bytes():
                buffer += data.replace(b"\r\n", b"\n")
                *events, buffer = buffer.split(b"\n\n")
                texts, usage = progress.read_events(events)
                if texts:
                    yield TextDelta("".join(texts))
                if usage is not None:
                    yield usage
        except httpx2.TimeoutException as exc:
            if self._cancelled:
                return
            raise OpenAIFailure("timeout", "OpenAI stopped sending the reply (timed out).") from exc
        except (httpx2.HTTPError, ValueError) as exc:
            if self._cancelled:
                return
            # Mostly httpx2.RemoteProtocolError: the connection closed before the stream's end.
            raise OpenAIFailure("cut", "The connection to OpenAI broke while the reply was being written.") from exc
        finally:
            self._release()
        if self._cancelled:
            return
        if not progress.done and progress.finish_reason is None:
            raise OpenAIFailure("cut", "OpenAI ended the reply before it was finished.")
        yield Finished(progress.finish_reason)

    def close(self) -> None:
        """Cancel the reply: release the connection; the iteration ends without an error."""
        self._cancelled = True
        self._release()

    def _release(self) -> None:
        if self._released:
            return
        self._released = True
        self.pace_reads(0.0)  # the connection goes back to the pool for unpaced requests
        try:
            self._response.close()
        except Exception:  # noqa: BLE001 - closing a half-read response may raise anything from httpx2
            log.debug("openai: error while closing a stream", exc_info=True)


def stream_reply(
    settings: ClientSettings,
    *,
    model: str,
    messages: list[dict[str, str]],
    max_completion_tokens: int,
    cancel: threading.Event | None = None,
    max_attempts: int = MAX_ATTEMPTS,
) -> ReplyStream:
    """Start a streamed chat completion, retrying 429/5xx/connection failures before the first token.

    Raises `OpenAIFailure`. Returns once OpenAI has accepted the request (status 200); the text follows
    by iterating the stream. `cancel` set during a retry wait ends the call as `busy` without waiting.
    """
    client = client_for(settings)
    body = {
        "model": model,
        "messages": messages,
        "max_completion_tokens": max_completion_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    attempt = 0
    while True:
        attempt += 1
        try:
            # The SDK's generic request (its auth, base URL, timeouts and status errors) rather than
            # `chat.completions.create`: the typed call walks every message through its params
            # transform, ~3 ms of CPU for a 20-message prompt, paid before each reply's first token.
            # The body is the same JSON; a non-2xx answer raises APIStatusError here.
            response = client.post("/chat/completions", body=body, cast_to=httpx2.Response, stream=True)
            return ReplyStream(response)
        except openai.APIStatusError as exc:
            failure = _status_failure(exc, model)
        except openai.APITimeoutError as exc:
            raise OpenAIFailure("timeout", "OpenAI did not answer in time. Please try again.") from exc
        except openai.APIConnectionError as exc:
            failure = OpenAIFailure("unreachable", "Sorya could not reach OpenAI. Please try again shortly.")
            failure.__cause__ = exc
        if failure.reason not in ("busy", "server", "unreachable") or attempt >= max_attempts:
            raise failure
        wait_s = _retry_wait_s(failure, attempt)
        if wait_s is None:
            raise failure
        log.warning(
            "openai: attempt %s failed (%s, status=%s); retrying in %.2fs",
            attempt, failure.reason, failure.http_status, wait_s,
        )
        if cancel is not None and cancel.wait(wait_s):
            raise failure
        if cancel is None:
            threading.Event().wait(wait_s)


def _retry_wait_s(failure: OpenAIFailure, attempt: int) -> float | None:
    """Seconds to wait before the next attempt, or None when the provider asks for too long a pause."""
    if failure.retry_after_s is not None:
        if failure.retry_after_s > MAX_RETRY_WAIT_S:
            return None
        return max(failure.retry_after_s, 0.0)
    backoff = min(BASE_BACKOFF_S * 2 ** (attempt - 1), MAX_BACKOFF_S)
    return backoff * (0.5 + random.random() / 2)  # jitter, so many replies do not retry in step


def _retry_after_s(headers: httpx2.Headers) -> float | None:
    """OpenAI sends `retry-after-ms` (precise) and the standard `Retry-After` in seconds."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        raw = headers.get(name)
        if raw:
            try:
                return float(raw) / scale
            except ValueError:
                continue  # an HTTP date: rare enough from OpenAI to fall back to our own backoff
    return None


def _status_failure(exc: openai.APIStatusError, model: str) -> OpenAIFailure:
    status = exc.status_code
    if status in (401, 403):
        # The operator's key is wrong or revoked: the person can do nothing but tell them.
        log.error("openai: the API key was rejected (HTTP %s); check OPENAI_API_KEY", status)
        return OpenAIFailure(
            "auth",
            "OpenAI rejected Sorya's API key, so no reply could be written. The operator has been told "
            "(the key needs checking); you were not charged.",
            status=status,
        )
    if status == 429:
        retry_after = _retry_after_s(exc.response.headers)
        wait = f" in about {int(retry_after) + 1} seconds" if retry_after else " in a minute"
        return OpenAIFailure(
            "busy",
            f"OpenAI is busy right now (too many requests). Please try again{wait}; you were not charged.",
            status=status,
            retry_after_s=retry_after,
        )
    if status >= 500 or status in RETRYABLE_STATUSES:
        return OpenAIFailure(
            "server",
            f"OpenAI failed to answer (HTTP {status}). Please try again; you were not charged.",
            status=status,
            retry_after_s=_retry_after_s(exc.response.headers),
        )
    if status == 404:
        return OpenAIFailure("refused", f"OpenAI does not offer the model {model!r}.", status=status)
    log.warning("openai: request refused (HTTP %s, code=%s)", status, getattr(exc, "code", None))
    return OpenAIFailure(
        "refused", f"OpenAI refused the request (HTTP {status}); you were not charged.", status=status
    )
