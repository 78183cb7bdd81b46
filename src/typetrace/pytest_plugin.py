"""The pytest plugin: ``pytest --typetrace`` records the types seen while tests run.

With pytest-xdist (``-n``), each worker traces the tests it runs and writes to the
store itself. The controller runs no tests and does not trace, so no call is counted
twice. It opens the store once to check it, before the workers start.

A config that cannot be loaded or a store that cannot be opened stops pytest at
configure time with a :class:`pytest.UsageError` (exit code 4) that names the option
or ini key that set it.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Optional

import pytest

from typetrace.config import (
    DB_ENV_VAR,
    DEFAULT_DB_PATH,
    Config,
    call_config,
    DefaultConfig,
    get_default_config,
    load_config,
    override_config,
)
from typetrace.exceptions import ConfigError, StoreError, TypeTraceError

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


def _option_origin(config: pytest.Config, name: str) -> str:
    """Name the command-line option or ini key that set *name*, as the user wrote it."""
    value = config.getoption(name)
    if value is None or value == "":
        return f"the {name} ini key"
    return "--" + name.replace("_", "-")


def _usage_error(error: TypeTraceError, origin: str) -> pytest.UsageError:
    """Build the error that ends pytest with exit code 4 from *error*'s message and the
    sentence *origin*, which names the setting that supplied the failing value."""
    message = str(error).rstrip()
    if not message.endswith("."):
        message += "."
    return pytest.UsageError(f"typetrace: {message} {origin}")


def _load_trace_config(config: pytest.Config) -> Config:
    config_path = _option(config, "typetrace_config")
    try:
        trace_config = load_config(config_path) if config_path else get_default_config()
    except ConfigError as error:
        if config_path:
            origin = f"The config comes from {_option_origin(config, 'typetrace_config')}."
        else:
            origin = "The config is CONFIG of the typetrace_config module on the import path."
        raise _usage_error(error, origin) from error
    db = _option(config, "typetrace_db")
    all_calls = bool(_option(config, "typetrace_all_calls"))
    return override_config(trace_config, db=db or None, all_calls=all_calls)


def _store_origin(config: pytest.Config) -> str:
    """Return a sentence naming the setting that chose the store, in the order that
    :class:`Config` and :class:`DefaultConfig` consult them."""
    if _option(config, "typetrace_db"):
        return f"The store comes from {_option_origin(config, 'typetrace_db')}."
    config_path = _option(config, "typetrace_config")
    if config_path:
        config_origin = _option_origin(config, "typetrace_config")
        return f"The store comes from {config_path}, set by {config_origin}."
    default_config = get_default_config()
    if not isinstance(default_config, DefaultConfig) or default_config.db:
        return "The store comes from CONFIG of the typetrace_config module on the import path."
    if os.environ.get(DB_ENV_VAR):
        return f"The store comes from the {DB_ENV_VAR} environment variable."
    return (
        f"The store is the default, {DEFAULT_DB_PATH} in the working directory; "
        "choose another with --typetrace-db."
    )


def _check_store(config: pytest.Config, trace_config: Config) -> None:
    try:
        store = call_config(trace_config, "trace_store", trace_config.trace_store)
    except StoreError as error:
        raise _usage_error(error, _store_origin(config)) from error
    except TypeTraceError as error:
        raise pytest.UsageError(f"typetrace: {error}") from error
    store.close()


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

    if not _option(config, "typetrace"):
        return
    # Already traced, for example under "typetrace run -m pytest": that session records.
    if active_session() is not None:
        return
    trace_config = _load_trace_config(config)
    if _is_xdist_controller(config):
        _check_store(config, trace_config)
        return
    # NOTE: a store that the controller opened but a worker cannot open ends that
    # worker with this error, and pytest-xdist 3.8 reports it as a crashed worker.
    try:
        tracer = _SessionTracer(trace_config)
    except StoreError as error:
        raise _usage_error(error, _store_origin(config)) from error
    except TypeTraceError as error:
        raise pytest.UsageError(f"typetrace: {error}") from error
    config.pluginmanager.register(tracer, _PLUGIN_NAME)


def pytest_unconfigure(config: pytest.Config) -> None:
    tracer = config.pluginmanager.get_plugin(_PLUGIN_NAME)
    if tracer is not None:
        tracer.stop()
        config.pluginmanager.unregister(tracer, _PLUGIN_NAME)
