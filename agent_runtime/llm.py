"""Build the chat model: ChatOpenAI when a key is configured, else the offline demo model.

Either way the model is returned with a configurable `callbacks` field, so that each
run gives its own QueueCallbackHandler (as in the streaming lesson).
"""

from __future__ import annotations

from dataclasses import dataclass

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import ConfigurableField, Runnable

from agent_runtime.offline_model import OFFLINE_MODEL_NAME, OfflineDemoModel

DEFAULT_OPENAI_MODEL = "gpt-4o-mini"


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


def build_chat_model(config: ModelConfig) -> Runnable:
    """The configured chat model with per-run callbacks as a configurable field."""
    return _base_model(config).configurable_fields(
        callbacks=ConfigurableField(
            id="callbacks",
            name="callbacks",
            description="The callbacks of one run (its QueueCallbackHandler).",
        )
    )


def _base_model(config: ModelConfig) -> BaseChatModel:
    if config.uses_offline_model:
        return OfflineDemoModel(tokens_per_second=config.offline_tokens_per_second)
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(
        model=config.model,
        api_key=config.api_key,
        base_url=config.base_url or None,
        streaming=True,
        stream_usage=True,
        timeout=config.request_timeout,
        max_retries=config.max_retries,
        temperature=0,
    )
