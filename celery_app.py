"""The Celery application. Start a worker with `celery -A celery_app worker`."""

from __future__ import annotations

from celery import Celery

app = Celery("jobs")

# Only now: the core package imports `app` from this module.
from core.settings_module import use_settings_module  # noqa: E402

use_settings_module()
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
