"""Run a script or module under the tracer, as ``python script.py`` or ``python -m`` would."""

from __future__ import annotations

import builtins
import importlib.machinery
import importlib.util
import io
import os
import runpy
import sys
import zipimport
from types import ModuleType, TracebackType
from typing import Any, Callable, Mapping, NoReturn, Optional, Sequence

from typetrace.config import Config
from typetrace.exceptions import TypeTraceError

__all__ = ["run_module", "run_script"]

_MISSING = object()

# The globals that runpy adds to the program's own. The interpreter's __main__ has the
# builtins module as __builtins__, where exec() would insert its dict.
_MAIN_GLOBALS = {"__builtins__": builtins}


def run_script(script: str, args: Sequence[str], config: Config) -> int:
    """Run *script* as ``__main__`` under the tracer and return its exit code.

    An uncaught KeyboardInterrupt of the program is raised on once the traces are
    written and its traceback is printed, so that the interpreter ends by SIGINT.

    Its functions are recorded under the module name the file has on the import path,
    or its file stem, so that ``typetrace stub SCRIPT`` finds them. A script that it
    runs as a new ``__main__``, as with ``runpy.run_path(path, run_name="__main__")``,
    is recorded under that script's own module name.
    """
    from typetrace._source import module_name_for_path

    if not (os.path.isfile(script) or os.path.isfile(os.path.join(script, "__main__.py"))):
        # Exit code 2, as python gives for a script it cannot open.
        print(
            f"typetrace: error: Script {script!r} not found; pass the path of a Python file, "
            "of a folder or zip archive with a __main__.py, or -m MODULE",
            file=sys.stderr,
        )
        return 2
    # Named before the script's folder goes on the import path, as typetrace stub
    # names the file.
    module = module_name_for_path(script)
    sys.argv = [script, *args]
    archive = _is_archive(script)
    if not archive:
        # runpy puts a folder or zip archive itself first on the import path.
        sys.path.insert(0, os.path.dirname(os.path.realpath(script)))
    # An absolute path, so that __file__ and tracebacks read as under python 3.9+,
    # which joins it to the working directory without normalizing it.
    absolute = script if os.path.isabs(script) else os.path.join(os.getcwd(), script)
    # The __file__ of the script, or of the __main__.py that runpy runs from a zip
    # archive. Other main scripts are named from their own globals.
    main_scripts = {absolute: module, os.path.join(absolute, "__main__.py"): module}
    if not archive and not _is_compiled(absolute):
        return _run(lambda: _run_source_as_main(absolute), config, main_scripts)
    return _run(
        lambda: runpy.run_path(absolute, _MAIN_GLOBALS, run_name="__main__"), config, main_scripts
    )


def _is_archive(path: str) -> bool:
    """Return whether *path* is a folder or a zip archive, whose ``__main__.py`` runpy
    runs."""
    if os.path.isdir(path):
        return True
    # The import system has loaded zipimport already. zipfile would import more
    # modules before the program runs.
    try:
        zipimport.zipimporter(path)
    except zipimport.ZipImportError:
        return False
    return True


def _is_compiled(path: str) -> bool:
    """Return whether the file *path* contains compiled code, which runpy runs."""
    with io.open_code(path) as file:
        start = file.read(len(importlib.util.MAGIC_NUMBER))
    return start == importlib.util.MAGIC_NUMBER


def _run_source_as_main(path: str) -> None:
    """Run the source file at the absolute *path* in a new ``__main__`` module with the
    globals that python gives a script.

    runpy would give the module no ``__annotations__`` and no ``__loader__``, and set
    ``sys.argv[0]`` to *path*. The module stays in ``sys.modules``, so that its
    globals live until the interpreter's shutdown, as under python.
    """
    with io.open_code(path) as file:
        source = file.read()
    # Without this module's __future__ imports.
    code = compile(source, path, "exec", dont_inherit=True)
    main = ModuleType("__main__")
    main.__dict__.update(
        __loader__=importlib.machinery.SourceFileLoader("__main__", path),
        __annotations__={},
        __builtins__=builtins,
        __file__=path,
        __cached__=None,
    )
    sys.modules["__main__"] = main
    exec(code, main.__dict__)  # noqa: S102 - the program that the user asked to run


def run_module(module: str, args: Sequence[str], config: Config) -> int:
    """Run *module* as ``python -m`` does, under the tracer, and return its exit code.

    Its functions are recorded under *module*, and those of a script that it runs as
    a new ``__main__`` (as ``-m pdb``, ``-m cProfile`` and ``-m coverage run`` do)
    under that script's module name. Raises the program's uncaught KeyboardInterrupt
    on, as :func:`run_script` does.
    """
    import importlib.util

    sys.path.insert(0, os.getcwd())
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError) as error:
        raise TypeTraceError(f"Module {module!r} cannot be run: {error}") from error
    if spec is None:
        raise TypeTraceError(
            f"Module {module!r} not found; check the name and that its folder is on the "
            "import path (run from the project root or set PYTHONPATH)"
        )
    sys.argv = [spec.origin or module, *args]
    # The recorder names each main script from its __spec__ or __file__, which runpy
    # sets to *module* here.
    return _run(
        lambda: runpy.run_module(module, _MAIN_GLOBALS, run_name="__main__", alter_sys=True),
        config,
        {},
    )


