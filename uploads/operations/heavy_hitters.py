"""The most frequent words of a text of any size, in bounded memory.

A Counter of every distinct word grows with the vocabulary, which a large or
hostile file makes unbounded. This is Space-Saving (Metwally, Agrawal and El
Abbadi, 2005), fed a batch of counted words at a time:

1. Counts live in a dict. While it holds at most 2 * capacity words, every
   count is exact (a vocabulary that fits is counted exactly).
2. When it grows past that, only the `capacity` largest counts are kept,
   and `floor` becomes the largest count dropped: no word outside the dict
   has occurred more often than `floor`.
3. A word that enters the dict after that starts at `floor` (it may have been
   dropped before), and remembers `floor` as its possible overcount.

So a count is exact when it has no overcount, and the top list is exact when
each of its counts is exact and the last of them beats `floor`.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import compress, islice
from operator import add

# Words longer than this are counted as words but not ranked: a long run of
# letters is a hash or base64, not a word, and as a dict key it would cost
# memory in proportion to its length.
MAX_WORD = 100


class HeavyHitters:
    def __init__(self, capacity: int = 5000) -> None:
        self.capacity = capacity
        self.counts: dict[str, int] = {}
        self.overcount: dict[str, int] = {}
        self.floor = 0

    def add(self, batch: Mapping[str, int]) -> None:
        """Add a batch of counted words (a Counter of one piece of text)."""
        if max(map(len, batch), default=0) > MAX_WORD:
            batch = {word: count for word, count in batch.items() if len(word) <= MAX_WORD}
        counts, floor, count_of = self.counts, self.floor, batch.__getitem__
        known = batch.keys() & counts.keys()
        new = batch.keys() - known
        # map() over builtins loops in C: no Python code runs per word.
        counts.update(zip(known, map(add, map(counts.__getitem__, known), map(count_of, known)), strict=True))
        if floor:
            counts.update(zip(new, map(floor.__add__, map(count_of, new)), strict=True))
            self.overcount.update(dict.fromkeys(new, floor))
        else:
            counts.update(zip(new, map(count_of, new), strict=True))
        if len(counts) > 2 * self.capacity:
            self._shrink()

    def top(self, n: int) -> tuple[list[tuple[str, int]], bool]:
        """The n most frequent words, most frequent first (ties alphabetically), and whether the list is exact."""
        ranked = sorted(self.counts.items(), key=lambda item: (-item[1], item[0]))[:n]
        exact = all(word not in self.overcount for word, _ in ranked)
        if self.floor:  # words outside the dict may have up to `floor`: the last must beat that
            exact = exact and len(ranked) == n and ranked[-1][1] > self.floor
        return ranked, exact

    def _shrink(self) -> None:
        counts = self.counts
        # The largest count dropped; of the words tied with it, as many stay as
        # there is room for. Sorting bare ints and compress() keep this in C.
        dropped = sorted(counts.values(), reverse=True)[self.capacity]
        self.floor = max(self.floor, dropped)
        kept = dict(compress(counts.items(), map(dropped.__lt__, counts.values())))
        ties = compress(counts.items(), map(dropped.__eq__, counts.values()))
        kept.update(islice(ties, self.capacity - len(kept)))
        self.counts = kept
        over = self.overcount.keys() & self.counts.keys()
        self.overcount = dict(zip(over, map(self.overcount.__getitem__, over), strict=True))
