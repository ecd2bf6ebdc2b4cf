"""Settings for the test suite: the product's settings with the offline model at full speed."""

import os

os.environ.setdefault("DJANGO_SECRET_KEY", "tests-only-secret-key")
os.environ["OPENAI_API_KEY"] = ""

from chatsite.settings import *  # noqa: F403
from chatsite.settings import AGENT_MODEL, STORAGES

AGENT_MODEL = AGENT_MODEL.__class__(offline_tokens_per_second=0)
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
RUN_WATCHDOG = False
AGENT_MODEL_TITLES = False  # scripted model answers are for the runs; the title tests turn it on
# Login and sign-up throttles: generous here, so that no test is throttled by accident; the
# throttle's own tests set low rates. Counted in this process's memory whatever REDIS_URL says,
# so that a test can start from zero (the live tests' servers count in Redis).
LOGIN_RATE_PER_IP = LOGIN_RATE_PER_ACCOUNT = SIGNUP_RATE_PER_IP = "100000/m"
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
SILENCED_SYSTEM_CHECKS = ["django_ratelimit.E003", "django_ratelimit.W001"]  # one process, as above
# A socket's snapshots: at most one per interval (1 s in production), so a `sync` sent within a second
# of the connect's snapshot waited that second in a test. The tests of that rule set its interval
# themselves (`test_sync_floods_get_one_snapshot_per_interval_and_then_a_close`).
SYNC_MIN_INTERVAL_SECONDS = 0.05
