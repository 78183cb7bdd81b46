"""typetrace: record the types that flow through a running program and turn them into annotations.

PYTEST_DONT_REWRITE: ``typetrace run -m pytest`` imports this package before pytest
starts, so pytest must not try to rewrite it as a plugin (it would warn that it
cannot).
"""

from __future__ import annotations

__version__ = "0.1.0"

from typetrace import _logging
from typetrace.config import Config as Config
from typetrace.config import DefaultConfig as DefaultConfig
from typetrace.config import Sampling as Sampling
from typetrace.db.base import CallTraceStore as CallTraceStore
from typetrace.tracing import CallTrace as CallTrace
from typetrace.tracing import start as start
from typetrace.tracing import stop as stop
from typetrace.tracing import trace as trace

_logging.install()

__all__ = [
    "CallTrace",
    "CallTraceStore",
    "Config",
    "DefaultConfig",
    "Sampling",
    "__version__",
    "start",
    "stop",
    "trace",
]
