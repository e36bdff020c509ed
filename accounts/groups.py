"""The auth groups a user is in: every socket joins their notice groups when it opens
(notifications.notices addresses notices to them); a token handshake reads them with its credential."""

from __future__ import annotations

from django.contrib.auth.models import Group, User

from patches.prepared import Prepared


def group_ids(user_id: int) -> list[int]:
    return _GROUP_IDS.all(user_id=user_id)


# Part of every socket's connect: compiled once (patches.prepared), as the ORM's compile was most of its cost.
_GROUP_IDS = Prepared(
    lambda user_id: Group.objects.filter(user=user_id).values_list("id", flat=True), user_id=User._meta.pk
)
