from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from uploads.models import Upload


@admin.register(Upload)
class UploadAdmin(admin.ModelAdmin[Upload]):
    list_display = ("id", "name", "owner", "size", "created_at")
    search_fields = ("id", "name", "owner__username")
    date_hierarchy = "created_at"
    # Uploads arrive through the API only; an admin may look, or delete (the file goes with the row).
    # The file is shown as its path: nothing serves MEDIA_ROOT, so a link would lead nowhere.
    fields = readonly_fields = ("id", "owner", "name", "size", "stored_as", "created_at")

    @admin.display(description="stored as (under MEDIA_ROOT)")
    def stored_as(self, upload: Upload) -> str:
        return str(upload.file.name)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
