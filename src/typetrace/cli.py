"""The ``typetrace`` command line: run, list-modules, stub and apply.

Modules that only some commands need are imported in those commands' functions, so
that ``typetrace run`` imports less before the program starts.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Optional, Sequence, TextIO

from typetrace import __version__
from typetrace.config import Config, call_config, get_default_config, load_config, override_config
from typetrace.db.base import CallTraceStore
from typetrace.exceptions import ConfigError, TypeTraceError
from typetrace.tracing import CallTrace

if TYPE_CHECKING:
    from pathlib import Path

    from typetrace.stubs import ModuleStub
    from typetrace.stubs.build import ModuleLoader, ModuleSource

__all__ = ["entry_point", "main"]

logger = logging.getLogger(__name__)


class CommandError(TypeTraceError):
    """A command failed on its input; the message names the cause and the fix."""


@dataclass
class Context:
    """The parsed options and output streams passed to every command handler."""

    args: argparse.Namespace
    stdout: TextIO
    stderr: TextIO
    _config: Optional[Config] = field(default=None, repr=False)
    _store: Optional[CallTraceStore] = field(default=None, repr=False)
    #: Sources and traces of the modules that calls in stubbed modules reach, by name.
    module_sources: dict[str, Optional[ModuleSource]] = field(default_factory=dict, repr=False)

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = _resolve_config(self.args)
        return self._config

    @property
    def store(self) -> CallTraceStore:
        if self._store is None:
            if self.args.db:
                from typetrace.db import store_from_url

                self._store = store_from_url(self.args.db)
            else:
                self._store = call_config(self.config, "trace_store", self.config.trace_store)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


def _resolve_config(args: argparse.Namespace) -> Config:
    # A console script's sys.path starts with its own folder, not the working
    # directory, so typetrace_config.py there would otherwise not be found.
    added = os.getcwd() not in sys.path
    if added:
        sys.path.insert(0, os.getcwd())
    try:
        if args.config:
            return load_config(args.config)
        return get_default_config()
    finally:
        if added and args.command == "run":
            sys.path.remove(os.getcwd())


# --- run ---------------------------------------------------------------------------


def run_command(ctx: Context) -> int:
    """Run a script or module under the tracer, exiting as the program exits."""
    from typetrace import _runner

    args = ctx.args
    if args.module is None and args.script is None:
        raise CommandError("Nothing to run: pass a script path or -m MODULE")
    config = override_config(ctx.config, db=args.db, all_calls=args.all_calls)
    if args.module is not None:
        return _runner.run_module(args.module, args.program_args, config)
    return _runner.run_script(args.script, args.program_args, config)


# --- list-modules ------------------------------------------------------------------


def list_modules_command(ctx: Context) -> int:
    """Print the modules that have traces, one per line."""
    modules = ctx.store.list_modules()
    if not modules:
        ctx.stderr.write(f"No traces in {_describe_store(ctx)}; record some with 'typetrace run'.\n")
        return 1
    for module in modules:
        ctx.stdout.write(module + "\n")
    return 0


# --- stub and apply ----------------------------------------------------------------


@dataclass(frozen=True)
class ModuleTarget:
    """A traced module and the source file that defines it."""

    module: str
    path: Path


def _resolve_targets(ctx: Context, name: str, *, allow_package: bool) -> list[ModuleTarget]:
    """Turn a module name, package name or file path into traced modules and their files."""
    from pathlib import Path

    from typetrace import _source

    modules = ctx.store.list_modules()
    if _source.is_source_path(name):
        path = Path(name)
        if not path.is_file():
            raise CommandError(f"File {name!r} not found")
        candidates = [_source.module_name_for_path(path), path.stem]
        for module in candidates:
            if module in modules:
                return [ModuleTarget(module, path)]
        raise CommandError(
            f"No traces for {name} (looked for module {' or '.join(sorted(set(candidates)))}) in "
            f"{_describe_store(ctx)}; trace it first with 'typetrace run {name}'"
        )
    if name in modules:
        return [ModuleTarget(name, _source.find_module_source(name))]
    submodules = sorted(m for m in modules if m.startswith(name + "."))
    if submodules and allow_package:
        return [ModuleTarget(m, _source.find_module_source(m)) for m in submodules]
    if submodules:
        raise CommandError(
            f"No traces for module {name!r} itself, but for {len(submodules)} of its submodules "
            f"({', '.join(submodules[:5])}{', ...' if len(submodules) > 5 else ''}); "
            "name one of them, or pass --output-dir to write a stub for each"
        )
    hint = "; see 'typetrace list-modules' for the traced ones" if modules else ""
    raise CommandError(f"No traces for module {name!r} in {_describe_store(ctx)}{hint}")


def _load_traces(ctx: Context, module: str) -> list[CallTrace]:
    """Decode the stored traces of *module*, skipping and reporting undecodable rows."""
    limit = ctx.args.limit or ctx.config.query_limit()
    traces: list[CallTrace] = []
    failures: list[str] = []
    for thunk in ctx.store.filter(module, limit=limit):
        try:
            traces.append(thunk.to_trace())
        except Exception as error:
            failures.append(f"{error}")
    if failures:
        ctx.stderr.write(f"Skipped {len(failures)} undecodable trace(s) of {module}")
        if ctx.args.verbose:
            ctx.stderr.write(":\n" + "".join(f"  {failure}\n" for failure in failures))
        else:
            ctx.stderr.write(" (--verbose lists them)\n")
    return traces


def _build(ctx: Context, target: ModuleTarget) -> ModuleStub:
    from typetrace.stubs import StubBuildError, build_stub

    traces = _load_traces(ctx, target.module)
    if not traces:
        raise CommandError(f"No decodable traces for module {target.module!r}")
    try:
        source = target.path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise CommandError(f"Cannot read source of {target.module} at {target.path}: {error}") from error
    if ctx.args.max_union_size < 1:
        raise CommandError(f"Invalid --max-union-size {ctx.args.max_union_size}: it must be at least 1")
    try:
        return build_stub(
            target.module,
            traces,
            source,
            overwrite_existing=ctx.args.overwrite_existing,
            max_union_size=ctx.args.max_union_size,
            is_package=target.path.name == "__init__.py",
            modules=_module_loader(ctx, target.module),
        )
    except StubBuildError as error:
        raise CommandError(f"Cannot read {target.path}: {error.__cause__ or error}") from error


def _module_loader(ctx: Context, module: str) -> ModuleLoader:
    """Return a loader of the modules that calls in *module* may reach.

    It reads the modules that have traces and the modules of *module*'s top-level
    package, which may re-export names, and caches them in *ctx*.
    """
    from typetrace import _source
    from typetrace.stubs.build import ModuleSource

    traced = set(ctx.store.list_modules())
    package = module.split(".")[0]

    def load(name: str) -> Optional[ModuleSource]:
        if name in ctx.module_sources:
            return ctx.module_sources[name]
        loaded = None
        if name in traced or name.split(".")[0] == package:
            try:
                path = _source.find_module_source(name)
                source = path.read_text(encoding="utf-8")
            except (_source.ModuleSourceNotFoundError, OSError, UnicodeDecodeError):
                pass
            else:
                traces = _load_traces(ctx, name) if name in traced else []
                loaded = ModuleSource(source, traces, is_package=path.name == "__init__.py")
        ctx.module_sources[name] = loaded
        return loaded

    return load


def stub_command(ctx: Context) -> int:
    """Print a stub, or write one ``.pyi`` per module under ``--output-dir``."""
    import tempfile
    from pathlib import Path

    from typetrace.stubs.annotations import parse_target_version

    output_dir = None if ctx.args.output_dir is None else Path(ctx.args.output_dir)
    target_version = None
    if ctx.args.target_version is not None:
        try:
            target_version = parse_target_version(ctx.args.target_version)
        except ValueError as error:
            raise CommandError(f"{error} (option --target-version)") from error
    targets = _resolve_targets(ctx, ctx.args.module, allow_package=output_dir is not None)
    # One mypy cache for every module, so that each baseline check reuses the last.
    with tempfile.TemporaryDirectory(prefix="typetrace-verify-") as cache:
        for target in targets:
            stub = _build(ctx, target)
            if ctx.args.verify:
                from typetrace.verify import verify_stub

                verified = verify_stub(stub, target.path, cache_dir=Path(cache))
                ctx.stderr.write(verified.report(verbose=ctx.args.verbose))
                stub = verified.stub
            text = stub.render(target_version=target_version, show_counts=ctx.args.show_counts)
            if output_dir is None:
                ctx.stdout.write(text)
                continue
            relative = Path(*target.module.split("."))
            if target.path.name == "__init__.py":
                relative = relative / "__init__.pyi"
            else:
                relative = relative.with_suffix(".pyi")
            destination = output_dir / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_text(text, encoding="utf-8")
            ctx.stderr.write(f"Wrote {destination} ({_plural(stub.function_count, 'function')})\n")
    if output_dir is not None:
        _write_package_stubs(output_dir, targets)
    return 0


def _write_package_stubs(output_dir: Path, targets: Sequence[ModuleTarget]) -> None:
    """Give every package folder under *output_dir* an ``__init__.pyi``.

    Without one, type checkers take a folder of stubs for a namespace package, and
    the stubs stop describing the real package. A package with no traces of its own
    gets a stub that only marks it incomplete.
    """
    from typetrace.stubs import build_stub

    for target in targets:
        parts = target.module.split(".")
        for depth in range(1, len(parts)):
            init = output_dir.joinpath(*parts[:depth], "__init__.pyi")
            if not init.exists():
                init.write_text(build_stub(".".join(parts[:depth]), [], "").render(), encoding="utf-8")


def apply_command(ctx: Context) -> int:
    """Write annotations into the source of a module, or show them with ``--diff``."""
    import tempfile
    from pathlib import Path

    from typetrace.apply import apply_stub_to_file
    from typetrace.stubs.annotations import parse_target_version

    running = f"{sys.version_info[0]}.{sys.version_info[1]}"
    try:
        target_version = parse_target_version(ctx.args.target_version or running)
    except ValueError as error:
        raise CommandError(f"{error} (option --target-version)") from error
    targets = _resolve_targets(ctx, ctx.args.module, allow_package=True)
    with tempfile.TemporaryDirectory(prefix="typetrace-verify-") as cache:
        for target in targets:
            stub = _build(ctx, target)
            if ctx.args.verify:
                from typetrace.verify import verify_stub

                verified = verify_stub(stub, target.path, target_version=target_version, cache_dir=Path(cache))
                ctx.stderr.write(verified.report(verbose=ctx.args.verbose))
                stub = verified.stub
            result = apply_stub_to_file(target.path, stub, write=not ctx.args.diff, target_version=target_version)
            if ctx.args.diff:
                ctx.stdout.write(result.diff())
            elif result.changed:
                ctx.stderr.write(f"Annotated {target.path} ({_plural(stub.function_count, 'function')})\n")
            else:
                ctx.stderr.write(f"{target.path} already has these annotations\n")
    return 0


# --- parser ------------------------------------------------------------------------


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _describe_store(ctx: Context) -> str:
    """Name the store for messages; stores show their path or masked URL with ``str()``."""
    text = str(ctx.store)
    return type(ctx.store).__name__ if text.startswith("<") else text


def _common_options(default: object) -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        metavar="MODULE:ATTRIBUTE",
        default=default,
        help="the Config to use (default: CONFIG in a typetrace_config module, if importable)",
    )
    common.add_argument(
        "--db",
        metavar="STORE",
        default=default,
        help="the trace store: a SQLite path, or a postgresql:// or mysql:// URL "
        "(default: the config's store; the default config reads $TYPETRACE_DB, else ./typetrace.sqlite3)",
    )
    common.add_argument(
        "-v", "--verbose", action="store_true", default=False if default is None else default, help="print more detail"
    )
    return common


def build_parser(run_only: bool = False) -> argparse.ArgumentParser:
    """Build the argument parser with its subcommands, or with ``run`` alone.

    A command line that selects ``run`` needs no other subcommand. Leaving them out
    halves the time that ``typetrace run`` spends on its parser, because argparse
    looks up the translations of its messages again for each subcommand, and the
    store commands' module is not imported.
    """
    common = _common_options(default=None)
    # Subcommands accept the same options; SUPPRESS keeps a value given before the
    # subcommand from being reset by the subcommand's default.
    sub_common = _common_options(default=argparse.SUPPRESS)

    parser = argparse.ArgumentParser(
        prog="typetrace",
        description="Record the types that flow through a Python program and turn them into annotations.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"typetrace {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = commands.add_parser(
        "run", parents=[sub_common], help="run a script or module and record the types of its calls"
    )
    run.add_argument("-m", dest="module", metavar="MODULE", help="run a module, as python -m does")
    run.add_argument("--all-calls", action="store_true", help="record every call instead of a sample")
    run.add_argument("script", nargs="?", help="the script to run")
    run.add_argument("program_args", nargs="*", metavar="ARGS", help="arguments for the program")
    run.set_defaults(handler=run_command)
    if run_only:
        return parser

    listing = commands.add_parser("list-modules", parents=[sub_common], help="list the modules that have traces")
    listing.set_defaults(handler=list_modules_command)

    for name, handler, summary in (
        ("stub", stub_command, "print a .pyi stub built from the traces of a module"),
        ("apply", apply_command, "write annotations from the traces into a module's source"),
    ):
        sub = commands.add_parser(name, parents=[sub_common], help=summary)
        sub.add_argument("module", metavar="MODULE|PATH", help="a module or package name, or a .py file")
        sub.add_argument(
            "--overwrite-existing",
            action="store_true",
            help="replace annotations already in the source (default: keep them)",
        )
        sub.add_argument("--limit", type=int, help="maximum number of distinct traces read per module")
        sub.add_argument(
            "--target-version",
            metavar="X.Y",
            help="oldest Python the annotations must work on: below 3.10 unions are written with "
            "Optional and Union, below 3.9 generics with List, Dict and the other typing aliases "
            "(default for apply: the Python running typetrace; for stub: X | Y and list[X], which "
            "type checkers accept in .pyi files for every Python)",
        )
        sub.add_argument(
            "--max-union-size",
            type=int,
            default=5,
            metavar="N",
            help="maximum number of members, None not counted, of a union before it is widened to a "
            "collections.abc class or Any (default: 5)",
        )
        sub.add_argument(
            "--verify",
            action="store_true",
            help="type-check the module with mypy (and pyright, if on PATH) without and with the "
            "annotations, and leave out each annotation that adds an error; the source file is "
            "written only at the end",
        )
        sub.set_defaults(handler=handler)
        if name == "stub":
            sub.add_argument(
                "--output-dir",
                help="write one .pyi per traced module under this folder, laid out like the package",
            )
            sub.add_argument(
                "--show-counts",
                action="store_true",
                help="write a comment above each function with the number of traced calls its "
                "annotations come from, such as '# 1,234 calls traced'",
            )
        else:
            sub.add_argument("--diff", action="store_true", help="print the change as a diff instead of writing it")

    from typetrace import _store_commands

    _store_commands.add_commands(commands, sub_common)
    return parser


_RUN_OPTIONS_WITH_VALUE = frozenset({"--config", "--db"})


def _command_position(argv: Sequence[str]) -> Optional[int]:
    """Return the index of the command in *argv*, after the global options.

    ``None`` when an item before the command is not a global option, such as
    ``--help``, or when there is no command.
    """
    position = 0
    while position < len(argv):
        item = argv[position]
        if item in _RUN_OPTIONS_WITH_VALUE:
            position += 2
        elif item in ("-v", "--verbose") or item.startswith(("--config=", "--db=")):
            position += 1
        elif item.startswith("-"):
            return None
        else:
            return position
    return None


def _selects_run(argv: Sequence[str]) -> bool:
    """Return whether *argv* selects ``run``, with only global options before it.

    Any other option before the command, such as ``--help``, needs the whole parser.
    """
    position = _command_position(argv)
    return position is not None and argv[position] == "run"


def _split_run_arguments(argv: list[str]) -> tuple[list[str], list[str]]:
    """Split ``typetrace ... run [options] (SCRIPT | -m MODULE) ARGS`` before ``ARGS``.

    Everything after the script or module belongs to the program, even when it looks
    like an option of typetrace, as with ``python script.py -v``. The command is
    found after the global options, so ``typetrace --db run run x.py`` runs ``x.py``
    with the store file ``run``.
    """
    command = _command_position(argv)
    if command is None or argv[command] != "run":
        return argv, []
    position = command + 1
    while position < len(argv):
        item = argv[position]
        if item == "-m":
            return argv[: position + 2], argv[position + 2 :]
        if item in _RUN_OPTIONS_WITH_VALUE:
            position += 2
        elif item.startswith("-") and item != "-":
            position += 1
        else:
            return argv[: position + 1], argv[position + 1 :]
    return argv, []


def main(argv: Optional[Sequence[str]] = None, stdout: TextIO = sys.stdout, stderr: TextIO = sys.stderr) -> int:
    """Run the command line with *argv* and return the exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(run_only=_selects_run(arguments))
    typetrace_arguments, program_arguments = _split_run_arguments(arguments)
    args = parser.parse_args(typetrace_arguments)
    if args.command == "run":
        args.program_args = program_arguments
    restore_logging = _log_to(stderr, logging.INFO if args.verbose else logging.WARNING)
    ctx = Context(args, stdout, stderr)
    handler: Callable[[Context], int] = args.handler
    try:
        return handler(ctx)
    except TypeTraceError as error:
        stderr.write(f"typetrace: error: {error}\n")
        return 1
    except BrokenPipeError:
        # The reader of stdout went away, as in "typetrace export | head". Python
        # would report the failed flush at exit too, so stdout goes to devnull.
        if stdout is sys.stdout:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return 1
    finally:
        ctx.close()
        restore_logging()


class _QuietStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A handler that drops a message it cannot write, as when the traced program
    closed stderr, where logging's default handling would raise into the program."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        pass


def _log_to(stream: TextIO, level: int) -> Callable[[], None]:
    """Send the messages of typetrace's loggers at *level* and above to *stream*, and
    only there, and return the function that undoes this.

    The root logger is left alone, so that a program that ``typetrace run`` runs
    sets up logging as it would untraced.
    """
    logger = logging.getLogger("typetrace")
    handler = _QuietStreamHandler(stream)
    handler.setFormatter(logging.Formatter(logging.BASIC_FORMAT))
    previous = (logger.level, logger.propagate)
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False

    def restore() -> None:
        logger.removeHandler(handler)
        logger.level, logger.propagate = previous

    return restore


def entry_point() -> None:
    """Console-script entry point."""
    sys.exit(main())
