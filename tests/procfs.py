"""What /proc says of a process: its memory and its children. Tests and benchmarks watch workers and Daphne."""

from __future__ import annotations

from pathlib import Path


def status_kib(pid: int, field: str) -> int:
    """A memory figure of /proc/<pid>/status, in KiB: VmRSS (resident now), VmHWM (peak resident)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for process {pid}")


def rss_kib(pid: int) -> int:
    """A process's resident memory (VmRSS) in KiB."""
    return status_kib(pid, "VmRSS")


def peak_rss_kib(pid: int) -> int:
    """A process's peak resident memory so far (VmHWM) in KiB."""
    return status_kib(pid, "VmHWM")


def _children_by_parent() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            except (OSError, IndexError, ValueError):
                continue  # gone meanwhile
            children.setdefault(parent, []).append(int(entry.name))
    return children


def children(pid: int) -> list[int]:
    """The process ids whose parent is `pid` (the prefork pool of a Celery worker)."""
    return _children_by_parent().get(pid, [])


def descendants(pid: int) -> list[int]:
    """The process ids of a process's children, their children, and so on."""
    by_parent = _children_by_parent()
    found: list[int] = []
    pending = [pid]
    while pending:
        for child in by_parent.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found
