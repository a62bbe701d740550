"""OpenAI Chat Completions emulator: ``/v1/chat/completions`` (streamed or not) and ``/v1/models``.

Point the SDK at it with the ``/v1`` URL (the value of OPENAI_BASE_URL)::

    client = openai.OpenAI(base_url=server.sdk_urls["openai"], api_key="sk-test-anything")

Any key starting with ``sk-`` is accepted unless revoked through the control API.

Wire format (as api.openai.com sends it, and as ``openai`` 2.x parses it): a stream answers
``text/event-stream`` with ``data: {json}\\n\\n`` events of ``object: "chat.completion.chunk"``:
first a chunk whose delta is ``{"role": "assistant", "content": "", "refusal": null}``, then one
chunk per piece of text, then a chunk with an empty delta and ``finish_reason`` (``stop``, or
``length`` when ``max_completion_tokens``/``max_tokens`` cut the reply); with
``stream_options.include_usage`` every chunk carries ``"usage": null`` and a last chunk has
``choices: []`` and the usage; then ``data: [DONE]``.

Token counting (deterministic, an approximation of BPE): the text is split by the regex
``\\w+|[^\\w\\s]`` (runs of word characters, and single punctuation marks); each word counts one
token per started 8 characters, each punctuation mark one token. ``prompt_tokens`` = sum over the
messages of (3 + tokens of its text content) + 3 for the reply priming, as OpenAI's own counting
recipe does; ``completion_tokens`` = tokens of the produced text. ``max_completion_tokens`` (or
``max_tokens``) cuts the produced text right after its Nth token.

Replies come from a FIFO script queue, else from a default generator: a prompt asking for code (it
contains one of write/create/build/code/app/script/function/page/...) gets a short explanation and
fenced files whose contents derive from the prompt: a static web app a browser runs as it is
(``index.html`` linking ``style.css`` and the module ``app.js``, which imports ``./counter.js``), or,
when it names a server (flask/python/api/script/...), two or three files of a Flask app
(```` ```python path=app/main.py ````). A prompt asking to change the look ("make it blue", "change the
CSS") gets a new ``style.css``. Any other prompt gets a short prose answer. Default chunks are up to 8 characters (about a
word) each.

Control endpoints (besides those in ``base.py``):

| method and path | body | answer |
| --- | --- | --- |
| ``POST /_emulator/script`` | one reply or ``{"replies": [...]}`` (below) | ``{"queued": n}`` |
| ``GET``/``DELETE /_emulator/script`` | | the pending replies / ``{"ok": true}`` |
| ``POST /_emulator/keys/revoke`` | ``{"key"}`` | ``{"ok": true}``: that key now gets 401 |
| ``GET /_emulator/chat_requests`` | | ``{"requests": [<request bodies seen, oldest first>]}`` |
| ``POST /_emulator/config`` | ``{"chunk_delay_ms", "first_byte_delay_ms", "models": [...]}`` | the config |

A scripted reply: ``{"text": "..." (default: the generator's reply), "chunks": ["..", ".."]
(explicit pieces), "as_edits": true (the text's whole files that the prompt carries are sent as edit
blocks, as generated replies are when the system prompt asks for edits), "chunk_size": N (characters per piece), "chunk_delay_ms": N,
"first_byte_delay_ms": N, "finish_reason": "stop", "cut_after_chunks": N (close the connection after N
``data:`` events, without [DONE]), "omit_usage": true (never send usage, even when asked), "kind" /
"status" / "body" / "headers" (answer this error instead, as a fault would), "hang": true (send
nothing; the client times out)}``.

Fault kinds: ``unauthorized`` (401), ``rate_limit`` (429 with Retry-After, retry-after-ms and
x-ratelimit-* headers; option ``retry_after`` seconds, default 1), ``server_error`` (500),
``overloaded`` (503), ``bad_request`` (400), ``not_found`` (404).
"""

from __future__ import annotations

import asyncio
import collections
import difflib
import hashlib
import json
import math
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from sandbox.emulators.base import Emulator, FaultRule, bearer_token, json_response

DEFAULT_MODELS = ("gpt-5", "gpt-5-mini", "gpt-4.1")
MODEL_CREATED = 1754425777  # a fixed 'created' for model objects, as the API reports a fixed date
MAX_CHUNK_CHARS = 8
TOKEN_CHARS = 8
MESSAGE_OVERHEAD_TOKENS = 3
REPLY_PRIMING_TOKENS = 3

