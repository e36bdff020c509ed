"""checksum gives the same SHA-256 and MD5 as hashlib over the same bytes, whatever the size against the chunks."""

from __future__ import annotations

import hashlib
import io
import os

import pytest

from uploads.operations import checksum
from uploads.operations.base import CHUNK_BYTES


class Stop(Exception):
    pass


@pytest.mark.parametrize(
    "size", [0, 1, CHUNK_BYTES - 1, CHUNK_BYTES, CHUNK_BYTES + 1, 3 * CHUNK_BYTES, 7 * CHUNK_BYTES + 12345]
)
def test_digests_match_hashlib(size: int) -> None:
    data = os.urandom(size)
    reported: list[int] = []
    result = checksum(io.BytesIO(data), size, reported.append)
    md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
    assert result == {"sha256": hashlib.sha256(data).hexdigest(), "md5": md5, "size": size}
    assert reported == sorted(reported) and (reported[-1] if reported else 0) == size


def test_it_works_on_a_real_file(tmp_path: os.PathLike[str]) -> None:
    data = os.urandom(2 * CHUNK_BYTES + 7)
    path = os.path.join(tmp_path, "data.bin")
    with open(path, "wb") as out:
        out.write(data)
    with open(path, "rb", buffering=0) as file:
        assert checksum(file, len(data), lambda done: None)["sha256"] == hashlib.sha256(data).hexdigest()


def test_a_raising_progress_callback_stops_it_at_that_chunk() -> None:
    data = bytes(10 * CHUNK_BYTES)
    source = io.BytesIO(data)
    reported: list[int] = []

    def progress(done: int) -> None:
        reported.append(done)
        if done >= 2 * CHUNK_BYTES:
            raise Stop()

    with pytest.raises(Stop):
        checksum(source, len(data), progress)
    assert reported == [CHUNK_BYTES, 2 * CHUNK_BYTES]
    assert source.tell() == 2 * CHUNK_BYTES, "nothing more was read"
