"""The store maintenance commands: prune, stats, export and import."""

from __future__ import annotations

import argparse
import math
import re
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Optional, Sequence, cast

from typetrace.cli import CommandError, Context, _describe_store, _plural
from typetrace.encoding import DecodeError

if TYPE_CHECKING:
    from typetrace import transfer
    from typetrace.db.base import CallTraceStore

__all__ = ["add_commands", "parse_duration"]

_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """Return the seconds in a duration such as ``90s``, ``15m``, ``12h`` or ``30d``."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r}; give a number followed by s, m, h or d, as in 30d"
        )
    seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if not math.isfinite(seconds):
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}; the number is too large")
    return seconds


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """Register prune, stats, export and import as subcommands of *commands*."""
    module_help = "only this module and its submodules"

    prune = commands.add_parser(
        "prune", parents=[common], help="delete traces that were not seen for a while"
    )
    prune.add_argument(
        "--older-than",
        type=parse_duration,
        required=True,
        metavar="AGE",
        help="delete traces last seen longer ago than AGE: a number with the unit s, m, h "
        "or d, as in 30d",
    )
    prune.add_argument("--module", help=module_help)
    prune.set_defaults(handler=prune_command)

    stats = commands.add_parser(
        "stats", parents=[common], help="print the distinct traces and calls of each module"
    )
    stats.add_argument("module", nargs="?", metavar="MODULE", help=module_help)
    stats.set_defaults(handler=stats_command)

    export = commands.add_parser(
        "export", parents=[common], help="write the stored traces as JSON lines"
    )
    export.add_argument("--module", help=module_help)
    export.add_argument(
        "-o", "--output", metavar="FILE", help="the file to write (default: stdout)"
    )
    export.set_defaults(handler=export_command)

    importing = commands.add_parser(
        "import",
        parents=[common],
        help="add the traces of an export file, or of a MonkeyType store, to the store",
    )
    importing.add_argument("file", metavar="FILE", help="an export file, or - for stdin")
    importing.add_argument(
        "--monkeytype",
        action="store_true",
        help="FILE is a MonkeyType SQLite store (monkeytype.sqlite3) to convert",
    )
    importing.set_defaults(handler=import_command)


# --- prune -------------------------------------------------------------------------


def prune_command(ctx: Context) -> int:
    """Delete the traces last seen before the cutoff and print how many were removed."""
    # A duration longer than the time since 1970 reaches no stored trace.
    cutoff = max(time.time() - ctx.args.older_than, 0.0)
    store = ctx.store
    modules: Sequence[Optional[str]] = [None]
    if ctx.args.module is not None:
        modules = _matching_modules(ctx, ctx.args.module)
    removed = sum(store.prune(cutoff, module) for module in modules)
    ctx.stdout.write(
        f"Removed {_plural(removed, 'trace')} last seen before {_format_time(cutoff)} "
        f"from {_describe_store(ctx)}\n"
    )
    return 0


# --- stats -------------------------------------------------------------------------


@dataclass
class _ModuleCounts:
    traces: int = 0
    calls: int = 0
    last_seen: Optional[float] = None


def stats_command(ctx: Context) -> int:
    """Print, per module, the distinct traces, the calls they count and the last call seen.

    Every row is decoded, so the counts are those that ``stub`` and ``apply`` would
    read; undecodable rows are left out and reported.
    """
    from typetrace import transfer

    if ctx.args.module is None:
        modules = ctx.store.list_modules()
    else:
        modules = _matching_modules(ctx, ctx.args.module)
    if not modules:
        ctx.stderr.write(f"No traces in {_describe_store(ctx)}; record some with 'typetrace run'.\n")
        return 1
    table: dict[str, _ModuleCounts] = {}
    skipped: list[transfer.Skipped] = []
    for module in modules:
        counts = table[module] = _ModuleCounts()
        for stored in ctx.store.iter_rows(module):
            try:
                stored.row.to_trace()
            except DecodeError as error:
                skipped.append(transfer.Skipped(f"{module}:{stored.row.qualname}", str(error)))
                continue
            counts.traces += 1
            counts.calls += stored.row.call_count
            if counts.last_seen is None or stored.last_seen > counts.last_seen:
                counts.last_seen = stored.last_seen
    _write_stats_table(ctx, table)
    _report_skipped(ctx, skipped, "undecodable trace(s)")
    return 0


def _write_stats_table(ctx: Context, table: dict[str, _ModuleCounts]) -> None:
    total = _ModuleCounts(
        traces=sum(c.traces for c in table.values()), calls=sum(c.calls for c in table.values())
    )
    rows = [(name, counts) for name, counts in table.items()]
    if len(table) > 1:
        rows.append(("(total)", total))
    width = max(len("MODULE"), *(len(name) for name, _ in rows))
    ctx.stdout.write(f"{'MODULE':<{width}}  {'TRACES':>8}  {'CALLS':>12}  LAST SEEN (UTC)\n")
    for name, counts in rows:
        line = f"{name:<{width}}  {counts.traces:>8}  {counts.calls:>12}"
        if counts.last_seen is not None:
            line += "  " + _format_time(counts.last_seen, zone=False)
        ctx.stdout.write(line + "\n")


# --- export and import -------------------------------------------------------------


def export_command(ctx: Context) -> int:
    """Write the stored traces, with counts and times, as JSON lines."""
    from pathlib import Path

    from typetrace import transfer

    modules = None if ctx.args.module is None else _matching_modules(ctx, ctx.args.module)
    output = None if ctx.args.output is None else Path(ctx.args.output)
    if output is None:
        result = transfer.export_rows(ctx.store, ctx.stdout, modules)
        destination = "stdout"
    else:
        try:
            with output.open("w", encoding="utf-8", newline="\n") as file:
                result = transfer.export_rows(ctx.store, file, modules)
        except OSError as error:
            raise CommandError(f"Failed to write the export file {output}: {error}") from error
        destination = str(output)
    ctx.stderr.write(
        f"Exported {_plural(result.rows, 'trace')} ({_plural(result.calls, 'call')}) "
        f"to {destination}\n"
    )
    _report_skipped(ctx, result.skipped, "undecodable trace(s)")
    return 0


def import_command(ctx: Context) -> int:
    """Add the traces of an export file or a MonkeyType store to the store."""
    from pathlib import Path

    from typetrace import transfer

    path = Path(ctx.args.file)
    # Opened on first use, so that an input file that turns out unreadable leaves no
    # new, empty store behind.
    store = cast("CallTraceStore", _StoreOnFirstUse(ctx))
    if ctx.args.monkeytype:
        result = transfer.import_monkeytype(store, path)
        ctx.stdout.write(
            f"Imported {_plural(result.calls, 'call')} from the MonkeyType store {path} "
            f"into {_describe_store(ctx)}\n"
        )
        _report_skipped(ctx, result.skipped, "MonkeyType row(s) that could not be converted")
        return 0
    if str(path) == "-":
        result = transfer.import_export(store, sys.stdin.buffer, "stdin")
    else:
        try:
            with path.open("rb") as file:
                result = transfer.import_export(store, file, str(path))
        except OSError as error:
            raise CommandError(f"Failed to read the export file {path}: {error}") from error
    ctx.stdout.write(
        f"Imported {_plural(result.rows, 'trace')} ({_plural(result.calls, 'call')}) "
        f"from {path} into {_describe_store(ctx)}\n"
    )
    _report_skipped(ctx, result.skipped, "unreadable line(s)")
    return 0


# --- helpers -----------------------------------------------------------------------


class _StoreOnFirstUse:
    """Stands for the command's store, which it opens when a method is first used."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def __getattr__(self, name: str) -> object:
        return getattr(self._ctx.store, name)


def _matching_modules(ctx: Context, name: str) -> list[str]:
    """Return the traced modules that are *name* or its submodules.

    Raises:
        CommandError: no traced module matches, except for ``prune``, where there is
            then nothing to remove.
    """
    modules = [m for m in ctx.store.list_modules() if m == name or m.startswith(name + ".")]
    if not modules and ctx.args.command != "prune":
        hint = "; see 'typetrace list-modules' for the traced ones"
        raise CommandError(f"No traces for module {name!r} in {_describe_store(ctx)}{hint}")
    return modules


def _report_skipped(ctx: Context, skipped: Sequence[transfer.Skipped], what: str) -> None:
    if not skipped:
        return
    ctx.stderr.write(f"Skipped {len(skipped)} {what}")
    if ctx.args.verbose:
        ctx.stderr.write(":\n" + "".join(f"  {s.location}: {s.reason}\n" for s in skipped))
    else:
        ctx.stderr.write(" (--verbose lists them)\n")


def _format_time(seconds: float, zone: bool = True) -> str:
    text = datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    return text + " UTC" if zone else text
