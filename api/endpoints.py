"""The HTTP API (`/api/`): conversations as JSON, runs as server-sent events, OpenAPI at `/api/schema`.

A thin adapter like the WebSocket consumer: same ownership rules, and every change goes through the
same actions (`conversations.actions`, `conversations.sending`), so the same codes and texts, and
the same run the open tabs watch live; `api.errors.STATUS_BY_REFUSAL` maps a refusal to its status.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Annotated, Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from ninja import Header, Query, Status

from api.auth import ScopedApi, scoped
from api.errors import (
    BAD_TITLE_BODY,
    DUPLICATE,
    DUPLICATE_CODE,
    NOT_FOUND,
    ApiError,
    install_error_handlers,
    refused_error,
)
from api.models import Scope
from api.schemas import (
    ApprovalIn,
    ApprovalOut,
    AssistantOut,
    BranchIn,
    ConversationDetailOut,
    ConversationIn,
    ConversationOut,
    ConversationPatchIn,
    ErrorOut,
    FeedbackIn,
    FeedbackOut,
    MeOut,
    MessageIn,
    RegenerateIn,
)
from api.sse import MEDIA_TYPE, event_stream_response
from conversations import actions, approvals
from conversations.actions import NO_SUCH_MESSAGE, Refused
from conversations.assistants import assistant_payload, assistant_registry, conversation_model_shown
from conversations.budgets import budget_status
from conversations.export import (
    EXPORT_FORMATS,
    conversation_export_data,
    conversation_export_filename,
    conversation_export_markdown,
)
from conversations.follow import EventId, follow_conversation, follow_run
from conversations.models import Conversation, Message
from conversations.selectors import (
    conversation_get_for_user,
    conversation_list_recent,
    message_get_for_user,
    message_list,
    message_payload,
)
from conversations.sending import (
    SendOutcome,
    choose_version,
    edit_question,
    regenerate_answer,
    send_message,
)
from conversations.watchdog import ensure_watchdog

DESCRIPTION = """\
The chat product over HTTP. Authenticate with a personal token (`Authorization: Bearer <token>`,
created at `/account/tokens/`) or, from the browser, with the session cookie plus `X-CSRFToken`.
A token has scopes, `read`, `send` and `approve`: each operation needs one (its `security` names
it), and a token without it is refused with 403 `insufficient_scope`.

