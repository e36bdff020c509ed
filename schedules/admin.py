from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from schedules.models import Schedule


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin[Schedule]):
    list_display = ("name", "kind", "owner", "cron", "run_at", "timezone", "paused", "next_run_at", "last_run_at")
    list_filter = ("paused", "kind")
    search_fields = ("id", "name", "owner__username")
    list_select_related = ("owner",)
    # Made, paused and deleted by their owners through schedules.services (checked, and told to their
    # sockets), and advanced only by the scheduler's claim: the admin shows them read-only.
    readonly_fields = [field.name for field in Schedule._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
