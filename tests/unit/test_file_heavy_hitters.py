"""The bounded word counter: exact while the vocabulary fits, honest about it when it does not."""

from __future__ import annotations

import random
from collections import Counter

from uploads.operations.heavy_hitters import HeavyHitters


def ranked(counter: Counter[str], n: int) -> list[tuple[str, int]]:
    return sorted(counter.items(), key=lambda item: (-item[1], item[0]))[:n]


def test_a_vocabulary_that_fits_is_counted_exactly() -> None:
    words = Counter({f"w{i}": i % 17 + 1 for i in range(150)})
    hitters = HeavyHitters(capacity=100)
    hitters.add(words)
    assert hitters.top(10) == (ranked(words, 10), True)


def test_frequent_words_stay_exact_in_a_long_tail_that_does_not_fit() -> None:
    rng = random.Random(7)
    hitters = HeavyHitters(capacity=50)
    truth: Counter[str] = Counter()
    for _ in range(40):
        batch = Counter({"the": 50, "and": 40, "of": 30})
        batch.update(f"rare{rng.randrange(100_000)}" for _ in range(300))
        truth.update(batch)
        hitters.add(batch)
        assert len(hitters.counts) <= 2 * hitters.capacity
    top, exact = hitters.top(3)
    assert top == [("the", 2000), ("and", 1600), ("of", 1200)] == ranked(truth, 3)
    assert exact and hitters.floor > 0


def test_it_says_so_when_the_top_list_may_be_wrong() -> None:
    hitters = HeavyHitters(capacity=2)
    for i in range(10):
        hitters.add(Counter({f"w{i}a": 1, f"w{i}b": 1, f"w{i}c": 1, f"w{i}d": 1, f"w{i}e": 1}))
    top, exact = hitters.top(3)
    assert len(top) == 2 and not exact  # all tied at 1, and any dropped word may have had 1 too


def test_overlong_words_are_not_ranked() -> None:
    hitters = HeavyHitters()
    hitters.add(Counter({"x" * 101: 5, "ok": 1}))
    assert hitters.top(10) == ([("ok", 1)], True)
