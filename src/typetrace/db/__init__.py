"""Trace stores: where call traces are kept between tracing and stub generation."""

from __future__ import annotations

from typetrace.db.base import CallTraceStore

__all__ = ["store_from_url"]


def store_from_url(connection_string: str) -> CallTraceStore:
    """Open the store named by *connection_string*.

    ``postgresql://`` (or ``postgres://``) URLs open a PostgreSQL store, and
    ``mysql://`` URLs a MySQL or MariaDB store. Anything else goes to
    :class:`SQLiteStore` as a path, ``:memory:`` or a ``file:`` URI.
    """
    scheme = connection_string.partition("://")[0].lower() if "://" in connection_string else ""
    if scheme in ("postgresql", "postgres"):
        from typetrace.db.postgres import PostgresStore

        return PostgresStore.make_store(connection_string)
    if scheme in ("mysql", "mariadb"):
        from typetrace.db.mysql import MySQLStore

        return MySQLStore.make_store(connection_string)
    from typetrace.db.sqlite import SQLiteStore

    return SQLiteStore.make_store(connection_string)
