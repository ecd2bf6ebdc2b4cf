"""The deployment's assistants: the classes named in `AGENT_ASSISTANTS`, by id, the first the default."""

from __future__ import annotations

import dataclasses
from functools import cache
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from agent_runtime.assistants import Assistant
from agent_runtime.llm import ModelConfig

NOT_AN_ASSISTANT = "AGENT_ASSISTANTS names {path!r}, which is not an Assistant subclass with an id and a name."
DUPLICATE_ID = "AGENT_ASSISTANTS names two assistants with the id {id!r}."
NO_ASSISTANTS = "AGENT_ASSISTANTS names no assistant."


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
        found[assistant.id] = assistant
    return found


def assistant_registry() -> dict[str, type[Assistant]]:
    """The assistants of this deployment by id, in the order of `AGENT_ASSISTANTS`."""
    return _load(tuple(settings.AGENT_ASSISTANTS))


def assistant_get(assistant_id: str) -> type[Assistant] | None:
    """The assistant with this id, or None when the deployment no longer lists it."""
    return assistant_registry().get(assistant_id)


def assistant_default_id() -> str:
    """The id of the assistant a new conversation gets unless one is chosen."""
    return next(iter(assistant_registry()))


def assistant_model_config(assistant: type[Assistant]) -> ModelConfig:
    """The deployment's model settings, with the assistant's own model name when it has one."""
    config: ModelConfig = settings.AGENT_MODEL
    return dataclasses.replace(config, model=assistant.model) if assistant.model else config


def assistant_payload(assistant: type[Assistant]) -> dict[str, Any]:
    """An assistant as the page and the API show it."""
    return {
        "id": assistant.id,
        "name": assistant.name,
        "description": assistant.description,
        "model": assistant_model_config(assistant).display_name,
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
