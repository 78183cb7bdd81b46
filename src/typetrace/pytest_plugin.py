"""The pytest plugin: ``pytest --typetrace`` records the types seen while tests run.

With pytest-xdist (``-n``), each worker traces the tests it runs and writes to the
store itself. The controller runs no tests and does not trace, so no call is counted
twice.
"""

from __future__ import annotations

import contextlib
from typing import Any, Optional

import pytest

from typetrace.config import Config, get_default_config, load_config, override_config

__all__ = ["pytest_addoption", "pytest_configure", "pytest_unconfigure"]

_PLUGIN_NAME = "typetrace-session"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("typetrace", "record call types with typetrace")
    group.addoption("--typetrace", action="store_true", default=None, help="record the types of calls made by the tests")
    group.addoption("--typetrace-db", metavar="STORE", help="the trace store: a SQLite path or a database URL")
    group.addoption("--typetrace-config", metavar="MODULE:ATTRIBUTE", help="the typetrace Config to use")
    group.addoption("--typetrace-all-calls", action="store_true", default=None, help="record every call, not a sample")
    parser.addini("typetrace", type="bool", default=False, help="record call types, as --typetrace does")
    parser.addini("typetrace_db", default="", help="the trace store, as --typetrace-db sets")
    parser.addini("typetrace_config", default="", help="the Config, as --typetrace-config sets")
    parser.addini("typetrace_all_calls", type="bool", default=False, help="as --typetrace-all-calls")


def _option(config: pytest.Config, name: str) -> Any:
    value = config.getoption(name)
    return config.getini(name) if value is None or value == "" else value


class _SessionTracer:
    """Traces from configure to unconfigure, in the controller and in each xdist worker."""

    def __init__(self, trace_config: Config) -> None:
        from typetrace.tracing import trace

        self._context: Optional[contextlib.AbstractContextManager[object]] = trace(trace_config)
        self._context.__enter__()

    def stop(self) -> None:
        if self._context is not None:
            context, self._context = self._context, None
            context.__exit__(None, None, None)


def _is_xdist_controller(config: pytest.Config) -> bool:
    if hasattr(config, "workerinput"):
        return False
    return bool(getattr(config.option, "numprocesses", None)) or getattr(config.option, "dist", "no") != "no"


def pytest_configure(config: pytest.Config) -> None:
    from typetrace.tracing import active_session

    if not _option(config, "typetrace") or _is_xdist_controller(config):
        return
    # Already traced, for example under "typetrace run -m pytest": that session records.
    if active_session() is not None:
        return
    config_path = _option(config, "typetrace_config")
    db = _option(config, "typetrace_db")
    trace_config = load_config(config_path) if config_path else get_default_config()
    trace_config = override_config(trace_config, db=db or None, all_calls=bool(_option(config, "typetrace_all_calls")))
    config.pluginmanager.register(_SessionTracer(trace_config), _PLUGIN_NAME)


def pytest_unconfigure(config: pytest.Config) -> None:
    tracer = config.pluginmanager.get_plugin(_PLUGIN_NAME)
    if tracer is not None:
        tracer.stop()
        config.pluginmanager.unregister(tracer, _PLUGIN_NAME)
