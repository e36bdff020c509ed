"""Read queries built with the ORM once per process, then run with new values: no SQL compile per call.

Django compiles a queryset to SQL on every evaluation. For the hot reads of this
project that is most of their cost: the snapshot of a socket's hello takes about
40 µs in SQLite and 500 µs in all, 340 µs of them in `SQLCompiler.as_sql`
(docs/benchmarks.md, issue 19). A `Prepared` query is written as a function that
builds the queryset from its arguments; the first call on a database compiles it
with a marker value per argument, finds the markers among the SQL's parameters,
and keeps the compiler. Later calls clone the queryset (cheap) and hand Django's
own iterables (model instances with select_related, values_list, flat) a copy of
that compiler whose `as_sql` returns the kept SQL with the new values put where
the markers were, converted for the database as the argument's model field does.

What it relies on (Django 5.2, patches.WRITTEN_FOR): the iterables get their
compiler from `query.get_compiler`, `SQLCompiler.execute_sql` calls `as_sql` and
otherwise reads what the first compile set up (select, klass_info,
annotation_col_map, col_count, has_extra_select), and a lookup's parameter is
`field.get_db_prep_value(value, connection)` of the compared field. The SQL must
not depend on the values: no `__in` with a list argument, no None (IS NULL) as an
argument; `Prepared` refuses at compile time a marker it cannot find exactly
once per place, and tests/unit/test_prepared_queries.py compares every query of
the project built this way with the ORM's own result.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import threading
import uuid
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

from django.db import DatabaseError, connections
from django.db.models import Field, Model, QuerySet
from django.db.models.sql.compiler import SQLCompiler

M = TypeVar("M", bound=Model)
R = TypeVar("R")  # what iterating the queryset yields: M, or values_list's rows

_serial = itertools.count(1)


@dataclass(frozen=True)
class _Plan:
    queryset: QuerySet[Any]
    compiler: SQLCompiler
    sql: str
    params: tuple[Any, ...]
    slots: dict[str, tuple[int, ...]]  # argument -> the positions of its value among the params
    # The row converters of each connection (bound to its operations), worked out on its first run: Django
    # works them out again on every run, a quarter of a transition's read of the job's row.
    converters: weakref.WeakKeyDictionary[Any, dict[int, Any]] = dataclasses.field(
        default_factory=weakref.WeakKeyDictionary
    )


class Prepared(Generic[M, R]):
    """`build(**arguments)` compiled once per database; `all(**arguments)` and `first(**arguments)` run it.

    `fields` names the model field each argument is compared with (its type converts the value for the
    database): Prepared(lambda owner_id: Job.objects.filter(owner_id=owner_id), owner_id=Job._meta.get_field("owner")).
    """

    def __init__(self, build: Callable[..., QuerySet[M, R]], **fields: Field[Any, Any]) -> None:
        self._build = build
        self._fields = fields
        self._plans: dict[tuple[str, str], _Plan] = {}
        self._lock = threading.Lock()

    def all(self, using: str = "default", **values: Any) -> list[R]:
        """The rows of the query with these values: model instances, or values_list's rows."""
        return list(self._queryset(using, values))

    def first(self, using: str = "default", **values: Any) -> R | None:
        return next(iter(self._queryset(using, values)), None)

    def _queryset(self, using: str, values: dict[str, Any]) -> QuerySet[M, R]:
        """A clone of the compiled queryset that runs the kept SQL with `values`. Only for iterating here:
        chained (filtered, ordered, sliced) it would still run the kept SQL, so it is never handed out."""
        if values.keys() != self._fields.keys():
            raise TypeError(f"expected the arguments {sorted(self._fields)}, got {sorted(values)}")
        connection = connections[using]
        plan = self._plan(using)
        params = list(plan.params)
        for name, value in values.items():
            prepared = self._fields[name].get_db_prep_value(value, connection, prepared=False)
            for position in plan.slots[name]:
                params[position] = prepared
        queryset: QuerySet[M, R] = plan.queryset._chain()  # type: ignore[attr-defined]
        compiler = copy.copy(plan.compiler)
        compiler.connection = connection
        compiler.using = using
        sql = plan.sql
        compiler.as_sql = lambda *args, **kwargs: (sql, tuple(params))  # type: ignore[method-assign]
        converters = plan.converters.get(connection)
        if converters is None:
            converters = plan.converters[connection] = compiler.get_converters(
                [column[0] for column in compiler.select[: compiler.col_count]]
            )
        compiler.get_converters = lambda expressions: converters  # type: ignore[method-assign]
        queryset.query.get_compiler = lambda *args, **kwargs: compiler  # type: ignore[method-assign]
        return queryset

    def _plan(self, using: str) -> _Plan:
        key = (using, connections[using].vendor)
        plan = self._plans.get(key)
        if plan is None:
            with self._lock:
                plan = self._plans.get(key) or self._compile(using)
                self._plans[key] = plan
        return plan

    def _compile(self, using: str) -> _Plan:
        connection = connections[using]
        markers = {name: _marker(field) for name, field in self._fields.items()}
        queryset = self._build(**markers)
        compiler = queryset.query.get_compiler(using=using)
        sql, params = compiler.as_sql()
        slots: dict[str, tuple[int, ...]] = {}
        for name, field in self._fields.items():
            prepared = field.get_db_prep_value(markers[name], connection, prepared=False)
            found = tuple(i for i, param in enumerate(params) if param == prepared)
            if not found:
                raise ValueError(f"the argument {name!r} is not a parameter of the SQL: {sql}")
            slots[name] = found
        taken = [position for positions in slots.values() for position in positions]
        if len(taken) != len(set(taken)):
            raise ValueError(f"two arguments share a parameter of the SQL: {sql}")
        return _Plan(queryset, compiler, sql, tuple(params), slots)