_TOKEN_RE = re.compile(r"\w+|[^\w\s]")
_CHUNK_RE = re.compile(r"\s*\S{1," + str(MAX_CHUNK_CHARS) + r"}|\s+")
CODE_WORDS = frozenset({"write", "create", "build", "code", "app", "script", "function", "page",
                        "implement", "program", "website", "api", "class", "module"})
STOP_WORDS = frozenset({"the", "and", "for", "with", "that", "this", "please", "write", "create", "build",
                        "make", "code", "can", "you", "some", "simple", "small", "using", "from", "into",
                        "which", "will", "should", "want", "need", "have", "has", "are", "was", "its",
                        "our", "your", "me", "a", "an", "to", "of", "in", "on", "it", "is", "be"})


# --- token counting --------------------------------------------------------------------------------
def token_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each token of ``text`` under the documented rule."""
    spans = []
    for match in _TOKEN_RE.finditer(text):
        start, end = match.span()
        for piece_start in range(start, end, TOKEN_CHARS):
            spans.append((piece_start, min(piece_start + TOKEN_CHARS, end)))
    return spans


def count_tokens(text: str) -> int:
    return sum(math.ceil(len(m.group()) / TOKEN_CHARS) for m in _TOKEN_RE.finditer(text))


def message_text(message: dict[str, Any]) -> str:
    """The text of a chat message: a string content, or the text parts of a list content."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def count_prompt_tokens(messages: list[dict[str, Any]]) -> int:
    total = REPLY_PRIMING_TOKENS
    for message in messages:
        total += MESSAGE_OVERHEAD_TOKENS + count_tokens(message_text(message))
    return total


def cut_to_tokens(text: str, limit: int) -> tuple[str, bool]:
    """The text up to the end of its ``limit``-th token, and whether it was cut."""
    spans = token_spans(text)
    if len(spans) <= limit:
        return text, False
    return text[: spans[limit - 1][1]] if limit > 0 else "", True


def split_chunks(text: str, chunk_size: int | None = None) -> list[str]:
    """Stream pieces: ``chunk_size`` characters each, else about a word (at most 8 characters)."""
    if chunk_size:
        return [text[i: i + chunk_size] for i in range(0, len(text), chunk_size)]
    return _CHUNK_RE.findall(text)


# --- the default reply generator ---------------------------------------------------------------------
def _topic_words(prompt: str) -> list[str]:
    words = [w.lower() for w in re.findall(r"[A-Za-z][A-Za-z0-9]+", prompt)]
    seen: list[str] = []
    for word in words:
        if word not in STOP_WORDS and word not in seen and len(word) > 2:
            seen.append(word)
    return seen


def asks_for_code(prompt: str) -> bool:
    return bool(CODE_WORDS & {w.lower() for w in re.findall(r"[A-Za-z]+", prompt)})


def generate_reply(prompt: str) -> str:
    """A deterministic reply to ``prompt``: a new ``style.css`` when asked to change the look, fenced files
    for a code request (a static web app, or a Flask app when asked for a server), else short prose."""
    words = _topic_words(prompt)
    digest = hashlib.sha1(prompt.encode()).hexdigest()[:8]
    quoted = re.sub(r"[`\"\\\n\r]", " ", prompt).strip()[:100]
    if asks_for_style(prompt):
        return _style_reply(prompt, digest)
    if asks_for_code(prompt):
        if asks_for_server(prompt):
            return _code_reply(words, digest, quoted)
        return _static_app_reply(words, digest, quoted)
    topic = " ".join(words[:4]) or "your question"
    openers = ("Good question.", "Here is a short answer.", "Let's think it through.", "In brief:")
    opener = openers[int(digest, 16) % len(openers)]
    return (f"{opener} You asked about {topic}. The key idea is to start small, check each step, and "
            f"keep what works. If you tell me what you want to build, I can write the code for it "
            f"(reference {digest}).")


