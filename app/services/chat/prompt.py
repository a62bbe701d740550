"""What the model is sent with each message: the system prompt, the project's files, the recent history.

Everything is measured with `estimate_tokens`, Sorya's offline token estimate (no tokenizer download):
a run of word characters counts one token per started 4 characters, every other visible character one
token. On English prose and code it lands at or a little above what BPE tokenizers count, which is the
safe side for a budget and for a charge made without the provider's usage. It is also what a reply is
charged by when the provider reports no usage (the message then records `usage_source="estimate"`).

The budget, in order of priority:
1. the system prompt and the new message: always sent (the message length is capped upstream);
2. the list of the project's files (names only, capped at `MAX_LISTED_FILES`);
3. the content of files the conversation refers to (by path or file name), newest reference first,
   within `FILE_CONTENT_BUDGET_TOKENS` and at most a third of what is left;
4. the history, newest first, until the context window (minus the reply's room) is full, or until
   `history_budget_tokens` when one is given; older messages are dropped whole, never cut in the middle.

With `edits=True` (the default; `ChatSettings.edit_replies`) the model is asked for edit blocks for
existing files and whole files for new ones (`SYSTEM_PROMPT`), and earlier replies are sent with their
file blocks elided (`[wrote app.py; edited style.css → now in v7]`): the files' current content is in the
project message already, so the history no longer carries every version of every file. With
`edits=False` the prompt is the older one: whole files, full history (`WHOLE_FILE_SYSTEM_PROMPT`), kept
so the two can be compared (`bench/edit_tokens.py`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from app.services.snapshots.reply_files import elide_file_blocks

WHOLE_FILE_SYSTEM_PROMPT = """You are Sorya, an expert software engineer who writes code for the person you talk with.

When you create or change a file, put the whole file in one fenced code block whose info string is the \
language followed by the file's path, for example:

```python path=app/main.py
print("hello")
```

Rules for paths: relative to the project root, with / as the separator, never starting with /, never \
containing .. or a .git directory. Write each file in full (no "rest unchanged" placeholders), and only \
the files you create or change. Outside code blocks, explain briefly what you did and how to run it. \
Use Markdown."""

SYSTEM_PROMPT = """You are Sorya, an expert software engineer who writes code for the person you talk with.

To change a file the project already has, send an edit block: a fenced code block whose info string is \
the language, the file's path and the word edit, holding one or more sections. Each SEARCH text is \
copied exactly from the file's current content (whole lines, enough of them to occur only once) and is \
replaced by the REPLACE text:

```python path=app/main.py edit
<<<<<<< SEARCH
def greet():
    return "hello"
=======
def greet(name):
    return f"hello, {name}"
>>>>>>> REPLACE
```

To create a file, put the whole file in a fenced block whose info string is the language and its path:

```css path=static/style.css
body { font-family: system-ui; }
```

