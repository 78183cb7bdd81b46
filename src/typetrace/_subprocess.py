"""Tracing of child processes, and the environment switch that starts tracing.

A traced program's children are traced the way coverage.py reaches them: the parent
exports :data:`SUBPROCESS_ENV_VAR`, which holds the settings as JSON, and prepends the
folder of typetrace's startup hook to ``PYTHONPATH``. Every Python process that
inherits that environment imports the hook's ``sitecustomize`` module at start-up,
which calls :func:`start_from_environment` and then runs the ``sitecustomize`` module
it hides, if any.

A folder on ``PYTHONPATH`` was chosen over a ``.pth`` file because it needs no
write access to site-packages, leaves nothing behind after the run and reaches only
the processes that inherit the variables. Children started with ``python -E``,
``-I`` or ``-S``, with an environment of their own, or by a Python that cannot
import typetrace, are not traced.

Forked children need none of this: they inherit the parent's session (see
:class:`typetrace.tracing.TraceSession`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from dataclasses import asdict, dataclass
from typing import Iterator, Optional

from typetrace.config import (
    DB_ENV_VAR,
    DEFAULT_DB_PATH,
    Config,
    DefaultConfig,
    _OverridingConfig,
    load_config,
    override_config,
)

__all__ = [
    "AUTO_ENV_VAR",
    "STARTUP_DIR",
    "SUBPROCESS_ENV_VAR",
    "ChildSettings",
    "export_child_settings",
    "start_from_environment",
]

logger = logging.getLogger(__name__)

#: Environment variable with the JSON settings of a traced parent, read at start-up.
SUBPROCESS_ENV_VAR = "TYPETRACE_SUBPROCESS"
#: Environment variable that turns tracing on at start-up (``1``, ``true`` or ``yes``)
#: with the default config, in a process that imports :mod:`typetrace.auto` or has
#: :data:`STARTUP_DIR` on ``PYTHONPATH``.
AUTO_ENV_VAR = "TYPETRACE"
#: Folder with the ``sitecustomize`` module that starts tracing in child processes.
STARTUP_DIR = os.path.join(os.path.dirname(os.path.realpath(__file__)), "_startup")

_TRUE_WORDS = frozenset({"1", "true", "yes", "on"})


@dataclass(frozen=True)
class ChildSettings:
    """The settings a child process needs to trace like its parent, kept as JSON."""

    #: The Config as ``module:attribute``; ``None`` for :class:`DefaultConfig`.
    config: Optional[str] = None
    #: Folder to put on the import path while the config module is imported.
    config_dir: Optional[str] = None
    #: The store, as for ``--db``; a SQLite path is absolute.
    db: Optional[str] = None
    #: Whether every call is recorded.
    all_calls: bool = False

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ChildSettings:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, got {text!r}")
        return cls(
            config=_optional_str(data, "config"),
            config_dir=_optional_str(data, "config_dir"),
            db=_optional_str(data, "db"),
            all_calls=bool(data.get("all_calls", False)),
        )

    def load_config(self) -> Config:
        """Build the config these settings describe."""
        if self.config is None:
            config: Config = DefaultConfig()
        else:
            added = self.config_dir is not None and self.config_dir not in sys.path
            if added:
                sys.path.append(str(self.config_dir))
            try:
                config = load_config(self.config)
            finally:
                if added:
                    sys.path.remove(str(self.config_dir))
        return override_config(config, db=self.db, all_calls=self.all_calls)


def _optional_str(data: dict[str, object], key: str) -> Optional[str]:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{key} must be a string or null, got {value!r}")
    return value


def settings_for(config: Config) -> Optional[ChildSettings]:
    """Describe *config* so that a child can load it, or return ``None`` when a child
    cannot: a config object that no module attribute names, or one defined in
    ``__main__``."""
    db: Optional[str] = None
    all_calls = False
    if isinstance(config, _OverridingConfig):
        db = config._db
        all_calls = config._all_calls
        config = config._inner
    if isinstance(config, DefaultConfig):
        # Resolved here, so that a child in another working directory uses the same store.
        db = db or config.db or os.environ.get(DB_ENV_VAR) or DEFAULT_DB_PATH
        return ChildSettings(db=_absolute_store(db), all_calls=all_calls)
    located = _locate_config(config)
    if located is None:
        return None
    path, config_dir = located
    return ChildSettings(config=path, config_dir=config_dir, db=_absolute_store(db), all_calls=all_calls)


def _locate_config(config: Config) -> Optional[tuple[str, Optional[str]]]:
    module_name = type(config).__module__
    module = sys.modules.get(module_name)
    if module is None or module_name in ("__main__", "__mp_main__"):
        return None
    path = None
    for attribute, value in vars(module).items():
        if value is config:
            path = f"{module_name}:{attribute}"
            break
    else:
        cls = type(config)
        if getattr(module, cls.__qualname__, None) is cls:
            # The child makes a new instance of the class.
            path = f"{module_name}:{cls.__qualname__}"
    if path is None:
        return None
    filename = getattr(module, "__file__", None)
    if not isinstance(filename, str):
        return path, None
    # The folder that contains the top-level package of the module. It is one level
    # up from the file for each part of the module name, from the package folder for
    # an __init__.py.
    folder = os.path.realpath(filename)
    if os.path.basename(folder) == "__init__.py":
        folder = os.path.dirname(folder)
    for _ in module_name.split("."):
        folder = os.path.dirname(folder)
    return path, folder


def _absolute_store(db: Optional[str]) -> Optional[str]:
    if db is None or db == ":memory:" or "://" in db or db.startswith("file:"):
        return db
    return os.path.abspath(db)


@contextlib.contextmanager
def export_child_settings(config: Config) -> Iterator[None]:
    """Set the environment that makes child processes trace with *config*, and
    restore it afterwards."""
    settings = settings_for(config)
    if settings is None:
        logger.warning(
            "Child processes are not traced: the config %r cannot be loaded by name in a child; "
            "make it a module attribute outside __main__ and pass it with --config",
            config,
        )
        yield
        return
    python_path = os.environ.get("PYTHONPATH")
    entries = [STARTUP_DIR, *(python_path.split(os.pathsep) if python_path else [])]
    exported = {SUBPROCESS_ENV_VAR: settings.to_json(), "PYTHONPATH": os.pathsep.join(entries)}
    previous = {name: os.environ.get(name) for name in exported}
    os.environ.update(exported)
    try:
        yield
    finally:
        for name, value in previous.items():
            # A value the program changed since is left as it is.
            if os.environ.get(name) != exported[name]:
                continue
            if value is None:
                del os.environ[name]
            else:
                os.environ[name] = value


def start_from_environment() -> None:
    """Start tracing if the environment asks for it: with the parent's settings in a
    child process, or with the default config when ``TYPETRACE=1``.

    Does nothing when a session is already active. Logs an error, and leaves the
    program untraced, when the settings cannot be loaded.
    """
    from typetrace.tracing import _start_session, active_session

    if active_session() is not None:
        return
    raw = os.environ.get(SUBPROCESS_ENV_VAR)
    try:
        if raw:
            config = ChildSettings.from_json(raw).load_config()
            # The environment that reached this process reaches its children too.
            _start_session(config, None, None, follow_children=False)
        elif os.environ.get(AUTO_ENV_VAR, "").strip().lower() in _TRUE_WORDS:
            _start_session(None, None, None, follow_children=False)
    except Exception:
        logger.exception(
            "Failed to start tracing from the environment (%s=%r); the program runs untraced",
            SUBPROCESS_ENV_VAR if raw else AUTO_ENV_VAR,
            raw or os.environ.get(AUTO_ENV_VAR),
        )
