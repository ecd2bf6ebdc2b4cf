"""The real services some tests need: Redis, PostgreSQL, Chromium.

A missing service skips the test with the reason on a developer's machine and fails it
under CI=true, where everything must be there.
"""

from __future__ import annotations

import os
import shutil
import socket
from urllib.parse import urlparse

import pytest

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
POSTGRES_URL = os.environ.get("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")


def _reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or default_port), timeout=1):
            return True
    except OSError:
        return False


def missing(reason: str) -> None:
    """Skip, or fail under CI, because a service is missing."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: every service must be present)")
    pytest.skip(reason)


def require_redis() -> str:
    """The Redis URL for tests, or skip/fail when Redis is not running."""
    if not _reachable(REDIS_URL, 6379):
        missing(f"Redis is not reachable at {REDIS_URL}")
    return REDIS_URL


def require_postgres() -> str:
    """The PostgreSQL URL for tests, or skip/fail when PostgreSQL is not running."""
    if not _reachable(POSTGRES_URL, 5432):
        missing(f"PostgreSQL is not reachable at {POSTGRES_URL}")
    return POSTGRES_URL


def require_chromium() -> str:
    """The Chromium binary, or skip/fail when it is not installed."""
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        missing(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    return CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")


def require_redis_server_binary() -> str:
    """The redis-server binary (to run a private Redis that a test may stop and restart)."""
    path = shutil.which("redis-server")
    if path is None:
        missing("redis-server is not installed")
    return path


def require_faketime() -> str:
    """The faketime binary (Debian's `faketime`), to run a process whose clock is off."""
    path = shutil.which("faketime")
    if path is None:
        missing("faketime is not installed (apt-get install faketime)")
    return path
