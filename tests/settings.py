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
