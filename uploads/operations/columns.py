"""One CSV column's summary, built a batch of cells at a time.

- A cell is null when it is empty (""); a cell of spaces is a value.
- The type is the narrowest that every non-null cell fits, tried in this order:
  integer (int(): "42", " -7 ", "1_000"), float (float(), finite: "nan" and
  "inf" are not numbers here), boolean ("true"/"false", any case), date (ISO
  8601, date.fromisoformat: "2026-11-25"), string. A column with no values is
  "empty". A column that met integers and then "2.5" becomes float; one that
  met numbers and then "n/a" becomes string.
- min, max, mean: for integer and float columns; min and max (ISO dates) for
  date columns; null otherwise. The mean is null if the sum overflows a float.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

# (min, max, sum) of a batch of values as the type; None if one value is not of the type.
_Stats = tuple[Any, Any, Any]
_Parser = Callable[[Sequence[str]], _Stats | None]

_BOOLEANS = frozenset({"true", "false"})


def _integers(values: Sequence[str]) -> _Stats | None:
    try:
        numbers = list(map(int, values))
    except ValueError:
        return None
    return min(numbers), max(numbers), sum(numbers)


def _floats(values: Sequence[str]) -> _Stats | None:
    try:
        numbers = list(map(float, values))
    except ValueError:
        return None
    total = sum(numbers)
    if not math.isfinite(total) and not all(map(math.isfinite, numbers)):
        return None  # nan or inf in the column, not an overflowing sum
    return min(numbers), max(numbers), total


def _booleans(values: Sequence[str]) -> _Stats | None:
    return (None, None, None) if set(map(str.lower, values)) <= _BOOLEANS else None


def _dates(values: Sequence[str]) -> _Stats | None:
    try:
        dates = list(map(date.fromisoformat, values))
    except ValueError:
        return None
    return min(dates), max(dates), None


def _strings(values: Sequence[str]) -> _Stats | None:
    return None, None, None


_PARSERS: dict[str, _Parser] = {
    "integer": _integers,
    "float": _floats,
    "boolean": _booleans,
    "date": _dates,
    "string": _strings,
}
# The next type to try: while a column has no values yet, every type in turn;
# once it has, only a wider type that its earlier values also fit.
_FIRST_GUESS = {"empty": "integer", "integer": "float", "float": "boolean", "boolean": "date", "date": "string"}
_WIDER = {"integer": "float", "float": "string", "boolean": "string", "date": "string"}
_NUMBERS = frozenset({"integer", "float"})


class Column:
    def __init__(self, name: str) -> None:
        self.name = name
        self.type = "empty"
        self.nulls = 0
        self.count = 0  # non-null cells
        self.min: Any = None
        self.max: Any = None
        self.total: Any = 0

    def add(self, cells: Sequence[str]) -> None:
        nulls = cells.count("")
        self.nulls += nulls
        values = list(filter(None, cells)) if nulls else cells
        if not values:
            return
        stats = None if self.type == "empty" else _PARSERS[self.type](values)
        while stats is None:
            self._widen()
            stats = _PARSERS[self.type](values)
        self._merge(len(values), stats)

    def summary(self) -> dict[str, Any]:
        low, high = self.min, self.max
        if self.type == "float":
            low, high = float(low), float(high)
        elif self.type == "date":
            low, high = low.isoformat(), high.isoformat()
        return {
            "name": self.name,
            "type": self.type,
            "nulls": self.nulls,
            "min": low,
            "max": high,
            "mean": self._mean(),
        }

    def _mean(self) -> float | None:
        if self.type not in _NUMBERS or not self.count:
            return None
        try:
            mean = self.total / self.count
        except OverflowError:  # an integer sum too large for a float
            return None
        return float(mean) if math.isfinite(mean) else None

    def _widen(self) -> None:
        self.type = (_FIRST_GUESS if self.count == 0 else _WIDER)[self.type]
        if self.type == "string":
            self.min = self.max = self.total = None

    def _merge(self, count: int, stats: _Stats) -> None:
        low, high, total = stats
        if self.count == 0 or self.type == "string":
            self.min, self.max, self.total = low, high, total
        elif self.type != "boolean":
            self.min, self.max = min(self.min, low), max(self.max, high)
            if total is not None:
                self.total += total
        self.count += count