def _code_reply(words: list[str], digest: str, quoted: str) -> str:
    features = words[:6] or ["hello"]
    title = " ".join(w.capitalize() for w in features[:3])
    slug = "_".join(features[:2])
    main_py = (
        f'"""{title}: generated for the request "{quoted}" ({digest})."""\n'
        "from flask import Flask, render_template\n\n"
        "app = Flask(__name__)\n"
        f"FEATURES = {json.dumps(features)}\n\n\n"
        '@app.route("/")\n'
        "def index():\n"
        f'    return render_template("index.html", title="{title}", features=FEATURES)\n\n\n'
        f"def {slug}_summary() -> str:\n"
        f'    return "{title} with " + ", ".join(FEATURES)\n\n\n'
        'if __name__ == "__main__":\n'
        "    app.run(debug=True)\n"
    )
    index_html = (
        "<!doctype html>\n<html lang=\"en\">\n<head>\n  <meta charset=\"utf-8\">\n"
        "  <title>{{ title }}</title>\n</head>\n<body>\n"
        f"  <h1>{title}</h1>\n  <ul>\n"
        "  {% for feature in features %}<li>{{ feature }}</li>{% endfor %}\n"
        "  </ul>\n</body>\n</html>\n"
    )
    files = [("python", "app/main.py", main_py), ("html", "app/templates/index.html", index_html)]
    if len(words) > 3:
        readme = (f"# {title}\n\nBuilt for: {quoted}\n\nRun `python app/main.py` and open "
                  "http://localhost:5000.\n")
        files.append(("markdown", "README.md", readme))
    parts = [f"Here is a small Flask app for {title.lower()}. It has {len(files)} files:\n"]
    for language, path, content in files:
        parts.append(f"```{language} path={path}\n{content}```\n")
    parts.append("Run it with `python app/main.py`, then open the page in your browser.")
    return "\n".join(parts)


# --- the static web app (a preview runs it as it is) ---------------------------------------------------
SERVER_WORDS = frozenset({"flask", "django", "fastapi", "python", "server", "backend", "cli", "script", "api",
                          "database", "sql"})
STYLE_WORDS = frozenset({"css", "style", "styles", "styling", "colour", "color", "colours", "colors", "theme",
                         "darker", "lighter", "font", "look"})
COLOURS = {  # name: (page background, accent)
    "blue": ("#e8f0fe", "#1a56db"), "green": ("#e7f6ec", "#137333"), "red": ("#fdecea", "#c5221f"),
    "purple": ("#f3e8fd", "#7b1fa2"), "orange": ("#fef3e2", "#b45309"), "pink": ("#fde7f3", "#be185d"),
    "teal": ("#e0f2f1", "#00796b"), "dark": ("#1f2937", "#93c5fd"), "black": ("#111827", "#facc15"),
}
DEFAULT_COLOURS = ("#f7f7fb", "#4f46e5")


def _prompt_words(prompt: str) -> set[str]:
    return {w.lower() for w in re.findall(r"[A-Za-z]+", prompt)}


def asks_for_server(prompt: str) -> bool:
    return bool(SERVER_WORDS & _prompt_words(prompt))


def asks_for_style(prompt: str) -> bool:
    """"make it blue", "change the CSS", "a darker theme": a new look for the app already written."""
    words = _prompt_words(prompt)
    return bool(words & STYLE_WORDS) or (bool(words & set(COLOURS)) and bool(words & {"make", "change", "turn"}))


def style_css(background: str, accent: str, radius: str = "12px") -> str:
    dark = background.startswith("#1") or background.startswith("#0")
    text = "#f9fafb" if dark else "#1f2937"
    card = "#374151" if dark else "#ffffff"
    return (
        ":root {\n"
        f"  --page: {background};\n  --accent: {accent};\n  --text: {text};\n  --card: {card};\n"
        f"  --radius: {radius};\n}}\n\n"
        "* { box-sizing: border-box; }\n\n"
        "body {\n  margin: 0;\n  min-height: 100vh;\n  display: grid;\n  place-items: center;\n"
        "  background: var(--page);\n  color: var(--text);\n"
        "  font: 16px/1.5 system-ui, -apple-system, \"Segoe UI\", sans-serif;\n}\n\n"
        ".card {\n  width: min(36rem, 92vw);\n  padding: 2rem;\n  background: var(--card);\n"
        "  border-radius: var(--radius);\n  box-shadow: 0 10px 30px rgb(0 0 0 / 0.12);\n}\n\n"
        "h1 { margin-top: 0; color: var(--accent); }\n\n"
        ".features { padding-left: 1.2rem; }\n\n"
        "button {\n  padding: 0.6rem 1.2rem;\n  border: 0;\n  border-radius: 999px;\n"
        "  background: var(--accent);\n  color: #fff;\n  font: inherit;\n  cursor: pointer;\n}\n\n"
        "button:focus-visible { outline: 3px solid var(--text); outline-offset: 3px; }\n"
    )


