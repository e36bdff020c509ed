"""What `file.process` can do with an upload: plain functions over an open binary file.

Each operation takes the file, its size and a progress callback (bytes read so
far), streams the file in chunks in constant memory and returns a JSON-ready
dict. They know nothing of Django or Celery, so they are tested and
benchmarked alone; tasks/kinds/file_process.py wires them to a job.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, BinaryIO

from uploads.operations.base import OperationError, Progress, progress_text, size_text
from uploads.operations.checksum import checksum
from uploads.operations.csv_summary import csv_summary
from uploads.operations.text_stats import text_stats

Operation = Callable[[BinaryIO, int, Progress], dict[str, Any]]

OPERATIONS: dict[str, Operation] = {
    "checksum": checksum,
    "csv.summary": csv_summary,
    "text.stats": text_stats,
}

__all__ = [
    "OPERATIONS",
    "Operation",
    "OperationError",
    "Progress",
    "checksum",
    "csv_summary",
    "progress_text",
    "size_text",
    "text_stats",
]
