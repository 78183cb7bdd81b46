"""A trace store written the way a user would write one: JSON lines in a file.

It uses only typetrace's public API (``CallTraceStore``, ``CallTraceRow``,
``serialize_traces``, ``qualname_matches``), so tests that run every command
against it show that a user's own store works everywhere a built-in one does.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Iterable, Optional

from typetrace.db.base import CallTraceStore, CallTraceThunk, qualname_matches
from typetrace.encoding import CallTraceRow, serialize_traces
from typetrace.tracing import CallTrace


class JsonLinesStore(CallTraceStore):
    """Appends one JSON object per trace to a file; reads aggregate identical rows."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def make_store(cls, connection_string: str) -> JsonLinesStore:
        return cls(Path(connection_string))

    def __str__(self) -> str:
        return f"JSON lines store {self.path}"

    def add(self, traces: Iterable[CallTrace]) -> None:
        with self.path.open("a", encoding="utf-8") as file:
            for row in serialize_traces(traces):
                file.write(json.dumps(dataclasses.asdict(row)) + "\n")

    def _rows(self) -> list[CallTraceRow]:
        if not self.path.exists():
            return []
        rows = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            rows.append(CallTraceRow(**json.loads(line)))
        return rows

    def filter(
        self, module: str, qualname_prefix: Optional[str] = None, limit: int = 2000
    ) -> list[CallTraceThunk]:
        counts: dict[CallTraceRow, int] = {}
        for row in reversed(self._rows()):
            if row.module != module or not qualname_matches(row.qualname, qualname_prefix):
                continue
            key = dataclasses.replace(row, call_count=1)
            counts[key] = counts.get(key, 0) + row.call_count
        newest_first = [dataclasses.replace(row, call_count=count) for row, count in counts.items()]
        return list(newest_first[:limit])

    def list_modules(self) -> list[str]:
        return sorted({row.module for row in self._rows()})