To delete a file: ```path=old.py delete``` followed by a closing fence. Rules for paths: relative to \
the project root, with / as the separator, never starting with /, never containing .. or a .git \
directory. Touch only the files you create or change. Outside code blocks, explain briefly what you did \
and how to run it. Use Markdown."""

# Per-message overhead of the chat format, and the priming of the reply (OpenAI's counting recipe).
MESSAGE_OVERHEAD_TOKENS = 4
REPLY_PRIMING_TOKENS = 3
MAX_LISTED_FILES = 300
FILE_CONTENT_BUDGET_TOKENS = 12_000
RECENT_MESSAGES_FOR_FILES = 6
# With edits, files named further back are not re-sent: the elided replies still name what they changed.
RECENT_MESSAGES_FOR_FILES_WITH_EDITS = 2
# Context windows in tokens of the models Sorya knows; any other model gets the conservative default.
MODEL_CONTEXT_WINDOWS = {
    "gpt-5": 400_000,
    "gpt-5-mini": 400_000,
    "gpt-5-nano": 400_000,
    "gpt-4.1": 1_047_576,
    "gpt-4.1-mini": 1_047_576,
    "gpt-4o": 128_000,
    "gpt-4o-mini": 128_000,
}
DEFAULT_CONTEXT_WINDOW = 128_000
# The newest history messages kept whatever the history budget (the last question and its answer).
LAST_EXCHANGE_MESSAGES = 2
# Room kept free for the difference between our estimate and the provider's count.
SAFETY_MARGIN_RATIO = 0.05

# A run of word characters counts one token per 4 characters (rounded up), any other non-blank character
# one token each: exactly the matches of this pattern (a word run splits into ceil(len / 4) matches), so
# counting is one C-level scan: a 1,000-token reply in history costs microseconds on every send, not a
# Python loop per token.
_TOKEN_RE = re.compile(r"\w{1,4}|[^\w\s]")


def estimate_tokens(text: str) -> int:
    """Sorya's offline token estimate of `text` (see the module docstring)."""
    return _TOKEN_RE.subn("", text)[1]  # counts the matches without building a list of them


def estimate_prompt_tokens(messages: list[dict[str, str]]) -> int:
    return REPLY_PRIMING_TOKENS + sum(
        MESSAGE_OVERHEAD_TOKENS + estimate_tokens(m.get("content", "")) for m in messages
    )


def context_window_for(model: str) -> int:
    return MODEL_CONTEXT_WINDOWS.get(model, DEFAULT_CONTEXT_WINDOW)


@dataclass(frozen=True)
class HistoryMessage:
    role: str  # "user" or "assistant"
    content: str
    version: int | None = None  # the project version this reply made, if any (named when elided)


@dataclass(frozen=True)
class ProjectFile:
    path: str
    content: str | None  # None: binary or not loaded


@dataclass(frozen=True)
class ProjectContext:
    name: str
    files: list[ProjectFile] = field(default_factory=list)


@dataclass(frozen=True)
class Prompt:
    messages: list[dict[str, str]]
    prompt_tokens: int
    history_kept: int
    history_dropped: int
    files_included: list[str]
    # Estimated tokens by what they are: "instructions" (system prompt), "files" (the project message),
    # "history" (earlier turns as sent), "message" (the new message). Stored on the reply (its footer).
    breakdown: dict[str, int] = field(default_factory=dict)


def recent_texts(new_message: str, history: list[HistoryMessage], *, edits: bool = False) -> list[str]:
    """The texts whose file references count, newest first: the new message and the last few (the last
    exchange only with `edits`)."""
    count = RECENT_MESSAGES_FOR_FILES_WITH_EDITS if edits else RECENT_MESSAGES_FOR_FILES
    return [new_message] + [m.content for m in reversed(history[-count:])]


def referenced_files(files: list[ProjectFile], texts: list[str]) -> list[ProjectFile]:
    """The files named in `texts` (newest text first) by full path or by a distinctive file name."""
    by_name: dict[str, list[ProjectFile]] = {}
    for project_file in files:
        by_name.setdefault(project_file.path.rsplit("/", 1)[-1], []).append(project_file)
    found: list[ProjectFile] = []
    seen: set[str] = set()
    for text in texts:
        for project_file in files:
            name = project_file.path.rsplit("/", 1)[-1]
            # A bare file name counts only when it names one file and looks like a file ("main.py").
            named = project_file.path in text or (
                "." in name and len(by_name[name]) == 1 and re.search(rf"(?<![\w/.-]){re.escape(name)}\b", text)
            )
            if named and project_file.path not in seen:
                seen.add(project_file.path)
                found.append(project_file)
    return found


