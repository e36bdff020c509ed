"""What the schedules app tells the layers above it (the gateway publishes it to the owner's sockets).

`schedule_changed(schedule, request_id, origin, created, deleted)` is sent after the
change commits. `origin` is the opaque name of the socket that asked for the
change (it has had its answer), or None.
"""

from __future__ import annotations

from django.dispatch import Signal

schedule_changed = Signal()
