"""Channel-layer group names. One group per user: a socket joins only its owner's.

Broadcast notices travel on two more kinds of group: `everyone`,
which every socket joins, and `authgroup.<id>`, one per Django auth group,
which a socket joins for each group its user belongs to when it connects.
"""

from __future__ import annotations


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


EVERYONE = "everyone"


def auth_group(group_id: int) -> str:
    return f"authgroup.{group_id}"


def notice_group(group_id: int | None) -> str:
    """Where a notice goes: the auth group's channel group, or everyone when it has none."""
    return EVERYONE if group_id is None else auth_group(group_id)


def job_log_group(job_id: str) -> str:
    """The sockets following a job's log lines (job.logs.follow): its owner's, or staff's."""
    return f"joblog.{job_id}"


def batch_group(batch_id: str) -> str:
    """The sockets following a batch (batch.follow): its children's own events go there, not to the owner."""
    return f"batch.{batch_id}"
