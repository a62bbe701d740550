"""The chat pages (general and per project), and what they share with the chat JSON API
(`web/api/chat.py`): starting a reply, following its event stream, waiting for its end.

Routes only parse, call `services/chat/` and render. Sending starts the reply's generation in the
background and answers at once (HTMX and the API's event stream) or once the reply has ended (a form
posted with JavaScript off, and `POST /api/chat` without `Accept: text/event-stream`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_limiter.util import get_remote_address
from flask_login import current_user, login_required
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError

from app import runtime
from app.errors import (
    DomainError,
    InsufficientCredits,
    InvalidRequest,
    Unauthenticated,
    Unavailable,
)
from app.extensions import db, limiter
from app.models import ChatMessage, Project
from app.runtime.admission import admit_send, release_send_slot
from app.runtime.streams import ReplyStreams, StreamEvent, streams_for
from app.services import access, chat
from app.web import api
from app.web.reply_markdown import render_reply_html
from app.web.reply_render import StreamRenderer
from app.web.snapshot_actions import SnapshotActions, page_snapshot_actions
from app.web.workspace_page import build_pane

bp = Blueprint("chat", __name__)

PAGE_HISTORY_LIMIT = 30
# A form posted with JavaScript off waits this long for the reply before showing the page anyway.
NO_JS_WAIT_S = 600.0


# -- shared helpers ------------------------------------------------------------------------------


def chat_settings() -> chat.ChatSettings:
    return chat.ChatSettings.from_config(runtime.settings())


def reply_streams() -> ReplyStreams:
    return streams_for(runtime.redis_client())


def current_user_id() -> int:
    if not current_user.is_authenticated:
        raise Unauthenticated("Sign in, or send a valid API token in the Authorization header.")
    return int(current_user.id)


def send_rate_limit() -> str:
    return runtime.settings().CHAT_RATE_LIMIT


def sender_key() -> str:
    if current_user.is_authenticated:
        return f"user:{current_user.id}"
    return f"ip:{get_remote_address()}"


# One budget per user for both ways of sending.
limit_sending = limiter.shared_limit(send_rate_limit, scope="chat-send", key_func=sender_key)


def start_reply(user_id: int, text: Any, project_id: int | None, model: Any) -> chat.SentMessage:
    """Store the message, hold the credits and start generating; the request's session is closed after."""
    return start_generating(lambda streams, start_early: chat.send_message(
        db.session, user_id=user_id, text=text, project_id=project_id, model=model,
        settings=chat_settings(), streams=streams, start_early=start_early,
    ))


def start_generating(send: Callable[[ReplyStreams, Any], chat.SentMessage]) -> chat.SentMessage:
    """Run `send(streams, start_early)` (a send or a regeneration: it stores and holds, and commits) as a
    send is admitted, then start generating its reply (already started when `send` used `start_early`)."""
    streams = reply_streams()
    app: Flask = current_app._get_current_object()
    admit_send()  # taken before the request loaded anything, for the send routes (runtime/admission.py)

    def start_early(job: chat.GenerationJob) -> chat.StartGate:
        # The provider request goes out while the send commits; the gate holds the rest until it has.
        gate = chat.StartGate()
        chat.start_generation(app, job, streams, gate=gate)
        return gate

    try:
        sent = send(streams, start_early)
    except SQLAlchemyTimeoutError:
        # Every database connection of this process is busy (a burst of sends): a retryable 503, not a 500.
        db.session.rollback()
        raise Unavailable("Sorya is very busy right now; please send your message again in a moment.") from None
    finally:
        release_send_slot()
    return sent


def follow(message_id: int, after_id: int) -> Iterator[StreamEvent | None]:
    """The reply's events after `after_id`, usable after the request has ended (own app context)."""
    app: Flask = current_app._get_current_object()
    streams = reply_streams()

    def load_finished(last_id: int) -> list[StreamEvent] | None:
        with app.app_context():
            try:
                return chat.finished_reply_events(db.session, message_id, last_id)
            finally:
                db.session.remove()

    return chat.follow_reply(streams, message_id, after_id, load_finished=load_finished)


