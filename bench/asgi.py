"""The benchmark's ASGI app: the product, untouched, plus the references' WebSocket routes.

`daphne bench.asgi:application`. Sockets under `/ws/bench/` go to the references (behind
the same origin check and session authentication as the product's); everything else goes
to `chatsite.asgi.application` itself, so the product's code path is the one deployed.
"""

from __future__ import annotations

from typing import Any

import chatsite.asgi

product_application = chatsite.asgi.application  # importing it set Django up, which what follows needs

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from bench.reference import websocket_urlpatterns  # noqa: E402

REFERENCE_PREFIX = "/ws/bench/"

references = AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Route the references' sockets to them, everything else to the product."""
    if scope["type"] == "websocket" and scope["path"].startswith(REFERENCE_PREFIX):
        await references(scope, receive, send)
        return
    await product_application(scope, receive, send)
