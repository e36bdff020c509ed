"""Staff broadcast notices from the admin; notices and notifications are read-only once made."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.forms import ModelForm
from django.http import HttpRequest

from notifications import notices
from notifications.models import NOTICE_MAX_CHARS, Notice, Notification


class NoticeForm(forms.ModelForm[Notice]):
    """The add form: the group choices are the groups the sender may address, and `notices.check` decides."""

    sender: User

    class Meta:
        model = Notice
        fields = ("text", "level", "group", "expires_at")
        widgets = {"text": forms.Textarea(attrs={"rows": 4, "cols": 80, "maxlength": NOTICE_MAX_CHARS})}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        group = self.fields["group"]
        assert isinstance(group, forms.ModelChoiceField)
        group.queryset = notices.addressable_groups(self.sender)
        group.empty_label = "Everyone"

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.errors:
            return data
        try:
            data["text"] = notices.check(
                self.sender, data["text"], data["level"], data.get("group"), data.get("expires_at")
            )
        except notices.NoticeRefused as exc:
            self.add_error(exc.field, exc.message)
        return data


@admin.register(Notice)
class NoticeAdmin(admin.ModelAdmin[Notice]):
    form = NoticeForm
    list_display = ("created_at", "level", "text", "audience", "sender", "expires_at")
    list_filter = ("level",)
    search_fields = ("text",)
    list_select_related = ("group", "sender")
    date_hierarchy = "created_at"

    def get_form(
        self, request: HttpRequest, obj: Notice | None = None, change: bool = False, **kwargs: Any
    ) -> type[ModelForm[Notice]]:
        form = super().get_form(request, obj, change, **kwargs)
        if obj is None:
            # The form checks the audience against the user who is sending.
            return type("SenderNoticeForm", (form,), {"sender": request.user})
        return form

    def save_model(self, request: HttpRequest, obj: Notice, form: Any, change: bool) -> None:
        if change:
            return
        assert isinstance(request.user, User)
        data = form.cleaned_data
        try:
            sent = notices.broadcast(
                request.user, data["text"], data["level"], data.get("group"), data.get("expires_at")
            )
        except notices.NoticeRefused as exc:  # the form checked: only a change of rights meanwhile gets here
            raise PermissionDenied(exc.message) from None
        obj.pk = sent.pk
        messages.info(request, f"Notice sent to {sent.audience}.")

    def has_change_permission(self, request: HttpRequest, obj: Notice | None = None) -> bool:
        # A sent notice has reached people: it is shown as it was sent.
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Notice | None = None) -> bool:
        # Deleting would silently change people's notification lists; let notices expire instead.
        return False


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin[Notification]):
    list_display = ("created_at", "user", "kind", "level", "text", "read_at")
    list_filter = ("kind", "level")
    search_fields = ("user__username", "text")
    list_select_related = ("user",)
    readonly_fields = [field.name for field in Notification._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Notification | None = None) -> bool:
        return False
