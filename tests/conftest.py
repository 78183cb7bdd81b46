"""Fixtures shared by the test modules."""

from __future__ import annotations

import os
import sys

import pytest
from support import PURE_PYTHON_BACKENDS

from typetrace._profiling import PURE_PYTHON_VARIABLE

if sys.version_info >= (3, 12):
    BACKENDS = ["monitoring", "monitoring-python"]
else:
    BACKENDS = ["c-hook", "pure-python"]


@pytest.fixture(params=BACKENDS)
def tracing_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test once per tracing backend of this Python: on 3.9 to 3.11 the C
    profile hook and the pure-Python profile function, on 3.12 and later
    sys.monitoring with the C callbacks of typetrace._fastcalls and with Python
    callbacks only. A run with TYPETRACE_PURE_PYTHON=1 skips the runs with C."""
    backend: str = request.param
    if backend in PURE_PYTHON_BACKENDS:
        monkeypatch.setenv(PURE_PYTHON_VARIABLE, "1")
    elif os.environ.get(PURE_PYTHON_VARIABLE) == "1":
        pytest.skip(f"{PURE_PYTHON_VARIABLE}=1 selects the pure-Python backend")
    return backend
