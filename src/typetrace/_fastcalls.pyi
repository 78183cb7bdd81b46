# The C callbacks of the sys.monitoring backend (_fastcalls.c); see typetrace._monitoring.

from types import CodeType, FrameType
from typing import Any, Callable

def sent_value(frame: FrameType, offset: int, default: object, /) -> object: ...

class Callbacks:
    def __init__(
        self,
        recorder: Any,
        info_type: type,
        call_type: type,
        start_fallback: Callable[[CodeType, int], Any],
        return_fallback: Callable[[CodeType, int, object], Any],
        disable: object,
        all_calls: bool,
        first_sweep: int,
        writer: Any = None,
        session: Any = None,
        inbox_limit: int = 0,
    ) -> None: ...
    def on_start(self, code: CodeType, offset: int) -> Any: ...
    def on_return(self, code: CodeType, offset: int, value: object) -> Any: ...
    @property
    def fast_starts(self) -> int: ...
    @property
    def fast_returns(self) -> int: ...
    @property
    def inbox_appends(self) -> int: ...
