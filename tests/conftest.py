"""Fixtures shared by the test modules."""

from __future__ import annotations

import os
import sys

import pytest

from typetrace._profiling import PURE_PYTHON_VARIABLE

if sys.version_info >= (3, 12):
    BACKENDS = ["monitoring"]
else:
    BACKENDS = ["c-hook", "pure-python"]


@pytest.fixture(params=BACKENDS)
def tracing_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test once per tracing backend of this Python. On 3.9 to 3.11 these are
    the C profile hook and the pure-Python profile function, and a run with
    TYPETRACE_PURE_PYTHON=1 skips the C hook's runs."""
    backend: str = request.param
    if backend == "c-hook":
        if os.environ.get(PURE_PYTHON_VARIABLE) == "1":
            pytest.skip(f"{PURE_PYTHON_VARIABLE}=1 selects the pure-Python backend")
    elif backend == "pure-python":
        monkeypatch.setenv(PURE_PYTHON_VARIABLE, "1")
    return backend
