"""`manage.py serve`: the production command's options, and the mistakes it refuses before it starts."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from conversations.management.commands import serve


@pytest.mark.parametrize(
    ("arguments", "refusal"),
    [
        (["--workers", "0"], "--workers must be at least 1."),
        (["--workers", "2"], "--workers above 1 needs Redis"),
        (["--port", "70000"], "--port must be between 1 and 65535."),
    ],
)
def test_serve_refuses_what_cannot_work_before_starting(arguments, refusal, monkeypatch):
    monkeypatch.setattr(serve.uvicorn, "run", lambda *a, **k: pytest.fail("must not start"))

    with pytest.raises(CommandError, match=refusal.replace("(", r"\(")):
        call_command("serve", *arguments)


def test_serve_runs_uvicorn_with_lifespan_on_and_the_documented_options(monkeypatch):
    started = {}
    monkeypatch.setattr(serve.uvicorn, "run", lambda app, **options: started.update(app=app, **options))

    call_command("serve", "--host", "0.0.0.0", "--port", "8123")

    assert started["app"] == "chatsite.asgi:application"
    assert (started["host"], started["port"], started["workers"]) == ("0.0.0.0", 8123, 1)
    assert started["lifespan"] == "on" and started["ws"] == "websockets-sansio"
    assert started["ws_max_size"] == 1_048_576 and started["proxy_headers"] is False