def _static_app_reply(words: list[str], digest: str, quoted: str) -> str:
    """A small static web app: index.html linking style.css and the module app.js, which imports counter.js."""
    features = words[:5] or ["hello"]
    title = " ".join(w.capitalize() for w in features[:3])
    safe = quoted.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    index_html = (
        "<!doctype html>\n<html lang=\"en\">\n<head>\n  <meta charset=\"utf-8\">\n"
        "  <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"  <title>{title}</title>\n  <link rel=\"stylesheet\" href=\"style.css\">\n"
        "  <script type=\"module\" src=\"app.js\"></script>\n</head>\n<body>\n"
        "  <main class=\"card\">\n"
        f"    <h1>{title}</h1>\n    <p class=\"lead\">Built for: {safe}</p>\n"
        "    <ul class=\"features\" id=\"features\"></ul>\n"
        "    <button type=\"button\" id=\"counter\">Clicked 0 times</button>\n"
        "  </main>\n</body>\n</html>\n"
    )
    app_js = (
        f"// {title}: generated for the request ({digest}).\n"
        "import { createCounter } from \"./counter.js\";\n\n"
        f"const FEATURES = {json.dumps(features)};\n\n"
        "const list = document.querySelector(\"#features\");\n"
        "for (const feature of FEATURES) {\n  const item = document.createElement(\"li\");\n"
        "  item.textContent = feature;\n  list.append(item);\n}\n\n"
        "const button = document.querySelector(\"#counter\");\nconst counter = createCounter();\n"
        "button.addEventListener(\"click\", () => {\n"
        "  const count = counter.increment();\n"
        "  button.textContent = `Clicked ${count} time${count === 1 ? \"\" : \"s\"}`;\n});\n"
        "document.body.dataset.ready = \"true\";\n"
    )
    counter_js = (
        "// A tiny counter, in its own module.\n"
        "export function createCounter(start = 0) {\n  let value = start;\n"
        "  return {\n    increment() {\n      value += 1;\n      return value;\n    },\n"
        "    get value() {\n      return value;\n    },\n  };\n}\n"
    )
    files = [("html", "index.html", index_html), ("css", "style.css", style_css(*DEFAULT_COLOURS)),
             ("javascript", "app.js", app_js), ("javascript", "counter.js", counter_js)]
    parts = [f"Here is a small web app for {title.lower()}: a page, its style and two JavaScript modules. "
             "It runs in the browser as it is, so the preview shows it right away.\n"]
    for language, path, content in files:
        parts.append(f"```{language} path={path}\n{content}```\n")
    parts.append("Click the button to see the counter module at work. Ask me to change the colours or the style "
                 "whenever you like.")
    return "\n".join(parts)


def _style_reply(prompt: str, digest: str) -> str:
    """A new ``style.css`` for the app: the colour the prompt names, else another palette than the default."""
    words = _prompt_words(prompt)
    named = next((name for name in COLOURS if name in words), None)
    if named is None:
        others = [name for name in COLOURS if name not in ("dark", "black")]
        named = others[int(digest, 16) % len(others)]
    background, accent = COLOURS[named]
    css = style_css(background, accent, radius="20px")
    return (f"Here is a new look: a {named} theme with rounder corners. Only the stylesheet changes.\n\n"
            f"```css path=style.css\n{css}```\n\nReload the preview to see it.")
# --- answering in edit blocks (issue 18) ------------------------------------------------------------
# When the system prompt asks for edit blocks (it shows a `<<<<<<< SEARCH` section) and carries a file's
# current content ("Current content of PATH:" then a fenced block, as Sorya's project message does), a
# whole-file block of that path in the reply is sent as an edit block instead: one section per changed
# hunk, bottom first, each SEARCH grown with context lines until it occurs once in the file as it stands.
_FILE_HEADER = "Current content of "
_WHOLE_FILE_RE = re.compile(r"^```(?P<lang>[\w+-]*) path=(?P<path>\S+)$")


def asks_for_edits(messages: list[dict[str, Any]]) -> bool:
    return any(m.get("role") == "system" and "<<<<<<< SEARCH" in message_text(m) for m in messages)


