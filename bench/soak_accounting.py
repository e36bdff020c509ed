"""The soak's books (bench.soak): what it watches during the run, and the table it checks at the end.

Import it only once Django is set up (it reads the models).

"Ran twice at once", from the database and /proc. Every 0.3 s the watcher reads
each running job's (id, attempt, deliveries, worker, progress). A run is one
(job, attempt, deliveries): every claim counts a delivery, in the transaction
that makes the claiming process (host:pid) the job's `worker`.

1. The check (a target of 0): a demo.countdown run reports steps 1, 2, 3 ...,
   and progress is stored without asking who writes it (services.save_progress),
   so while two processes run one job, the stored step goes down more than once
   within one run. A run after a redelivery may go down once: it starts from
   where the run before stopped (a retry starts from nothing). Sampling can miss
   an overlap shorter than 0.3 s, so this finds overlaps without proving there
   were none; for email.send the SMTP sink's counts catch a second send however
   short (no message may arrive twice).
2. Information: a job may be claimed again in one attempt only once the process
   that held it is gone (tasks.liveness). For each such claim B the watcher takes
   its start (the latest `job.started` event at or before B was first seen) and
   whether the process before it was still seen alive in /proc after that.
   Alive is not proof: the reconciler, run by that very process after its run
   had ended without recording an outcome, may put the job back itself
   (liveness counts its own pid as gone). Each case is printed with the job's
   timeline on stderr.
"""

from __future__ import annotations

import itertools
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.db import DatabaseError, InterfaceError, connections

from bench.harness import Row, percentile
from bench.soak_chaos import Fault
from tasks.models import BATCH_KIND, FINISHED, UNFINISHED, DeliveryStatus, EmailDelivery, Job, JobEvent, JobStatus
from tests.smtp import SmtpServer

SAMPLE_EVERY = 0.3
SOAK = "soak"


def pid_of(worker: str) -> int | None:
    pid = worker.rpartition(":")[2]
    return int(pid) if pid.isdigit() else None


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return False


Claim = tuple[str, int, int]  # (job id, attempt, deliveries): one run of a job


@dataclass
class Watcher:
    """Samples who runs which job, its progress, and which of those processes live (see the module's docstring)."""

    claims: dict[tuple[str, int], list[tuple[str, float]]] = field(default_factory=dict)
    last_alive: dict[int, float] = field(default_factory=dict)
    progress: dict[Claim, int] = field(default_factory=dict)  # the run's progress.current last seen
    descents: dict[Claim, int] = field(default_factory=dict)  # how often it was lower than the sample before
    interleaved: set[Claim] = field(default_factory=set)  # runs whose progress went backwards
    stop: threading.Event = field(default_factory=threading.Event)
    errors: int = 0

    def run(self) -> None:
        while not self.stop.wait(SAMPLE_EVERY):
            try:
                self.sample()
            except (DatabaseError, InterfaceError):
                self.errors += 1  # PostgreSQL is being restarted: next time
                connections.close_all()

    def sample(self) -> None:
        running = Job.objects.filter(status=JobStatus.RUNNING).exclude(kind=BATCH_KIND)
        rows = running.values_list("id", "attempt", "deliveries", "worker", "kind", "progress")
        now = time.time()
        for job_id, attempt, deliveries, worker, kind, progress in rows:
            seen = self.claims.setdefault((str(job_id), attempt), [])
            if worker and (not seen or seen[-1][0] != worker):
                seen.append((worker, now))
            if kind == "demo.countdown":
                self.note_progress((str(job_id), attempt, deliveries), (progress or {}).get("current") or 0)
        self.note_alive()

    def note_progress(self, run: Claim, current: int) -> None:
        """One run of a countdown only counts up. A run after a redelivery starts from the progress its
        predecessor left (a retry starts from none), so one step down is its own start; more is a second writer."""
        last = self.progress.get(run)
        if last is not None and current < last:
            self.descents[run] = self.descents.get(run, 0) + 1
            if self.descents[run] > (0 if run[2] <= 1 else 1):
                self.interleaved.add(run)
        self.progress[run] = current

    def note_alive(self) -> None:
        now = time.time()
        for seen in self.claims.values():
            for worker, _ in seen:
                pid = pid_of(worker)
                if pid is not None and alive(pid):
                    self.last_alive[pid] = now

    def claimed_while_alive(self) -> tuple[int, int]:
        """(claims of a job again in one attempt, those made while the process before was still seen alive)."""
        checked = alive_then = 0
        for (job_id, _), seen in self.claims.items():
            for (before, _), (after, first_seen) in itertools.pairwise(seen):
                checked += 1
                started = claim_started(job_id, first_seen)
                pid = pid_of(before)
                if pid is not None and self.last_alive.get(pid, 0.0) > started:
                    alive_then += 1
                    print(
                        f"soak: job {job_id} claimed by {after} at {started:.2f} while {before}, which held it "
                        f"before, was still seen alive at {self.last_alive[pid]:.2f}; its timeline:",
                        file=sys.stderr,
                    )
                    print_timeline(job_id)
        return checked, alive_then


