"""Pages: the conversation list, a conversation, create and delete."""

from __future__ import annotations

from datetime import UTC, datetime

from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from conversations import actions
from conversations.actions import Refused
from conversations.assistants import (
    assistant_get,
    assistant_models,
    assistant_payload,
    assistant_registry,
    conversation_model_config,
)
from conversations.budgets import budget_status
from conversations.models import Conversation
from conversations.selectors import (
    conversation_empty_for_user,
    conversation_get_for_user,
    conversation_list_for_page,
    preferred_assistant_id,
)

CONVERSATION_DELETED = "Conversation deleted."
SEARCH_RESULTS_LIMIT = 50
NO_SUCH_CONVERSATION = "No such conversation."


@login_required
def conversation_list(request: HttpRequest) -> HttpResponse:
    """The user's conversations, newest first; with `?q=`, those holding every word of it.

    A search past the bounds gets the page with what to do instead of results (400)."""
    query = request.GET.get("q", "").strip()
    # `current`: the assistant picker starts on the user's default assistant (their settings).
    current = {"id": preferred_assistant_id(user=request.user)}
    context = {"assistants": _assistant_choices(), "query": query, "current": current}
    try:
        context["conversations"] = conversation_list_for_page(user=request.user, query=query)
    except Refused as refused:
        context.update(conversations=[], search_refused=refused.message)
        return render(request, "conversations/conversation_list.html", context, status=400)
    return render(request, "conversations/conversation_list.html", context)


@login_required
@require_POST
def conversation_new(request: HttpRequest) -> HttpResponse:
    """Open the user's empty conversation with the chosen assistant, or start one: a click on
    "New chat" never leaves another empty conversation behind."""
    chosen = request.POST.get("assistant", "")
    assistant_id = chosen if assistant_get(chosen) is not None else preferred_assistant_id(user=request.user)
    empty = conversation_empty_for_user(user=request.user, assistant_id=assistant_id)
    if empty is not None:
        return redirect("conversation_detail", conversation_id=empty.pk)
    try:
        conversation = async_to_sync(actions.create_conversation)(owner=request.user, assistant_id=assistant_id)
    except Refused as refused:
        messages.error(request, refused.message)
        return redirect("conversation_list")
    return redirect("conversation_detail", conversation_id=conversation.pk)


@login_required
def conversation_detail(request: HttpRequest, conversation_id: int) -> HttpResponse:
    """The chat page; its messages and live stream come over the WebSocket."""
    conversation = _own_conversation_or_404(request, conversation_id)
    assistant = assistant_get(conversation.assistant_id)
    model = conversation_model_config(conversation, assistant) if assistant is not None else settings.AGENT_MODEL
    chat_config = {
        "conversationId": conversation.pk,
        "wsPath": f"/ws/conversations/{conversation.pk}/",
        "modelName": model.display_name,
        "offline": model.uses_offline_model,
        "maxLength": settings.MESSAGE_MAX_LENGTH,
        "budgetLow": budget_status(user_id=request.user.pk, now=datetime.now(UTC))["low"],
    }
    context = {
        "conversation": conversation,
        "conversations": conversation_list_for_page(user=request.user, open_id=conversation.pk),
        "assistant": assistant,
        "assistants": _assistant_choices(),
        "model_name": model.display_name,
        "model_chosen": model.model,  # the header's select (shown when the assistant offers several)
        "models": assistant_models(assistant) if assistant is not None else [],
        "uses_offline_model": model.uses_offline_model,
        "chat_config": chat_config,
    }
    return render(request, "conversations/chat.html", context)


@login_required
@require_POST
def conversation_remove(request: HttpRequest, conversation_id: int) -> HttpResponse:
    """Delete one of the user's conversations, stopping its answer if one is being written."""
    conversation = _own_conversation_or_404(request, conversation_id)
    async_to_sync(actions.delete_conversation)(conversation=conversation)
    messages.success(request, CONVERSATION_DELETED)
    return redirect("conversation_list")


@login_required
def conversation_search_results(request: HttpRequest) -> JsonResponse:
    """The sidebar's search as the user types: `{"conversations": [{id, title, url}]}`, newest first;
    past the search bounds, 400 `{"error": {"code": "bad_request", "message": ...}}`, shown instead."""
    query = request.GET.get("q", "").strip()
    open_id = request.GET.get("open", "")
    try:
        conversations = conversation_list_for_page(
            user=request.user, query=query, open_id=int(open_id) if open_id.isdigit() and len(open_id) < 19 else None
        )
    except Refused as refused:
        return JsonResponse({"error": {"code": refused.code, "message": refused.message}}, status=400)
    found = [
        {"id": c.pk, "title": c.title or "New conversation", "url": reverse("conversation_detail", args=[c.pk])}
        for c in conversations[:SEARCH_RESULTS_LIMIT]
    ]
    return JsonResponse({"conversations": found})


def _assistant_choices() -> list[dict[str, str]]:
    """The assistants a new conversation may get, for the picker (shown when there is more than one)."""
    return [assistant_payload(a) for a in assistant_registry().values()]


def _own_conversation_or_404(request: HttpRequest, conversation_id: int) -> Conversation:
    """The user's conversation; anyone else's does not exist for them."""
    conversation = conversation_get_for_user(user=request.user, conversation_id=conversation_id)
    if conversation is None:
        raise Http404(NO_SUCH_CONVERSATION)
    return conversation
