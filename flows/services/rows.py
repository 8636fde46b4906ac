"""Writes on the hot path in SQL: the statements each task run makes, without the ORM's cost of
building them (measured: the ORM took longer to compile a one-row statement than PostgreSQL to run
it). Values still go through each field's own conversion for the backend (`get_db_prep_save`).

On PostgreSQL (Django's default client-side binding), several writes of one transaction go to the
server in one round trip.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.db import connection, models

quote = connection.ops.quote_name
Statement = tuple[str, list[Any]]
_ROWS_PER_INSERT = 500  # SQLite allows 32,766 parameters per statement


def save_fields(
    row: models.Model, fields: Sequence[str], *, then_insert: Sequence[models.Model] = ()
) -> None:
    """`row.save(update_fields=fields)`, and `insert_rows(then_insert)` in the same round trip."""
    values = {name: getattr(row, row._meta.get_field(name).attname) for name in fields}
    _run([_update(type(row), values, {"pk": row.pk}), *_inserts(then_insert)])
    _stored(then_insert)


def update_where(model: type[models.Model], values: Mapping[str, Any], **where: Any) -> int:
    """`model.objects.filter(**where).update(**values)` for equality conditions; returns the count."""
    sql, params = _update(model, values, where)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def insert_rows(rows: Sequence[models.Model]) -> None:
    """`Model.objects.bulk_create(rows)` for rows of one model whose primary key is set, or generated
    by the database and not needed afterwards (log lines)."""
    _run(_inserts(rows))
    _stored(rows)


def _update(model: type[models.Model], values: Mapping[str, Any], where: Mapping[str, Any]) -> Statement:
    meta = model._meta
    assignments, conditions, params = [], [], []
    for name, value in values.items():
        field = meta.get_field(name)
        assignments.append(f"{quote(field.column)} = %s")
        params.append(field.get_db_prep_save(value, connection))
    for name, value in where.items():
        field = meta.pk if name == "pk" else meta.get_field(name)
        conditions.append(f"{quote(field.column)} = %s")
        params.append(field.get_db_prep_value(value, connection))
    sql = f"UPDATE {quote(meta.db_table)} SET {', '.join(assignments)} WHERE {' AND '.join(conditions)}"
    return sql, params


def _inserts(rows: Sequence[models.Model]) -> list[Statement]:
    if not rows:
        return []
    meta = rows[0]._meta
    fields = [field for field in meta.concrete_fields if not (field.primary_key and _generated(field))]
    head = "INSERT INTO {table} ({columns}) VALUES ".format(
        table=quote(meta.db_table), columns=", ".join(quote(field.column) for field in fields)
    )
    marks = "(" + ", ".join(["%s"] * len(fields)) + ")"
    statements = []
    for start in range(0, len(rows), _ROWS_PER_INSERT):
        chunk = rows[start : start + _ROWS_PER_INSERT]
        params = [
            field.get_db_prep_save(field.pre_save(row, True), connection) for row in chunk for field in fields
        ]
        statements.append((head + ", ".join([marks] * len(chunk)), params))
    return statements


def _run(statements: list[Statement]) -> None:
    with connection.cursor() as cursor:
        if len(statements) > 1 and one_round_trip():
            cursor.execute(
                "; ".join(sql for sql, _ in statements), [p for _, params in statements for p in params]
            )
            return
        for sql, params in statements:
            cursor.execute(sql, params)


def one_round_trip() -> bool:
    """Client-side binding sends `a; b` as one simple query (psycopg's ClientCursor, Django's default)."""
    return connection.vendor == "postgresql" and not connection.settings_dict["OPTIONS"].get(
        "server_side_binding"
    )


def _stored(rows: Sequence[models.Model]) -> None:
    for row in rows:  # a later save() updates them, as after bulk_create
        row._state.adding, row._state.db = False, connection.alias


def _generated(field: models.Field) -> bool:
    return isinstance(field, models.AutoField | models.BigAutoField | models.SmallAutoField)
