"""Chat: sending a message, generating the reply in the background, stopping it, charging it, history.

The life of a reply:
1. `send_message` (`sending.py`) validates the text, stores the person's message and a `pending`
   assistant message, places a credit hold sized from the prompt (`prompt.py`) and the reply's room
   (`max_completion_tokens`), and publishes the stream's `start` event. All in one transaction: on
   `InsufficientCredits` nothing is stored and no provider is called.
2. `start_generation` (`generation.py`) runs `generate_reply` in a background thread (a greenlet under
   gevent) of this web process. It streams from OpenAI and writes `delta` events to the reply's stream
   (`app/runtime/streams.py`), coalesced to at most one per window, and saves the text and a heartbeat to
   the database every few seconds. No HTTP connection is involved: readers follow the stream
   (`following.py`), so a reply keeps generating (and is saved and charged) when its tab closes.
3. The reply ends exactly once (`ending.finish_reply`, under a row lock on the message): `complete`,
   `stopped` or `failed`, with the hold settled for the tokens used (the provider's usage when it
   sent one, else Sorya's offline estimate; `usage_source` records which) or released when nothing
   was produced. Then the `done` or `error` event.

Stop: `request_stop` raises a flag in the stream store; the process generating the reply polls the flags
of its replies and ends the reply itself when its provider does not answer in time. A process that dies
mid-reply leaves a stale heartbeat: `sweep_stale_generations` (run by `flask credits sweep`) fails such
replies and charges what they produced.

The public names are re-exported here. To monkeypatch one, patch the module that uses it (a re-export is
a copy of the reference).
"""

from app.services.chat.ending import (
    STALE_AFTER_S,
    STOP_WAIT_S,
    USAGE_ESTIMATE,
    USAGE_PROVIDER,
    ReplyOutcome,
    finish_reply,
    request_stop,
    sweep_stale_generations,
)
from app.services.chat.fixing import (
    edit_errors_of,
    fix_edits_estimate,
    fix_edits_request,
    start_new_conversation,
)
from app.services.chat.following import (
    KEEPALIVE_S,
    STATUS_CHECK_S,
    finished_reply_events,
    follow_reply,
    terminal_events_from_message,
)
from app.services.chat.generation import (
    COALESCE_WINDOW_MAX_S,
    COALESCE_WINDOW_S,
    GENERATIONS,
    WINDOW_BASE_GENERATIONS,
    Generation,
    GenerationJob,
    GenerationRegistry,
    StartGate,
    coalesce_window_s,
    finish_generation,
    finish_or_stop_generations,
    generate_reply,
    save_interval_s,
    start_generation,
)
from app.services.chat.history import (
    HISTORY_MAX_LIMIT,
    SEARCH_LIMIT,
    HistoryPage,
    ReplyView,
    conversation_filter,
    list_history,
    messages_by_id,
    reply_view,
    search_messages,
)
from app.services.chat.prompt import estimate_tokens
from app.services.chat.sending import (
    MIN_COMPLETION_TOKENS,
    SentMessage,
    choose_model,
    clean_message_text,
    send_message,
)
from app.services.chat.settings import ChatSettings

__all__ = [
    "edit_errors_of",
    "fix_edits_estimate",
    "fix_edits_request",
    "start_new_conversation",
    "COALESCE_WINDOW_MAX_S",
    "COALESCE_WINDOW_S",
    "GENERATIONS",
    "HISTORY_MAX_LIMIT",
    "KEEPALIVE_S",
    "MIN_COMPLETION_TOKENS",
    "SEARCH_LIMIT",
    "STALE_AFTER_S",
    "STATUS_CHECK_S",
    "STOP_WAIT_S",
    "USAGE_ESTIMATE",
    "USAGE_PROVIDER",
    "WINDOW_BASE_GENERATIONS",
    "ChatSettings",
    "Generation",
    "GenerationJob",
    "GenerationRegistry",
    "HistoryPage",
    "ReplyOutcome",
    "ReplyView",
    "SentMessage",
    "StartGate",
    "choose_model",
    "clean_message_text",
    "coalesce_window_s",
    "conversation_filter",
    "estimate_tokens",
    "finish_generation",
    "finish_or_stop_generations",
    "finish_reply",
    "finished_reply_events",
    "follow_reply",
    "generate_reply",
    "list_history",
    "messages_by_id",
    "reply_view",
    "request_stop",
    "save_interval_s",
    "search_messages",
    "send_message",
    "start_generation",
    "sweep_stale_generations",
    "terminal_events_from_message",
]
