"""The deployment's assistants: the classes named in `AGENT_ASSISTANTS`, by id, the first the default."""

from __future__ import annotations

import dataclasses
from functools import cache
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from agent_runtime.assistants import Assistant
from agent_runtime.llm import ModelConfig

if TYPE_CHECKING:
    from conversations.models import Conversation

NOT_AN_ASSISTANT = "AGENT_ASSISTANTS names {path!r}, which is not an Assistant subclass with an id and a name."
DUPLICATE_ID = "AGENT_ASSISTANTS names two assistants with the id {id!r}."
NO_ASSISTANTS = "AGENT_ASSISTANTS names no assistant."
MODELS_MAX = 20
MODEL_NAME_MAX_LENGTH = 100  # Conversation.model's max_length
BAD_MODELS = (
    "Assistant {id!r}: `models` must be a list of 1 to {most} distinct model names, each a non-empty "
    "string of at most {length} characters; got {models!r}."
)
MODEL_NOT_IN_MODELS = (
    "Assistant {id!r} sets both `model` ({model!r}) and `models` ({models!r}): `model` must be one of "
    "`models` (or drop `model`: the first of `models` is the default)."
)


@cache
def _load(paths: tuple[str, ...]) -> dict[str, type[Assistant]]:
    if not paths:
        raise ImproperlyConfigured(NO_ASSISTANTS)
    found: dict[str, type[Assistant]] = {}
    for path in paths:
        assistant = import_string(path)
        if not (isinstance(assistant, type) and issubclass(assistant, Assistant) and assistant.id and assistant.name):
            raise ImproperlyConfigured(NOT_AN_ASSISTANT.format(path=path))
        if assistant.id in found:
            raise ImproperlyConfigured(DUPLICATE_ID.format(id=assistant.id))
        _models_check(assistant)
        found[assistant.id] = assistant
    return found


def _models_check(assistant: type[Assistant]) -> None:
    """Refuse (ImproperlyConfigured) an assistant's `models` that is not a short list of distinct
    names, or a `model` that is not one of its `models`."""
    models = assistant.models
    if isinstance(models, str) or not isinstance(models, (list, tuple)):
        models_ok = False
    elif not models and "models" not in vars(assistant):
        return  # never set: the assistant offers its `model` alone
    else:
        models_ok = (
            0 < len(models) <= MODELS_MAX
            and all(isinstance(m, str) and m.strip() and len(m) <= MODEL_NAME_MAX_LENGTH for m in models)
            and len(set(models)) == len(models)
        )
    if not models_ok:
        raise ImproperlyConfigured(
            BAD_MODELS.format(id=assistant.id, most=MODELS_MAX, length=MODEL_NAME_MAX_LENGTH, models=models)
        )
    if assistant.model and assistant.model not in models:
        raise ImproperlyConfigured(MODEL_NOT_IN_MODELS.format(id=assistant.id, model=assistant.model, models=models))


def assistant_registry() -> dict[str, type[Assistant]]:
    """The assistants of this deployment by id, in the order of `AGENT_ASSISTANTS`."""
    return _load(tuple(settings.AGENT_ASSISTANTS))


def assistant_get(assistant_id: str) -> type[Assistant] | None:
    """The assistant with this id, or None when the deployment no longer lists it."""
    return assistant_registry().get(assistant_id)


def assistant_default_id() -> str:
    """The id of the assistant a new conversation gets unless one is chosen."""
    return next(iter(assistant_registry()))


def assistant_models(assistant: type[Assistant]) -> list[str]:
    """The models the assistant offers, its default first: its `models`, else its `model` alone, else
    the deployment's model (`AGENT_MODEL`)."""
    if assistant.models:
        return list(assistant.models)
    config: ModelConfig = settings.AGENT_MODEL
    return [assistant.model or config.model]


def assistant_model_config(assistant: type[Assistant]) -> ModelConfig:
    """The deployment's model settings, with the assistant's default model (the first it offers)."""
    return _with_model(assistant_models(assistant)[0])


def conversation_model(conversation: Conversation, assistant: type[Assistant]) -> str:
    """The model that answers in the conversation: the one its owner chose (`Conversation.model`) while
    the assistant still offers it, else the assistant's default. A choice the deployment has since
    dropped from the assistant's `models` falls back so, without an error; it stays stored, and
    answers with it again if the model is offered again."""
    offered = assistant_models(assistant)
    return conversation.model if conversation.model in offered else offered[0]


def conversation_model_shown(conversation: Conversation) -> str:
    """The conversation's model as pages and the API show it: `conversation_model`, or, when the
    deployment no longer lists its assistant, the stored choice (maybe blank)."""
    assistant = assistant_get(conversation.assistant_id)
    return conversation_model(conversation, assistant) if assistant is not None else conversation.model


def conversation_model_config(conversation: Conversation, assistant: type[Assistant]) -> ModelConfig:
    """The deployment's model settings with the conversation's model (`conversation_model`): what a run
    of the conversation is answered by."""
    return _with_model(conversation_model(conversation, assistant))


def _with_model(model: str) -> ModelConfig:
    config: ModelConfig = settings.AGENT_MODEL
    return config if model == config.model else dataclasses.replace(config, model=model)


def assistant_payload(assistant: type[Assistant]) -> dict[str, Any]:
    """An assistant as the page and the API show it."""
    return {
        "id": assistant.id,
        "name": assistant.name,
        "description": assistant.description,
        "model": assistant_model_config(assistant).display_name,
        "models": assistant_models(assistant),
    }


def assistants_warm_up() -> dict[str, float]:
    """Build each offered assistant's model and rehearse a run of it offline (see
    `agent_runtime.warmup`); seconds per assistant id. MCP servers are not contacted."""
    from agent_runtime.warmup import warm_up_model

    took: dict[str, float] = {}
    for assistant_id, assistant in assistant_registry().items():
        tools = assistant(user=None).local_tools()
        took[assistant_id] = warm_up_model(assistant_model_config(assistant), tools, assistant.system_prompt())
    return took