def print_timeline(job_id: str) -> None:
    for seq, event, at, note in JobEvent.objects.filter(job_id=job_id).values_list("seq", "event", "at", "note"):
        print(f"   #{seq} {event} at {at.timestamp():.2f} {note}", file=sys.stderr)


def claim_started(job_id: str, first_seen: float) -> float:
    events = JobEvent.objects.filter(job_id=job_id, event="job.started").values_list("at", flat=True)
    times = [at.timestamp() for at in events if at.timestamp() <= first_seen]
    return max(times, default=first_seen)


@dataclass
class Memory:
    """RSS (MiB) of each long-lived process role: its first sample after the warm-up and its last."""

    start: dict[str, tuple[int, float]] = field(default_factory=dict)  # role -> (pid sampled, MiB)
    end: dict[str, tuple[int, float]] = field(default_factory=dict)


def rss_rows(memory: Memory) -> list[Row]:
    rows = []
    for role, (pid, start) in memory.start.items():
        end_pid, end = memory.end.get(role, (0, float("nan")))
        same = "" if end_pid == pid else " (restarted by the chaos: a new process at the end)"
        growth = end - start
        value = f"{start:.0f} -> {end:.0f} MiB ({growth:+.0f}, {growth / start * 100:+.0f}%){same}"
        rows.append(Row(SOAK, f"RSS {role}: start -> end (growth)", "-", value))
    return rows


# --- the accounting ----------------------------------------------------------------------------------


def unfinished(owners: list[int]) -> bool:
    return Job.objects.filter(owner_id__in=owners, status__in=UNFINISHED).exists()


def exactly(metric: str, value: int, expected: int = 0) -> Row:
    return Row(SOAK, metric, "-", str(value), f"= {expected}", value == expected)


def job_rows(clients: list[dict[str, Any]], owners: list[int], watcher: Watcher) -> list[Row]:
    submitted = sum(c["submitted"] for c in clients)
    accepted = sum(c["accepted"] for c in clients)
    accepted_ids = {job for c in clients for job in c["accepted_ids"]}
    jobs = Job.objects.filter(owner_id__in=owners)
    top = jobs.filter(parent__isnull=True)
    refused: Counter[str] = sum((Counter(c["refused"]) for c in clients), Counter())
    missing = len(accepted_ids - {str(pk) for pk in top.values_list("id", flat=True)})
    stuck = jobs.filter(status__in=UNFINISHED).count()
    describe_stuck(jobs.filter(status__in=UNFINISHED))
    checked, alive_then = watcher.claimed_while_alive()
    for job_id, attempt, deliveries in watcher.interleaved:
        print(
            f"soak: job {job_id} attempt {attempt} delivery {deliveries}: two runs' progress interleaved",
            file=sys.stderr,
        )
        print_timeline(job_id)
    by_status = Counter(jobs.values_list("status", flat=True))
    scheduled = jobs.filter(request_id__startswith="schedule:").count()
    return [
        Row(SOAK, "jobs submitted (request_ids) / acknowledged (job.accepted)", "-", f"{submitted} / {accepted}"),
        exactly("submissions never acknowledged nor refused", submitted - accepted - refused.total()),
        Row(SOAK, "submissions refused (error code: count)", "-", counts(refused) or "none"),
        exactly("acknowledged jobs missing from the database", missing),
        Row(SOAK, "jobs in the database (children of batches included), by status", "-", counts(by_status)),
        Row(SOAK, "of those, submitted by schedules (one a minute each)", "-", str(scheduled)),
        Row(SOAK, "jobs that reached a final state", "-", str(jobs.filter(status__in=FINISHED).count())),
        exactly("jobs stuck (queued or running) after the settle period", stuck),
        Row(
            SOAK,
            "claims of a running job again in one attempt / made while the process before lived",
            "-",
            f"{checked} / {alive_then}",
        ),
        exactly("countdown runs whose progress went backwards (two runs at once)", len(watcher.interleaved)),
    ]


