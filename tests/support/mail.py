"""A real SMTP server for tests that follow an email (aiosmtpd, on a free loopback port)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aiosmtpd.controller import Controller

from tests.live_server import free_port


@contextmanager
def smtp_server(handler: Any) -> Iterator[int]:
    """Serve SMTP on 127.0.0.1 with the aiosmtpd `handler` (its `handle_DATA` gets each message); the port."""
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller.port
    finally:
        controller.stop()
