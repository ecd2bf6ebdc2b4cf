"""Production settings: the deployment checks pass, and unsafe defaults are refused."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION = {
    "DJANGO_SECRET_KEY": "a-production-like-secret-key-that-is-long-enough-and-random-7Hq2xZ",
    "DJANGO_ALLOWED_HOSTS": "chat.example.com",
    "DJANGO_CSRF_TRUSTED_ORIGINS": "https://chat.example.com",
    "DJANGO_BEHIND_PROXY": "1",
    "DJANGO_SECURE_COOKIES": "1",
    "DJANGO_SECURE_SSL_REDIRECT": "1",
    "DJANGO_HSTS_SECONDS": "31536000",
    "DJANGO_HSTS_PRELOAD": "1",
}


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "chatsite.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def shown(code: str, *, env: dict[str, str]) -> str:
    """The last line `code` prints in `manage.py shell`."""
    return manage("shell", "-c", code, env=env).stdout.strip().splitlines()[-1]


def test_check_deploy_passes_with_the_documented_production_settings():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr


def test_without_a_secret_key_production_refuses_to_start():
    env = {k: v for k, v in PRODUCTION.items() if k != "DJANGO_SECRET_KEY"}
    result = manage("check", env=env)
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is required" in result.stderr


def test_allowed_hosts_never_default_to_everything():
    result = manage("shell", "-c", "from django.conf import settings; print(settings.ALLOWED_HOSTS)", env=PRODUCTION)
    assert "'*'" not in result.stdout
    env = {k: v for k, v in PRODUCTION.items() if k != "DJANGO_ALLOWED_HOSTS"}
    result = manage("shell", "-c", "from django.conf import settings; print(settings.ALLOWED_HOSTS)", env=env)
    assert result.stdout.strip().splitlines()[-1] == "['localhost', '127.0.0.1']"


def test_check_deploy_passes_with_redis_as_documented():
    env = {**PRODUCTION, "REDIS_URL": "redis://127.0.0.1:6379/15"}
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode == 0, result.stdout + result.stderr


def test_with_redis_the_login_throttles_count_in_redis_shared_by_every_process():
    show = "from django.conf import settings; c = settings.CACHES['default']; print(c['BACKEND'], c.get('LOCATION'))"
    with_redis = shown(show, env={**PRODUCTION, "REDIS_URL": "redis://127.0.0.1:6379/15"})
    assert with_redis == "django.core.cache.backends.redis.RedisCache redis://127.0.0.1:6379/15"
    assert shown(show, env={**PRODUCTION, "REDIS_URL": ""}).startswith("django.core.cache.backends.locmem.LocMemCache")


def test_behind_the_proxy_the_throttles_take_the_client_ip_from_x_forwarded_for():
    show = "from django.conf import settings; print(settings.RATELIMIT_IP_META_KEY)"
    assert shown(show, env=PRODUCTION) == "accounts.throttling.forwarded_client_ip"
    assert shown(show, env={**PRODUCTION, "DJANGO_BEHIND_PROXY": ""}) == "None"


def test_a_malformed_throttle_rate_stops_the_start():
    result = manage("check", env={**PRODUCTION, "LOGIN_RATE_PER_ACCOUNT": "five a minute"})
    assert result.returncode != 0
    assert "LOGIN_RATE_PER_ACCOUNT must be a rate" in result.stderr
