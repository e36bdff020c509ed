"""--param KEY=VALUE typed by the kind's params_schema (kind.list), as the dashboard's forms type their fields.

A property that is an integer takes `5`, a number `2.5`, a boolean `true`/`false`
(also yes/no, 1/0), a list of strings `a@x.com,b@x.com`, a string the text as
typed (never parsed: `--param subject=42` sends "42"); anything else, and a
KEY the schema does not name, is JSON when it parses as JSON, else text.
"""

from __future__ import annotations

import json
from typing import Any

from jobsctl.errors import CliError

Schema = dict[str, Any]
TRUE, FALSE = {"true", "yes", "1", "on"}, {"false", "no", "0", "off"}


def params(schema: Schema | None, pairs: list[str], params_json: str | None) -> dict[str, Any]:
    """--params-json, then each --param KEY=VALUE over it, each typed by its property's schema."""
    result = _json_object(params_json) if params_json is not None else {}
    properties = (schema or {}).get("properties", {})
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CliError(f"--param {pair!r} is not KEY=VALUE.", "usage")
        result[key] = typed(key, _plain(properties.get(key)), value)
    return result


def upload_fields(schema: Schema | None) -> set[str]:
    """The properties that take the id of an uploaded file (`format: upload-id`): what --file may fill."""
    properties = (schema or {}).get("properties", {})
    return {name for name, prop in properties.items() if _plain(prop).get("format") == "upload-id"}


def typed(key: str, prop: Schema, text: str) -> Any:
    kind = prop.get("type")
    if kind == "integer":
        return _number(key, text, int)
    if kind == "number":
        return _number(key, text, float)
    if kind == "boolean":
        return _boolean(key, text)
    if kind == "string":
        return text
    if kind == "array" and _plain(prop.get("items")).get("type") == "string" and not text.lstrip().startswith("["):
        return [item.strip() for item in text.split(",") if item.strip()]
    try:
        return json.loads(text)
    except ValueError:
        return text


def _plain(prop: Schema | None) -> Schema:
    """A property's schema without the `null` of an optional one."""
    prop = prop or {}
    options = prop.get("anyOf")
    if isinstance(options, list):
        real = [option for option in options if option.get("type") != "null"]
        if len(real) == 1:
            return dict(real[0])
    return prop


def _number(key: str, text: str, kind: type[int] | type[float]) -> int | float:
    try:
        return kind(text)
    except ValueError:
        noun = "an integer" if kind is int else "a number"
        raise CliError(f"--param {key}={text!r}: {key} takes {noun}.", "usage") from None


def _boolean(key: str, text: str) -> bool:
    if text.lower() in TRUE:
        return True
    if text.lower() in FALSE:
        return False
    raise CliError(f"--param {key}={text!r}: {key} takes true or false.", "usage")


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise CliError(f"--params-json is not JSON: {exc}", "usage") from None
    if not isinstance(value, dict):
        raise CliError("--params-json must be a JSON object.", "usage")
    return value
