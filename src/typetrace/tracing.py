"""Call traces: what typetrace records about one call of a function."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional

from typetrace.typemodel import TypeRef

__all__ = ["CallTrace"]


@dataclass(frozen=True)
class CallTrace:
    """The types observed in one call, or in many identical calls, of one function.

    For ``*args`` and ``**kwargs`` parameters, :attr:`arg_types` holds the type of
    their elements, which is what an annotation of such a parameter states.
    """

    #: Module of the function, as in ``func.__module__``.
    module: str
    #: Qualified name of the function, as in ``func.__qualname__``.
    qualname: str
    #: Parameter name to the type of the value passed for it.
    arg_types: Mapping[str, TypeRef]
    #: Type of the returned value; ``None`` when the call raised or did not return.
    return_type: Optional[TypeRef] = None
    #: Union of the types yielded; ``None`` when the call yielded nothing.
    yield_type: Optional[TypeRef] = None
    #: Number of calls this trace stands for. Not part of equality.
    call_count: int = field(default=1, compare=False)

    def __post_init__(self) -> None:
        # A frozen copy, so that a trace is immutable and hashable.
        object.__setattr__(self, "arg_types", _FrozenDict(self.arg_types))

    @property
    def funcname(self) -> str:
        """``module:qualname``, the name typetrace shows for the function."""
        return f"{self.module}:{self.qualname}"


class _FrozenDict(dict):  # type: ignore[type-arg]
    """A dict that cannot change after construction and hashes by its items."""

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(self.items()))

    def _immutable(self, *args: object, **kwargs: object) -> None:
        raise TypeError("CallTrace.arg_types cannot be changed")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _immutable  # type: ignore[assignment]
