"""Configuration: the hooks a user overrides to choose the store, the code and the sampling."""

from __future__ import annotations

import dataclasses
import functools
import importlib
import os
import site
import sys
import sysconfig
from abc import ABC, abstractmethod
from dataclasses import dataclass
from types import CodeType
from typing import TYPE_CHECKING, Callable, Collection, Optional, TypeVar

from typetrace.exceptions import ConfigError, TypeTraceError

if TYPE_CHECKING:
    from typetrace.db.base import CallTraceStore

__all__ = [
    "DB_ENV_VAR",
    "DEFAULT_DB_PATH",
    "CodeFilter",
    "Config",
    "DefaultConfig",
    "Sampling",
    "call_config",
    "default_code_filter",
    "get_default_config",
    "load_config",
    "override_config",
    "prepare_default_code_filter",
]

#: Environment variable that names the trace store of :class:`DefaultConfig`.
DB_ENV_VAR = "TYPETRACE_DB"
#: Store of :class:`DefaultConfig` when neither ``--db`` nor the variable names one.
DEFAULT_DB_PATH = "typetrace.sqlite3"

#: A predicate over code objects: whether calls of that code are traced.
CodeFilter = Callable[[CodeType], bool]


@dataclass(frozen=True)
class Sampling:
    """How many calls of each function the tracer records.

    A function's first :attr:`first_calls` calls are recorded. After that, a call is
    recorded when its argument types were not seen before for that function (with
    :attr:`new_types`), or else with probability :attr:`rate`. A function that has gone
    :attr:`pause_after` calls without new argument types is paused: its calls are not
    looked at, and on Python 3.12 and later they cost nothing. Paused functions resume
    for :attr:`resume_calls` more calls whenever code that has not run before starts,
    and after 1, 2, 4 ... seconds, at most every :attr:`max_resume_interval` seconds.
    """

    #: Record every call; the other fields are then ignored.
    all_calls: bool = False
    #: Calls of each function that are always recorded before sampling starts.
    first_calls: int = 10
    #: Probability of recording a later call whose argument types were seen before,
    #: from 0.0 to 1.0.
    rate: float = 0.01
    #: Record every call whose argument types (the classes of its named parameters)
    #: were not seen before for the function.
    new_types: bool = True
    #: Calls in a row without new argument types after which a function is paused;
    #: ``None`` never pauses.
    pause_after: Optional[int] = 100
    #: Calls a paused function is watched for after it resumes.
    resume_calls: int = 20
    #: Maximum wait in seconds between two timed resumes.
    max_resume_interval: float = 60.0
    #: Functions whose calls are all recorded, as ``module:qualname`` prefixes that end
    #: at a dot or colon: ``"shop"`` selects ``shop.cart:total`` and ``"shop.cart:Cart"``
    #: selects ``shop.cart:Cart.add``.
    always_record: Collection[str] = ()

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ConfigError(f"Sampling rate must be between 0.0 and 1.0, got {self.rate!r}")
        if self.first_calls < 0:
            raise ConfigError(f"Sampling first_calls must be 0 or more, got {self.first_calls!r}")
        if self.pause_after is not None and self.pause_after < 1:
            raise ConfigError(f"Sampling pause_after must be 1 or more, or None, got {self.pause_after!r}")
        if self.resume_calls < 1:
            raise ConfigError(f"Sampling resume_calls must be 1 or more, got {self.resume_calls!r}")
        if not self.max_resume_interval > 0:
            raise ConfigError(
                f"Sampling max_resume_interval must be positive, got {self.max_resume_interval!r}"
            )
        if isinstance(self.always_record, str):
            raise ConfigError(
                f"Sampling always_record must be a collection of names, got the string {self.always_record!r}; "
                "wrap it in a tuple"
            )
        object.__setattr__(self, "always_record", tuple(self.always_record))

    def records_always(self, funcname: str) -> bool:
        """Return whether every call of *funcname* (``module:qualname``) is recorded."""
        for prefix in self.always_record:
            if funcname == prefix:
                return True
            if funcname.startswith(prefix) and (prefix[-1] in ".:" or funcname[len(prefix)] in ".:"):
                return True
        return False


class Config(ABC):
    """The hooks typetrace calls to decide where traces go and which calls are traced.

    Subclass it, override :meth:`trace_store`, and make an instance available as
    ``CONFIG`` in a ``typetrace_config.py`` on the import path, or name it with
    ``--config module:attribute``.
    """

    @abstractmethod
    def trace_store(self) -> CallTraceStore:
        """Return the store that traces are written to and read from."""

    def code_filter(self) -> Optional[CodeFilter]:
        """Return the predicate that selects the code to trace; ``None`` traces all code."""
        return default_code_filter

    def sampling(self) -> Sampling:
        """Return how many calls of each function are recorded."""
        return Sampling()

    def query_limit(self) -> int:
        """Return the maximum number of distinct traces read per module for stubs."""
        return 2000


