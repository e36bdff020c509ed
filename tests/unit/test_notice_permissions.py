"""Only staff with the permission may broadcast, only to groups they belong to (superusers and the
operator to any), with a text of at most 500 characters: one rule, used by the admin and the command."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from notifications import notices
from notifications.models import Level, Notice, Notification
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

ADD_URL = "/admin/notifications/notice/add/"


@pytest.fixture
def ops() -> Group:
    return Group.objects.create(name="ops")


@pytest.fixture
def sales() -> Group:
    return Group.objects.create(name="sales")


@pytest.fixture
def staff(ops: Group) -> User:
    """A staff member in `ops` with the permission to add notices (and to see the admin's notices)."""
    member: User = UserFactory.create(is_staff=True)
    member.user_permissions.add(*Permission.objects.filter(codename__in=["add_notice", "view_notice"]))
    member.groups.add(ops)
    return User.objects.get(pk=member.pk)  # a fresh instance: permissions are cached per instance


def test_staff_may_address_everyone_and_their_own_groups(staff: User, ops: Group) -> None:
    assert notices.broadcast(staff, "To all").group is None
    assert notices.broadcast(staff, "To ops", group=ops).group == ops
    assert list(notices.addressable_groups(staff)) == [ops]


def test_staff_may_not_address_a_group_they_are_not_in(staff: User, sales: Group) -> None:
    with pytest.raises(notices.NoticeRefused, match="groups you belong to") as refused:
        notices.broadcast(staff, "To sales", group=sales)
    assert refused.value.field == "group"
    assert Notice.objects.count() == Notification.objects.count() == 0


def test_superusers_and_the_operator_may_address_any_group(ops: Group, sales: Group) -> None:
    root: User = UserFactory.create(is_staff=True, is_superuser=True)
    assert list(notices.addressable_groups(root)) == list(notices.addressable_groups(None)) == [ops, sales]
    assert notices.broadcast(root, "To sales", group=sales).sender == root
    assert notices.broadcast(None, "To ops", group=ops).sender is None


@pytest.mark.parametrize(
    "who",
    [
        {"is_staff": False},  # a user
        {"is_staff": True},  # staff without the permission
        {"is_staff": True, "is_active": False, "is_superuser": True},  # deactivated
        {"is_staff": False, "is_superuser": True},  # a superuser who may not use the admin
    ],
)
def test_others_may_not_broadcast_at_all(who: dict[str, bool]) -> None:
    sender: User = UserFactory.create(**who)
    assert not notices.may_broadcast(sender)
    assert not notices.addressable_groups(sender).exists()
    with pytest.raises(notices.NoticeRefused, match="Only staff"):
        notices.broadcast(sender, "Hello")
    assert Notice.objects.count() == 0


@pytest.mark.parametrize(
    ("text", "level", "expires_in", "field"),
    [
        ("", Level.INFO, None, "text"),
        ("   \n ", Level.INFO, None, "text"),
        ("x" * 501, Level.INFO, None, "text"),
        ("nul\x00", Level.INFO, None, "text"),
        ("Hello", "urgent", None, "level"),
        ("Hello", Level.INFO, timedelta(seconds=-1), "expires_at"),
    ],
)
def test_a_bad_notice_is_refused_naming_the_field(
    staff: User, text: str, level: str, expires_in: timedelta | None, field: str
) -> None:
    expires_at = timezone.now() + expires_in if expires_in is not None else None
    with pytest.raises(notices.NoticeRefused) as refused:
        notices.broadcast(staff, text, level, None, expires_at)
    assert refused.value.field == field


def test_the_text_is_trimmed_and_500_characters_fit(staff: User) -> None:
    assert notices.broadcast(staff, "  " + "x" * 500 + "\n").text == "x" * 500


def test_a_notice_makes_one_notification_per_active_addressed_user(staff: User, ops: Group) -> None:
    colleague: User = UserFactory.create()
    colleague.groups.add(ops)
    UserFactory.create()  # not in ops
    UserFactory.create(is_active=False).groups.add(ops)
    notice = notices.broadcast(staff, "Ops only", Level.CRITICAL, ops)
    rows = Notification.objects.filter(notice=notice)
    assert sorted(rows.values_list("user_id", flat=True)) == sorted([staff.pk, colleague.pk])
    assert {(row.level, row.text, row.read_at) for row in rows} == {("critical", "Ops only", None)}


# --- The admin -------------------------------------------------------------------


def admin_client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_admin_offers_only_the_groups_the_sender_may_address(staff: User, sales: Group) -> None:
    page = admin_client(staff).get(ADD_URL)
    assert page.status_code == 200
    form = page.context["adminform"].form
    assert [str(label) for _, label in form.fields["group"].choices] == ["Everyone", "ops"]


def test_the_admin_sends_to_the_senders_group(staff: User, ops: Group) -> None:
    form = {"text": "Deploy frozen", "level": "warning", "group": ops.pk}
    response = admin_client(staff).post(ADD_URL, form)
    assert response.status_code == 302, response.content
    notice = Notice.objects.get()
    assert (notice.text, notice.level, notice.group, notice.sender) == ("Deploy frozen", "warning", ops, staff)
    assert Notification.objects.filter(notice=notice, user=staff).exists()


def test_the_admin_refuses_a_group_the_sender_is_not_in(staff: User, sales: Group) -> None:
    response = admin_client(staff).post(ADD_URL, {"text": "Hi sales", "level": "info", "group": sales.pk})
    assert response.status_code == 200
    assert "group" in response.context["adminform"].form.errors
    assert Notice.objects.count() == 0


def test_the_admin_refuses_a_text_over_500_characters(staff: User) -> None:
    response = admin_client(staff).post(ADD_URL, {"text": "x" * 501, "level": "info"})
    assert response.status_code == 200 and "text" in response.context["adminform"].form.errors
    assert Notice.objects.count() == 0


def test_staff_without_the_permission_cannot_open_the_form() -> None:
    plain_staff: User = UserFactory.create(is_staff=True)
    assert admin_client(plain_staff).get(ADD_URL).status_code == 403


def test_a_sent_notice_cannot_be_changed_or_deleted_in_the_admin(staff: User) -> None:
    notice = notices.broadcast(staff, "Sent")
    client = admin_client(staff)
    change_url = f"/admin/notifications/notice/{notice.pk}/change/"
    assert client.post(change_url, {"text": "Edited", "level": "info"}).status_code == 403
    assert client.post(f"/admin/notifications/notice/{notice.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Notice.objects.get().text == "Sent"


# --- The command -----------------------------------------------------------------


def test_the_command_sends_to_a_group_with_an_expiry(ops: Group, capsys: pytest.CaptureFixture[str]) -> None:
    before = timezone.now()
    call_command("notice", "Maintenance tonight", "--level", "warning", "--group", "ops", "--expires-in", "1h30m")
    notice = Notice.objects.get()
    assert (notice.text, notice.level, notice.group, notice.sender) == ("Maintenance tonight", "warning", ops, None)
    assert notice.expires_at is not None
    assert timedelta(minutes=90) <= notice.expires_at - before <= timedelta(minutes=91)
    assert f"Notice {notice.pk} (warning) sent to ops, until" in capsys.readouterr().out


def test_the_command_applies_the_senders_rights(staff: User, sales: Group) -> None:
    with pytest.raises(CommandError, match="groups you belong to"):
        call_command("notice", "Hi", "--group", "sales", "--sender", staff.username)
    plain: User = UserFactory.create()
    with pytest.raises(CommandError, match="Only staff"):
        call_command("notice", "Hi", "--sender", plain.username)
    assert Notice.objects.count() == 0


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["x" * 501], "at most 500"),
        (["Hi", "--group", "nobody"], "No group 'nobody'"),
        (["Hi", "--sender", "nobody"], "No user 'nobody'"),
        (["Hi", "--expires-in", "soon"], "not a duration"),
        (["Hi", "--expires-in", "0m"], "longer than zero"),
        (["Hi", "--expires-in", "99999999999w"], "too long"),
    ],
)
def test_the_command_explains_what_is_wrong(arguments: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        call_command("notice", *arguments)
    assert Notice.objects.count() == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("2h", timedelta(hours=2)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("1W", timedelta(weeks=1)),
    ],
)
def test_durations_read_as_people_write_them(text: str, expected: timedelta) -> None:
    assert notices.parse_duration(text) == expected
