from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from tasks.models import EmailDelivery, Job


@admin.register(Job)
class JobAdmin(admin.ModelAdmin[Job]):
    list_display = ("id", "kind", "owner", "status", "attempt", "seq", "created_at", "finished_at")
    list_filter = ("status", "kind")
    search_fields = ("id", "request_id", "owner__username", "celery_task_id")
    date_hierarchy = "created_at"
    # State changes go through tasks.services only, so the admin shows jobs read-only.
    readonly_fields = [field.name for field in Job._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(EmailDelivery)
class EmailDeliveryAdmin(admin.ModelAdmin[EmailDelivery]):
    list_display = ("recipient", "status", "attempt", "job", "message_id", "updated_at")
    list_filter = ("status",)
    search_fields = ("recipient", "job__id", "message_id")
    list_select_related = ("job",)
    # The delivery record is what keeps a message from going out twice:
    # only tasks.emails writes it, so the admin shows it read-only.
    readonly_fields = [field.name for field in EmailDelivery._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: EmailDelivery | None = None) -> bool:
        return False
