"""Pages: sign-up, the conversation list, a conversation, create and delete."""

from __future__ import annotations

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import UserCreationForm
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from conversations import protocol, runs
from conversations.models import Conversation
from conversations.selectors import conversation_get_for_user, conversation_list_for_user
from conversations.services import conversation_create, conversation_delete

CONVERSATION_DELETED = "Conversation deleted."
NO_SUCH_CONVERSATION = "No such conversation."


def signup(request: HttpRequest) -> HttpResponse:
    """Create an account and log in."""
    if request.user.is_authenticated:
        return redirect("conversation_list")
    form = UserCreationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect("conversation_list")
    return render(request, "registration/signup.html", {"form": form})


@login_required
def conversation_list(request: HttpRequest) -> HttpResponse:
    """The user's conversations, newest first."""
    conversations = conversation_list_for_user(user=request.user)
    return render(request, "conversations/conversation_list.html", {"conversations": conversations})


@login_required
@require_POST
def conversation_new(request: HttpRequest) -> HttpResponse:
    """Start an empty conversation and open it."""
    conversation = conversation_create(owner=request.user)
    return redirect("conversation_detail", conversation_id=conversation.pk)


@login_required
def conversation_detail(request: HttpRequest, conversation_id: int) -> HttpResponse:
    """The chat page; its messages and live stream come over the WebSocket."""
    conversation = _own_conversation_or_404(request, conversation_id)
    model = settings.AGENT_MODEL
    chat_config = {
        "conversationId": conversation.pk,
        "wsPath": f"/ws/conversations/{conversation.pk}/",
        "modelName": model.display_name,
        "offline": model.uses_offline_model,
        "maxLength": settings.MESSAGE_MAX_LENGTH,
    }
    context = {
        "conversation": conversation,
        "conversations": conversation_list_for_user(user=request.user),
        "model_name": model.display_name,
        "uses_offline_model": model.uses_offline_model,
        "chat_config": chat_config,
    }
    return render(request, "conversations/chat.html", context)


@login_required
@require_POST
def conversation_remove(request: HttpRequest, conversation_id: int) -> HttpResponse:
    """Delete one of the user's conversations, stopping its answer if one is being written."""
    conversation = _own_conversation_or_404(request, conversation_id)
    runs.run_stop_threadsafe(conversation_id)
    conversation_delete(conversation=conversation)
    group_send = async_to_sync(get_channel_layer().group_send)
    group_send(protocol.group_name(conversation_id), protocol.conversation_deleted_message())
    messages.success(request, CONVERSATION_DELETED)
    return redirect("conversation_list")


def _own_conversation_or_404(request: HttpRequest, conversation_id: int) -> Conversation:
    """The user's conversation; anyone else's does not exist for them."""
    conversation = conversation_get_for_user(user=request.user, conversation_id=conversation_id)
    if conversation is None:
        raise Http404(NO_SUCH_CONVERSATION)
    return conversation