Runs stream as server-sent events (`text/event-stream`): one SSE event per run event of the
protocol (`docs/protocol.md`), `event: <type>`, `id: <run_id>:<seq>`, `data: <the event JSON>`,
ending after `done`. Errors are JSON: `{"error": {"code": "...", "message": "..."}}`.
"""
CONVERSATION_LIST_LIMIT = 100
BAD_CONVERSATION_BODY = 'The body, when given, must be a JSON object: {"assistant": "...", "model": "..."}.'
BAD_EXPORT_FORMAT = "Unknown export format {export_format!r}: use format=md or format=json."
BAD_FEEDBACK_BODY = 'The body must be a JSON object: {"rating": 1 or -1, "comment": "..."}.'
EXPORT_CONTENT_TYPES = {"md": "text/markdown; charset=utf-8", "json": "application/json"}
SSE_EXAMPLE = (
    "event: run_started\nid: 3f2a…:1\n"
    'data: {"type":"run_started","run_id":"3f2a…","seq":1,"model":"offline-demo","user_message":{...}}\n\n'
    'event: token\nid: 3f2a…:7\ndata: {"type":"token","run_id":"3f2a…","seq":7,"text":"10 + 10 = 20."}\n\n'
    ": keep-alive\n\n"
    'event: done\nid: 3f2a…:10\ndata: {"type":"done","run_id":"3f2a…","seq":10,"status":"completed"}\n\n'
)


def sse_openapi(description: str) -> dict[str, Any]:
    """The OpenAPI of a 200 answered as server-sent events."""
    content = {MEDIA_TYPE: {"schema": {"type": "string", "format": "event-stream"}, "example": SSE_EXAMPLE}}
    return {"responses": {200: {"description": description, "content": content}}}


api = ScopedApi(
    title="Agent Chat API",
    version="1",
    description=DESCRIPTION,
    auth=scoped(None),  # a route that declares no scope is closed to tokens
    openapi_url="/schema",
    docs_url=None,
    urls_namespace="api",
)
install_error_handlers(api)


def _user(request: HttpRequest) -> AbstractBaseUser:
    return request.auth  # type: ignore[attr-defined]


async def _owned_conversation(request: HttpRequest, conversation_id: int) -> Conversation:
    """The caller's conversation; anyone else's does not exist for them (404)."""
    conversation = await database_sync_to_async(conversation_get_for_user)(
        user=_user(request), conversation_id=conversation_id
    )
    if conversation is None:
        raise ApiError(404, actions.NOT_FOUND, NOT_FOUND)
    return conversation


def _conversation_out(conversation: Conversation) -> dict[str, Any]:
    return {
        "id": conversation.pk,
        "title": conversation.title,
        "assistant": conversation.assistant_id,
        "model": conversation_model_shown(conversation),
        "created": conversation.created,
    }


@api.get(
    "/assistants",
    response={200: list[AssistantOut], (401, 403): ErrorOut},
    tags=["assistants"],
    operation_id="listAssistants",
    auth=scoped(Scope.READ),
)
async def assistants_list(request: HttpRequest) -> list[dict[str, Any]]:
    """The assistants a conversation may have, the default (for a conversation created without one) first."""
    return [assistant_payload(a) for a in assistant_registry().values()]


@api.get(
    "/me",
    response={200: MeOut, (401, 403): ErrorOut},
    tags=["account"],
    operation_id="getMe",
    auth=scoped(Scope.READ),
)
async def me(request: HttpRequest) -> dict[str, Any]:
    """The caller, and their token budget: used, left and when it renews, per day and per month (UTC).
    A send past it is refused with 429 `quota_exceeded` and `Retry-After`."""
    user = _user(request)
    budget = await database_sync_to_async(budget_status)(user_id=user.pk, now=datetime.now(UTC))
    return {"id": user.pk, "username": user.get_username(), "email": user.email, "budget": budget}


@api.get(
    "/conversations/",
    response={200: list[ConversationOut], (400, 401, 403): ErrorOut},
    tags=["conversations"],
    operation_id="listConversations",
    auth=scoped(Scope.READ),
)
async def conversations_list(
    request: HttpRequest,
    q: Annotated[
        str, Query(description="Words that the title or a message must all hold (any case); 12 at most by default.")
    ] = "",
) -> list[dict[str, Any]]:
    """The caller's conversations, most recently updated first (at most 100); with `q`, those whose
    title or messages hold every word of it. Refused with 400 `bad_request` for a `q` of more than
    `SEARCH_MAX_WORDS` words or `SEARCH_MAX_CHARS` characters (by default 12 and 200)."""
    try:
        conversations = await database_sync_to_async(conversation_list_recent)(
            user=_user(request), limit=CONVERSATION_LIST_LIMIT, query=q
        )
    except Refused as refused:
        raise refused_error(refused) from None
    return [_conversation_out(c) for c in conversations]


@api.post(
    "/conversations/",
    response={201: ConversationOut, (400, 401, 403, 429): ErrorOut},
    tags=["conversations"],
    operation_id="createConversation",
    auth=scoped(Scope.SEND),
    openapi_extra={
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": ConversationIn.model_json_schema()}},
        }
    },
)
async def conversations_create(request: HttpRequest) -> Status:
    """Create an empty conversation answered by `assistant` (default: the first listed) with `model`
    (one of the assistant's `models`; default: its first); the body (`{"assistant": "...", "model":
    "..."}`) may be omitted.

    Refused with 400 `bad_request` for an unknown assistant, 400 `model_unavailable` for a model the
    assistant does not offer, 429 `rate_limited` past `RATE_LIMIT_CONVERSATIONS_PER_HOUR`.
    """
    chosen = _chosen_assistant(request)
    try:
        conversation = await actions.create_conversation(
            owner=_user(request), assistant_id=chosen.assistant, model=chosen.model
        )
    except Refused as refused:
        raise refused_error(refused) from None
    return Status(201, _conversation_out(conversation))


@api.get(
    "/conversations/{int:conversation_id}",
    response={200: ConversationDetailOut, (401, 403, 404): ErrorOut},
    tags=["conversations"],
    operation_id="getConversation",
    auth=scoped(Scope.READ),
)
async def conversations_detail(request: HttpRequest, conversation_id: int) -> dict[str, Any]:
    """The conversation's stored messages, oldest first, with the tool steps of each answer."""
    conversation = await _owned_conversation(request, conversation_id)
    messages = await database_sync_to_async(message_list)(conversation=conversation)
    return {**_conversation_out(conversation), "messages": [message_payload(m) for m in messages]}


@api.patch(
    "/conversations/{int:conversation_id}",
    response={200: ConversationOut, (400, 401, 403, 404): ErrorOut},
    tags=["conversations"],
    operation_id="renameConversation",
    auth=scoped(Scope.SEND),
)
async def conversations_rename(request: HttpRequest, conversation_id: int, payload: ConversationPatchIn) -> dict:
    """Rename the conversation (`{"title": "..."}`, trimmed, 1 to 200 characters); automatic titles
    leave it alone from then on. And/or choose the model of its next answers (`{"model": "..."}`, one
    of its assistant's `models`; an answer being written goes on with its own); every open tab shows
    the change. Refused with 400 `bad_request` for a blank, too long or unstorable title, or a body
    with neither, 400 `model_unavailable` for a model the assistant does not offer (then nothing
    changes)."""
    if payload.title is None and payload.model is None:
        raise ApiError(400, actions.BAD_REQUEST, BAD_TITLE_BODY)
    conversation = await _owned_conversation(request, conversation_id)
    try:
        if payload.model is not None:
            actions.model_check(assistant_id=conversation.assistant_id, model=payload.model)
        if payload.title is not None:
            conversation = await actions.rename_conversation(conversation=conversation, title=payload.title)
        if payload.model is not None:
            conversation = await actions.choose_model(conversation=conversation, model=payload.model)
    except Refused as refused:
        raise refused_error(refused) from None
    return _conversation_out(conversation)


@api.delete(
    "/conversations/{int:conversation_id}",
    response={204: None, (401, 403, 404): ErrorOut},
    tags=["conversations"],
    operation_id="deleteConversation",
    auth=scoped(Scope.SEND),
)
async def conversations_delete(request: HttpRequest, conversation_id: int) -> Status:
    """Delete the conversation with all its messages, versions, feedback and approvals, as the page's
    Delete does: an answer being written is stopped first (on any process) and its open tabs close
    (4404). 204 with no body; 404 for a conversation that is not yours (or gone already)."""
    conversation = await _owned_conversation(request, conversation_id)
    await actions.delete_conversation(conversation=conversation)
    return Status(204, None)


@api.get(
    "/conversations/{int:conversation_id}/export",
    response={200: None, (400, 401, 403, 404): ErrorOut},
    tags=["conversations"],
    operation_id="exportConversation",
    auth=scoped(Scope.READ),
    openapi_extra={
        "responses": {
            200: {
                "description": "A download (`Content-Disposition: attachment`): Markdown or JSON.",
                "content": {"text/markdown": {"schema": {"type": "string"}}, "application/json": {"schema": {}}},
            }
        }
    },
)
async def conversations_export(
    request: HttpRequest,
    conversation_id: int,
    export_format: Annotated[str, Query(alias="format", description="md or json")] = "md",
) -> HttpResponse:
    """The conversation as a file: `format=md` (readable) or `format=json` (every stored field of its
    messages, with tool steps and usage). 400 `bad_request` for another format."""
    if export_format not in EXPORT_FORMATS:
        raise ApiError(400, actions.BAD_REQUEST, BAD_EXPORT_FORMAT.format(export_format=export_format))
    conversation = await _owned_conversation(request, conversation_id)
    if export_format == "json":
        data = await database_sync_to_async(conversation_export_data)(conversation=conversation)
        response: HttpResponse = JsonResponse(data, json_dumps_params={"indent": 2, "ensure_ascii": False})
    else:
        text = await database_sync_to_async(conversation_export_markdown)(conversation=conversation)
        response = HttpResponse(text, content_type=EXPORT_CONTENT_TYPES["md"])
    filename = conversation_export_filename(conversation=conversation, export_format=export_format)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@api.post(
    "/conversations/{int:conversation_id}/messages",
    response={200: None, (400, 401, 403, 404, 409, 413, 429): ErrorOut},
    tags=["runs"],
    operation_id="sendMessage",
    auth=scoped(Scope.SEND),
    openapi_extra=sse_openapi(
        "The run answering the message, as server-sent events, from `run_started` to `done`. "
        "A resend of a `client_id` whose answer is still being written follows that run."
    ),
)
async def messages_send(request: HttpRequest, conversation_id: int, payload: MessageIn) -> StreamingHttpResponse:
    """Send a message and stream the run that answers it.

    Refused with 400 `bad_request`, 413 `too_long`, 409 `busy` (an answer is being written),
    409 `duplicate` (this `client_id` was sent and answered already) or 429 `rate_limited`.
    """
    conversation = await _owned_conversation(request, conversation_id)
    send = send_message(conversation=conversation, content=payload.content, client_id=payload.client_id)
    return _follow_outcome(conversation, await _started(send))


@api.get(
    "/conversations/{int:conversation_id}/stream",
    response={200: None, (401, 403, 404): ErrorOut},
    tags=["runs"],
    operation_id="streamConversation",
    auth=scoped(Scope.READ),
    openapi_extra=sse_openapi(
        "One run as server-sent events, ending after its `done`: the run streaming now (from its first "
        "event), or else the next one to start (`: keep-alive` comments meanwhile). With `Last-Event-ID` "
        "of a run not yet sent in full: that run's events after it."
    ),
)
async def conversations_stream(
    request: HttpRequest,
    conversation_id: int,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", description="`<run_id>:<seq>`")] = None,
) -> StreamingHttpResponse:
    """Follow the conversation's run (what the tabs see), resuming after `Last-Event-ID` if given."""
    conversation = await _owned_conversation(request, conversation_id)
    ensure_watchdog()
    events = follow_conversation(
        conversation, last_event_id=EventId.parse(last_event_id), keepalive_seconds=_keepalive()
    )
    return event_stream_response(events)


@api.post(
    "/conversations/{int:conversation_id}/regenerate",
    response={200: None, (400, 401, 403, 404, 409, 429): ErrorOut},
    tags=["runs"],
    operation_id="regenerateAnswer",
    auth=scoped(Scope.SEND),
    openapi_extra=sse_openapi(
        "The run answering the last question of the branch on screen again, as server-sent events. "
        "A resend of a `client_id` whose answer is still being written follows that run."
    ),
)
async def answers_regenerate(
    request: HttpRequest, conversation_id: int, payload: RegenerateIn
) -> StreamingHttpResponse:
    """Answer the last question again (after any outcome); the earlier answers are kept as versions and
    the open tabs show the new one. Like the socket's `regenerate` frame.

    Refused with 400 `bad_request` (a bad `client_id`, or no question yet), 409 `busy`, 409 `duplicate`
    (this `client_id` was used and answered already) or 429 `rate_limited`.
    """
    conversation = await _owned_conversation(request, conversation_id)
    outcome = await _started(regenerate_answer(conversation=conversation, client_id=payload.client_id))
    return _follow_outcome(conversation, outcome)


@api.post(
    "/messages/{int:message_id}/edit",
    response={200: None, (400, 401, 403, 404, 409, 413, 429): ErrorOut},
    tags=["runs"],
    operation_id="editMessage",
    auth=scoped(Scope.SEND),
    openapi_extra=sse_openapi("The run answering the new version of the question, as server-sent events."),
)
async def messages_edit(request: HttpRequest, message_id: int, payload: MessageIn) -> StreamingHttpResponse:
    """Send a new version of one of your questions: a new branch from there, the earlier one kept.
    The open tabs show the new branch. Like the socket's `edit` frame.

    404 when the message is not in one of your conversations; 400 `bad_request` when it is not a
    question; otherwise refused as sending is.
    """
    message = await database_sync_to_async(message_get_for_user)(user=_user(request), message_id=message_id)
    if message is None:
        raise ApiError(404, actions.NOT_FOUND, NO_SUCH_MESSAGE)
    conversation = await _owned_conversation(request, message.conversation_id)
    edit = edit_question(
        conversation=conversation, message_id=message.pk, content=payload.content, client_id=payload.client_id
    )
    return _follow_outcome(conversation, await _started(edit))


@api.post(
    "/conversations/{int:conversation_id}/branch",
    response={200: ConversationDetailOut, (400, 401, 403, 404, 409): ErrorOut},
    tags=["conversations"],
    operation_id="chooseVersion",
    auth=scoped(Scope.SEND),
)
async def conversations_branch(request: HttpRequest, conversation_id: int, payload: BranchIn) -> dict[str, Any]:
    """Show the version `message_id` (and below it, the newest versions) in every open tab; answers
    the conversation as `GET` does, with the branch now on screen. 409 `busy` while an answer is
    being written; 400 `bad_request` for a message not in this conversation."""
    conversation = await _owned_conversation(request, conversation_id)
    try:
        await choose_version(conversation=conversation, message_id=payload.message_id)
    except Refused as refused:
        raise refused_error(refused) from None
    messages = await database_sync_to_async(message_list)(conversation=conversation)
    return {**_conversation_out(conversation), "messages": [message_payload(m) for m in messages]}


def _follow_outcome(conversation: Conversation, outcome: SendOutcome) -> StreamingHttpResponse:
    if outcome.run is not None:
        return event_stream_response(follow_run(conversation, outcome.run.run_id, keepalive_seconds=_keepalive()))
    return _follow_resent(conversation, outcome.resent_answer)


async def _started(send: Coroutine[Any, Any, SendOutcome]) -> SendOutcome:
    """Start a run (send, edit, regenerate) so that a client hanging up cannot stop it half-way."""
    ensure_watchdog()
    try:
        # Shielded, in a context of its own: a client hanging up now does not interrupt the start
        # half-way, and its database calls do not depend on this request's thread living on.
        return await asyncio.shield(asyncio.create_task(send, context=contextvars.Context()))
    except Refused as refused:
        raise refused_error(refused) from None


def _follow_resent(conversation: Conversation, answer: Message | None) -> StreamingHttpResponse:
    """A resend: follow its answer's run while it is written; once written, 409 `duplicate`."""
    if answer is not None and answer.status == Message.Status.GENERATING and answer.run_id:
        return event_stream_response(follow_run(conversation, answer.run_id, keepalive_seconds=_keepalive()))
    raise ApiError(409, DUPLICATE_CODE, DUPLICATE.format(conversation_id=conversation.pk))


@api.post(
    "/approvals/{approval_id}",
    response={200: ApprovalOut, (400, 401, 403, 404, 409): ErrorOut},
    tags=["runs"],
    operation_id="decideApproval",
    auth=scoped(Scope.APPROVE),
)
async def approvals_decide(request: HttpRequest, approval_id: str, payload: ApprovalIn) -> dict[str, Any]:
    """Approve or deny a tool call waiting in one of your runs (the `approval_id` of its `approval_requested`).

    The first decision counts, from any tab, process or client: a later one is 409 `already_decided`.
    """
    decide = actions.decide_approval(user=_user(request), approval_id=approval_id, decision=payload.decision)
    try:
        approval = await decide
    except Refused as refused:
        raise refused_error(refused) from None
    return approvals.approval_payload(approval)


@api.post(
    "/messages/{int:message_id}/feedback",
    response={200: FeedbackOut, (400, 401, 403, 404, 409): ErrorOut},
    tags=["conversations"],
    operation_id="setFeedback",
    auth=scoped(Scope.SEND),
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": FeedbackIn.model_json_schema()}}}
    },
)
async def feedback_send(request: HttpRequest, message_id: int) -> dict[str, Any]:
    """Rate one of your answers: thumbs up (`1`) or down (`-1`), with an optional comment (at most
    2,000 characters). Sending again replaces the earlier rating and comment.

    Refused with 400 `bad_request` (a bad rating or comment, or a message that is not an answer),
    404 when the message is not in one of your conversations, 409 `busy` while the answer is being written.
    """
    body = _feedback_body(request)
    rate = actions.rate_answer(
        user=_user(request), message_id=message_id, rating=body.get("rating"), comment=body.get("comment")
    )
    try:
        message, payload = await rate
    except Refused as refused:
        raise refused_error(refused) from None
    return {"message_id": message.pk, **payload}


def _feedback_body(request: HttpRequest) -> dict[str, Any]:
    try:
        body = json.loads(request.body)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ApiError(400, actions.BAD_REQUEST, BAD_FEEDBACK_BODY)
    return body


def _chosen_assistant(request: HttpRequest) -> ConversationIn:
    """The `assistant` and `model` of an optional JSON body."""
    if request.content_type != "application/json" or not request.body.strip():
        return ConversationIn()
    try:
        return ConversationIn.model_validate_json(request.body)
    except ValueError:
        raise ApiError(400, actions.BAD_REQUEST, BAD_CONVERSATION_BODY) from None


def _keepalive() -> float:
    return settings.API_SSE_KEEPALIVE_SECONDS
