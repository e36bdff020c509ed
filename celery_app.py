"""The Celery application. Start a worker with `celery -A celery_app worker`.

DJANGO_SETTINGS_MODULE is settled before `Celery(...)` is made: Celery installs
its Django fix-up (which sets Django up in every worker process) only when that
variable is already set at that moment, so a worker started without it would
run tasks in an unconfigured Django.
"""

from __future__ import annotations

from celery import Celery

from envconfig.settings_module import use_settings_module

use_settings_module()
app = Celery("jobs")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
