"""Fixtures for accounts: the chat product's users, tabs and settled runs."""

from tests.conversations.conftest import (  # noqa: F401
    alice,
    bob,
    conversation,
    fresh_channel_layer,
    paced,
    runs_settle,
    tabs,
)
