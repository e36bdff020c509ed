"""text.stats: lines, words, characters and the ten most frequent words of a UTF-8 text.

Definitions (docs/kinds/file.process.md):
- chars: Unicode code points of the decoded text (a leading BOM is not one).
- lines: "\\n" characters, plus one for a last line that does not end with one
  ("\\r\\n" counts once; an empty file has 0 lines).
- words: maximal runs of Unicode word characters (regex \\w+: letters, digits,
  underscore, in any script), compared lowercased; "don't" is "don" and "t".
- top_words: [[word, count], ...], most frequent first, ties alphabetically;
  top_words_exact says whether the counts and order are exact (see heavy_hitters).

Memory stays constant: the text is decoded a chunk at a time, a word cut by a
chunk boundary is carried over (at most MAX_WORD characters of it), and the
word counts are bounded by HeavyHitters.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, BinaryIO

from uploads.operations.base import Progress, chunks
from uploads.operations.heavy_hitters import MAX_WORD, HeavyHitters
from uploads.operations.text import Utf8Chunks

TOP = 10
WORD = re.compile(r"\w+")


def text_stats(file: BinaryIO, size: int, progress: Progress) -> dict[str, Any]:
    text = Utf8Chunks(chunks(file, progress))
    tally = _WordTally()
    chars = 0
    last = ""
    for piece in text:
        chars += len(piece)
        last = piece[-1]
        tally.feed(piece)
    tally.finish()
    top, exact = tally.ranking.top(TOP)
    lines = text.newlines + (1 if chars and last != "\n" else 0)
    return {
        "lines": lines,
        "words": tally.words,
        "chars": chars,
        "top_words": [[word, count] for word, count in top],
        "top_words_exact": exact,
    }


class _WordTally:
    """Counts words across pieces of text, joining a word that a piece boundary cuts in two.

    Making one string object per word is most of the cost, so no Python code
    runs per word: ASCII characters that are not word characters become
    spaces (a translation table, in C), the piece is split at whitespace and
    the tokens counted (in C). In ASCII text each token is then a word. In
    other text a token may still hold a non-ASCII separator ("—", "«"), so
    the regex runs once per distinct token, not once per word.
    """

    def __init__(self) -> None:
        self.words = 0
        self.ranking = HeavyHitters()
        self._carry = ""  # a token cut at the end of the previous piece
        self._in_long_word = False  # the previous piece ended inside a word too long to rank

    def feed(self, piece: str) -> None:
        text = _ascii_separators_to_spaces(piece.lower())
        if self._in_long_word:
            text = self._skip_long_word(text)
        text, self._carry = self._carry + text, ""
        tokens = text.split()
        if tokens and not text[-1].isspace():
            self._cut(tokens.pop())
        if text.isascii():
            self._add(Counter(tokens))
        else:
            self._count(Counter(tokens))

    def finish(self) -> None:
        if self._carry:
            self._count(Counter([self._carry]))
        self._carry, self._in_long_word = "", False

    def _cut(self, token: str) -> None:
        """Keep a cut token for the next piece; of a long one, only its last word."""
        if len(token) <= MAX_WORD:
            self._carry = token
            return
        words = WORD.findall(token)
        if words and _is_word_char(token[-1]):
            last = words.pop()
            if len(last) <= MAX_WORD:
                self._carry = last
            else:  # counted now; its rest at the start of the next piece is skipped
                self.words += 1
                self._in_long_word = True
        self._count(Counter(words))

    def _skip_long_word(self, lowered: str) -> str:
        match = WORD.match(lowered)
        if match is None:
            self._in_long_word = False
            return lowered
        if match.end() < len(lowered):
            self._in_long_word = False
        return lowered[match.end() :]

    def _add(self, words: Counter[str]) -> None:
        self.words += words.total()
        self.ranking.add(words)

    def _count(self, tokens: Counter[str]) -> None:
        words: dict[str, int] = {}
        total = 0
        for token, count in tokens.items():
            for word in (token,) if token.isalnum() else WORD.findall(token):
                words[word] = words.get(word, 0) + count
                total += count
        self.words += total
        self.ranking.add(words)


def _is_word_char(char: str) -> bool:
    return WORD.match(char) is not None


# ASCII characters that are not word characters, to spaces; the rest unchanged.
_ASCII_SEPARATORS = str.maketrans({chr(code): " " for code in range(128) if not WORD.match(chr(code))})
_UTF8_SEPARATORS = bytes(code if code >= 128 or WORD.match(chr(code)) else ord(" ") for code in range(256))


def _ascii_separators_to_spaces(text: str) -> str:
    if text.isascii():
        return text.translate(_ASCII_SEPARATORS)  # CPython's fast path for ASCII
    # str.translate leaves its fast path at the first non-ASCII character;
    # bytes.translate over the UTF-8 is a plain table lookup (bytes >= 128 stay).
    return text.encode().translate(_UTF8_SEPARATORS).decode()
