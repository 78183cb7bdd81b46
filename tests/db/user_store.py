"""A trace store as a user would write one, on typetrace's public API only.

Each :meth:`add` appends one JSON line per distinct trace. Reads merge lines of the
same trace, summing their counts, and order traces by their latest line.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Iterable, Optional

from typetrace.db.base import CallTraceStore, CallTraceThunk, qualname_matches
from typetrace.encoding import CallTraceRow, serialize_traces
from typetrace.tracing import CallTrace


class UserJsonLinesStore(CallTraceStore):
    """Traces as JSON lines in one file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def make_store(cls, connection_string: str) -> UserJsonLinesStore:
        return cls(Path(connection_string))

    def add(self, traces: Iterable[CallTrace]) -> None:
        counts: dict[CallTrace, int] = {}
        for trace in traces:
            counts[trace] = counts.get(trace, 0) + trace.call_count
        merged = (dataclasses.replace(trace, call_count=count) for trace, count in counts.items())
        with self.path.open("a", encoding="utf-8") as file:
            for row in serialize_traces(merged):
                file.write(json.dumps(dataclasses.asdict(row)) + "\n")

    def filter(
        self, module: str, qualname_prefix: Optional[str] = None, limit: int = 2000
    ) -> list[CallTraceThunk]:
        # Walking the lines newest first, a dict keeps each trace at its latest line.
        counts: dict[CallTraceRow, int] = {}
        for row in reversed(self._read_rows()):
            if row.module != module or not qualname_matches(row.qualname, qualname_prefix):
                continue
            key = dataclasses.replace(row, call_count=0)
            counts[key] = counts.get(key, 0) + row.call_count
        rows = [dataclasses.replace(row, call_count=count) for row, count in counts.items()]
        return list(rows[:limit])

    def list_modules(self) -> list[str]:
        return sorted({row.module for row in self._read_rows()})

    def _read_rows(self) -> list[CallTraceRow]:
        if not self.path.exists():
            return []
        lines = self.path.read_text(encoding="utf-8").splitlines()
        return [CallTraceRow(**json.loads(line)) for line in lines]
