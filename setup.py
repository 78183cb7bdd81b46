"""Build the optional C profile hook. The package's metadata is in pyproject.toml.

The hook (``typetrace._profilehook``) speeds up tracing on CPython 3.9 to 3.11. It is
built only there, and a failed build (no C compiler, no Python headers) leaves a
working installation that traces with the pure-Python profile function. Python 3.12
and later trace with ``sys.monitoring`` and get a pure-Python package.
"""

import sys

from setuptools import Extension, setup

ext_modules = []
if sys.implementation.name == "cpython" and (3, 9) <= sys.version_info < (3, 12):
    ext_modules.append(
        Extension("typetrace._profilehook", sources=["src/typetrace/_profilehook.c"], optional=True)
    )

setup(ext_modules=ext_modules)
