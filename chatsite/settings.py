"""Settings: every environment variable the product reads is read here, once.

`docs/configuration.md` says what each one does; `.env.example` lists them (a test keeps the three in step).
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from agent_runtime.llm import DEFAULT_OPENAI_MODEL, ModelConfig
from conversations.redis_clients import RedisTarget, sentinel_addresses

BASE_DIR = Path(__file__).resolve().parent.parent


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def _env_bool(name: str, default: bool = False) -> bool:
    value = _env(name)
    return default if not value else value.lower() in ("1", "true", "yes", "on")


def _env_number(name: str, default: float) -> float:
    value = _env(name)
    try:
        return float(value) if value else default
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {value!r}") from None


def _env_whole(name: str, default: int, *, minimum: int = 0, maximum: int = 10**15) -> int:
    """A whole number from `minimum` to `maximum`; anything else stops the process at start."""
    value = _env(name)
    if not value:
        return default
    if not re.fullmatch(r"\d{1,16}", value) or not minimum <= int(value) <= maximum:
        raise ImproperlyConfigured(f"{name} must be a whole number from {minimum} to {maximum}, not {value!r}")
    return int(value)


def _env_rate(name: str, default: str) -> str:
    """A django-ratelimit rate: `<count>/<period>`, the period `s`, `m`, `h` or `d`, optionally multiplied (`10/5m`)."""
    value = _env(name, default)
    if not re.fullmatch(r"[1-9]\d*/\d*[smhd]", value):
        raise ImproperlyConfigured(f"{name} must be a rate such as '5/m' or '20/h', not {value!r}")
    return value


DEBUG = _env_bool("DJANGO_DEBUG", False)
SECRET_KEY = _env("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY is required when DJANGO_DEBUG is off.")
    SECRET_KEY = "development-only-key-never-use-in-production"

ALLOWED_HOSTS = [h.strip() for h in _env("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1").split(",") if h]
CSRF_TRUSTED_ORIGINS = [o.strip() for o in _env("DJANGO_CSRF_TRUSTED_ORIGINS").split(",") if o.strip()]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "django_ratelimit",
    "csp",
    "conversations",
    "review",
    "accounts",
    "api",
]

MIDDLEWARE = [
    # /healthz, /readyz and /metrics are answered first: no Host check, HTTPS redirect or session.
    "chatsite.health.OperationsMiddleware",
    "chatsite.health.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# Content-Security-Policy (django-csp) on every response: everything from this origin only (the
# socket too: 'self' covers ws/wss of the same host in every browser the pages support), no inline
# or eval'd script, no plugins, no framing, forms post only here. Images may also be data: URLs
# (the favicon). KaTeX places its boxes with style="..." attributes, which the answer's sanitiser
# keeps (static/chat/markdown.js), hence inline style attributes, never <style> elements.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "style-src-attr": ["'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    }
}

ROOT_URLCONF = "chatsite.urls"
ASGI_APPLICATION = "chatsite.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.preferences.preferences",
                "accounts.context_processors.sign_in",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        _env("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=0,
    )
}
# Time to first token: a socket's database calls all run on channels' one worker thread, and with
# Django's default (closed after every use) each of a send's calls opened a new connection
# (PostgreSQL: a connect and a login, several ms each). Kept open, checked before reuse.
DATABASES["default"]["CONN_MAX_AGE"] = _env_number("DATABASE_CONN_MAX_AGE", 300.0)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Write-ahead log; commits are written to it and synced at checkpoints, not at every commit
    # (an fsync per send, 10-30 ms here). A power loss can lose the last commits, never corrupt the
    # file; SQLITE_SYNC_EVERY_COMMIT=1 syncs every commit again.
    _synchronous = "FULL" if _env_bool("SQLITE_SYNC_EVERY_COMMIT") else "NORMAL"
    DATABASES["default"].setdefault("OPTIONS", {})["init_command"] = (
        f"PRAGMA journal_mode=WAL; PRAGMA synchronous={_synchronous};"
    )
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and _env_bool("DATABASE_ASYNC_COMMIT"):
    # Opt-in: PostgreSQL answers a commit before its WAL reaches the disk (an fsync, ~4 ms per send
    # here). A crash of the database server can lose the last moment's commits, never corrupt them.
    _options = DATABASES["default"].setdefault("OPTIONS", {})
    _options["options"] = f"{_options.get('options', '')} -c synchronous_commit=off".strip()
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = _env("REDIS_URL")
# Or through Redis Sentinel: the master it names, asked again after a failover (docs/deploy.md).
REDIS_SENTINELS = sentinel_addresses(_env("REDIS_SENTINELS"))
REDIS_SENTINEL_MASTER = _env("REDIS_SENTINEL_MASTER")
REDIS_SENTINEL_PASSWORD = _env("REDIS_SENTINEL_PASSWORD")
REDIS_SENTINEL_MASTER_PASSWORD = _env("REDIS_SENTINEL_MASTER_PASSWORD")
_REDIS = RedisTarget.configured(
    url=REDIS_URL,
    sentinels=REDIS_SENTINELS,
    master=REDIS_SENTINEL_MASTER,
    sentinel_password=REDIS_SENTINEL_PASSWORD,
    master_password=REDIS_SENTINEL_MASTER_PASSWORD,
)
CHANNEL_CAPACITY = int(_env_number("CHANNEL_CAPACITY", 100))
REDIS_CHANNEL_LAYER = _env("REDIS_CHANNEL_LAYER", "pubsub")
_REDIS_LAYERS = {
    "core": "channels_redis.core.RedisChannelLayer",
    "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
}
if REDIS_CHANNEL_LAYER not in _REDIS_LAYERS:
    raise ImproperlyConfigured(f"REDIS_CHANNEL_LAYER must be one of {sorted(_REDIS_LAYERS)}")
if _REDIS:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": _REDIS_LAYERS[REDIS_CHANNEL_LAYER],
            # redis-py reads time out after 5 s by default, the very time channels-redis blocks
            # waiting for a message: give reads more, and fail connects fast.
            "CONFIG": {
                # redis-py 8 pools raise past 100 connections; a burst of tabs closing needs more.
                "hosts": [_REDIS.channel_layer_host(socket_timeout=15, socket_connect_timeout=2, max_connections=1000)],
                "capacity": CHANNEL_CAPACITY,
            },
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            "CONFIG": {"capacity": CHANNEL_CAPACITY},
        }
    }

# The cache holds the login and sign-up throttles' counts, so it must be shared by every process:
# Redis when there is one; else this one process's memory, which all its requests share.
if _REDIS:
    CACHES = {"default": _REDIS.cache(socket_timeout=2, socket_connect_timeout=2)}
    # django-ratelimit lists django-redis, not Django's own RedisCache, as supported (W001); Django's
    # also adds with SET NX and increments with INCRBY, atomically, which is all the throttle needs.
    SILENCED_SYSTEM_CHECKS = ["django_ratelimit.W001"]
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    # Without Redis the product serves from one process (docs/deploy.md), so local memory is
    # shared by every request that counts; django-ratelimit cannot know that, and calls LocMemCache
    # not shared (E003, an error that would stop `manage.py check`) and not supported (W001).
    SILENCED_SYSTEM_CHECKS = ["django_ratelimit.E003", "django_ratelimit.W001"]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "conversation_list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(_env("DJANGO_STATIC_ROOT") or BASE_DIR / "staticfiles")
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "chatsite.storage.ChatStaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG

SESSION_COOKIE_SECURE = _env_bool("DJANGO_SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_SSL_REDIRECT = _env_bool("DJANGO_SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = int(_env_number("DJANGO_HSTS_SECONDS", 0))
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_PRELOAD = _env_bool("DJANGO_HSTS_PRELOAD", False)
BEHIND_PROXY = _env_bool("DJANGO_BEHIND_PROXY")
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if BEHIND_PROXY else None

# Login and sign-up throttles (django-ratelimit; only POSTs count): per client IP, and per account
# (the username tried). Behind the proxy the client's IP is the last `X-Forwarded-For` entry, the
# one the proxy adds (docs/deploy.md); the peer's address would be the proxy's for everyone.
LOGIN_RATE_PER_IP = _env_rate("LOGIN_RATE_PER_IP", "20/m")
LOGIN_RATE_PER_ACCOUNT = _env_rate("LOGIN_RATE_PER_ACCOUNT", "5/m")
SIGNUP_RATE_PER_IP = _env_rate("SIGNUP_RATE_PER_IP", "5/h")
PASSWORD_RESET_RATE_PER_IP = _env_rate("PASSWORD_RESET_RATE_PER_IP", "5/h")
SIGNUP_REQUIRE_EMAIL = _env_bool("SIGNUP_REQUIRE_EMAIL", False)

# Single sign-on (OpenID Connect, docs/sso.md): on when the issuer, client id and secret are all set.
OIDC_ISSUER = _env("OIDC_ISSUER")
OIDC_CLIENT_ID = _env("OIDC_CLIENT_ID")
OIDC_CLIENT_SECRET = _env("OIDC_CLIENT_SECRET")
_oidc = {"OIDC_ISSUER": OIDC_ISSUER, "OIDC_CLIENT_ID": OIDC_CLIENT_ID, "OIDC_CLIENT_SECRET": OIDC_CLIENT_SECRET}
SSO_ENABLED = all(_oidc.values())
if any(_oidc.values()) and not SSO_ENABLED:
    _missing = ", ".join(name for name, value in _oidc.items() if not value)
    raise ImproperlyConfigured(
        f"Single sign-on needs OIDC_ISSUER, OIDC_CLIENT_ID and OIDC_CLIENT_SECRET; {_missing} not set."
    )
if OIDC_ISSUER and not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", OIDC_ISSUER):
    raise ImproperlyConfigured(f"OIDC_ISSUER must be an http(s) URL without query or fragment, not {OIDC_ISSUER!r}.")
OIDC_GROUPS_CLAIM = _env("OIDC_GROUPS_CLAIM")
OIDC_BUTTON_LABEL = _env("OIDC_BUTTON_LABEL", "Sign in with single sign-on")[:60]
# mozilla-django-oidc's settings; the provider's endpoints come from its discovery document (accounts/oidc.py).
OIDC_RP_CLIENT_ID = OIDC_CLIENT_ID
OIDC_RP_CLIENT_SECRET = OIDC_CLIENT_SECRET
OIDC_RP_SCOPES = _env("OIDC_SCOPES", "openid email profile")
if "openid" not in OIDC_RP_SCOPES.split():
    raise ImproperlyConfigured(f"OIDC_SCOPES must include openid, not {OIDC_RP_SCOPES!r}.")
OIDC_RP_SIGN_ALGO = "RS256"
OIDC_USE_PKCE = True
OIDC_TIMEOUT = 5
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]
if SSO_ENABLED:
    AUTHENTICATION_BACKENDS.append("accounts.oidc.SsoBackend")
# Off: the sign-up page answers 404 (single sign-on still creates accounts at first sign-in).
SIGNUP_ENABLED = _env_bool("SIGNUP_ENABLED", True)
# Off: nobody logs in with a password (here or in the admin); only single sign-on, which must be configured.
PASSWORD_LOGIN_ENABLED = _env_bool("PASSWORD_LOGIN_ENABLED", True)
if not PASSWORD_LOGIN_ENABLED and not SSO_ENABLED:
    raise ImproperlyConfigured(
        "PASSWORD_LOGIN_ENABLED=0 needs single sign-on (OIDC_ISSUER, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET): "
        "otherwise nobody could log in."
    )

# Email (password reset links): printed to the console in development, sent by SMTP otherwise.
EMAIL_BACKEND = (
    "django.core.mail.backends.console.EmailBackend" if DEBUG else "django.core.mail.backends.smtp.EmailBackend"
)
EMAIL_HOST = _env("EMAIL_HOST", "localhost")
EMAIL_PORT = int(_env_number("EMAIL_PORT", 25))
EMAIL_HOST_USER = _env("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = _env("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = _env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = _env("DEFAULT_FROM_EMAIL", "Agent Chat <noreply@localhost>")
RATELIMIT_IP_META_KEY = "accounts.throttling.forwarded_client_ip" if BEHIND_PROXY else None

# The agent.
AGENT_MODEL = ModelConfig(
    api_key=_env("OPENAI_API_KEY"),
    base_url=_env("OPENAI_BASE_URL"),
    model=_env("OPENAI_MODEL", DEFAULT_OPENAI_MODEL),
    request_timeout=_env_number("OPENAI_TIMEOUT", 60.0),
    max_retries=int(_env_number("OPENAI_MAX_RETRIES", 2)),
    offline_tokens_per_second=_env_number("OFFLINE_MODEL_TOKENS_PER_SECOND", 30.0),
)
# With a real model: name each conversation from its first exchange (a short extra request), and
# wait at most AGENT_TITLE_TIMEOUT seconds for it. Off, or with the offline model: the first question's text.
AGENT_MODEL_TITLES = _env_bool("AGENT_MODEL_TITLES", True)
AGENT_TITLE_TIMEOUT = _env_number("AGENT_TITLE_TIMEOUT", 20.0)
# The assistants offered, by dotted path (comma-separated); the first answers new conversations.
AGENT_ASSISTANTS = [
    path.strip()
    for path in _env(
        "AGENT_ASSISTANTS",
        "agent_runtime.assistants.ArithmeticAssistant,conversations.builtin_assistants.HistoryAssistant",
    ).split(",")
    if path.strip()
]
AGENT_MAX_ITERATIONS = int(_env_number("AGENT_MAX_ITERATIONS", 8))
# A tool call waiting for approval expires (treated as denied) after this many seconds.
AGENT_APPROVAL_TIMEOUT = _env_number("AGENT_APPROVAL_TIMEOUT", 600.0)
AGENT_RUN_TIMEOUT = _env_number("AGENT_RUN_TIMEOUT", 120.0)
# A process told to stop (SIGTERM: a deploy) lets its runs finish for this long before it stops them.
AGENT_DRAIN_SECONDS = _env_number("AGENT_DRAIN_SECONDS", AGENT_RUN_TIMEOUT)
# A tool call that has not returned after this many seconds ends as a tool error the model sees.
AGENT_TOOL_TIMEOUT = _env_number("AGENT_TOOL_TIMEOUT", 60.0)
# Sync tools run in a pool of this many threads per process, never on the database's shared thread.
AGENT_TOOL_THREADS = int(_env_number("AGENT_TOOL_THREADS", 16))
AGENT_HISTORY_MESSAGES = int(_env_number("AGENT_HISTORY_MESSAGES", 20))
# A web server process gets ready for its first answer as it starts (chatsite/asgi.py): imports, each
# assistant's model built, its request path walked once, a database connection, the channel layer.
AGENT_WARM_UP = _env_bool("AGENT_WARM_UP", True)
MESSAGE_MAX_LENGTH = 8000
# The HTTP API (api/): an idle event stream sends a `: keep-alive` comment this often.
API_SSE_KEEPALIVE_SECONDS = _env_number("API_SSE_KEEPALIVE_SECONDS", 15.0)
# An event stream opened with an API token ends within this many seconds of the token's revocation or expiry.
API_TOKEN_RECHECK_SECONDS = _env_number("API_TOKEN_RECHECK_SECONDS", 10.0)
# Per user, across all conversations and processes: messages per minute, answers streaming at once.
RATE_LIMIT_MESSAGES_PER_MINUTE = int(_env_number("RATE_LIMIT_MESSAGES_PER_MINUTE", 20))
RATE_LIMIT_CONCURRENT_RUNS = int(_env_number("RATE_LIMIT_CONCURRENT_RUNS", 3))
RATE_LIMIT_CONVERSATIONS_PER_HOUR = int(_env_number("RATE_LIMIT_CONVERSATIONS_PER_HOUR", 60))
# Token budgets per user (conversations/budgets.py), overridable per group and per user in the admin;
# 0 is no limit. An answer being written counts as QUOTA_RUN_RESERVE_TOKENS until it ends.
QUOTA_TOKENS_PER_DAY = _env_whole("QUOTA_TOKENS_PER_DAY", 0)
QUOTA_TOKENS_PER_MONTH = _env_whole("QUOTA_TOKENS_PER_MONTH", 0)
QUOTA_RUN_RESERVE_TOKENS = _env_whole("QUOTA_RUN_RESERVE_TOKENS", 4000, minimum=1)
SYNC_MIN_INTERVAL_SECONDS = _env_number("SYNC_MIN_INTERVAL_SECONDS", 1)
SYNC_MAX_PER_MINUTE = int(_env_number("SYNC_MAX_PER_MINUTE", 60))
SNAPSHOT_MAX_MESSAGES = int(_env_number("SNAPSHOT_MAX_MESSAGES", 500))
# Open sockets per user in one process; the next is refused (closed with 4429).
SOCKETS_PER_USER = int(_env_number("SOCKETS_PER_USER", 50))
# A search (`?q=`, the sidebar, the History assistant's tools) is refused past these bounds.
SEARCH_MAX_CHARS = int(_env_number("SEARCH_MAX_CHARS", 200))
SEARCH_MAX_WORDS = int(_env_number("SEARCH_MAX_WORDS", 12))
SOCKET_SESSION_RECHECK_SECONDS = _env_number("SOCKET_SESSION_RECHECK_SECONDS", 30)
# ...and a tab's frames (send, stop, sync, ...) check it at most this often (two queries and an HMAC each).
SOCKET_SESSION_FRAME_RECHECK_SECONDS = _env_number("SOCKET_SESSION_FRAME_RECHECK_SECONDS", 1.0)

# Multi-process runs: how often a run records it is alive, when a silent one counts as
# interrupted, and how often each process looks for such runs.
RUN_HEARTBEAT_SECONDS = _env_number("RUN_HEARTBEAT_SECONDS", 5.0)
RUN_STALE_SECONDS = _env_number("RUN_STALE_SECONDS", 20.0)
RUN_SWEEP_SECONDS = _env_number("RUN_SWEEP_SECONDS", 10.0)
RUN_WATCHDOG = _env_bool("RUN_WATCHDOG", True)
# Text events go out at most once per this many seconds per run; what the model types meanwhile is merged.
RELAY_MIN_INTERVAL_SECONDS = _env_number("RELAY_MIN_INTERVAL_MS", 5.0) / 1000
# ...stretched by this much per run streaming in the process, up to the cap: when many runs share a
# process, each merges more text per event (fewer sends per token), at the cost of a few ms each.
# Off by default: measured, 1 ms per run cut CPU per token by a quarter but lowered the throughput
# at which p99 stays under 100 ms (docs/benchmarks.md); for deployments short of CPU, not of latency.
RELAY_INTERVAL_PER_RUN_SECONDS = _env_number("RELAY_INTERVAL_PER_RUN_MS", 0.0) / 1000
RELAY_MAX_INTERVAL_SECONDS = _env_number("RELAY_MAX_INTERVAL_MS", 20.0) / 1000

# Retention: the maintenance timer's `purge_conversations` deletes conversations untouched for this
# many days (0: keep everything; `manage.py purge_conversations --older-than-days N` does it by hand).
_retention = _env("AGENT_RETENTION_DAYS") or "0"
if not (_retention.isascii() and _retention.isdigit() and int(_retention) <= 36500):
    raise ImproperlyConfigured(
        f"AGENT_RETENTION_DAYS must be a whole number of days from 0 to 36500, not {_retention!r}."
    )
AGENT_RETENTION_DAYS = int(_retention)

# Operations (`chatsite/health.py`): /metrics answers these addresses (exact IPs or networks), or a
# request with `Authorization: Bearer <METRICS_TOKEN>`; everyone else gets 403.
METRICS_ALLOWED_IPS = [n.strip() for n in _env("METRICS_ALLOWED_IPS", "127.0.0.1,::1").split(",") if n.strip()]
for _network in METRICS_ALLOWED_IPS:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError:
        raise ImproperlyConfigured(f"METRICS_ALLOWED_IPS: {_network!r} is not an address or a network.") from None
METRICS_TOKEN = _env("METRICS_TOKEN")

# Logs: one JSON object per line (time, level, logger, message, and the request, user, conversation
# and run ids where known) by default in production; `text` for people reading a console.
LOG_FORMAT = (_env("LOG_FORMAT") or ("text" if DEBUG else "json")).lower()
if LOG_FORMAT not in ("json", "text"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be json or text, not {LOG_FORMAT!r}.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "chatsite.logs.ContextFilter"}, "probes": {"()": "chatsite.logs.ProbeFilter"}},
    "formatters": {
        "json": {"()": "chatsite.logs.JsonFormatter"},
        "text": {"()": "chatsite.logs.TextFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["context"]},
    },
    "root": {"handlers": ["console"], "level": _env("LOG_LEVEL", "INFO")},
    # Probes are left out of the servers' access logs (uvicorn's, and runserver's).
    # httpx (and httpx2, the `openai` client's) logs each request to the model at INFO ("HTTP Request:
    # POST ... 200"), between the request and its first chunk: the run's own lines say more.
    "loggers": {
        "httpx": {"level": "WARNING"},
        "httpx2": {"level": "WARNING"},
        "uvicorn.access": {"filters": ["probes"]},
        "django.channels.server": {"filters": ["probes"]},
    },
}
