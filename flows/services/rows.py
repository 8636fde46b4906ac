"""Writes on the hot path in SQL: the statements each task run makes, without the ORM's cost of
building them (measured: the ORM took longer to compile a one-row statement than PostgreSQL to run
it). Values still go through each field's own conversion for the backend (`get_db_prep_save`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.db import connection, models

quote = connection.ops.quote_name


def save_fields(row: models.Model, fields: Sequence[str]) -> None:
    """`row.save(update_fields=fields)`."""
    meta = row._meta
    columns, values = [], []
    for name in fields:
        field = meta.get_field(name)
        columns.append(f"{quote(field.column)} = %s")
        values.append(field.get_db_prep_save(getattr(row, field.attname), connection))
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {quote(meta.db_table)} SET {', '.join(columns)} WHERE {quote(meta.pk.column)} = %s",
            [*values, row.pk],
        )


def update_where(model: type[models.Model], values: Mapping[str, Any], **where: Any) -> int:
    """`model.objects.filter(**where).update(**values)` for equality conditions; returns the count."""
    meta = model._meta
    assignments, conditions, params = [], [], []
    for name, value in values.items():
        field = meta.get_field(name)
        assignments.append(f"{quote(field.column)} = %s")
        params.append(field.get_db_prep_save(value, connection))
    for name, value in where.items():
        field = meta.get_field(name)
        conditions.append(f"{quote(field.column)} = %s")
        params.append(field.get_db_prep_value(value, connection))
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {quote(meta.db_table)} SET {', '.join(assignments)} WHERE {' AND '.join(conditions)}",
            params,
        )
        return cursor.rowcount


def insert_rows(rows: Sequence[models.Model]) -> None:
    """`Model.objects.bulk_create(rows)` for rows of one model whose primary key is set, or generated
    by the database and not needed afterwards (log lines)."""
    if not rows:
        return
    meta = rows[0]._meta
    fields = [field for field in meta.concrete_fields if not (field.primary_key and row_key_generated(field))]
    sql = "INSERT INTO {table} ({columns}) VALUES ({marks})".format(
        table=quote(meta.db_table),
        columns=", ".join(quote(field.column) for field in fields),
        marks=", ".join(["%s"] * len(fields)),
    )
    params = [
        [field.get_db_prep_save(field.pre_save(row, True), connection) for field in fields] for row in rows
    ]
    with connection.cursor() as cursor:
        if len(params) == 1:
            cursor.execute(sql, params[0])
        else:
            cursor.executemany(sql, params)
    for row in rows:  # stored: a later save() updates them, as after bulk_create
        row._state.adding, row._state.db = False, connection.alias


def row_key_generated(field: models.Field) -> bool:
    return isinstance(field, models.AutoField | models.BigAutoField | models.SmallAutoField)
