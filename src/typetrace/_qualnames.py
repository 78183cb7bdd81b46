"""Qualified names of code objects, as ``func.__qualname__`` states them.

Python 3.11 and later store the name in ``code.co_qualname``. On 3.9 and 3.10 the
compiler computes it but does not keep it, so this module compiles the source file
again and maps each code object to its name by ``(co_name, co_firstlineno)``. When
the source is missing or has changed since import, the name comes from the function
object that owns the code, found with :func:`gc.get_referrers` for the first 64 such
code objects of each file, and finally from ``co_name``.
"""

from __future__ import annotations

import gc
import inspect
import linecache
import sys
import threading
import types
from typing import Optional

__all__ = ["qualname_of"]

# Set on code that runs in its own function scope: functions, lambdas and
# comprehensions; absent on module and class bodies.
_CO_OPTIMIZED = inspect.CO_OPTIMIZED

_lock = threading.Lock()
# Source file name -> {(co_name, co_firstlineno): qualname}.
_names_by_file: dict[str, dict[tuple[str, int], str]] = {}
# Searches of the heap for the function of a code object whose source did not match,
# per source file name. Code that exec() makes from one file name again and again
# would otherwise cost a scan of every object each time.
_searches_by_file: dict[str, int] = {}
_MAX_SEARCHES_PER_FILE = 64


def qualname_of(code: types.CodeType, module_globals: Optional[dict[str, object]] = None) -> str:
    """Return the qualified name of the function whose code is *code*."""
    if sys.version_info >= (3, 11):
        return code.co_qualname
    names = _names_in_file(code.co_filename, module_globals)
    qualname = names.get((code.co_name, code.co_firstlineno))
    if qualname is not None:
        return qualname
    with _lock:
        searches = _searches_by_file.get(code.co_filename, 0)
        _searches_by_file[code.co_filename] = searches + 1
    if searches >= _MAX_SEARCHES_PER_FILE:
        return code.co_name
    return _qualname_from_function(code) or code.co_name


def _names_in_file(filename: str, module_globals: Optional[dict[str, object]]) -> dict[tuple[str, int], str]:
    with _lock:
        names = _names_by_file.get(filename)
    if names is not None:
        return names
    names = {}
    source = "".join(linecache.getlines(filename, module_globals))
    if source:
        try:
            module_code = compile(source, filename, "exec", dont_inherit=True)
        except (SyntaxError, ValueError):
            pass
        else:
            _collect_names(module_code, None, names)
    with _lock:
        _names_by_file[filename] = names
    return names


def _collect_names(code: types.CodeType, parent_qualname: Optional[str], names: dict[tuple[str, int], str]) -> None:
    # The compiler's rule: a scope nested in a function is named
    # "<function>.<locals>.<name>", one nested in a class "<class>.<name>", and one at
    # module level "<name>".
    for constant in code.co_consts:
        if not isinstance(constant, types.CodeType):
            continue
        if parent_qualname is None:
            qualname = constant.co_name
        elif code.co_flags & _CO_OPTIMIZED:
            qualname = f"{parent_qualname}.<locals>.{constant.co_name}"
        else:
            qualname = f"{parent_qualname}.{constant.co_name}"
        names.setdefault((constant.co_name, constant.co_firstlineno), qualname)
        _collect_names(constant, qualname, names)


def _qualname_from_function(code: types.CodeType) -> Optional[str]:
    # Scans every object the garbage collector tracks, so it runs only for code whose
    # source could not be matched, and once per code object, because the caller caches.
    for referrer in gc.get_referrers(code):
        if isinstance(referrer, types.FunctionType) and referrer.__code__ is code:
            return referrer.__qualname__
    return None
