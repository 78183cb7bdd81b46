"""Build the optional C extensions. The package's metadata is in pyproject.toml.

On CPython 3.9 to 3.11, ``typetrace._profilehook`` is the C profile hook (and on 3.11
the frame-evaluation function) that keeps tracing fast. On CPython 3.12 and later,
``typetrace._fastcalls`` holds ``sys.monitoring`` callbacks in C for calls whose types
are cached. On every CPython, ``typetrace._containers`` types lists, tuples, sets,
frozensets and dicts whose element types were seen before. A failed build (no C
compiler, no Python headers) leaves a working installation that traces in pure
Python.
"""

import sys

from setuptools import Extension, setup

# The fast path of calls with cached types, which both extensions include.
FASTCALLS_HEADER = "src/typetrace/_fastcalls.h"

ext_modules = []
if sys.implementation.name == "cpython" and (3, 9) <= sys.version_info < (3, 12):
    ext_modules.append(
        Extension(
            "typetrace._profilehook",
            sources=["src/typetrace/_profilehook.c"],
            depends=[FASTCALLS_HEADER],
            optional=True,
        )
    )
elif sys.implementation.name == "cpython" and sys.version_info >= (3, 12):
    ext_modules.append(
        Extension(
            "typetrace._fastcalls",
            sources=["src/typetrace/_fastcalls.c"],
            depends=[FASTCALLS_HEADER],
            optional=True,
        )
    )

if sys.implementation.name == "cpython":
    ext_modules.append(
        Extension("typetrace._containers", sources=["src/typetrace/_containers.c"], optional=True)
    )

setup(ext_modules=ext_modules)
