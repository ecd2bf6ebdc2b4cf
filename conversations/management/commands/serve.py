"""`manage.py serve`: the production server, as operators, the service units and the tests start it."""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

import uvicorn
from django.core.management.base import BaseCommand, CommandError, CommandParser

APPLICATION = "chatsite.asgi:application"
GRACEFUL_CONNECTIONS_SECONDS = 10
"""How long the server waits for its connections to close once told to stop (sockets are closed with
1012 and event streams end at once; this bounds a slow plain request). The runs' own drain follows."""


def uvicorn_options(*, host: str, port: int, workers: int) -> dict[str, Any]:
    """uvicorn's options for this product (docs/deploy.md says why each)."""
    return {
        "host": host,
        "port": port,
        "workers": workers,
        "loop": "uvloop",
        "http": "httptools",
        "ws": "websockets-sansio",
        "lifespan": "on",
        "proxy_headers": False,
        "access_log": False,
        "ws_max_size": 1_048_576,
        "ws_per_message_deflate": False,
        "timeout_graceful_shutdown": GRACEFUL_CONNECTIONS_SECONDS,
        # The product's logging (LOG_FORMAT) formats uvicorn's lines too.
        "log_config": None,
    }


class Command(BaseCommand):
    help = (
        "Serve the product with uvicorn and its production options: sweeps for dead runs from the start, "
        "and drains on SIGTERM (no new runs, sockets told to reconnect elsewhere, runs finished)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
        parser.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
        parser.add_argument(
            "--workers", type=int, default=1, help="server processes on this port (default 1; needs REDIS_URL)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from django.conf import settings

        workers = options["workers"]
        if workers < 1:
            raise CommandError("--workers must be at least 1.")
        if workers > 1 and settings.CHANNEL_LAYERS["default"]["BACKEND"].endswith("InMemoryChannelLayer"):
            raise CommandError("--workers above 1 needs Redis (REDIS_URL): else every tab must reach one process.")
        if not 0 < options["port"] < 65536:
            raise CommandError("--port must be between 1 and 65535.")
        made = None
        if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            # Each worker writes its metrics here; /metrics, answered by any worker, adds them all up.
            made = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="agentchat-metrics-")
        try:
            uvicorn.run(APPLICATION, **uvicorn_options(host=options["host"], port=options["port"], workers=workers))
        finally:
            if made is not None:
                shutil.rmtree(made, ignore_errors=True)