def files_in_prompt(messages: list[dict[str, Any]]) -> dict[str, str]:
    """path -> current content of the files the prompt's system messages carry."""
    files: dict[str, str] = {}
    for message in messages:
        if message.get("role") != "system":
            continue
        for chunk in message_text(message).split("\n" + _FILE_HEADER)[1:]:
            header, sep, rest = chunk.partition(":\n```\n")
            rest = rest.removesuffix("\n")  # the line break before the next file's header
            if sep and rest.endswith("\n```"):
                files[header] = rest[: -len("\n```")]
    return files


def edit_sections(text: str, target: str) -> list[tuple[list[str], list[str]]]:
    """(SEARCH lines, REPLACE lines) sections turning `text` into `target`, applied in order."""
    current, goal = text.split("\n"), target.split("\n")
    matcher = difflib.SequenceMatcher(None, current, goal, autojunk=False)
    sections = []
    for tag, i1, i2, j1, j2 in reversed(matcher.get_opcodes()):
        if tag == "equal":
            continue
        start, end = i1, i2
        while not (end > start and _occurrences(current, current[start:end]) == 1):
            start, end = max(0, start - 1), min(len(current), end + 1)
        replace = current[start:i1] + goal[j1:j2] + current[i2:end]
        sections.append((current[start:end], replace))
        current = current[:start] + replace + current[end:]
    return sections


def _occurrences(lines: list[str], window: list[str]) -> int:
    size = len(window)
    return sum(1 for s in range(len(lines) - size + 1) if lines[s:s + size] == window)


def as_edit_reply(text: str, files: dict[str, str]) -> str:
    """`text` with each whole-file block of a path in `files` turned into an edit block."""
    out: list[str] = []
    lines = text.split("\n")
    index = 0
    while index < len(lines):
        match = _WHOLE_FILE_RE.match(lines[index])
        end = lines.index("```", index + 1) if match and "```" in lines[index + 1:] else -1
        if match is None or end < 0 or match.group("path") not in files:
            out.append(lines[index])
            index += 1
            continue
        path, body = match.group("path"), "\n".join(lines[index + 1:end]) + "\n"
        out.append(f"```{match.group('lang')} path={path} edit")
        for search, replace in edit_sections(files[path], body):
            out += ["<<<<<<< SEARCH", *search, "=======", *replace, ">>>>>>> REPLACE"]
        out.append("```")
        index = end + 1
    return "\n".join(out)


# --- the emulator ----------------------------------------------------------------------------------
@dataclass
class ScriptedReply:
    text: str | None = None
    chunks: list[str] | None = None
    chunk_size: int | None = None
    chunk_delay_ms: float | None = None
    first_byte_delay_ms: float | None = None
    finish_reason: str | None = None
    cut_after_chunks: int | None = None
    omit_usage: bool = False
    as_edits: bool = False  # send the text's whole files as edit blocks, as a generated reply does
    fault: dict[str, Any] = field(default_factory=dict)  # kind/status/body/headers/hang

    @classmethod
    def from_json(cls, spec: dict[str, Any]) -> ScriptedReply:
        fault_keys = {"kind", "status", "body", "headers", "hang", "hang_s", "retry_after"}
        fault = {k: v for k, v in spec.items() if k in fault_keys}
        fields = {k: v for k, v in spec.items() if k in cls.__dataclass_fields__ and k != "fault"}
        return cls(**fields, fault=fault)

    def as_json(self) -> dict[str, Any]:
        data = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "fault"}
        return {**data, **self.fault}


