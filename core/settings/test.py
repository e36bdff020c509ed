"""Tests: fast hashing, a file-based SQLite test database (so worker and Daphne
processes started by the integration fixtures share it), or PostgreSQL when
DATABASE_URL points at one."""

from __future__ import annotations

import os

from core.settings.base import *  # noqa: F403
from core.settings.base import DATABASES, INSTALLED_APPS, VAR_DIR
from envconfig import env

DEBUG = False
SECRET_KEY = env.get_str("SECRET_KEY", "test-only-not-secret")
ALLOWED_HOSTS = env.get_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "testserver"])
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# In memory unless a test points the processes it starts at a real SMTP server.
if env.get_str("EMAIL_URL", "") == "":
    EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# Job kinds that exist only for tests (test.crash kills its own worker process), in an app of their own.
if env.get_bool("JOBS_TEST_KINDS", True):
    INSTALLED_APPS = [*INSTALLED_APPS, "tests.testkinds"]
WHITENOISE_AUTOREFRESH = True
WHITENOISE_USE_FINDERS = True

# Threads that touch the ORM (database_sync_to_async, the progress flush timer)
# close their connections after each use, so the test database can be dropped.
# (A benchmark may set DATABASE_CONN_MAX_AGE to measure persistent connections as deployed.)
DATABASES["default"]["CONN_MAX_AGE"] = env.get_int("DATABASE_CONN_MAX_AGE", 0, minimum=0)
if DATABASES["default"]["ENGINE"] == "patches.sqlite":
    # One file per test run, so two runs on one machine never share (or drop) each other's tables.
    default_path = VAR_DIR / f"test-{os.getpid()}.sqlite3"
    # A fresh clone has no var/ yet, and SQLite does not create directories.
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES["default"]["TEST"] = {"NAME": env.get_str("TEST_SQLITE_PATH", str(default_path))}
