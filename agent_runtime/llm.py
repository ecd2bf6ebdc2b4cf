"""Build the chat model: ChatOpenAI when a key is configured, else the offline demo model.

Either way the model is returned with a configurable `callbacks` field, so that each
run gives its own QueueCallbackHandler (as in the streaming lesson).

A model is built once per `ModelConfig` and process, and shared by every run: a run's
callbacks travel with the run (`AgentRun` gives them through its call's config), never on the
shared instance, so two runs at once each see only their own tokens. Building it anew per run
cost a `ChatOpenAI` and two `openai` clients each time.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import ConfigurableField, Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool

from agent_runtime import stages
from agent_runtime.offline_model import OFFLINE_MODEL_NAME, OfflineDemoModel

DEFAULT_OPENAI_MODEL = "gpt-4o-mini"
MODEL_CACHE_SIZE = 32
SCHEMA_CACHE_SIZE = 1024


@dataclass(frozen=True)
class ModelConfig:
    """Where the model comes from; built from settings by the caller."""

    api_key: str = ""
    base_url: str = ""
    model: str = DEFAULT_OPENAI_MODEL
    request_timeout: float = 60.0
    max_retries: int = 2
    offline_tokens_per_second: float = 30.0

    @property
    def uses_offline_model(self) -> bool:
        """Whether no key is set and the offline demo model answers."""
        return not self.api_key

    @property
    def display_name(self) -> str:
        """The model's name as the page shows it."""
        return OFFLINE_MODEL_NAME if self.uses_offline_model else self.model


@functools.lru_cache(maxsize=MODEL_CACHE_SIZE)
def build_chat_model(config: ModelConfig) -> Runnable:
    """The configured chat model with per-run callbacks as a configurable field; one per config and
    process (cached: the same object for an equal config)."""
    return _base_model(config).configurable_fields(
        callbacks=ConfigurableField(
            id="callbacks",
            name="callbacks",
            description="The callbacks of one run (its QueueCallbackHandler).",
        )
    )


def shared_model(llm: Runnable) -> BaseChatModel | None:
    """The one chat model behind `build_chat_model`'s runnable (None for any other runnable)."""
    default = getattr(llm, "default", None)
    return default if isinstance(default, BaseChatModel) and hasattr(llm, "fields") else None


_schemas: dict[tuple[Any, ...], str] = {}


def _schema_key(tool: BaseTool) -> tuple[Any, ...]:
    schema = tool.args_schema
    shape = schema if isinstance(schema, type) else json.dumps(schema, sort_keys=True, default=str)
    return (type(tool), tool.name, tool.description, shape, json.dumps(tool.extras or {}, sort_keys=True, default=str))


def tool_schemas(tools: Sequence[BaseTool]) -> list[dict[str, Any]]:
    """The tools as the model is sent them (OpenAI function format), each converted once per process
    (keyed by its class, name, description and argument schema). Every call gets its own copies,
    made from the JSON kept per tool (a tenth of `copy.deepcopy`'s cost)."""
    converted = []
    for tool in tools:
        key = _schema_key(tool)
        schema = _schemas.get(key)
        if schema is None:
            if len(_schemas) >= SCHEMA_CACHE_SIZE:
                _schemas.clear()
            schema = _schemas[key] = json.dumps(convert_to_openai_tool(tool))
        converted.append(json.loads(schema))
    return converted


def _base_model(config: ModelConfig) -> BaseChatModel:
    if config.uses_offline_model:
        return OfflineDemoModel(tokens_per_second=config.offline_tokens_per_second)
    return chat_openai(config)


def chat_openai(config: ModelConfig, *, http_async_client: Any = None) -> BaseChatModel:
    """A ChatOpenAI for the config, streaming, whose requests skip the `openai` client's body transform."""
    from langchain_openai import ChatOpenAI

    model = ChatOpenAI(
        model=config.model,
        api_key=config.api_key,
        base_url=config.base_url or None,
        streaming=True,
        stream_usage=True,
        timeout=config.request_timeout,
        max_retries=config.max_retries,
        temperature=0,
        http_async_client=http_async_client,
    )
    model.async_client = PlainBodyCompletions(model.async_client)
    return model


class PlainBodyCompletions:
    """The `openai` client's async `chat.completions`, sending the request body as LangChain built it.

    The client's `create` first walks the whole request through its typed-dict transform (renaming
    keys by annotations, formatting dates and files, none of which a chat request built by
    LangChain holds): with a realistic history and a few tools that walk was ~5-10 ms of CPU per
    request, before anything was sent. Here the body goes as `extra_body`, which the client sends
    as given; everything else (retries, timeouts, streaming, errors) is the client's own.
    """

    _OPTIONS = ("extra_headers", "extra_query", "timeout")

    def __init__(self, completions: Any) -> None:
        self._completions = completions

    async def create(self, **params: Any) -> Any:
        """`chat.completions.create(**params)`, without the client's pass over the body."""
        stages.stamp("request")
        options = {name: params.pop(name) for name in self._OPTIONS if name in params}
        extra_body = params.pop("extra_body", None) or {}
        body = {**params, **extra_body}
        return await self._completions.create(
            model=params["model"], messages=[], stream=params.get("stream", False), extra_body=body, **options
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self._completions, name)
