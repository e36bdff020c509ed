"""Protocol 1.1 history and details over the socket: job.list (filters, search, cursors, staff scope), job.get
(timeline and logs), job.logs.follow / unfollow, job.bulk, and the errors each answers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import User
from django.db.models import F

from tasks import history, logs, services
from tasks.models import Job, JobStatus
from tests.factories import UserFactory
from tests.unit.sockets import Socket, connected

pytestmark = pytest.mark.django_db(transaction=True)

START = datetime(2026, 4, 1, tzinfo=UTC)


def made(owner: User, n: int, *, kind: str = "demo.countdown", status: str = "succeeded", **params: Any) -> Job:
    """A job created at START + n minutes, searchable as services.submit makes it searchable."""
    job_id = uuid.uuid4()
    request_id = f"req-{n}"
    job = Job.objects.create(
        id=job_id, owner=owner, request_id=request_id, kind=kind, status=status, params=params,
        search_text=history.search_text(job_id, request_id, params),
    )  # fmt: skip
    Job.objects.filter(pk=job.pk).update(created_at=START + timedelta(minutes=n))
    return job


async def list_jobs(socket: Socket, **message: Any) -> dict[str, Any]:
    return await socket.request({"type": "job.list", "request_id": "l", **message})


async def all_pages(socket: Socket, limit: int, cursor: str | None = None, **message: Any) -> list[str]:
    ids: list[str] = []
    while True:
        page = await list_jobs(socket, limit=limit, **({"cursor": cursor} if cursor else {}), **message)
        assert page["type"] == "job.list" and page["request_id"] == "l", page
        ids += [job["id"] for job in page["jobs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return ids


async def test_pages_go_newest_first_and_never_repeat_or_skip_while_jobs_arrive(user: User) -> None:
    jobs = await database_sync_to_async(lambda: [made(user, n) for n in range(25)])()
    newest_first = [str(job.pk) for job in reversed(jobs)]
    async with connected(user) as (socket, _):
        first = await list_jobs(socket, limit=10)
        assert [job["id"] for job in first["jobs"]] == newest_first[:10]
        await database_sync_to_async(made)(user, 100)  # a new job while paging: newer than any cursor
        rest = await all_pages(socket, limit=10, cursor=first["next_cursor"])
        assert rest == newest_first[10:]
        assert (await list_jobs(socket))["jobs"][0]["seq"] == 1  # full Job objects


async def test_filters_hold_together(user: User, other_user: User) -> None:
    def make() -> None:
        made(user, 1, kind="email.send", status="failed", to=["ada@example.com"], subject="Invoice April")
        made(user, 2, kind="email.send", status="succeeded", to=["grace@example.com"], subject="Invoice May")
        made(user, 3, status="failed")
        made(other_user, 4, kind="email.send", status="failed", subject="Invoice April")

    await database_sync_to_async(make)()
    async with connected(user) as (socket, _):

        async def kinds_and_n(**wanted: Any) -> list[tuple[str, str]]:
            page = await list_jobs(socket, filter=wanted)
            return [(job["kind"], job["request_id"] if "request_id" in job else job["status"]) for job in page["jobs"]]

        assert len((await list_jobs(socket))["jobs"]) == 3  # only the user's own
        assert await kinds_and_n(status=["failed"]) == [("demo.countdown", "failed"), ("email.send", "failed")]
        assert await kinds_and_n(kind=["email.send"], status=["failed"]) == [("email.send", "failed")]
        assert await kinds_and_n(search="INVOICE") == [("email.send", "succeeded"), ("email.send", "failed")]
        assert await kinds_and_n(search="grace@") == [("email.send", "succeeded")]
        after = (START + timedelta(minutes=2)).isoformat()
        assert await kinds_and_n(created_after=after) == [("demo.countdown", "failed"), ("email.send", "succeeded")]
        assert await kinds_and_n(created_before="2026-04-01T00:02:00Z") == [("email.send", "failed")]


async def test_search_finds_a_job_by_its_id_and_request_id(user: User) -> None:
    job = await database_sync_to_async(made)(user, 1)
    await database_sync_to_async(made)(user, 2)
    async with connected(user) as (socket, _):
        by_id = await list_jobs(socket, filter={"search": str(job.pk)[:8].upper()})
        by_request = await list_jobs(socket, filter={"search": "req-1"})
    assert [found["id"] for found in by_id["jobs"]] == [str(job.pk)] == [found["id"] for found in by_request["jobs"]]


async def test_staff_list_everyone_s_jobs_and_narrow_them_by_owner(user: User, other_user: User) -> None:
    await database_sync_to_async(lambda: [made(user, 1), made(other_user, 2)])()
    staff = await database_sync_to_async(UserFactory.create)(is_staff=True)
    async with connected(staff) as (socket, _):
        assert len((await list_jobs(socket, scope="all"))["jobs"]) == 2
        narrowed = await list_jobs(socket, scope="all", filter={"owner": [other_user.username]})
        assert len(narrowed["jobs"]) == 1
        assert len((await list_jobs(socket, scope="all", filter={"owner": ["nobody-at-all"]}))["jobs"]) == 0
    async with connected(user) as (socket, _):
        refused = await list_jobs(socket, scope="all")
    assert (refused["type"], refused["code"], refused["request_id"]) == ("error", "bad_message", "l")
    assert "scope" in refused["details"]


@pytest.mark.parametrize(
    ("message", "field"),
    [
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"filter": {"status": ["lost"]}}, "filter.status.0"),
        ({"filter": {"created_after": "yesterday"}}, "filter.created_after"),
        ({"filter": {"surprise": 1}}, "filter.surprise"),
        ({"limit": 101}, "limit"),
    ],
)
async def test_a_bad_list_request_names_its_field(user: User, message: dict[str, Any], field: str) -> None:
    async with connected(user) as (socket, _):
        reply = await list_jobs(socket, **message)
        assert (reply["code"], reply["request_id"]) == ("bad_message", "l")
        assert field in reply["details"]
        assert (await socket.request({"type": "ping"}))["type"] == "pong"  # still usable


async def test_job_get_gives_the_timeline_and_the_last_log_lines(user: User, published: Any) -> None:
    def run() -> Job:
        job, _ = services.submit(user, "r", "demo.countdown", {"steps": 1})
        services.start(str(job.pk), job.celery_task_id)
        logs.store(str(job.pk), [logs.Line(START, "info", f"line {n}") for n in range(250)])
        services.fail(str(job.pk), "demo_failure", "It failed.")
        return job

    job = await database_sync_to_async(run)()
    async with connected(user) as (socket, _):
        detail = await socket.request({"type": "job.get", "job_id": str(job.pk), "request_id": "g"})
    assert detail["type"] == "job.detail" and detail["request_id"] == "g"
    assert detail["job"]["status"] == "failed"
    events = [(event["seq"], event["event"], event["note"]) for event in detail["events"]]
    assert events == [
        (1, "job.accepted", ""),
        (2, "job.queued", ""),
        (3, "job.started", ""),
        (4, "job.failed", "demo_failure"),
    ]
    assert all(event["at"].endswith("Z") for event in detail["events"])
    assert [line["n"] for line in detail["logs"]] == list(range(51, 251)) and detail["logs_dropped"] == 0


async def test_another_users_job_is_not_found_for_get_follow_and_cancel(user: User, other_user: User) -> None:
    theirs = await database_sync_to_async(made)(other_user, 1)
    async with connected(user) as (socket, _):
        for message in ({"type": "job.get"}, {"type": "job.logs.follow"}, {"type": "job.cancel"}):
            reply = await socket.request({**message, "job_id": str(theirs.pk), "request_id": "x"})
            assert (reply["code"], reply["request_id"]) == ("not_found", "x")
        missing = await socket.request({"type": "job.get", "job_id": str(uuid.uuid4()), "request_id": "x"})
        assert missing["message"] == reply["message"]
        malformed = await socket.request({"type": "job.get", "job_id": "not-an-id", "request_id": "x"})
        assert (malformed["code"], malformed["message"]) == ("not_found", reply["message"])  # as the contract says


async def test_following_a_running_job_s_log_sends_new_lines_until_it_finishes(user: User) -> None:
    def start() -> Job:
        job, _ = services.submit(user, "r", "demo.countdown", {"steps": 1})
        services.start(str(job.pk), job.celery_task_id)
        logs.store(str(job.pk), [logs.Line(START, "info", "before")])
        return job

    job = await database_sync_to_async(start)()
    job_id = str(job.pk)
    async with connected(user) as (socket, _), connected(user) as (other_tab, _):
        first = await socket.request({"type": "job.logs.follow", "job_id": job_id, "request_id": "f"})
        assert first["type"] == "job.logs" and first["request_id"] == "f"
        assert [line["text"] for line in first["lines"]] == ["before"]
        await database_sync_to_async(logs.store)(job_id, [logs.Line(START, "warning", "during")])
        live = await socket.receive()
        assert live["type"] == "job.log" and [(line["n"], line["text"]) for line in live["lines"]] == [(2, "during")]
        await database_sync_to_async(services.succeed)(job_id, {}, None)
        finished = ["job.succeeded", "notification.created"]
        assert [message["type"] for message in await socket.receive_until("notification.created")] == finished
        await database_sync_to_async(logs.store)(job_id, [logs.Line(START, "info", "after the end")])
        assert await socket.nothing_more()  # it stopped following when the job finished
        assert [m["type"] for m in await other_tab.receive_until("notification.created")] == finished
        assert await other_tab.nothing_more()  # a tab that did not follow got no log lines


async def test_unfollow_stops_the_lines(user: User) -> None:
    def start() -> Job:
        job, _ = services.submit(user, "r", "demo.countdown", {"steps": 1})
        services.start(str(job.pk), job.celery_task_id)
        return job

    job_id = str((await database_sync_to_async(start)()).pk)
    async with connected(user) as (socket, _):
        await socket.request({"type": "job.logs.follow", "job_id": job_id})
        await socket.send({"type": "job.logs.unfollow", "job_id": job_id})
        await database_sync_to_async(logs.store)(job_id, [logs.Line(START, "info", "unseen")])
        assert await socket.nothing_more()


async def test_bulk_counts_first_then_retries_only_the_failed_and_cancelled(user: User, other_user: User) -> None:
    def make() -> list[Job]:
        return [made(user, 1, status="failed"), made(user, 2, status="cancelled"), made(user, 3, status="succeeded"),
                made(other_user, 4, status="failed")]  # fmt: skip

    jobs = await database_sync_to_async(make)()
    async with connected(user) as (socket, _):
        bulk = {"type": "job.bulk", "request_id": "b", "action": "retry", "filter": {}}
        counted = await socket.request({**bulk, "dry_run": True})
        assert counted == {"type": "job.bulk", "request_id": "b", "matched": 3, "changed": 2, "dry_run": True}
        assert await database_sync_to_async(Job.objects.filter(status=JobStatus.QUEUED).count)() == 0
        done = await socket.request(bulk)
        assert done == {"type": "job.bulk", "request_id": "b", "matched": 3, "changed": 2}
        queued = await socket.receive_until("job.queued")
        assert queued[-1]["job"]["attempt"] == 2
    statuses = await database_sync_to_async(lambda: {j.request_id: (j.status, j.owner_id) for j in Job.objects.all()})()
    assert statuses == {
        "req-1": ("queued", user.pk), "req-2": ("queued", user.pk), "req-3": ("succeeded", user.pk),
        "req-4": ("failed", other_user.pk),
    }  # fmt: skip
    assert jobs


async def test_bulk_cancel_stops_the_unfinished_of_the_filter(user: User, sent_tasks: Any) -> None:
    def make() -> list[Job]:
        queued = [made(user, n, kind="email.send", status="queued") for n in (1, 2)]
        made(user, 3, status="queued")
        Job.objects.filter(pk__in=[job.pk for job in queued]).update(celery_task_id=F("request_id"))
        return queued

    await database_sync_to_async(make)()
    async with connected(user) as (socket, _):
        reply = await socket.request(
            {"type": "job.bulk", "action": "cancel", "filter": {"kind": ["email.send"]}, "request_id": "c"}
        )
    assert (reply["matched"], reply["changed"]) == (2, 2)
    assert sorted(sent_tasks.revoked) == ["req-1", "req-2"]
    counts = await database_sync_to_async(lambda: sorted(Job.objects.values_list("kind", "status")))()
    assert counts == [("demo.countdown", "queued"), ("email.send", "cancelled"), ("email.send", "cancelled")]


@pytest.mark.parametrize(
    ("message", "field"),
    [
        ({"type": "job.get"}, "job_id"),
        ({"type": "job.get", "job_id": ""}, "job_id"),
        ({"type": "job.logs.follow", "job_id": 7}, "job_id"),
        ({"type": "job.logs.unfollow"}, "job_id"),
        ({"type": "job.bulk", "action": "delete", "filter": {}}, "action"),
        ({"type": "job.bulk", "action": "retry"}, "filter"),
        ({"type": "job.bulk", "action": "retry", "filter": {}, "dry_run": "yes"}, "dry_run"),
        ({"type": "job.bulk", "action": "retry", "filter": {}, "scope": "all"}, "scope"),
    ],
)
async def test_a_bad_details_logs_or_bulk_request_names_its_field(
    user: User, message: dict[str, Any], field: str
) -> None:
    await database_sync_to_async(made)(user, 1, status="failed")
    async with connected(user) as (socket, _):
        reply = await socket.request({**message, "request_id": "m"})
        assert (reply["type"], reply["code"], reply["request_id"]) == ("error", "bad_message", "m")
        assert field in reply["details"]
        assert (await socket.request({"type": "ping"}))["type"] == "pong"  # still usable
    assert await database_sync_to_async(Job.objects.filter(status=JobStatus.FAILED).count)() == 1  # nothing changed


async def test_a_connection_follows_at_most_twenty_jobs_at_once(user: User, settings: Any) -> None:
    settings.RATE_LIMIT_MESSAGES_PER_SECOND = 1_000  # this test sends more than a person would in a second

    def start(n: int) -> str:
        job = made(user, n, status="running")
        return str(job.pk)

    job_ids = [await database_sync_to_async(start)(n) for n in range(21)]
    async with connected(user) as (socket, _):
        for job_id in job_ids[:20]:
            assert (await socket.request({"type": "job.logs.follow", "job_id": job_id}))["type"] == "job.logs"
        refused = await socket.request({"type": "job.logs.follow", "job_id": job_ids[20], "request_id": "21"})
        assert (refused["code"], refused["request_id"]) == ("conflict", "21")
        again = await socket.request({"type": "job.logs.follow", "job_id": job_ids[0]})  # one already followed
        assert again["type"] == "job.logs"
        await socket.send({"type": "job.logs.unfollow", "job_id": job_ids[0]})
        assert (await socket.request({"type": "job.logs.follow", "job_id": job_ids[20]}))["type"] == "job.logs"