def describe_stuck(stuck: Any) -> None:
    """On stderr, what a stuck job looks like: who holds it and whether that process lives."""
    for job in stuck[:10]:
        pid = pid_of(job.worker)
        state = "" if pid is None else ("alive" if alive(pid) else "gone")
        last = job.events.order_by("-seq").values_list("event", "note").first()
        print(
            f"soak: stuck {job.kind} {job.pk} {job.status}, worker {job.worker or '-'} {state}, deliveries "
            f"{job.deliveries}, last event {last}",
            file=sys.stderr,
        )


def email_rows(smtp: SmtpServer, owners: list[int]) -> list[Row]:
    received: Counter[str] = Counter(rcpt.lower() for message in smtp.received for rcpt in message.rcpt_tos)
    jobs = Job.objects.filter(owner_id__in=owners, kind="email.send")
    recipients = {to.lower() for params in jobs.values_list("params", flat=True) for to in params.get("to", [])}
    rows = EmailDelivery.objects.filter(job__in=jobs).values_list("recipient", "status")
    status = {recipient.lower(): state for recipient, state in rows}
    verdicts: Counter[str] = Counter(verdict(status.get(address), received[address]) for address in recipients)
    reported = sum(j.unknown_outcome or 0 for j in jobs.only("unknown_outcome"))
    stray = sum(n for address, n in received.items() if address not in recipients)
    return [
        Row(SOAK, "email recipients / messages at the SMTP sink", "-", f"{len(recipients)} / {received.total()}"),
        Row(SOAK, "recipients sent exactly once", "-", str(verdicts["once"])),
        Row(SOAK, "recipients not sent (their job failed or was cancelled first)", "-", str(verdicts["not sent"])),
        Row(
            SOAK,
            "recipients of unknown outcome (delivered / not)",
            "-",
            f"{verdicts['unknown, delivered'] + verdicts['unknown, not delivered']} "
            f"({verdicts['unknown, delivered']} / {verdicts['unknown, not delivered']}); jobs report {reported}",
        ),
        exactly("recipients with two or more messages", verdicts["twice"]),
        exactly("recipients recorded sent, no message (lost)", verdicts["lost"]),
        exactly("recipients with a message, recorded not sent", verdicts["unrecorded"]),
        exactly("messages to addresses of no job", stray),
    ]


def verdict(state: str | None, messages: int) -> str:
    """One recipient's line in the books, from its delivery row and the sink's count."""
    if messages > 1:
        return "twice"
    if state == DeliveryStatus.SENDING:
        return "unknown, delivered" if messages else "unknown, not delivered"
    if state == DeliveryStatus.SENT:
        return "once" if messages else "lost"
    return "unrecorded" if messages else "not sent"


def truth(owners: set[int]) -> dict[int, dict[str, tuple[int, str]]]:
    """Each user's top-level jobs in the database: id -> (seq, status), what a hello shows."""
    jobs: dict[int, dict[str, tuple[int, str]]] = defaultdict(dict)
    top = Job.objects.filter(owner_id__in=owners, parent__isnull=True)
    for pk, owner, seq, status in top.values_list("id", "owner_id", "seq", "status"):
        jobs[owner][str(pk)] = (seq, status)
    return jobs


