"""Long scenarios and their short forms.

A test marked `long` proves its guarantee at two sizes. `make test` runs the
short form (fewer jobs, a shorter window: the same assertions, sized so the
whole suite stays within its time budget on two cores); `make test-long`
(JOBS_TEST_LONG=1) runs the long form, at the size its issue named (a minute of
mail at the rate limit, 2,000 children from four processes, ...).
"""

from __future__ import annotations

import os
from typing import TypeVar

T = TypeVar("T")

LONG = os.environ.get("JOBS_TEST_LONG", "") == "1"


def scaled(short: T, long: T) -> T:
    """`long` in a long run, else `short`."""
    return long if LONG else short