def _project_message(project: ProjectContext, budget_tokens: int, texts: list[str]) -> tuple[str, list[str]]:
    """The system message describing the project's latest snapshot, and the paths whose content it holds."""
    lines = [f"The project is called {project.name!r}."]
    if not project.files:
        lines.append("It has no files yet.")
        return "\n".join(lines), []
    listed = project.files[:MAX_LISTED_FILES]
    lines.append(f"Its latest snapshot has {len(project.files)} files:")
    lines.extend(f"- {f.path}" for f in listed)
    if len(project.files) > len(listed):
        lines.append(f"- ... and {len(project.files) - len(listed)} more")
    included: list[str] = []
    spent = estimate_tokens("\n".join(lines))
    for project_file in referenced_files(project.files, texts):
        if project_file.content is None:
            continue
        block = f"\nCurrent content of {project_file.path}:\n```\n{project_file.content}\n```"
        cost = estimate_tokens(block)
        if spent + cost > budget_tokens:
            continue  # a smaller referenced file may still fit
        lines.append(block)
        spent += cost
        included.append(project_file.path)
    return "\n".join(lines), included


def build_prompt(
    *,
    model: str,
    new_message: str,
    history: list[HistoryMessage],
    max_completion_tokens: int,
    project: ProjectContext | None = None,
    context_window: int | None = None,
    edits: bool = True,
    history_budget_tokens: int | None = None,
) -> Prompt:
    """The messages to send for `new_message`, fitted to the model's context window.

    `history` is oldest first and excludes `new_message`. Pure: no I/O.
    """
    window = context_window or context_window_for(model)
    available = int(window * (1 - SAFETY_MARGIN_RATIO)) - max_completion_tokens
    head = [{"role": "system", "content": SYSTEM_PROMPT if edits else WHOLE_FILE_SYSTEM_PROMPT}]
    tail = [{"role": "user", "content": new_message}]
    used = estimate_prompt_tokens(head + tail)
    breakdown = {"instructions": estimate_prompt_tokens(head), "message": used - estimate_prompt_tokens(head)}

    files_included: list[str] = []
    if project is not None:
        file_budget = max(0, min(FILE_CONTENT_BUDGET_TOKENS, (available - used) // 3))
        text, files_included = _project_message(project, file_budget, recent_texts(new_message, history, edits=edits))
        project_message = {"role": "system", "content": text}
        cost = estimate_prompt_tokens([project_message]) - REPLY_PRIMING_TOKENS
        if used + cost <= available:
            head.append(project_message)
            used += cost
            breakdown["files"] = cost
        else:
            files_included = []

    kept = _fit_history(history, edits=edits, room=available - used, budget=history_budget_tokens)
    history_cost = sum(MESSAGE_OVERHEAD_TOKENS + estimate_tokens(m["content"]) for m in kept)
    breakdown["history"] = history_cost
    usable = sum(1 for m in history if m.content)
    return Prompt(
        messages=head + kept + tail,
        prompt_tokens=used + history_cost,
        history_kept=len(kept),
        history_dropped=usable - len(kept),
        files_included=files_included,
        breakdown=breakdown,
    )


def history_text(message: HistoryMessage, *, edits: bool) -> str:
    """A message as the history sends it: an earlier reply's file blocks elided when `edits`."""
    if edits and message.role == "assistant":
        return elide_file_blocks(message.content, version=message.version)
    return message.content


def _fit_history(
    history: list[HistoryMessage], *, edits: bool, room: int, budget: int | None
) -> list[dict[str, str]]:
    """The newest messages (oldest first) that fit in `room`, and in `budget` when one is given (the last
    exchange is kept whatever the budget, when it fits in `room`)."""
    kept: list[dict[str, str]] = []
    spent = 0
    for message in reversed(history):
        if not message.content:
            continue
        content = history_text(message, edits=edits)
        cost = MESSAGE_OVERHEAD_TOKENS + estimate_tokens(content)
        limit = room if budget is None or len(kept) < LAST_EXCHANGE_MESSAGES else min(room, budget)
        if spent + cost > limit:
            break
        kept.append({"role": message.role, "content": content})
        spent += cost
    kept.reverse()
    return kept
