"""csv.summary: types, nulls and statistics per column, and clear failures for files that are not good CSV."""

from __future__ import annotations

import io
from typing import Any

import pytest

from tests.fixtures.uploads import FIXTURES
from uploads.operations import OperationError, csv_summary
from uploads.operations.base import CHUNK_BYTES
from uploads.operations.csv_summary import MAX_COLUMNS, MAX_ROW_CHARS


def summary(data: bytes) -> dict[str, Any]:
    return csv_summary(io.BytesIO(data), len(data), lambda done: None)


def failure(data: bytes) -> tuple[str, str]:
    with pytest.raises(OperationError) as caught:
        summary(data)
    return caught.value.code, caught.value.message


def column(
    name: str, type_: str, nulls: int = 0, low: Any = None, high: Any = None, mean: Any = None
) -> dict[str, Any]:
    return {"name": name, "type": type_, "nulls": nulls, "min": low, "max": high, "mean": mean}


def test_the_people_fixture_is_summarised_as_worked_out_by_hand() -> None:
    # people.csv: a quoted comma, doubled quotes, a blank line (skipped), a quoted
    # newline, booleans in mixed case, an empty age and two empty notes.
    assert summary((FIXTURES / "people.csv").read_bytes()) == {
        "rows": 4,
        "columns": [
            column("id", "integer", 0, 1, 4, 2.5),
            column("name", "string"),
            column("age", "integer", 1, 7, 54, 97 / 3),
            column("score", "float", 0, -3.25, 100.0, 69.0625),
            column("member", "boolean"),
            column("joined", "date", 0, "2023-12-01", "2025-06-30"),
            column("note", "string", 2),
        ],
    }


def test_a_bom_and_crlf_line_ends_are_read() -> None:
    assert summary(b"\xef\xbb\xbfa,b\r\n1,x\r\n2,y\r\n") == {
        "rows": 2,
        "columns": [column("a", "integer", 0, 1, 2, 1.5), column("b", "string")],
    }


def test_a_column_widens_when_a_later_batch_needs_it() -> None:
    ints = b"".join(b"%d\n" % n for n in range(5000))
    assert summary(b"n\n" + ints + b"2.5\n")["columns"] == [column("n", "float", 0, 0.0, 4999.0, 12497502.5 / 5001)]
    assert summary(b"n\n" + ints + b"n/a\n")["columns"] == [column("n", "string")]


def test_nan_and_infinity_are_not_numbers_here() -> None:
    assert summary(b"x\n1.5\nnan\n")["columns"] == [column("x", "string")]
    assert summary(b"x\n1.5\ninf\n")["columns"] == [column("x", "string")]


def test_a_column_with_no_values_is_empty() -> None:
    assert summary(b"a,b\n1,\n2,\n")["columns"][1] == column("b", "empty", 2)


def test_a_header_without_rows_has_zero_rows() -> None:
    assert summary(b"a,b\n") == {"rows": 0, "columns": [column("a", "empty"), column("b", "empty")]}


def test_a_row_with_the_wrong_number_of_fields_is_named() -> None:
    rows = b"".join(b"%d,x,y,z\n" % n for n in range(15))
    assert failure(b"a,b,c,d\n" + rows + b"1,2,3\n") == ("bad_csv", "Row 17 has 3 fields, the header has 4.")


def test_an_empty_file_is_an_empty_csv() -> None:
    assert failure(b"")[0] == "empty_csv"
    assert failure(b"\n\r\n\n")[0] == "empty_csv"


def test_an_unclosed_quote_is_bad_csv_at_its_row() -> None:
    assert failure(b'a,b\n1,2\n3,"open\n4,5\n') == ("bad_csv", "Row 3 cannot be read: unexpected end of data.")


def test_text_after_a_closing_quote_is_bad_csv() -> None:
    code, message = failure(b'a,b\n1,"x"y\n')
    assert code == "bad_csv" and message.startswith("Row 2 cannot be read")


def test_a_row_that_never_ends_is_refused_before_it_fills_memory() -> None:
    # An open quote followed by lines that each close it and open a new one:
    # one endless row of small fields, which no per-field limit catches.
    endless = b'a,b\n1,"x\n' + b'y","x\n' * MAX_ROW_CHARS
    assert failure(endless) == (
        "bad_csv",
        f"Row 2 is longer than {MAX_ROW_CHARS:,} characters (is a quote left open?).",
    )


def test_too_many_columns_are_refused() -> None:
    header = b",".join(b"c%d" % n for n in range(MAX_COLUMNS + 1))
    assert failure(header + b"\n")[0] == "too_many_columns"


def test_a_file_that_is_not_text_is_not_text() -> None:
    code, message = failure(b"a,b\n1,2\n\xff\xfe,3\n")
    assert code == "not_text"
    assert message.endswith("at byte offset 8 (line 3).")


def test_rows_across_chunk_boundaries_are_whole() -> None:
    row = b'12345,"quoted, with comma",2026-01-01\n'
    count = 2 * CHUNK_BYTES // len(row) + 3
    result = summary(b"n,s,d\n" + row * count)
    assert result["rows"] == count
    assert result["columns"] == [
        column("n", "integer", 0, 12345, 12345, 12345.0),
        column("s", "string"),
        column("d", "date", 0, "2026-01-01", "2026-01-01"),
    ]