def _marker(field: Field[Any, Any]) -> Any:
    """A value of the field's type that no real argument or constant of a query takes."""
    serial = next(_serial)
    target = getattr(field, "target_field", field)  # a foreign key compares its target's values
    internal = target.get_internal_type()
    if internal == "UUIDField":
        return uuid.uuid4()
    if internal == "DateTimeField":
        return datetime(1901, 1, 1, tzinfo=UTC) + timedelta(microseconds=serial)
    if internal in ("CharField", "TextField", "SlugField"):
        return f"prepared-marker-{serial}-{uuid.uuid4().hex}"
    if internal in ("AutoField", "BigAutoField", "IntegerField", "BigIntegerField", "PositiveIntegerField"):
        return -(2**31) + 7919 * serial
    raise TypeError(f"Prepared has no marker for a {internal}")


class Writes(Generic[M]):
    """A model's hot INSERTs and UPDATEs with their SQL built once per database and set of columns.

    `Model.save()` compiles its statement on every call: for a transition (tasks.transitions) the UPDATE
    of the job and the INSERT of its event were a third of the worker's CPU per transition, spent while
    it held SQLite's one write lock. These write the same statement from a cache, with each value
    converted as the ORM converts it (`Field.get_db_prep_save`, after `Field.pre_save` for the
    instance's own fields, so `auto_now` columns are set as `save()` sets them).

    Unlike `save()` they send no `pre_save`/`post_save` signals: use them only for a model no receiver
    listens to (tests/unit/test_prepared_writes.py checks that none does for the models used here).
    """

    def __init__(self, model: type[M]) -> None:
        self._model = model
        primary_key = model._meta.pk
        assert primary_key is not None  # every model has one
        self._primary_key: Field[Any, Any] = primary_key
        # (statement, vendor, rows, returning, names) -> its SQL and the fields whose values it takes, in order
        self._statements: dict[tuple[Any, ...], tuple[str, list[Field[Any, Any]]]] = {}
        # per connection: the converters of each column a RETURNING of the whole row gives back
        self._converters: weakref.WeakKeyDictionary[Any, list[tuple[list[Any], Any]]] = weakref.WeakKeyDictionary()

    def update(self, instance: M, fields: Sequence[str], using: str = "default") -> None:
        """Write `fields` of an existing row, as `instance.save(update_fields=fields)` does."""
        connection = connections[using]
        sql, chosen = self._statement(connection, "update", tuple(fields))
        values = [field.get_db_prep_save(field.pre_save(instance, False), connection) for field in chosen]
        primary_key = self._primary_key.get_db_prep_value(instance.pk, connection, prepared=False)
        with connection.cursor() as cursor:
            cursor.execute(sql, [*values, primary_key])
            if cursor.rowcount != 1:
                raise DatabaseError(f"{self._model._meta.label} {instance.pk}: the update found no row")

    def create(self, instance: M, using: str = "default") -> None:
        """Insert the instance's row, as `instance.save(force_insert=True)` does: a primary key the database
        assigns (an AutoField left None) is read back with RETURNING and set on the instance."""
        generated = instance.pk is None and self._primary_key.db_returning
        meta = self._model._meta
        names = tuple(field.attname for field in meta.concrete_fields if not (generated and field.primary_key))
        connection = connections[using]
        sql, fields = self._statement(connection, "insert", names, returning=generated)
        values = [field.get_db_prep_save(field.pre_save(instance, True), connection) for field in fields]
        with connection.cursor() as cursor:
            cursor.execute(sql, values)
            if generated:
                instance.pk = cursor.fetchone()[0]
        instance._state.adding = False
        instance._state.db = using

    def insert(self, fields: Sequence[str], rows: Sequence[Sequence[Any]], using: str = "default") -> None:
        """Insert rows of values for `fields`, as given: no defaults, no `auto_now`, no id read back."""
        connection = connections[using]
        sql, chosen = self._statement(connection, "insert", tuple(fields), rows=len(rows))
        params = [
            field.get_db_prep_save(value, connection)
            for values in rows
            for field, value in zip(chosen, values, strict=True)
        ]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)

    def add(self, pk: Any, amounts: dict[str, int], using: str = "default") -> M:
        """Add to integer columns of one row in the database (`SET n = n + %s`, like an update with F()),
        and return the row as it is after: one statement (UPDATE … RETURNING) for Django's update and get."""
        connection = connections[using]
        names = tuple(amounts)
        sql, returned = self._statement(connection, "add", names, returning=True)
        primary_key = self._primary_key.get_db_prep_value(pk, connection, prepared=False)
        with connection.cursor() as cursor:
            cursor.execute(sql, [*(int(amounts[name]) for name in names), primary_key])
            row = cursor.fetchone()
        if row is None:
            raise DatabaseError(f"{self._model._meta.label} {pk}: the update found no row")
        return self._model.from_db(using, [field.attname for field in returned], self._converted(connection, row))

    def _converted(self, connection: Any, row: Sequence[Any]) -> list[Any]:
        """A returned row's values as the ORM reads them (booleans, JSON, datetimes: the backend's and the
        fields' converters), as SQLInsertCompiler does for the columns an INSERT returns."""
        converters = self._converters.get(connection)
        if converters is None:
            converters = self._converters[connection] = [
                (connection.ops.get_db_converters(column) + column.get_db_converters(connection), column)
                for column in (field.get_col(self._model._meta.db_table) for field in self._model._meta.concrete_fields)
            ]
        values = list(row)
        for position, (functions, column) in enumerate(converters):
            for function in functions:
                values[position] = function(values[position], column, connection)
        return values

    def _statement(
        self, connection: Any, statement: str, names: tuple[str, ...], rows: int = 1, returning: bool = False
    ) -> tuple[str, list[Field[Any, Any]]]:
        key = (statement, connection.vendor, rows, returning, names)
        built = self._statements.get(key)
        if built is None:
            built = self._statements[key] = self._build(connection, statement, names, rows, returning)
        return built

    def _build(
        self, connection: Any, statement: str, names: tuple[str, ...], rows: int, returning: bool
    ) -> tuple[str, list[Field[Any, Any]]]:
        meta, quote = self._model._meta, connection.ops.quote_name
        fields: list[Field[Any, Any]] = []
        for name in names:
            field = meta.get_field(name)
            if not (isinstance(field, Field) and field.concrete):
                raise ValueError(f"{name} is not a column of {meta.label}")
            fields.append(field)
        columns = [quote(_column(field)) for field in fields]
        table, primary_key = quote(meta.db_table), quote(_column(self._primary_key))
        # Names from the model's own metadata, quoted; every value is a parameter.
        if statement == "update":
            assignments = ", ".join(f"{column} = %s" for column in columns)
            sql = f"UPDATE {table} SET {assignments} WHERE {primary_key} = %s"  # noqa: S608
        elif statement == "add":
            if any(field.get_internal_type() not in _INTEGERS for field in fields):
                raise ValueError(f"add takes integer columns of {meta.label}, not {', '.join(names)}")
            assignments = ", ".join(f"{column} = {column} + %s" for column in columns)
            every = list(meta.concrete_fields)
            returned = ", ".join(quote(_column(field)) for field in every)
            sql = f"UPDATE {table} SET {assignments} WHERE {primary_key} = %s RETURNING {returned}"  # noqa: S608
            return sql, every
        else:
            row = "(" + ", ".join(["%s"] * len(columns)) + ")"
            sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join([row] * rows)}"  # noqa: S608
            if returning:  # SQLite 3.35 and PostgreSQL have RETURNING, and Django 5.2 requires both
                sql += f" RETURNING {primary_key}"
        return sql, fields


_INTEGERS = frozenset(
    ("IntegerField", "BigIntegerField", "SmallIntegerField", "PositiveIntegerField", "PositiveBigIntegerField")
)


def _column(field: Field[Any, Any]) -> str:
    assert field.column is not None  # a concrete field has a column
    return field.column