class DefaultConfig(Config):
    """A SQLite store in the working directory, or the store named by ``TYPETRACE_DB``."""

    def __init__(self, db: Optional[str] = None) -> None:
        self.db = db

    def trace_store(self) -> CallTraceStore:
        from typetrace.db import store_from_url

        return store_from_url(self.db or os.environ.get(DB_ENV_VAR) or DEFAULT_DB_PATH)


class _OverridingConfig(Config):
    """A config that defers to another one except for the store and full recording."""

    def __init__(self, inner: Config, db: Optional[str], all_calls: bool) -> None:
        self._inner = inner
        self._db = db
        self._all_calls = all_calls

    def trace_store(self) -> CallTraceStore:
        if self._db:
            from typetrace.db import store_from_url

            return store_from_url(self._db)
        return self._inner.trace_store()

    def code_filter(self) -> Optional[CodeFilter]:
        return self._inner.code_filter()

    def sampling(self) -> Sampling:
        sampling = self._inner.sampling()
        if self._all_calls:
            return dataclasses.replace(sampling, all_calls=True)
        return sampling

    def query_limit(self) -> int:
        return self._inner.query_limit()


def override_config(config: Config, *, db: Optional[str] = None, all_calls: bool = False) -> Config:
    """Return *config* with its store replaced by *db* (when given) and, with
    *all_calls*, recording every call. Command-line options take effect this way."""
    if not db and not all_calls:
        return config
    return _OverridingConfig(config, db, all_calls)


def get_default_config() -> Config:
    """Return ``CONFIG`` from a ``typetrace_config`` module if one is importable, else a
    :class:`DefaultConfig`."""
    try:
        return load_config("typetrace_config:CONFIG")
    except ConfigError as error:
        if isinstance(error.__cause__, ModuleNotFoundError) and error.__cause__.name == "typetrace_config":
            return DefaultConfig()
        raise


def load_config(path: str) -> Config:
    """Import the :class:`Config` named by *path*, given as ``module:attribute``.

    A class is instantiated without arguments.

    Raises:
        ConfigError: the module cannot be imported, the attribute is missing, or it is
            not a :class:`Config`.
    """
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"Invalid config {path!r}: expected module:attribute, for example my_config:CONFIG")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        raise ConfigError(
            f"Config module {module_name!r} not found ({error}); "
            "check the module name and the import path"
        ) from error
    except Exception as error:
        raise ConfigError(f"Failed to import config module {module_name!r}: {error!r}") from error
    try:
        config = getattr(module, attribute)
    except AttributeError as error:
        raise ConfigError(f"Config module {module_name!r} has no attribute {attribute!r}") from error
    if isinstance(config, type) and issubclass(config, Config):
        config = config()
    if not isinstance(config, Config):
        raise ConfigError(
            f"{path} is {config!r}, not a typetrace.config.Config; "
            "subclass Config and override trace_store()"
        )
    return config



_T = TypeVar("_T")


def call_config(config: Config, name: str, method: Callable[[], _T]) -> _T:
    """Call *method*, the method *name* of *config*, and return its result.

    Raises:
        ConfigError: in place of an exception other than typetrace's own that the
            method raised, naming the method, so that a config with a bug gets an
            error message rather than a traceback.
    """
    try:
        return method()
    except TypeTraceError:
        raise
    except Exception as error:
        raise ConfigError(
            f"{type(config).__name__}.{name}() raised {type(error).__name__}: {error}; "
            f"fix the {name}() method of the config"
        ) from error

@functools.lru_cache(maxsize=None)
def _excluded_roots() -> tuple[str, ...]:
    """Folders whose code the default filter skips: the standard library, installed
    packages and typetrace itself."""
    roots = set()
    for name in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(name)
        if path:
            roots.add(path)
    for path in [*getattr(site, "getsitepackages", lambda: [])(), site.getusersitepackages()]:
        roots.add(path)
    for prefix in {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}:
        roots.add(sysconfig.get_path("stdlib", vars={"installed_base": prefix, "base": prefix}))
    roots.add(os.path.dirname(__file__))
    resolved = {os.path.realpath(root) for root in roots if root}
    return tuple(sorted(root.rstrip(os.sep) + os.sep for root in resolved))


@functools.lru_cache(maxsize=4096)
def _is_user_file(filename: str) -> bool:
    if not filename or filename.startswith("<"):
        return False
    path = os.path.realpath(filename) if os.path.isabs(filename) else os.path.abspath(filename)
    if "site-packages" in path.split(os.sep) or "dist-packages" in path.split(os.sep):
        return False
    return not path.startswith(_excluded_roots())


def default_code_filter(code: CodeType) -> bool:
    """Select the user's code: skip the standard library, installed packages, typetrace
    itself, and code without a source file (``<string>``, frozen modules)."""
    return _is_user_file(code.co_filename)


def prepare_default_code_filter() -> None:
    """Compute the folders that :func:`default_code_filter` skips, once per process.

    A trace session calls it before the program runs. ``sysconfig.get_paths()``
    imports ``_sysconfigdata_*`` on its first call, and while the program runs that
    import would go through any ``builtins.__import__`` hook the program installed.
    """
    _excluded_roots()
