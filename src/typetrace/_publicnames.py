"""Public names of classes whose ``__module__`` or ``__qualname__`` is private or
platform-specific.

Inference looks up the class of each value and its bases here. The stub renderer does
too, for traces recorded before inference used this table. An annotation then names
the class that the standard library documents and typeshed declares. The table was
checked against CPython 3.9, 3.12 and 3.13.
"""

from __future__ import annotations

from typing import Optional

from typetrace.typemodel import ANY, ELLIPSIS, NONE, TypeRef

__all__ = ["PUBLIC_NAMES", "is_private", "public_name"]

_CALLABLE = TypeRef("typing", "Callable", (ELLIPSIS, ANY))
_PATH = TypeRef("pathlib", "Path")
_PURE_PATH = TypeRef("pathlib", "PurePath")

#: Classes named by their public alias. A platform-specific class becomes the class
#: that portable code names: ``Path()`` returns a ``PosixPath`` or a ``WindowsPath``
#: depending on the platform, so an annotation names ``Path``.
PUBLIC_NAMES: dict[tuple[str, str], TypeRef] = {
    ("_io", "StringIO"): TypeRef("io", "StringIO"),
    ("_io", "BytesIO"): TypeRef("io", "BytesIO"),
    ("_io", "FileIO"): TypeRef("io", "FileIO"),
    ("_io", "TextIOWrapper"): TypeRef("io", "TextIOWrapper"),
    ("_io", "BufferedReader"): TypeRef("io", "BufferedReader"),
    ("_io", "BufferedWriter"): TypeRef("io", "BufferedWriter"),
    ("_io", "BufferedRandom"): TypeRef("io", "BufferedRandom"),
    ("_io", "BufferedRWPair"): TypeRef("io", "BufferedRWPair"),
    # The C base classes of the io classes; io's Python classes of the same name
    # without the underscore are registered as their abstract counterparts.
    ("_io", "_IOBase"): TypeRef("io", "IOBase"),
    ("_io", "_RawIOBase"): TypeRef("io", "RawIOBase"),
    ("_io", "_BufferedIOBase"): TypeRef("io", "BufferedIOBase"),
    ("_io", "_TextIOBase"): TypeRef("io", "TextIOBase"),
    ("_collections", "deque"): TypeRef("collections", "deque"),
    ("_collections", "defaultdict"): TypeRef("collections", "defaultdict"),
    ("_collections", "OrderedDict"): TypeRef("collections", "OrderedDict"),
    ("_thread", "lock"): TypeRef("threading", "Lock"),
    ("_thread", "LockType"): TypeRef("threading", "Lock"),
    ("_thread", "RLock"): TypeRef("threading", "RLock"),
    ("_thread", "_local"): TypeRef("threading", "local"),
    ("_socket", "socket"): TypeRef("socket", "socket"),
    ("_decimal", "Decimal"): TypeRef("decimal", "Decimal"),
    ("_struct", "Struct"): TypeRef("struct", "Struct"),
    ("_random", "Random"): TypeRef("random", "Random"),
    ("_sre", "SRE_Pattern"): TypeRef("re", "Pattern"),
    ("_sre", "SRE_Match"): TypeRef("re", "Match"),
    ("_pickle", "Pickler"): TypeRef("pickle", "Pickler"),
    ("_pickle", "Unpickler"): TypeRef("pickle", "Unpickler"),
    ("_asyncio", "Future"): TypeRef("asyncio", "Future"),
    ("_asyncio", "Task"): TypeRef("asyncio", "Task"),
    ("_queue", "SimpleQueue"): TypeRef("queue", "SimpleQueue"),
    ("_functools", "partial"): TypeRef("functools", "partial"),
    ("functools", "_lru_cache_wrapper"): _CALLABLE,
    ("_contextvars", "ContextVar"): TypeRef("contextvars", "ContextVar"),
    ("_contextvars", "Context"): TypeRef("contextvars", "Context"),
    ("_contextvars", "Token"): TypeRef("contextvars", "Token"),
    ("_elementtree", "Element"): TypeRef("xml.etree.ElementTree", "Element"),
    ("_frozen_importlib", "ModuleSpec"): TypeRef("importlib.machinery", "ModuleSpec"),
    ("_weakrefset", "WeakSet"): TypeRef("weakref", "WeakSet"),
    ("_sqlite3", "Connection"): TypeRef("sqlite3", "Connection"),
    ("_sqlite3", "Cursor"): TypeRef("sqlite3", "Cursor"),
    ("_sqlite3", "Row"): TypeRef("sqlite3", "Row"),
    ("_bz2", "BZ2Compressor"): TypeRef("bz2", "BZ2Compressor"),
    ("_bz2", "BZ2Decompressor"): TypeRef("bz2", "BZ2Decompressor"),
    ("_lzma", "LZMACompressor"): TypeRef("lzma", "LZMACompressor"),
    ("_lzma", "LZMADecompressor"): TypeRef("lzma", "LZMADecompressor"),
    ("_collections_abc", "dict_keys"): TypeRef("typing", "KeysView"),
    ("_collections_abc", "dict_values"): TypeRef("typing", "ValuesView"),
    ("_collections_abc", "dict_items"): TypeRef("typing", "ItemsView"),
    ("pathlib", "PosixPath"): _PATH,
    ("pathlib", "WindowsPath"): _PATH,
    ("pathlib", "PurePosixPath"): _PURE_PATH,
    ("pathlib", "PureWindowsPath"): _PURE_PATH,
    # Python 3.13 defines the pathlib classes in pathlib._local.
    ("pathlib._local", "Path"): _PATH,
    ("pathlib._local", "PosixPath"): _PATH,
    ("pathlib._local", "WindowsPath"): _PATH,
    ("pathlib._local", "PurePath"): _PURE_PATH,
    ("pathlib._local", "PurePosixPath"): _PURE_PATH,
    ("pathlib._local", "PureWindowsPath"): _PURE_PATH,
    ("builtins", "NoneType"): NONE,
    ("builtins", "function"): _CALLABLE,
    ("builtins", "builtin_function_or_method"): _CALLABLE,
    ("builtins", "method"): _CALLABLE,
    ("builtins", "generator"): TypeRef("typing", "Generator"),
    ("builtins", "coroutine"): TypeRef("typing", "Coroutine"),
    ("builtins", "async_generator"): TypeRef("typing", "AsyncGenerator"),
    ("builtins", "module"): TypeRef("types", "ModuleType"),
    ("builtins", "mappingproxy"): TypeRef("types", "MappingProxyType"),
    ("builtins", "dict_keys"): TypeRef("typing", "KeysView"),
    ("builtins", "dict_values"): TypeRef("typing", "ValuesView"),
    ("builtins", "dict_items"): TypeRef("typing", "ItemsView"),
}  # fmt: skip


def public_name(module: str, qualname: str) -> Optional[TypeRef]:
    """Return the public reference for the class *module*.*qualname*, or ``None``
    when the table has none."""
    return PUBLIC_NAMES.get((module, qualname))


def is_private(module: str, qualname: str) -> bool:
    """Return whether a part of *module* or *qualname* starts with an underscore.

    Dunder parts such as ``__main__`` are not private by this rule.
    """
    for part in (*module.split("."), *qualname.split(".")):
        if part.startswith("_") and not (part.startswith("__") and part.endswith("__")):
            return True
    return False
