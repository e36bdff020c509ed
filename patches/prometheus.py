"""prometheus_client's multiprocess mode, with files named by host and pid.

The library names each process's files after `os.getpid()` and offers no
option to change it; replacing its module-level `ValueClass` before any metric
is made is the documented-by-source way (prometheus_client.values).
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import values


def name_files_by(process_identifier: Callable[[], str]) -> None:
    """Every metric made from now on writes to files named after `process_identifier()`."""
    values.ValueClass = values.MultiProcessValue(process_identifier)  # type: ignore[no-untyped-call]
