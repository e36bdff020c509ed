"""Field types and helpers for kinds' params models, with the JSON Schema forms and clients read."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import date
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo

from uploads.models import Upload

NO_SUCH_UPLOAD = "No such upload."


def _owned_by_submitter(upload_id: uuid.UUID, info: ValidationInfo) -> uuid.UUID:
    # The same words for a missing upload and another user's: ids are not probed.
    owner_id = (info.context or {}).get("owner_id")
    if owner_id is None or not Upload.objects.filter(pk=upload_id, owner_id=owner_id).exists():
        raise ValueError(NO_SUCH_UPLOAD)
    return upload_id


# The id of a file the submitter uploaded (POST /api/uploads/): `"format": "upload-id"` in the schema,
# which the dashboard shows as a drop zone. Not strict: a UUID arrives as a JSON string.
UploadId = Annotated[
    uuid.UUID,
    Field(strict=False, json_schema_extra={"format": "upload-id"}),
    AfterValidator(_owned_by_submitter),
]


_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _iso_date(value: object) -> object:
    """A JSON string "YYYY-MM-DD" becomes a date; a value of another type is left for the strict check to refuse."""
    if not isinstance(value, str):
        return value
    try:
        if _ISO_DATE.fullmatch(value):
            return date.fromisoformat(value)
    except ValueError:
        pass
    raise ValueError("Enter a date as YYYY-MM-DD.")


# A calendar day, as JSON Schema's `"format": "date"` (RFC 3339 full-date, "2026-12-06").
Date = Annotated[date, BeforeValidator(_iso_date), Field(json_schema_extra={"type": "string", "format": "date"})]


def titled(titles: dict[str, str]) -> Callable[[dict[str, Any]], None]:
    """`json_schema_extra` for a Literal field: each value with a title to show, as JSON Schema's oneOf of consts."""

    def extra(schema: dict[str, Any]) -> None:
        schema.pop("enum", None)
        schema["oneOf"] = [{"const": value, "title": title} for value, title in titles.items()]

    return extra
