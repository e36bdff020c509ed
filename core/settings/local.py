"""Local development: works with no environment at all (SQLite, local Redis, mail to files)."""

from __future__ import annotations

from core.settings.base import *  # noqa: F403
from envconfig import env

DEBUG = env.get_bool("DEBUG", True)
SECRET_KEY = env.get_str("SECRET_KEY", "local-development-only-not-secret")
ALLOWED_HOSTS = env.get_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
FLOWER_URL = env.get_str("FLOWER_URL", "http://127.0.0.1:5555")
# Serve static files straight from static/ (no collectstatic needed to run).
WHITENOISE_AUTOREFRESH = True
WHITENOISE_USE_FINDERS = True
