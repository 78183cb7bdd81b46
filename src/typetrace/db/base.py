"""The trace store interface that every store implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Iterable, Optional, Protocol, runtime_checkable

from typetrace.tracing import CallTrace

__all__ = ["CallTraceStore", "CallTraceThunk", "qualname_matches"]


@runtime_checkable
class CallTraceThunk(Protocol):
    """A stored trace that is decoded only when asked for.

    :meth:`to_trace` raises when the stored row cannot be decoded, so a caller can skip
    that one row and use the rest of a query's results.
    """

    def to_trace(self) -> CallTrace:
        """Decode the stored trace."""
        ...


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


def qualname_matches(qualname: str, prefix: Optional[str]) -> bool:
    """Whether *qualname* is selected by *prefix* in :meth:`CallTraceStore.filter`.

    The prefix matches whole dotted components and case-sensitively: ``C`` selects
    ``C`` and ``C.m``, never ``Cx`` or ``c``.
    """
    return prefix is None or qualname == prefix or qualname.startswith(prefix + ".")
