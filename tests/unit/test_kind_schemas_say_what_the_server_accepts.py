"""Every kind's params_schema is valid JSON Schema (draft 2020-12), and says what the server accepts.

For values generated from the schema, and for those values broken in every way
a client could break them, the server accepts a value exactly when the schema
does and the kind's server-side rules hold. Those rules are what JSON Schema
cannot say (docs/kinds.md lists them): a comparison of two fields, an address
that Django's validator must accept, an upload that must be the submitter's.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, cast

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema
from jsonschema import Draft202012Validator, FormatChecker

from tasks import kinds
from tasks.errors import InvalidParams
from tests.factories import UserFactory
from tests.fixtures.uploads import stored_upload

pytestmark = pytest.mark.django_db

Value = dict[str, Any]
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def address_ok(address: str) -> bool:
    try:
        validate_email(address)
    except ValidationError:
        return False
    return True


def upload_rule(owned: str) -> Callable[[Value], bool]:
    def rule(value: Value) -> bool:
        try:
            return uuid.UUID(value["upload_id"]) == uuid.UUID(owned)
        except ValueError:
            return False

    return rule


def rules(owned_upload: str) -> dict[str, Callable[[Value], bool]]:
    """Each kind's server-side rules, which its schema cannot state."""
    return {
        "demo.countdown": lambda v: v.get("fail_at") is None or v["fail_at"] <= v["steps"],
        # A recipients file is refused here whoever owns it: the test's upload holds no address.
        "email.send": lambda v: (
            v.get("recipients_file") is None
            and all(map(address_ok, v["to"]))
            and len({a.casefold() for a in v["to"]}) == len(v["to"])
        ),
        "file.process": upload_rule(owned_upload),
        "reports.jobs_csv": lambda v: v["created_before"] >= v["created_after"],
    }


@st.composite
def broken(draw: st.DrawFn, valid: st.SearchStrategy[Value]) -> Value:
    """A valid value, then changed as a client might: a field dropped, replaced by any JSON, one too many,
    or a whole number written as 5.0 (which JSON Schema counts as the integer 5)."""
    value = dict(draw(valid))
    how = draw(st.sampled_from(["drop", "replace", "add", "float"]))
    if how == "add" or not value:
        value[draw(st.text(max_size=8))] = draw(JSON)
        return value
    key = draw(st.sampled_from(sorted(value)))
    if how == "drop":
        del value[key]
    elif how == "float" and type(value[key]) is int:
        value[key] = float(value[key])
    else:
        value[key] = draw(JSON)
    return value


def server_accepts(name: str, value: Value, owner: User) -> bool:
    try:
        kinds.validate(name, value, owner.pk)
    except InvalidParams:
        return False
    return True


@pytest.mark.parametrize("name", kinds.names())
def test_the_schema_is_valid_json_schema_2020_12(name: str) -> None:
    schema = kinds.get(name).schema
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert all("title" in field for field in schema["properties"].values())


@pytest.mark.parametrize("name", sorted(rules("")))
def test_the_server_accepts_what_the_schema_accepts_and_nothing_else(name: str) -> None:
    owner = UserFactory.create()
    owned = str(stored_upload(owner, b"a,b\n1,2\n").pk)
    others = str(stored_upload(UserFactory.create(), b"x").pk)
    ids = st.sampled_from([owned, others, str(uuid.uuid4()), owned.upper(), owned.replace("-", "")])
    schema = kinds.get(name).schema
    valid = cast(st.SearchStrategy[Value], from_schema(schema, custom_formats={"upload-id": ids}))
    validator = Draft202012Validator(schema, format_checker=FormatChecker(formats=["date"]))
    rule = rules(owned)[name]

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.one_of(valid, broken(valid)))
    def agree(value: Value) -> None:
        schema_ok = validator.is_valid(value)
        assert server_accepts(name, value, owner) == (schema_ok and rule(value)), (value, schema_ok)

    agree()


def test_every_kind_shipped_has_its_rules_here() -> None:
    """A new built-in kind must be added above, or its schema is never checked against the server."""
    assert {name for name in kinds.names() if not name.startswith("test.")} == set(rules(""))
