"""checksum: SHA-256 and MD5 of the file in one pass, on two cores.

hashlib releases the GIL while it hashes a large buffer, so MD5 runs in a
helper thread while this thread reads the next chunk and runs SHA-256 over it:

1. Three buffers rotate; each chunk is read into the next free one with
   readinto (no new bytes object per chunk).
2. The chunk is handed to the MD5 thread (a one-thread pool keeps the chunks
   in order), and SHA-256 runs over it here at the same time.
3. Before a buffer is read into again, the MD5 of the chunk it held is
   awaited, so a buffer is never overwritten while it is being hashed.

The slower hash (MD5 here) sets the pace; the reading and the faster hash hide
behind it. Memory: the three buffers.
"""

from __future__ import annotations

import hashlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import cycle
from typing import Any, BinaryIO

from uploads.operations.base import CHUNK_BYTES, Progress, read_sequentially

BUFFERS = 3


def checksum(file: BinaryIO, size: int, progress: Progress) -> dict[str, Any]:
    """{"sha256", "md5", "size"} of the file, hex digests; `size` is the bytes actually read."""
    sha256 = hashlib.sha256()
    md5 = hashlib.md5(usedforsecurity=False)  # a content fingerprint, not a security control
    read_sequentially(file)
    done = 0
    in_flight: deque[Future[None]] = deque()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="md5") as md5_thread:
        for buffer in cycle([bytearray(CHUNK_BYTES) for _ in range(BUFFERS)]):
            if len(in_flight) == BUFFERS:
                in_flight.popleft().result()  # this buffer's chunk is through MD5: it may be reused
            count = file.readinto(buffer)  # type: ignore[attr-defined]
            if not count:
                break
            chunk = memoryview(buffer)[:count]
            in_flight.append(md5_thread.submit(md5.update, chunk))
            sha256.update(chunk)
            done += count
            progress(done)
        for pending in in_flight:
            pending.result()
    return {"sha256": sha256.hexdigest(), "md5": md5.hexdigest(), "size": done}
