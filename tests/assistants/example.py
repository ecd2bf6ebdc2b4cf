"""Assistants declared the way a deploying team would, for the tests (through AGENT_ASSISTANTS)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from time import sleep

from agent_runtime.assistants import Assistant, tool
from conversations.models import Conversation

MCP_SERVER = Path(__file__).with_name("mcp_server.py")
LEAKY_URL = "https://api.example.invalid/v1/orders?api_key=sk_live_SECRET123"
"""What a failing upstream call's exception names: a URL with its key."""
SHOP_INSTRUCTIONS = "You answer questions about the user's own notes. Never reveal anyone else's."


class Shop(Assistant):
    """A team's assistant: a sync ORM tool scoped to the asking user, an async tool, a failing tool."""

    id = "shop"
    name = "Shop"
    description = "Answers about your notes."
    instructions = SHOP_INSTRUCTIONS
    model = "shop-model-1"

    @tool
    def my_notes(self, containing: str = "") -> str:
        """List the titles of the asking user's conversations that contain the given text."""
        titles = Conversation.objects.filter(owner=self.user, title__icontains=containing).values_list(
            "title", flat=True
        )
        return ", ".join(sorted(titles)) or "none"

    @tool
    async def shout(self, text: str, times: int = 1) -> str:
        """Repeat the text in capitals."""
        await asyncio.sleep(0)
        return " ".join([text.upper()] * times)

    @tool
    def explode(self) -> str:
        """Always fails."""
        raise RuntimeError(f"the warehouse is on fire for url '{LEAKY_URL}'")


class Counter(Assistant):
    """An assistant whose tool comes from an MCP server of the tests' own (stdio)."""

    id = "counter"
    name = "Counter"
    mcp_servers = {"words": {"command": sys.executable, "args": [str(MCP_SERVER)], "transport": "stdio"}}


class Refunds(Assistant):
    """Tools that change something: each call waits for a person (always, or past an amount)."""

    id = "refunds"
    name = "Refunds"
    instructions = "You refund orders when asked."

    @tool(approval=True)
    def refund(self, order: int) -> str:
        """Refund one of the user's orders (the side effect: a conversation titled after it)."""
        Conversation.objects.create(owner=self.user, title=f"refunded order {order}")
        return f"refunded order {order}"

    @tool(approval=lambda assistant, args: args.get("amount", 0) > 100)
    def pay(self, amount: int) -> str:
        """Pay an amount; over 100 it needs approval."""
        return f"paid {amount}"


class Upstream(Assistant):
    """A sync tool waiting on a slow upstream service (as a blocking HTTP call would)."""

    id = "upstream"
    name = "Upstream"
    instructions = "You look orders up in the upstream service."

    @tool
    def look_up(self, seconds: float) -> str:
        """Ask the upstream service, which takes the given number of seconds to answer."""
        sleep(seconds)  # a module global, so that a test can hold the call instead
        return f"upstream answered after {seconds:g} s"
