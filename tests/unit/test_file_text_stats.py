"""text.stats: lines, words, characters and top words, exact across chunk boundaries; undecodable text is named."""

from __future__ import annotations

import io
from typing import Any

import pytest

from tests.fixtures.uploads import FIXTURES
from uploads.operations import OperationError, text_stats
from uploads.operations.base import CHUNK_BYTES
from uploads.operations.heavy_hitters import MAX_WORD


def stats(data: bytes) -> dict[str, Any]:
    return text_stats(io.BytesIO(data), len(data), lambda done: None)


def failure(data: bytes) -> tuple[str, str]:
    with pytest.raises(OperationError) as caught:
        stats(data)
    return caught.value.code, caught.value.message


def test_the_sample_fixture_is_counted_as_worked_out_by_hand() -> None:
    # sample.txt: 6 lines (the last without "\n"), 149 bytes of which 5 characters
    # take 2 bytes and "—" takes 3, "CAFÉ" lowercases to "café", "snake_case" is
    # one word and "don't" two.
    assert stats((FIXTURES / "sample.txt").read_bytes()) == {
        "lines": 6,
        "words": 32,
        "chars": 143,
        "top_words": [
            ["the", 5],
            ["42", 2],
            ["as", 2],
            ["café", 2],
            ["cat", 2],
            ["counts", 2],
            ["on", 2],
            ["sat", 2],
            ["did", 1],
            ["dog", 1],
        ],
        "top_words_exact": True,
    }


def test_an_empty_file_has_nothing() -> None:
    assert stats(b"") == {"lines": 0, "words": 0, "chars": 0, "top_words": [], "top_words_exact": True}


def test_a_word_and_a_character_cut_by_a_chunk_boundary_count_once() -> None:
    # "straddle" starts 3 bytes before the boundary; "é" (2 bytes) sits across the next boundary.
    first = b"a " * ((CHUNK_BYTES - 4) // 2) + b"  straddle "
    second = b"b " * ((CHUNK_BYTES - len(first) % CHUNK_BYTES) // 2)
    data = first + second + b"x" * (CHUNK_BYTES - 1 - len(second) % CHUNK_BYTES) + "é end".encode()
    result = stats(data)
    text = data.decode()
    assert result["words"] == len(text.split())
    assert result["chars"] == len(text)
    assert ["straddle", 1] in result["top_words"]


def test_a_word_too_long_to_rank_is_still_one_word() -> None:
    long_word = b"z" * (3 * CHUNK_BYTES)
    result = stats(b"short " + long_word + b" short")
    assert result["words"] == 3
    assert result["top_words"] == [["short", 2]]
    assert stats(b"q" * (MAX_WORD + 1))["top_words"] == []


def test_an_undecodable_byte_is_named_by_offset_and_line() -> None:
    assert failure(b"line one\nline two\nbad \xc3\x28 here\n") == (
        "not_text",
        "The file is not UTF-8 text: it has an invalid byte at byte offset 22 (line 3).",
    )


def test_an_undecodable_byte_after_the_first_chunk_is_placed_exactly() -> None:
    data = b"ok\n" * (CHUNK_BYTES // 3 + 5) + b"\xff"
    code, message = failure(data)
    assert code == "not_text"
    assert f"at byte offset {len(data) - 1:,} (line {CHUNK_BYTES // 3 + 6:,})" in message


def test_a_nul_byte_means_not_text() -> None:
    assert failure(b"PK\x03\x04\x00\x00")[0] == "not_text"


def test_a_file_cut_inside_a_character_is_not_text() -> None:
    assert "ends inside a character" in failure("café".encode()[:-1])[1]