def _run(target: Callable[[], object], config: Config, main_scripts: Mapping[str, str]) -> int:
    """Run *target* under a new trace session. *main_scripts* maps the ``__file__`` of
    a main script to the module name to record for it, and every other main script
    is named from its own globals."""
    from typetrace.tracing import _start_session, active_session

    # A session started at start-up, because this process is a child of a traced
    # program, gives way to the one this command asks for.
    started_at_startup = active_session()
    if started_at_startup is not None:
        started_at_startup.stop()
    exit_code = 0
    uncaught: Optional[BaseException] = None
    session = _start_session(config, None, None, True, main_scripts=main_scripts)
    try:
        try:
            target()
        except SystemExit as exit_:
            exit_code = _exit_code(exit_)
        except BaseException as error:  # the program's own error: report it as python would
            uncaught = error
        # Reported outside the except clause, so that the hook, as at the
        # interpreter's exit, runs while no exception is being handled.
        if uncaught is not None:
            exit_code = _report_program_error(uncaught)
    finally:
        session.stop()
    # The interpreter flushes stdout at exit too, unless the program closed it, and
    # reports a failure of its own flush there.
    stdout = sys.stdout
    if stdout is not None and not getattr(stdout, "closed", False):
        try:
            stdout.flush()
        except Exception:  # noqa: BLE001, S110 - the interpreter's flush at exit reports it
            pass
    if isinstance(uncaught, KeyboardInterrupt):
        _raise_printed_interrupt(uncaught)
    return exit_code


def _raise_printed_interrupt(interrupt: KeyboardInterrupt) -> NoReturn:
    """Raise *interrupt*, whose traceback is printed, on to the interpreter.

    Python 3.8+ ends a process whose main module or ``-m`` module raised an uncaught
    KeyboardInterrupt by SIGINT, after the atexit handlers ran. It restores
    ``SIG_DFL`` and sends itself SIGINT, so the parent gets the signal as the exit
    status, as from an untraced program. ``sys.excepthook`` skips *interrupt*, whose traceback
    without typetrace's frames is printed already.
    """
    program_hook = getattr(sys, "excepthook", None)

    def skip_printed(
        exc_type: type[BaseException], value: BaseException, exc_traceback: Optional[TracebackType]
    ) -> None:
        if value is not interrupt and program_hook is not None:
            program_hook(exc_type, value, exc_traceback)

    sys.excepthook = skip_printed
    raise interrupt


def _report_program_error(error: BaseException) -> int:
    """Pass *error*, which the program left uncaught, to ``sys.excepthook`` without the
    frames of typetrace and runpy, and keep it in ``sys.last_value``, as the
    interpreter does at exit. Return the exit code: 1, or that of a ``SystemExit``
    that the hook raised.

    As there, a hook that raises something else is reported with
    ``sys.__excepthook__``, followed by *error*.
    """
    tb = error.__traceback__
    while tb is not None and _is_runner_frame(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    # The default hook prints the exception's own traceback.
    error.__traceback__ = tb
    sys.last_type, sys.last_value, sys.last_traceback = type(error), error, tb
    if sys.version_info >= (3, 12):
        sys.last_exc = error
    hook: Any = getattr(sys, "excepthook", _MISSING)
    if hook is _MISSING:
        print("sys.excepthook is missing", file=sys.stderr)
        sys.__excepthook__(type(error), error, tb)
        return 1
    try:
        hook(type(error), error, tb)
    except SystemExit as exit_:
        return _exit_code(exit_)
    except BaseException as hook_error:  # noqa: BLE001 - reported as the interpreter reports it
        # Without this function's frame.
        hook_tb = hook_error.__traceback__
        hook_error.__traceback__ = hook_tb.tb_next if hook_tb is not None else None
        print("Error in sys.excepthook:", file=sys.stderr)
        sys.__excepthook__(type(hook_error), hook_error, hook_error.__traceback__)
        print("\nOriginal exception was:", file=sys.stderr)
        sys.__excepthook__(type(error), error, tb)
    return 1


def _is_runner_frame(filename: str) -> bool:
    return filename == __file__ or filename == runpy.__file__ or filename.endswith("runpy>")


def _exit_code(exit_: SystemExit) -> int:
    """Map ``SystemExit.code`` to a process exit code as the interpreter does."""
    code = exit_.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1
