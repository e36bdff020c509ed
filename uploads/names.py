"""Display names of uploads: what the client called the file, made safe to show.

The name is only ever shown; the stored file's path is generated (models.stored_name).
"""

from __future__ import annotations

import posixpath
import unicodedata

MAX_NAME = 255
# Longer "extensions" are not kept apart when a name is cut: they are not extensions.
MAX_EXTENSION = 16
FALLBACK = "upload"


def display_name(raw: str) -> str:
    """The client's file name as a safe display name.

    1. Unicode NFC, so the same name always looks and compares the same.
    2. The last path component only: "/" and "\\" both separate, so none is kept.
    3. Control, format (bidi overrides such as U+202E, which can make
       "evil\\u202eexe.txt" read as "eviltxt.exe"), surrogate, private-use and
       unassigned characters removed, NUL included; surrounding spaces trimmed.
    4. Cut to 255 characters, keeping the extension.
    5. "upload" if nothing is left (or only "." or "..").
    """
    name = unicodedata.normalize("NFC", raw)
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(char for char in name if not unicodedata.category(char).startswith("C")).strip()
    if name in {"", ".", ".."}:
        return FALLBACK
    return _shorten(name)


def _shorten(name: str) -> str:
    if len(name) <= MAX_NAME:
        return name
    stem, extension = posixpath.splitext(name)
    if not stem or len(extension) > MAX_EXTENSION:
        return name[:MAX_NAME].rstrip()
    return stem[: MAX_NAME - len(extension)].rstrip() + extension
