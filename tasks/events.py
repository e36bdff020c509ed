"""What the tasks app tells the layers above it: domain events, as Django signals.

The tasks app knows nothing of sockets or notifications; the layers that do
subscribe in their AppConfig.ready (the gateway publishes job events to the
owner's sockets, the notification centre records finished jobs).

* `job_changed(event, job)`, `job_progressed(owner_id, job_id, seq, progress, eta_seconds)` and
  `job_logged(owner_id, job_id, lines)` are sent after the transaction that made
  the change commits (a rolled-back change never happened), in commit order;
* `job_finished(job)` is sent inside the transaction of a job's terminal
  transition, so that what a receiver writes commits, or rolls back, with it.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.dispatch import Signal

job_changed = Signal()
job_progressed = Signal()
job_logged = Signal()
job_finished = Signal()


def send_on_commit(signal: Signal, **fields: Any) -> None:
    """Send `signal` once the current transaction commits (at once outside one), with these fields."""
    transaction.on_commit(lambda: signal.send(sender=None, **fields), robust=True)


# `child_moved(job, old)`: a child of a batch changed state, sent inside its transition's transaction
# (tasks.batches moves the batch's counters in it, so they commit, or roll back, with the child).
child_moved = Signal()

# `slot_freed(kind, owner_id)`: a job left running (finished, or put back in the queue), sent after
# its transaction commits: tasks.limits hands out a job that waited for the slot.
slot_freed = Signal()
