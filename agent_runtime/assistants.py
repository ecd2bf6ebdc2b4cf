"""Assistants: the deploying team's own agents — instructions, a model, and tools written as methods.

```python
from agent_runtime.assistants import Assistant, tool

class Helpdesk(Assistant):
    id = "helpdesk"
    name = "Helpdesk"
    instructions = "You answer questions about the user's orders."
    model = "gpt-4o-mini"                 # optional
    models = ["gpt-4o-mini", "gpt-4o"]    # optional: the owner picks per conversation, the first the default

    @tool
    def my_orders(self, status: str = "open") -> str:
        \"""List the asking user's orders with the given status.\"""
        return ...                          # self.user asked; self.conversation_id too
```

A tool's arguments come from its signature (validated by pydantic); its docstring is what the
model reads. The model fills in the arguments only: `self.user` is set by the product, never by
the model. A sync tool runs in a worker thread (through the `run_sync` the product gives: for
Django, a pool of tool threads of its own, never the ORM's shared thread; see `tool_threads`); an
async tool is awaited.
This module knows nothing of Django: the user is an opaque object it carries.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from langchain_core.tools import BaseTool, StructuredTool, create_schema_from_function

from agent_runtime.tools import TOOLS_BY_NAME, add, exponentiate, multiply, subtract

logger = logging.getLogger(__name__)

TOOL_PROTOCOL = (
    "When answering the user's question you should first use one of the tools provided. After using a "
    "tool the tool output will be provided back to you. When you have all the information you need, you "
    "MUST use the final_answer tool to provide a final answer to the user. Use tools to answer the "
    "user's CURRENT question, not previous questions."
)

SyncRunner = Callable[[Callable[..., Any]], Callable[..., Awaitable[Any]]]
"""Turns a sync callable into an awaitable one that runs it in a worker thread."""

ApprovalRule = bool | Callable[[Any, dict[str, Any]], bool]
"""`True` (always ask), `False` (never), or `rule(assistant, args) -> bool` deciding per call."""

_method_schemas: dict[tuple[type, str], Any] = {}
"""The argument schema of each assistant class's `@tool` method (the same for every instance)."""


@dataclass(frozen=True)
class ToolOptions:
    """How a method marked with `@tool` is offered to the model."""

    approval: ApprovalRule = False


def tool(function: Callable[..., Any] | None = None, *, approval: ApprovalRule = False) -> Any:
    """Mark an assistant's method as a tool: `@tool` or `@tool(approval=True)`."""

    def mark(method: Callable[..., Any]) -> Callable[..., Any]:
        method.__assistant_tool__ = ToolOptions(approval=approval)  # type: ignore[attr-defined]
        return method

    return mark(function) if function is not None else mark


