"""Tracing backend for Python 3.9 to 3.11, built on :func:`sys.setprofile`.

The profile function receives a ``"call"`` event when a frame starts or resumes and a
``"return"`` event when it returns, yields, awaits or is left by an exception. The
instruction at ``frame.f_lasti`` tells these apart: ``RETURN_VALUE`` for a return, a
yield instruction for a suspension, anything else for an exception. An exception
thrown into a suspended generator leaves it at its yield instruction with the value
``None``, exactly like a real ``yield None``; the recorder settles that case later by
checking whether the generator still holds the frame.
"""

from __future__ import annotations

import dis
import sys
import threading
from types import FrameType
from typing import Any, Optional

from typetrace._recorder import CodeInfo, Recorder
from typetrace.tracing import TracerError

__all__ = ["ProfileBackend"]

_RETURN_VALUE = dis.opmap["RETURN_VALUE"]
_YIELD_VALUE = dis.opmap["YIELD_VALUE"]
# Python 3.9 and 3.10 suspend in "yield from" and "await" at YIELD_FROM, with f_lasti
# moved back to the instruction before it, so that YIELD_FROM runs again on resume.
_YIELD_FROM = dis.opmap.get("YIELD_FROM", -1)
# Python 3.11 starts every function with RESUME 0; later RESUMEs follow a yield.
_RESUME = dis.opmap.get("RESUME", -1)


def _is_function_start(frame: FrameType, code_bytes: bytes) -> bool:
    offset = frame.f_lasti
    if offset < 0:
        return True
    return code_bytes[offset] == _RESUME and code_bytes[offset + 1] == 0


class ProfileBackend:
    """Feeds :func:`sys.setprofile` events of this thread and of threads started while
    tracing to a :class:`~typetrace._recorder.Recorder`."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self._active = False
        # id(code) -> co_code, read once because Python 3.11 builds it on each access.
        self._code_bytes: dict[int, bytes] = {}

    def install(self) -> None:
        previous = sys.getprofile()
        if previous is not None:
            raise TracerError(
                f"Another profiler is active (sys.getprofile() returned {previous!r}); "
                "stop it before tracing with typetrace"
            )
        self._active = True
        threading.setprofile(self._profile)
        sys.setprofile(self._profile)

    def uninstall(self) -> None:
        # Threads started while tracing keep the profile function until their next
        # event. There _profile finds _active false and removes itself.
        self._active = False
        sys.setprofile(None)
        threading.setprofile(None)

    def _profile(self, frame: FrameType, event: str, arg: Any) -> None:
        if not self._active:
            sys.setprofile(None)
            return
        try:
            recorder = self.recorder
            if recorder.suspects:
                recorder.check_suspects()
            if event == "call":
                self._on_call(frame)
            elif event == "return":
                self._on_return(frame, arg)
        except Exception as error:  # noqa: BLE001 - the traced program must not see tracer errors
            self.recorder.note_error(f"profile {event}", error)

    def _on_call(self, frame: FrameType) -> None:
        recorder = self.recorder
        call = recorder.calls.get(frame)
        if call is not None:
            recorder.resumed(call)
            return
        info = recorder.code_info(frame.f_code, frame)
        # A resumed frame without a call started before tracing or was not sampled.
        if info is not None and _is_function_start(frame, self._bytes_of(info)):
            recorder.start(frame, info)

    def _on_return(self, frame: FrameType, value: Any) -> None:
        recorder = self.recorder
        call = recorder.calls.get(frame)
        if call is None:
            return
        code_bytes = self._bytes_of(call.info)
        offset = frame.f_lasti
        opcode = code_bytes[offset]
        if opcode == _RETURN_VALUE:
            recorder.returned(frame, value)
        elif opcode == _YIELD_VALUE or opcode == _YIELD_FROM or _next_opcode(code_bytes, offset) == _YIELD_FROM:
            # An exception leaving the frame is reported with the value None.
            recorder.suspended(frame, call, value, certain=value is not None)
        else:
            recorder.unwound(frame)

    def _bytes_of(self, info: CodeInfo) -> bytes:
        code_bytes: Optional[bytes] = self._code_bytes.get(id(info.code))
        if code_bytes is None:
            code_bytes = info.code.co_code
            self._code_bytes[id(info.code)] = code_bytes
        return code_bytes


def _next_opcode(code_bytes: bytes, offset: int) -> int:
    return code_bytes[offset + 2] if offset + 2 < len(code_bytes) else -1
