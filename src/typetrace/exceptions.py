"""Errors that typetrace reports to its users."""

from __future__ import annotations

__all__ = ["ConfigError", "StoreError", "TypeTraceError"]


class TypeTraceError(Exception):
    """Base class of the errors typetrace raises with a message meant for users."""


class ConfigError(TypeTraceError):
    """A configuration cannot be found, loaded or used."""


class StoreError(TypeTraceError):
    """A trace store cannot be opened, read or written."""
