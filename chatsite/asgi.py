"""ASGI entry point: HTTP through Django, WebSockets through Channels behind origin and auth checks
(the origin check: `chatsite.origin`, the site's own scheme, host and port only)."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402 - needs Django set up first
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from chatsite.lifespan import lifespan  # noqa: E402
from chatsite.origin import SameOriginValidator  # noqa: E402
from conversations.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": SameOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
        # `manage.py serve`: sweep from the start, drain on SIGTERM (servers without lifespan skip it).
        "lifespan": lifespan,
    }
)

# A web server process gets ready for its first answer before it listens (AGENT_WARM_UP; daphne has no
# ASGI lifespan, so it is done here, where daphne and uvicorn both import the application).
from conversations.warmup import warm_up_if_serving  # noqa: E402

warm_up_if_serving()