def openai_error(message: str, type_: str, code: str | None = None, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


class OpenAIEmulator(Emulator):
    name = "openai"
    sdk_path = "/v1"

    def __init__(self, models: tuple[str, ...] | list[str] = DEFAULT_MODELS, chunk_delay_ms: float = 0):
        super().__init__()
        self.seed_models = list(models)
        self.seed_chunk_delay_ms = chunk_delay_ms
        self._lock = threading.Lock()
        self.reset_state()

    def reset_state(self) -> None:
        with self._lock:
            self.models = list(self.seed_models)
            self.chunk_delay_ms = float(self.seed_chunk_delay_ms)
            self.first_byte_delay_ms = 0.0
            self.script: collections.deque[ScriptedReply] = collections.deque()
            self.revoked_keys: set[str] = set()
            self.chat_requests: collections.deque[dict] = collections.deque(maxlen=200)

    def configure(self, changes: dict[str, Any]) -> dict[str, Any]:
        config = super().configure(changes)
        if "chunk_delay_ms" in changes:
            self.chunk_delay_ms = float(changes["chunk_delay_ms"] or 0)
        if "first_byte_delay_ms" in changes:
            self.first_byte_delay_ms = float(changes["first_byte_delay_ms"] or 0)
        if changes.get("models"):
            self.models = list(changes["models"])
        return {**config, "chunk_delay_ms": self.chunk_delay_ms,
                "first_byte_delay_ms": self.first_byte_delay_ms, "models": self.models}

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self.chat_completions)
        app.router.add_get("/v1/models", self.list_models)
        app.router.add_get("/v1/models/{model}", self.get_model)
        app.router.add_post("/_emulator/script", self._add_script)
        app.router.add_get("/_emulator/script", self._get_script)
        app.router.add_delete("/_emulator/script", self._clear_script)
        app.router.add_post("/_emulator/keys/revoke", self._revoke_key)
        app.router.add_get("/_emulator/chat_requests", self._get_chat_requests)

    # --- dialect -------------------------------------------------------------------------------------
    def rate_headers(self) -> dict[str, str]:
        return {"x-request-id": "req_" + secrets.token_hex(16), "openai-version": "2020-10-01",
                "openai-organization": "sorya-sandbox", "openai-processing-ms": "12",
                "x-ratelimit-limit-requests": "10000", "x-ratelimit-remaining-requests": "9999",
                "x-ratelimit-reset-requests": "6ms", "x-ratelimit-limit-tokens": "30000000",
                "x-ratelimit-remaining-tokens": "29999000", "x-ratelimit-reset-tokens": "2ms"}

    def extra_headers(self, request: web.Request) -> dict[str, str]:
        return self.rate_headers()

    def fault_preset(self, rule: FaultRule) -> tuple[int, Any, dict[str, str]]:
        return self._preset(rule.kind, rule.options)

    def _preset(self, kind: str | None, options: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        if kind == "unauthorized":
            return 401, openai_error("Incorrect API key provided. You can find your API key at "
                                     "https://platform.openai.com/account/api-keys.",
                                     "invalid_request_error", "invalid_api_key"), {}
        if kind == "rate_limit":
            retry_after = float(options.get("retry_after", 1))
            headers = {"retry-after": str(max(0, math.ceil(retry_after))),
                       "retry-after-ms": str(int(retry_after * 1000)),
                       "x-ratelimit-limit-requests": "10000", "x-ratelimit-remaining-requests": "0",
                       "x-ratelimit-reset-requests": f"{retry_after:g}s",
                       "x-ratelimit-limit-tokens": "30000000", "x-ratelimit-remaining-tokens": "0",
                       "x-ratelimit-reset-tokens": f"{retry_after:g}s"}
            return 429, openai_error("Rate limit reached for requests. Please try again later.",
                                     "requests", "rate_limit_exceeded"), headers
        if kind == "overloaded":
            return 503, openai_error("The engine is currently overloaded, please try again later.",
                                     "server_error"), {}
        if kind == "bad_request":
            return 400, openai_error("Invalid request.", "invalid_request_error"), {}
        if kind == "not_found":
            return 404, openai_error("Not found.", "invalid_request_error", "not_found"), {}
        return 500, openai_error("The server had an error while processing your request. Sorry about that!",
                                 "server_error"), {}

    def _error(self, status: int, body: dict, headers: dict[str, str] | None = None) -> web.Response:
        return json_response(body, status=status, headers={**self.rate_headers(), **(headers or {})})

    def _check_key(self, request: web.Request) -> web.Response | None:
        key = bearer_token(request)
        if key is None:
            return self._error(401, openai_error(
                "You didn't provide an API key. You need to provide your API key in an Authorization header "
                "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).", "invalid_request_error"))
        if not key.startswith("sk-") or key in self.revoked_keys:
            shown = key[:3] + "*" * 4 + key[-4:] if len(key) > 8 else "***"
            return self._error(401, openai_error(
                f"Incorrect API key provided: {shown}. You can find your API key at "
                "https://platform.openai.com/account/api-keys.", "invalid_request_error", "invalid_api_key"))
        return None

    # --- models --------------------------------------------------------------------------------------
    def _model_json(self, model: str) -> dict[str, Any]:
        return {"id": model, "object": "model", "created": MODEL_CREATED, "owned_by": "system"}

    async def list_models(self, request: web.Request) -> web.Response:
        if (denied := self._check_key(request)) is not None:
            return denied
        return json_response({"object": "list", "data": [self._model_json(m) for m in self.models]},
                             headers=self.rate_headers())

    async def get_model(self, request: web.Request) -> web.Response:
        if (denied := self._check_key(request)) is not None:
            return denied
        model = request.match_info["model"]
        if model not in self.models:
            return self._model_missing(model)
        return json_response(self._model_json(model), headers=self.rate_headers())

    def _model_missing(self, model: str) -> web.Response:
        return self._error(404, openai_error(
            f"The model `{model}` does not exist or you do not have access to it.",
            "invalid_request_error", "model_not_found"))

    # --- chat completions ----------------------------------------------------------------------------
    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        if (denied := self._check_key(request)) is not None:
            return denied
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return self._error(400, openai_error(
                "We could not parse the JSON body of your request.", "invalid_request_error"))
        invalid = self._validate(body)
        if invalid is not None:
            return invalid
        self.chat_requests.append(body)
        with self._lock:
            scripted = self.script.popleft() if self.script else ScriptedReply()
        if scripted.fault:
            return await self._scripted_fault(scripted)
        return await self._reply(request, body, scripted)

    def _validate(self, body: Any) -> web.Response | None:
        if not isinstance(body, dict):
            return self._error(400, openai_error("The body must be a JSON object.", "invalid_request_error"))
        if not body.get("model"):
            return self._error(400, openai_error("you must provide a model parameter",
                                                 "invalid_request_error"))
        if body["model"] not in self.models:
            return self._model_missing(body["model"])
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return self._error(400, openai_error(
                "[] is too short - 'messages'", "invalid_request_error", "empty_array", "messages"))
        return None

    async def _scripted_fault(self, scripted: ScriptedReply) -> web.Response:
        fault = scripted.fault
        if fault.get("hang"):
            await asyncio.sleep(float(fault.get("hang_s", 300)))
            return self._error(504, openai_error("Gateway timeout.", "server_error"))
        status, body, headers = self._preset(fault.get("kind"), fault)
        status = fault.get("status") or status
        body = fault["body"] if fault.get("body") is not None else body
        return self._error(status, body, {**headers, **(fault.get("headers") or {})})

    def _produce(self, body: dict[str, Any], scripted: ScriptedReply) -> tuple[list[str], str, str]:
        """The pieces to send, the full produced text and the finish reason."""
        messages = body["messages"]
        if scripted.text is not None or scripted.chunks is not None:
            text = scripted.text if scripted.text is not None else "".join(scripted.chunks or [])
        else:
            last_user = next((message_text(m) for m in reversed(messages) if m.get("role") == "user"), "")
            text = generate_reply(last_user)
        if (scripted.as_edits or scripted.text is None and scripted.chunks is None) and asks_for_edits(messages):
            text = as_edit_reply(text, files_in_prompt(messages))
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        finish = scripted.finish_reason or "stop"
        if limit:
            text, was_cut = cut_to_tokens(text, int(limit))
            if was_cut:
                finish = "length"
        if scripted.chunks is not None and text == "".join(scripted.chunks):
            chunks = list(scripted.chunks)
        else:
            chunks = split_chunks(text, scripted.chunk_size)
        return chunks, text, finish

    def _usage(self, body: dict[str, Any], text: str) -> dict[str, Any]:
        prompt = count_prompt_tokens(body["messages"])
        completion = count_tokens(text)
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                              "accepted_prediction_tokens": 0,
                                              "rejected_prediction_tokens": 0}}

    async def _reply(self, request: web.Request, body: dict[str, Any],
                     scripted: ScriptedReply) -> web.StreamResponse:
        chunks, text, finish = self._produce(body, scripted)
        delay_ms = scripted.chunk_delay_ms if scripted.chunk_delay_ms is not None else self.chunk_delay_ms
        first_ms = (scripted.first_byte_delay_ms if scripted.first_byte_delay_ms is not None
                    else self.first_byte_delay_ms)
        completion_id = "chatcmpl-" + secrets.token_urlsafe(22).replace("-", "x").replace("_", "y")
        created = int(time.time())
        if first_ms:
            await asyncio.sleep(first_ms / 1000)
        if not body.get("stream"):
            if delay_ms:
                await asyncio.sleep(delay_ms * len(chunks) / 1000)
            return json_response(self._completion_json(completion_id, created, body, text, finish),
                                 headers=self.rate_headers())
        include_usage = bool((body.get("stream_options") or {}).get("include_usage")) and not scripted.omit_usage
        return await self._stream(request, body, chunks, text, finish, completion_id, created,
                                  delay_ms / 1000, include_usage, scripted.cut_after_chunks)

    def _completion_json(self, completion_id: str, created: int, body: dict, text: str, finish: str) -> dict:
        return {"id": completion_id, "object": "chat.completion", "created": created, "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": None,
                                                     "annotations": []},
                             "logprobs": None, "finish_reason": finish}],
                "usage": self._usage(body, text), "service_tier": "default", "system_fingerprint": None}

    async def _stream(self, request: web.Request, body: dict, chunks: list[str], text: str, finish: str,
                      completion_id: str, created: int, delay_s: float, include_usage: bool,
                      cut_after: int | None) -> web.StreamResponse:
        response = web.StreamResponse(headers={**self.rate_headers(), "Cache-Control": "no-cache"})
        response.content_type = "text/event-stream"
        response.charset = "utf-8"
        await response.prepare(request)
        # The chunk JSON differs only in the delta, so it is assembled from fixed byte strings:
        # at hundreds of concurrent streams, re-serialising the whole object per piece is the cost.
        usage_field = ',"usage":null' if include_usage else ""
        head = (f'data: {{"id":"{completion_id}","object":"chat.completion.chunk","created":{created},'
                f'"model":{json.dumps(body["model"])},"service_tier":"default","system_fingerprint":null,'
                '"choices":[{"index":0,"delta":').encode()
        tail_open = ',"logprobs":null,"finish_reason":null}]' + usage_field + "}\n\n"
        events = [head + b'{"role":"assistant","content":"","refusal":null}' + tail_open.encode()]
        events += [head + b'{"content":' + json.dumps(piece).encode() + b"}" + tail_open.encode()
                   for piece in chunks]
        events.append(head + b'{},"logprobs":null,"finish_reason":' + json.dumps(finish).encode()
                      + b"}]" + usage_field.encode() + b"}\n\n")
        if include_usage:
            usage_chunk = {"id": completion_id, "object": "chat.completion.chunk", "created": created,
                           "model": body["model"], "service_tier": "default", "system_fingerprint": None,
                           "choices": [], "usage": self._usage(body, text)}
            events.append(b"data: " + json.dumps(usage_chunk, separators=(",", ":")).encode() + b"\n\n")
        events.append(b"data: [DONE]\n\n")
        loop = asyncio.get_running_loop()
        started = loop.time()
        last_content = len(chunks)
        for index, event in enumerate(events):
            if cut_after is not None and index >= cut_after:
                self._cut(request)
                return response
            if delay_s and 1 <= index <= last_content:
                # Deadline-based pacing: lateness of one write does not accumulate over the stream.
                wait = started + index * delay_s - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
            await response.write(event)
        await response.write_eof()
        return response

    @staticmethod
    def _cut(request: web.Request) -> None:
        """Drop the connection mid-body: no [DONE] and no terminating HTTP chunk reach the client."""
        transport = request.transport
        if transport is not None:
            transport.abort()

    # --- control -------------------------------------------------------------------------------------
    async def _add_script(self, request: web.Request) -> web.Response:
        spec = await request.json()
        replies = spec["replies"] if isinstance(spec, dict) and "replies" in spec else [spec]
        with self._lock:
            for reply in replies:
                self.script.append(ScriptedReply.from_json(reply))
            return json_response({"queued": len(self.script)})

    async def _get_script(self, request: web.Request) -> web.Response:
        with self._lock:
            return json_response({"replies": [r.as_json() for r in self.script]})

    async def _clear_script(self, request: web.Request) -> web.Response:
        with self._lock:
            self.script.clear()
        return json_response({"ok": True})

    async def _revoke_key(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.revoked_keys.add(body["key"])
        return json_response({"ok": True})

    async def _get_chat_requests(self, request: web.Request) -> web.Response:
        return json_response({"requests": list(self.chat_requests)})
