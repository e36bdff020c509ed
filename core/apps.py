from __future__ import annotations

from django.apps import AppConfig

# Loaded with Django in every process (web, worker, shell), so that
# `celery.current_app`, which the tasks app sends through, is this project's app
# (Celery's documented pattern, from the app config rather than the package's
# __init__, which celery_app.py itself imports while settling the settings module).
import celery_app  # noqa: F401
import patches


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Service"

    def ready(self) -> None:
        # Every process refuses to start on a library version its patches were not written for.
        patches.check_versions()