def _thread_runner(function: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    async def run(**kwargs: Any) -> Any:
        return await asyncio.to_thread(function, **kwargs)

    return run


class Assistant:
    """Subclass it, set the class attributes, and mark methods with `@tool`."""

    id: ClassVar[str] = ""
    """Stable key, stored on each conversation."""
    name: ClassVar[str] = ""
    """Shown in the page."""
    description: ClassVar[str] = ""
    """One line for the picker and `GET /api/assistants`."""
    instructions: ClassVar[str] = ""
    """What the model is told first, before the history."""
    model: ClassVar[str | None] = None
    """The model's name; None: the deployment's default model (or the first of `models`)."""
    models: ClassVar[Sequence[str]] = ()
    """The models a conversation's owner may choose among, the first the default; empty: just `model`.
    With both set, `model` must be one of them (checked when the deployment loads its assistants)."""
    examples: ClassVar[Sequence[tuple[str, str]]] = ()
    """(prompt, hint) pairs the page offers in an empty conversation."""
    base_tools: ClassVar[Sequence[BaseTool]] = ()
    """Ready-made LangChain tools offered as they are (besides the `@tool` methods)."""
    mcp_servers: ClassVar[dict[str, dict[str, Any]]] = {}
    """MCP servers in langchain-mcp-adapters' connection format; their tools join the assistant's."""
    do_not_call_in_templates: ClassVar[bool] = True
    """Templates show the class's attributes; they must not try to instantiate it."""

    def __init__(self, *, user: Any, conversation_id: int | None = None, run_sync: SyncRunner | None = None) -> None:
        self.user = user
        self.conversation_id = conversation_id
        self._run_sync = run_sync or _thread_runner

    @classmethod
    def tool_methods(cls) -> dict[str, ToolOptions]:
        """The names of the methods marked `@tool`, with their options, in definition order."""
        found: dict[str, ToolOptions] = {}
        for klass in reversed(cls.__mro__):
            for name, member in vars(klass).items():
                options = getattr(member, "__assistant_tool__", None)
                if isinstance(options, ToolOptions):
                    found[name] = options
        return found

    @classmethod
    def system_prompt(cls) -> str:
        """The assistant's instructions first, then how to use the tools."""
        return f"{cls.instructions.strip()}\n\n{TOOL_PROTOCOL}" if cls.instructions.strip() else TOOL_PROTOCOL

    def needs_approval(self, name: str, args: dict[str, Any]) -> bool:
        """Whether a call of tool `name` with `args` waits for a person (see `@tool(approval=...)`)."""
        options = self.tool_methods().get(name)
        if options is None:
            return False
        rule = options.approval
        return bool(rule(self, args)) if callable(rule) else bool(rule)

    async def tools(self) -> list[BaseTool]:
        """Every tool the model may call this run: the methods, the base tools, MCP's, and final_answer."""
        served = await mcp_tools(type(self)) if self.mcp_servers else []
        own = self.local_tools()
        return [*own[:-1], *served, own[-1]]

    def local_tools(self) -> list[BaseTool]:
        """The tools that need no MCP server: the methods, the base tools, and final_answer (last)."""
        own = [self._method_tool(name) for name in self.tool_methods()]
        return [*own, *self.base_tools, TOOLS_BY_NAME["final_answer"]]

    def _method_tool(self, name: str) -> BaseTool:
        method = getattr(self, name)
        key = (type(self), name)
        schema = _method_schemas.get(key)
        if schema is None:  # the same for every instance: made once per process (a pydantic model)
            schema = _method_schemas[key] = create_schema_from_function(name, method)
        call = method if inspect.iscoroutinefunction(method) else self._run_sync(method)

        @functools.wraps(method)
        async def run(**kwargs: Any) -> Any:
            return await call(**kwargs)

        description = inspect.getdoc(method) or name
        return StructuredTool.from_function(coroutine=run, name=name, description=description, args_schema=schema)


class ArithmeticAssistant(Assistant):
    """The lesson's agent: arithmetic, step by step, with its four tools. Works offline."""

    id = "arithmetic"
    name = "Arithmetic"
    description = "Works out arithmetic step by step with its tools (add, subtract, multiply, exponentiate)."
    instructions = "You're a helpful assistant."
    base_tools = (add, subtract, multiply, exponentiate)
    examples = (
        ("What is (3 + 4) * 2 ^ 3?", "Parallel tool calls, step by step"),
        ("what is 7 times 6 minus 2", "Arithmetic in plain words"),
        ("Count to 50", "A long streamed answer"),
    )


# MCP: each assistant's servers' tools, loaded once per process, dropped when a call fails.
_mcp_cache: dict[type[Assistant], list[BaseTool]] = {}
_mcp_locks: dict[type[Assistant], asyncio.Lock] = {}


async def mcp_tools(assistant: type[Assistant]) -> list[BaseTool]:
    """The tools of the assistant's MCP servers (cached for the process; reloaded after an error)."""
    cached = _mcp_cache.get(assistant)
    if cached is not None:
        return cached
    lock = _mcp_locks.setdefault(assistant, asyncio.Lock())
    async with lock:
        if assistant not in _mcp_cache:
            from langchain_mcp_adapters.client import MultiServerMCPClient

            client = MultiServerMCPClient(assistant.mcp_servers)  # type: ignore[arg-type]
            loaded = await client.get_tools()
            _mcp_cache[assistant] = [_forget_on_error(assistant, t) for t in loaded]
        return _mcp_cache[assistant]


def _forget_on_error(assistant: type[Assistant], served: BaseTool) -> BaseTool:
    """The MCP tool, which makes the next run reload the servers' tools when a call fails."""

    async def run(**kwargs: Any) -> Any:
        try:
            result = await served.ainvoke(kwargs)
        except Exception:
            _mcp_cache.pop(assistant, None)
            raise
        return _text_of_blocks(result)

    return StructuredTool.from_function(
        coroutine=run, name=served.name, description=served.description, args_schema=served.args_schema
    )


def _text_of_blocks(result: Any) -> Any:
    """MCP answers in content blocks; text blocks read best as their text."""
    if isinstance(result, list) and result and all(isinstance(b, dict) and b.get("type") == "text" for b in result):
        return "\n".join(str(b.get("text", "")) for b in result)
    return result
