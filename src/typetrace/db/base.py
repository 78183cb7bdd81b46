"""The trace store interface that every store implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Iterable, Iterator, Optional, Protocol, runtime_checkable

from typetrace.encoding import CallTraceRow
from typetrace.exceptions import StoreError
from typetrace.tracing import CallTrace

__all__ = ["CallTraceStore", "CallTraceThunk", "StoredRow", "qualname_matches"]


@runtime_checkable
class CallTraceThunk(Protocol):
    """A stored trace that is decoded only when asked for.

    :meth:`to_trace` raises when the stored row cannot be decoded, so a caller can skip
    that one row and use the rest of a query's results.
    """

    def to_trace(self) -> CallTrace:
        """Decode the stored trace."""
        ...


@dataclass(frozen=True)
class StoredRow:
    """One stored trace as a store keeps it: the encoded row and when it was seen.

    The row's ``call_count`` is the number of calls the stored trace counts.
    """

    #: The trace in its encoded form, with its call count.
    row: CallTraceRow
    #: When the trace was first recorded, in seconds since the Unix epoch (UTC).
    first_seen: float
    #: When the trace was last recorded, in seconds since the Unix epoch (UTC).
    last_seen: float


class CallTraceStore(ABC):
    """Storage of call traces, shared by the tracer and the commands that read traces.

    Implementations must be safe to use from one thread at a time per instance; the
    tracer writes from a background thread of its own.
    """

    @classmethod
    @abstractmethod
    def make_store(cls, connection_string: str) -> CallTraceStore:
        """Open the store that *connection_string* names, in the store's own format."""

    @abstractmethod
    def add(self, traces: Iterable[CallTrace]) -> None:
        """Store *traces*."""

    @abstractmethod
    def filter(
        self, module: str, qualname_prefix: Optional[str] = None, limit: int = 2000
    ) -> list[CallTraceThunk]:
        """Return the most recent *limit* distinct traces of functions in *module*.

        *qualname_prefix* selects functions whose qualified name is the prefix or
        starts with the prefix followed by a dot; :func:`qualname_matches` is the
        exact rule.
        """

    @abstractmethod
    def list_modules(self) -> list[str]:
        """Return the names of the modules that have traces, sorted."""

    def close(self) -> None:  # noqa: B027 - an optional hook, empty by default
        """Release the store's connections. The default does nothing."""

    # Optional methods, used by the prune, stats, export and import commands. A store
    # that does not implement one raises StoreError from it, and only the commands
    # that need it fail.

    def iter_rows(self, module: Optional[str] = None) -> Iterator[StoredRow]:
        """Yield every stored row, or the rows of *module* only, without decoding them.

        The rows are not read as one snapshot: a trace written while the iteration
        runs may or may not be yielded.
        """
        raise self._unsupported("iter_rows", "'typetrace export' and 'typetrace stats'")

    def add_rows(self, rows: Iterable[StoredRow]) -> None:
        """Store *rows* with their call counts and times, in one transaction.

        A row whose trace is already stored adds its call count to the stored count
        and widens the stored first and last seen times to include its own.
        """
        raise self._unsupported("add_rows", "'typetrace import'")

    def prune(self, last_seen_before: float, module: Optional[str] = None) -> int:
        """Delete the traces last seen before *last_seen_before* and return how many.

        *last_seen_before* is in seconds since the Unix epoch (UTC). With *module*,
        only traces of that module (matched exactly) are deleted.
        """
        raise self._unsupported("prune", "'typetrace prune'")

    def _unsupported(self, method: str, commands: str) -> StoreError:
        return StoreError(
            f"The trace store {type(self).__name__} does not support {method}; implement "
            f"CallTraceStore.{method} in it to use {commands}."
        )


def qualname_matches(qualname: str, prefix: Optional[str]) -> bool:
    """Return whether *qualname* is selected by *prefix* in :meth:`CallTraceStore.filter`.

    The prefix matches whole dotted components and case-sensitively: ``C`` selects
    ``C`` and ``C.m``, never ``Cx`` or ``c``.
    """
    return prefix is None or qualname == prefix or qualname.startswith(prefix + ".")