def differences(views: dict[str, Any], owner_of_socket: dict[str, int]) -> tuple[int, int]:
    """(sockets whose view differs from the database, (socket, job) pairs that differ)."""
    expected_of = truth(set(owner_of_socket.values()))
    wrong_sockets = wrong_jobs = 0
    for key, view in views.items():
        expected = expected_of[owner_of_socket[key]]
        seen = {job: (seq, status) for job, (seq, status) in view.items()}
        wrong = {job for job in expected.keys() | seen.keys() if expected.get(job) != seen.get(job)}
        wrong_sockets += bool(wrong)
        wrong_jobs += len(wrong)
    return wrong_sockets, wrong_jobs


def live_view_rows(answers: list[dict[str, Any]], owner_of_socket: dict[str, int]) -> list[Row]:
    """Before the final reconnect: a socket that is up holds every event since its hello, and with every
    job finished its view must already be the database's (an event lost without a close 4012 shows here)."""
    views = {key: view for a in answers for key, view in a["views"].items() if key in a["up"]}
    wrong_sockets, wrong_jobs = differences(views, owner_of_socket)
    return [
        Row(SOAK, "sockets up once settled, before the final reconnect", "-", str(len(views))),
        exactly("of those, sockets whose view differs from the database (events lost)", wrong_sockets),
        exactly("of those, (socket, job) pairs that differ", wrong_jobs),
    ]


def view_rows(clients: list[dict[str, Any]], owner_of_socket: dict[str, int]) -> list[Row]:
    views = {key: view for c in clients for key, view in c["views"].items()}
    wrong_sockets, wrong_jobs = differences(views, owner_of_socket)
    not_back = sum(len(c["not_back"]) for c in clients)
    connects, drops = sum(c["connects"] for c in clients), sum(c["drops"] for c in clients)
    return [
        Row(
            SOAK,
            "client sockets / connections made / dropped by the client",
            "-",
            f"{len(views)} / {connects} / {drops}",
        ),
        exactly("sockets without the hello of their final reconnect", not_back),
        exactly("after it, sockets whose view differs from the database", wrong_sockets),
        exactly("after it, (socket, job) pairs that differ: seq or status", wrong_jobs),
    ]


def fault_rows(faults: list[Fault], allowed: tuple[str, ...], worker_restarts: int, started: float) -> list[Row]:
    """What the chaos did, and how long each Daphne, Redis and PostgreSQL fault took to recover from."""
    done = Counter(f.name for f in faults)
    rows = [
        Row(SOAK, "faults (name: count)", "-", counts(done)),
        Row(SOAK, "workers started again by the supervisor", "-", str(worker_restarts)),
        exactly("faults not recovered from in time", sum(1 for f in faults if f.failed)),
        exactly(
            "kinds of fault asked for but never done (run longer, or lower --fault-every)",
            len(set(allowed) - set(done)),
        ),
    ]
    for fault in faults:
        if fault.name.startswith("daphne"):
            p50, p99 = percentile(fault.seconds, 0.5), percentile(fault.seconds, 0.99)
            value = f"p50 {p50:.1f} s, p99 {p99:.1f} s, last {max(fault.seconds, default=float('nan')):.1f} s"
            value += f" ({len(fault.seconds)} sockets)"
            rows.append(
                Row(SOAK, f"{fault.name} at +{fault.at - started:.0f} s: hello again", "-", value + note(fault))
            )
        elif fault.name.startswith(("redis", "postgres")):
            value = f"{fault.seconds[0]:.1f} s" if fault.seconds else "-"
            label = f"{fault.name} at +{fault.at - started:.0f} s{' (' + fault.detail + ')' if fault.detail else ''}"
            rows.append(Row(SOAK, f"{label}: a new job done end to end", "-", value + note(fault)))
    return rows


def note(fault: Fault) -> str:
    return f"; FAILED: {fault.failed}" if fault.failed else ""


def counts(counter: Counter[str]) -> str:
    return ", ".join(f"{key}: {value}" for key, value in sorted(counter.items()))
