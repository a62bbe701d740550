"""The chat JSON API: send a message (answered with its event stream, or once the reply has ended), follow
or stop a reply, page through a conversation. Routes only parse, call `services/chat/` and answer."""

from __future__ import annotations

from typing import Any

from flask import jsonify, request

from app.errors import InsufficientCredits, InvalidRequest, UpstreamError
from app.extensions import db
from app.models import ChatMessage
from app.services import access, chat
from app.web import api
from app.web.chat import (
    NO_JS_WAIT_S,
    chat_settings,
    current_user_id,
    event_stream_response,
    last_event_id,
    limit_sending,
    plans_url,
    reply_streams,
    start_reply,
    wait_for_end,
)
from app.web.workspace import estimate_for_request, start_regeneration

REPLY_FIELDS = ("id", "role", "content", "model", "tokens_in", "tokens_out", "cost", "status", "usage_source")


def message_json(message: ChatMessage) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": message.id, "role": message.role, "content": message.content, "project_id": message.project_id,
        "model": message.model, "tokens_in": message.tokens_in, "tokens_out": message.tokens_out,
        "cost": message.cost, "status": message.status, "usage_source": message.usage_source,
        "reply_to_id": message.reply_to_id, "created_at": message.created_at.isoformat(),
    }
    if message.error_code:
        body["error"] = {"code": message.error_code, "message": message.error_message}
    return body


def _project_id_from(value: Any) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
        raise InvalidRequest("project_id must be a project's id.", fields={"project_id": "not an id"})
    return int(value)


@api.bp.post("/chat")
@limit_sending
def api_send():
    body = api.read_json()
    return _send_and_answer(current_user_id(), body.get("message"), _project_id_from(body.get("project_id")),
                            body.get("model"))


@api.bp.post("/chat/<int:message_id>/fix-edits")
@limit_sending
def api_fix_edits(message_id: int):
    """*Fix the edits*: a charged follow-up naming a reply's failed edits, answered as POST /api/chat."""
    user_id = current_user_id()
    body = api.read_json()
    text, project_id = chat.fix_edits_request(db.session, user_id=user_id, message_id=message_id)
    return _send_and_answer(user_id, text, project_id, body.get("model"))


def _send_and_answer(user_id: int, text: Any, project_id: int | None, model: Any):
    try:
        sent = start_reply(user_id, text, project_id, model)
    except InsufficientCredits as exc:
        exc.extra["plans_url"] = plans_url()
        raise
    return _answer_sent(user_id, sent)


def _answer_sent(user_id: int, sent: chat.SentMessage) -> Any:
    """The reply's event stream (`Accept: text/event-stream`), or the finished reply as JSON."""
    if "text/event-stream" in request.headers.get("Accept", ""):
        return event_stream_response(sent.reply_id, 0)
    end = wait_for_end(sent.reply_id, NO_JS_WAIT_S)
    if end is not None and end.name == "error":
        raise UpstreamError("OpenAI", end.data.get("message", "The reply failed."), message_id=sent.reply_id,
                            user_message_id=sent.user_message_id)
    view = chat.reply_view(db.session, user_id=user_id, message_id=sent.reply_id)
    reply = message_json(view.message)
    return jsonify(
        message={key: reply[key] for key in REPLY_FIELDS},
        user_message_id=sent.user_message_id,
        balance=view.balance,
        **reply_version_json(view.message, end.data if end is not None else {}),
    )


def reply_version_json(message: ChatMessage, done: dict[str, Any]) -> dict[str, Any]:
    """`snapshot_id` (the version the reply made, null when none) and, when its edits failed, `edit_errors`:
    from its `done` event, else as recorded on the reply."""
    meta = message.meta or {}
    body: dict[str, Any] = {"snapshot_id": done.get("snapshot_id", meta.get("snapshot_id"))}
    edit_errors = done.get("edit_errors") or meta.get("edit_errors")
    if edit_errors:
        body["edit_errors"] = edit_errors
    return body


@api.bp.post("/chat/<int:message_id>/regenerate")
@limit_sending
def api_regenerate(message_id: int):
    """The message behind this reply sent again as a new reply: answered as `POST /api/chat`."""
    user_id = current_user_id()
    body = api.read_json()
    try:
        sent = start_regeneration(user_id, message_id, body.get("model"))
    except InsufficientCredits as exc:
        exc.extra["plans_url"] = plans_url()
        raise
    return _answer_sent(user_id, sent)


@api.bp.get("/chat/<int:message_id>/stream")
def api_stream(message_id: int):
    user_id = current_user_id()
    after_id = last_event_id()
    access.owned_reply(db.session, user_id=user_id, message_id=message_id)
    return event_stream_response(message_id, after_id)


@api.bp.post("/chat/<int:message_id>/stop")
def api_stop(message_id: int):
    user_id = current_user_id()
    status = chat.request_stop(
        db.session, user_id=user_id, message_id=message_id, streams=reply_streams(), settings=chat_settings()
    )
    return jsonify(message_id=message_id, status=status)


@api.bp.get("/chat/history")
def api_history():
    user_id = current_user_id()
    page = chat.list_history(
        db.session,
        user_id=user_id,
        project_id=api.int_arg("project_id"),
        limit=api.int_arg("limit", default=chat.HISTORY_MAX_LIMIT, maximum=chat.HISTORY_MAX_LIMIT),
        before=api.int_arg("before"),
    )
    return jsonify(messages=[message_json(m) for m in page.messages], next_before=page.next_before)


@api.bp.route("/chat/estimate", methods=["GET", "POST"])
def api_estimate():
    """The most sending this draft would cost now: the hold the send would place."""
    current_user_id()
    return jsonify(estimate_for_request().as_json())
