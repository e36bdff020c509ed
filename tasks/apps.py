from __future__ import annotations

from django.apps import AppConfig


class TasksConfig(AppConfig):
    name = "tasks"
    verbose_name = "Jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Django's idiom: what reads models is imported once they are ready.
        from tasks import batches, kinds, limits, tasks

        kinds.autodiscover()
        limits.check_settings()
        tasks.register_kind_tasks()
        tasks.reuse_connections()
        batches.connect()
        limits.connect()
