"""Module source lookup: module name to source file and back, without importing."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Optional, Sequence, Union

from typetrace.exceptions import TypeTraceError

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "ModuleSourceNotFoundError",
    "default_search_path",
    "find_module_source",
    "is_source_path",
    "module_name_for_path",
]


class ModuleSourceNotFoundError(TypeTraceError):
    """The source file of a module is not on the search path."""


def default_search_path() -> list[str]:
    """Return the working directory followed by ``sys.path``, the order ``python -m`` uses."""
    return [os.getcwd(), *sys.path]


def _search_entries(search_path: Optional[Sequence[str]]) -> list[str]:
    entries = default_search_path() if search_path is None else list(search_path)
    # An empty entry in sys.path means the working directory.
    return [entry or os.getcwd() for entry in entries]


def find_module_source(module: str, search_path: Optional[Sequence[str]] = None) -> Path:
    """Find the source file of *module* on *search_path* without importing anything.

    A module ``a.b.c`` is found as ``a/b/c.py`` or ``a/b/c/__init__.py`` under the first
    search-path entry that has it. The parent folders need no ``__init__.py``, so
    modules in namespace packages are found too.

    Raises:
        ModuleSourceNotFoundError: no entry has a source file for *module*.
    """
    # Imported here, because typetrace run imports this module and uses only
    # module_name_for_path, which works on strings.
    from pathlib import Path

    parts = module.split(".")
    if not module or not all(part.isidentifier() for part in parts):
        raise ModuleSourceNotFoundError(
            f"Invalid module name {module!r}: expected a dotted name such as pkg.mod"
        )
    entries = [Path(entry) for entry in _search_entries(search_path)]
    for entry in entries:
        base = entry.joinpath(*parts)
        for candidate in (base.with_name(base.name + ".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
    searched = os.pathsep.join(str(entry) for entry in entries)
    raise ModuleSourceNotFoundError(
        f"Source of module {module!r} not found in the search path {searched}. "
        "Run typetrace from the project root or add the folder that contains the "
        "module to PYTHONPATH. For a script, pass its file path instead of a module name."
    )


def module_name_for_path(
    path: Union[str, os.PathLike[str]], search_path: Optional[Sequence[str]] = None
) -> str:
    """Return the dotted module name of the source file *path*.

    The name is relative to the nearest search-path entry that contains the file,
    walking up through folders with an ``__init__.py``. When no entry contains the
    file, the name is its stem, which is how a script run as a file is recorded.
    """
    file_folder, file_name = os.path.split(os.path.abspath(path))
    stem = os.path.splitext(file_name)[0]
    parts = [] if file_name == "__init__.py" else [stem]
    folder = file_folder
    entries = {os.path.abspath(entry) for entry in _search_entries(search_path)}

    # Walk up while the folder is a regular package; stop at the first search-path
    # entry, so the name is relative to the nearest entry.
    while folder not in entries and os.path.isfile(os.path.join(folder, "__init__.py")):
        parent, name = os.path.split(folder)
        parts.insert(0, name)
        if parent == folder:
            break
        folder = parent
    if folder in entries and parts:
        return ".".join(parts)
    # NOTE: a module of a namespace package passed as a path gets its stem, because a
    # folder without __init__.py cannot be told apart from a folder of scripts.
    return stem if file_name != "__init__.py" else os.path.basename(file_folder)


def is_source_path(text: str) -> bool:
    """Whether *text* names a file path rather than a dotted module name."""
    if text.endswith((".py", ".pyi")):
        return True
    if os.sep in text or (os.altsep is not None and os.altsep in text):
        return True
    return not all(part.isidentifier() for part in text.split("."))