def event_stream_response(message_id: int, after_id: int) -> Response:
    events = follow(message_id, after_id)

    def body() -> Iterator[str]:
        yield "retry: 1500\n\n"
        for event in events:
            yield ": keepalive\n\n" if event is None else event.to_sse()

    response = Response(body(), mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-cache"
    # nginx and similar proxies must pass each event on at once.
    response.headers["X-Accel-Buffering"] = "no"
    return response


def rendered_stream_response(message_id: int) -> Response:
    """The reply's stream for the page: each delta becomes `event: html` `{"append", "tail"}` (finished
    blocks' sanitised HTML once, the open block's again; an open file card only grows by `"code"`:
    app/web/reply_render.py); other events as they are.
    It always replays from the first event (the page clears on `start`), so a reconnect loses nothing."""
    events = follow(message_id, 0)
    renderer = StreamRenderer(f"code-{message_id}")

    def body() -> Iterator[str]:
        yield "retry: 1500\n\n"
        for event in events:
            if event is None:
                yield ": keepalive\n\n"
            elif event.name == "delta":
                step = renderer.feed(str(event.data.get("text", "")))
                yield f"id: {event.id}\nevent: html\ndata: {step.to_json()}\n\n"
            else:
                yield event.to_sse()

    response = Response(body(), mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"
    return response


def wait_for_end(message_id: int, timeout_s: float) -> StreamEvent | None:
    deadline = time.monotonic() + timeout_s
    for event in follow(message_id, 0):
        if event is not None and event.is_terminal:
            return event
        if time.monotonic() > deadline:
            return None
    return None


def last_event_id() -> int:
    raw = request.headers.get("Last-Event-ID") or request.args.get("last_event_id") or "0"
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest("Last-Event-ID must be a whole number.", fields={"Last-Event-ID": "not a number"}) from None
    if value < 0:
        raise InvalidRequest("Last-Event-ID cannot be negative.", fields={"Last-Event-ID": "negative"})
    return value


def plans_url() -> str:
    return url_for("billing.plans")


# -- pages ---------------------------------------------------------------------------------------


@bp.app_template_global()
def reply_html(message: ChatMessage) -> Any:
    return render_reply_html(message.content, id_prefix=f"code-{message.id}")


@bp.app_template_global()
def fix_edits_estimate(message: ChatMessage) -> Any:
    """The send estimate of *Fix the edits* for a reply whose edits failed, or None when there is none."""
    try:
        return chat.fix_edits_estimate(db.session, user_id=current_user_id(), message_id=message.id,
                                       settings=chat_settings())
    except DomainError:
        return None


@bp.app_template_global()
def edit_errors_of(message: ChatMessage) -> list[dict[str, Any]]:
    return chat.edit_errors_of(message) if message.role == "assistant" else []


SNIPPET_CHARS = 160


@bp.app_template_global()
def search_snippet(text: str, query: str) -> str:
    """About `SNIPPET_CHARS` characters of `text` around the first match of `query` (escaped by Jinja)."""
    flat = " ".join(text.split())
    at = flat.lower().find(query.lower())
    start = max(0, at - SNIPPET_CHARS // 3) if at >= 0 else 0
    snippet = flat[start:start + SNIPPET_CHARS]
    return ("…" if start else "") + snippet + ("…" if start + SNIPPET_CHARS < len(flat) else "")


def _page_project(project_id: int | None) -> Project | None:
    if project_id is None:
        return None
    return access.owned_project(db.session, user_id=current_user_id(), project_id=project_id)


def _page_url(project: Project | None, **params: Any) -> str:
    if project is None:
        return url_for("chat.general", **params)
    return url_for("chat.project", project_id=project.id, **params)


def _render_page(project: Project | None, *, status: int = 200, draft: str = "", error: str | None = None,
                 error_links_plans: bool = False) -> tuple[str, int]:
    user_id = current_user_id()
    project_id = project.id if project else None
    before = api.int_arg("before")
    query = (request.args.get("q") or "").strip()
    history = chat.list_history(db.session, user_id=user_id, project_id=project_id, limit=PAGE_HISTORY_LIMIT,
                                before=before)
    results = chat.search_messages(db.session, user_id=user_id, project_id=project_id, query=query) if query else None
    settings = chat_settings()
    last_model = next((m.model for m in reversed(history.messages) if m.model in settings.models), None)
    return render_template(
        "chat/page.html",
        project=project,
        history=history,
        before=before,
        query=query,
        results=results,
        models=settings.models,
        selected_model=request.form.get("model") or last_model or settings.default_model,
        max_chars=settings.max_message_chars,
        draft=draft,
        error=error,
        error_links_plans=error_links_plans,
        send_url=_page_url(project),
        page_url=_page_url(project),
        snapshot_actions=_snapshot_actions(project),
        pane=build_pane(project) if project else None,
    ), status


def _snapshot_actions(project: Project | None) -> SnapshotActions:
    """The *Take snapshot* controls of the replies this request shows (one query at most)."""
    return page_snapshot_actions(db.session, user_id=current_user_id(), project=project)


def _show(project_id: int | None):
    project = _page_project(project_id)
    if request.headers.get("HX-Request") and request.args.get("before"):
        # "Load earlier": the older page of messages, replacing the link that asked for it.
        history = chat.list_history(db.session, user_id=current_user_id(), project_id=project_id,
                                    limit=PAGE_HISTORY_LIMIT, before=api.int_arg("before"))
        return render_template("partials/_chat_earlier.html", history=history, project=project,
                               page_url=_page_url(project), snapshot_actions=_snapshot_actions(project))
    if project is not None and request.headers.get("HX-Request") and request.headers.get("HX-Target") == "project-pane":
        # A tab or version picked in the workspace: only the project pane, swapped in place.
        response = Response(render_template("workspace/_pane.html", project=project, pane=build_pane(project)))
        response.headers["Vary"] = "HX-Request, HX-Target"
        return response
    return _render_page(project)


@bp.get("/chat")
@login_required
def general():
    return _show(None)


@bp.get("/projects/<int:project_id>/chat")
@login_required
def project(project_id: int):
    return _show(project_id)


def _send(project_id: int | None, text: str | None = None):
    project = _page_project(project_id)
    user_id = current_user_id()
    text = request.form.get("message", "") if text is None else text
    htmx = bool(request.headers.get("HX-Request"))
    try:
        sent = start_reply(user_id, text, project_id, request.form.get("model"))
    except DomainError as exc:
        if not isinstance(exc, InvalidRequest | InsufficientCredits) and exc.status != 413:
            raise
        if htmx:
            response = Response(render_template(
                "partials/_chat_composer_error.html", error=exc.message,
                error_links_plans=isinstance(exc, InsufficientCredits),
            ), status=exc.status, mimetype="text/html")
            response.headers["HX-Retarget"] = "#composer-error"
            response.headers["HX-Reswap"] = "outerHTML"
            return response
        return _render_page(project, status=exc.status, draft=text, error=exc.message,
                            error_links_plans=isinstance(exc, InsufficientCredits))
    if htmx:
        messages = chat.messages_by_id(db.session, user_id=user_id, message_ids=[sent.user_message_id, sent.reply_id])
        return render_template("partials/_chat_sent.html", messages=messages, project=project,
                               snapshot_actions=_snapshot_actions(project))
    # JavaScript off: wait for the whole reply, then show the page with it. (send_message committed, so
    # this request holds no database connection while it waits.)
    wait_for_end(sent.reply_id, NO_JS_WAIT_S)
    return redirect(_page_url(project) + f"#message-{sent.reply_id}", code=303)


@bp.post("/chat")
@login_required
@limit_sending
def send_general():
    return _send(None)


@bp.post("/projects/<int:project_id>/chat")
@login_required
@limit_sending
def send_project(project_id: int):
    return _send(project_id)


@bp.get("/chat/messages/<int:message_id>/rendered-stream")
@login_required
def rendered_stream(message_id: int):
    """The page's stream of a reply being written, as sanitised HTML (see `rendered_stream_response`)."""
    access.owned_reply(db.session, user_id=current_user_id(), message_id=message_id)
    return rendered_stream_response(message_id)
@bp.post("/chat/messages/<int:message_id>/fix-edits")
@login_required
@limit_sending
def fix_edits(message_id: int):
    """*Fix the edits*: a normal, charged send in the reply's project that names its failed edits."""
    text, project_id = chat.fix_edits_request(db.session, user_id=current_user_id(), message_id=message_id)
    return _send(project_id, text)


@bp.post("/projects/<int:project_id>/chat/new-conversation")
@login_required
def new_conversation(project_id: int):
    """Start a fresh context: earlier messages stay on the page, above a divider, but are no longer sent."""
    chat.start_new_conversation(db.session, user_id=current_user_id(), project_id=project_id)
    if request.headers.get("HX-Request"):
        response = Response(status=204)
        response.headers["HX-Refresh"] = "true"
        return response
    return redirect(url_for("chat.project", project_id=project_id), code=303)


@bp.get("/chat/messages/<int:message_id>")
@login_required
def message_fragment(message_id: int):
    """One message's partial (a finished reply replaces its live version with it), and the counter."""
    view = chat.reply_view(db.session, user_id=current_user_id(), message_id=message_id)
    return render_template("partials/_chat_message_swap.html", message=view.message, project=view.project,
                           credit_balance=view.balance, snapshot_actions=_snapshot_actions(view.project))


@bp.post("/chat/messages/<int:message_id>/stop")
@login_required
def stop(message_id: int):
    message = access.owned_reply(db.session, user_id=current_user_id(), message_id=message_id)
    project_id = message.project_id
    chat.request_stop(db.session, user_id=current_user_id(), message_id=message_id, streams=reply_streams(),
                      settings=chat_settings())
    if request.headers.get("HX-Request"):
        return Response(status=204)  # the reply's stream ends it on the page
    target = url_for("chat.project", project_id=project_id) if project_id else url_for("chat.general")
    return redirect(f"{target}#message-{message_id}", code=303)

