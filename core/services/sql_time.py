"""Time slots in SQL: group naive-UTC DateTime columns by whole steps of Unix time (SQLite and PostgreSQL)."""

from __future__ import annotations

from sqlalchemy import BigInteger, func


def epoch_slot(column, step: int, dialect: str):
    """floor(unix_seconds(column) / step), as an integer SQL expression."""
    if dialect == "sqlite":
        return func.cast(func.strftime("%s", column), BigInteger) // step
    return func.cast(func.floor(func.extract("epoch", column) / step), BigInteger)
