# The C profile hook of Python 3.9 to 3.11 (_profilehook.c); see typetrace._profiling.

from types import FrameType
from typing import Any, Callable

SKIP_UNTRACED: int
SKIP_PAUSED: int

def sent_value(frame: FrameType, default: object, /) -> object: ...

class Hook:
    def __init__(
        self,
        handler: Callable[[FrameType, str, Any], int],
        calls: dict[Any, Any],
        suspects: dict[Any, Any],
        *,
        passes_on: Callable[[BaseException], bool] | None = None,
    ) -> None: ...
    def __call__(self, frame: FrameType, event: str, arg: Any) -> None: ...
    def install(self) -> None: ...
    def enable_fast_calls(
        self,
        recorder: Any,
        info_type: type,
        call_type: type,
        all_calls: bool,
        first_sweep: int,
        writer: Any = None,
        session: Any = None,
        inbox_limit: int = 0,
    ) -> None: ...
    def resume(self) -> None: ...
    def close(self) -> None: ...
    @property
    def errors(self) -> dict[str, int]: ...
    @property
    def dispatched(self) -> int: ...
    @property
    def active(self) -> bool: ...
    @property
    def fast_starts(self) -> int: ...
    @property
    def fast_returns(self) -> int: ...
    @property
    def inbox_appends(self) -> int: ...
