"""Tracing backend for Python 3.12 and later, built on :mod:`sys.monitoring` (PEP 669).

The backend takes a tool id of its own and registers PY_START, PY_RESUME, PY_THROW,
PY_RETURN, PY_YIELD and PY_UNWIND. Code that is not traced gets
``sys.monitoring.DISABLE`` from its first event, so later calls of it cost nothing.
So does a function that sampling has paused, once none of its recorded calls is
open. When paused functions resume, :func:`sys.monitoring.restart_events` turns their
events on again; it does so for every tool, so a tool such as coverage.py then sees
one more event at each location it had disabled.

When every call of some functions is recorded (``--all-calls`` or
``Sampling.always_record``), the PY_START and PY_RETURN callbacks are those of
``typetrace._fastcalls``, a C extension built on CPython, if it imports and neither
``TYPETRACE_PURE_PYTHON=1`` nor ``TYPETRACE_NO_FAST_CALLS=1`` is set. They record the
calls whose types the recorder has cached, and pass every other event to the Python
callbacks here.

At each PY_RESUME of a recorded call, ``sent_value()`` of ``typetrace._fastcalls``
reads the value that the frame receives at a yield expression, for the call's send
type. Python code cannot read it, so with ``TYPETRACE_PURE_PYTHON=1``, or without
the extension, no send type is recorded. PY_THROW resumes a frame without a value.
"""

from __future__ import annotations

import logging
import os
import sys
from types import CodeType, FrameType
from typing import Any, Callable, Optional

from typetrace._recorder import _FIRST_SWEEP, COROUTINE, NOT_SENT, Call, CodeInfo, Recorder
from typetrace._writer import INBOX_LIMIT
from typetrace.tracing import NO_FAST_CALLS_VARIABLE, PURE_PYTHON_VARIABLE, _SessionSink, TracerError

__all__ = ["MonitoringBackend"]

logger = logging.getLogger("typetrace.tracing")

assert sys.version_info >= (3, 12)
_monitoring = sys.monitoring
_events = _monitoring.events
_DISABLE = _monitoring.DISABLE
# Tool ids tried in order. 0, 1 and 2 stay free for a debugger, coverage.py and a
# profiler such as cProfile, which claim sys.monitoring.DEBUGGER_ID, COVERAGE_ID and
# PROFILER_ID and fail when it is taken.
_CANDIDATE_TOOL_IDS = (3, 4, _monitoring.PROFILER_ID, _monitoring.OPTIMIZER_ID)
_TOOL_NAME = "typetrace"
# Yields of one recorded generator call after which its PY_YIELD and PY_RESUME
# events are disabled, PY_RESUME only where no call of the code received a value
# other than None at a yield expression. The first yields of a call give its yield
# type, and later yields are inferred only when of a new class (see
# typetrace._recorder), so a long generator would otherwise pay two callbacks per
# item for almost nothing.
_WATCHED_YIELDS = 1000

# Whether an earlier session returned DISABLE. Disabled locations stay disabled for
# the tool id after it is freed, so the next session re-enables them.
_disabled_before = False


class MonitoringBackend:
    """Feeds :mod:`sys.monitoring` events of all threads to a
    :class:`~typetrace._recorder.Recorder`."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.tool_id = -1
        #: The C callbacks of typetrace._fastcalls in use, or None.
        self.fast_callbacks: Any = None
        #: sent_value() of typetrace._fastcalls, which reads the value that a resumed
        #: frame receives at a yield expression, or None: Python cannot read it.
        self._read_sent: Optional[Callable[[FrameType, int, object], object]] = _sent_value_reader()

    def install(self) -> None:
        global _disabled_before
        self.tool_id = _claim_tool_id()
        if _disabled_before:
            _monitoring.restart_events()
            _disabled_before = False
        callbacks: dict[int, Callable[..., Any]] = {
            _events.PY_START: self._on_start,
            _events.PY_RESUME: self._on_resume,
            _events.PY_THROW: self._on_throw,
            _events.PY_RETURN: self._on_return,
            _events.PY_YIELD: self._on_yield,
            _events.PY_UNWIND: self._on_unwind,
        }
        self.fast_callbacks = self._make_fast_callbacks()
        if self.fast_callbacks is not None:
            callbacks[_events.PY_START] = self.fast_callbacks.on_start
            callbacks[_events.PY_RETURN] = self.fast_callbacks.on_return
        mask = 0
        for event, callback in callbacks.items():
            _monitoring.register_callback(self.tool_id, event, callback)
            mask |= event
        _monitoring.set_events(self.tool_id, mask)
        self.recorder.on_resume = _monitoring.restart_events

    def _make_fast_callbacks(self) -> Any:
        sampling = self.recorder.sampling
        if not (sampling.all_calls or sampling.always_record):
            # The C callbacks handle only calls that are all recorded.
            return None
        if os.environ.get(PURE_PYTHON_VARIABLE) == "1":
            logger.debug("%s=1 is set, so tracing uses Python callbacks only", PURE_PYTHON_VARIABLE)
            return None
        if os.environ.get(NO_FAST_CALLS_VARIABLE) == "1":
            logger.debug("%s=1 is set, so tracing uses Python callbacks only", NO_FAST_CALLS_VARIABLE)
            return None
        try:
            from typetrace import _fastcalls
        except ImportError as error:
            logger.debug("The C callbacks failed to import (%s), so tracing uses Python callbacks only", error)
            return None
        sink = self.recorder.sink
        writer, session = sink.store_writer() if isinstance(sink, _SessionSink) else (None, None)
        return _fastcalls.Callbacks(
            self.recorder,
            CodeInfo,
            Call,
            self._on_start,
            self._on_return,
            _DISABLE,
            sampling.all_calls,
            _FIRST_SWEEP,
            writer,
            session,
            INBOX_LIMIT,
        )

    def uninstall(self) -> None:
        global _disabled_before
        if self.tool_id < 0:
            return
        self.recorder.on_resume = None
        _monitoring.set_events(self.tool_id, 0)
        for event in (
            _events.PY_START,
            _events.PY_RESUME,
            _events.PY_THROW,
            _events.PY_RETURN,
            _events.PY_YIELD,
            _events.PY_UNWIND,
        ):
            _monitoring.register_callback(self.tool_id, event, None)
        _monitoring.free_tool_id(self.tool_id)
        self.tool_id = -1
        self.fast_callbacks = None
        _disabled_before = True

    # The callbacks run for every traced event, so each one returns as early as it can.

    def _on_start(self, code: CodeType, offset: int) -> Any:
        recorder = self.recorder
        try:
            entry = recorder.codes.get(id(code))
            if entry is not None:
                info = entry[1]
            else:
                info = recorder.code_info(code, sys._getframe(1))
            if info is None:
                return _DISABLE
            if not recorder.start(sys._getframe(1), info):
                return _DISABLE
        except Exception as error:  # noqa: BLE001 - the traced program must not see tracer errors
            recorder.note_error("PY_START", error)
        return None

    def _on_resume(self, code: CodeType, offset: int, thrown: bool = False) -> Any:
        recorder = self.recorder
        entry = recorder.codes.get(id(code))
        if entry is None:
            return None
        info = entry[1]
        if info is None:
            return _DISABLE
        if info.active:
            quiet = info.quiet_yields
            if quiet and not info.receives_sends:
                return _DISABLE
            try:
                frame = sys._getframe(1 + thrown)
                call = recorder.calls.get(frame)
                if call is not None:
                    read_sent = self._read_sent
                    if read_sent is None or thrown:
                        recorder.resumed(call)
                    else:
                        recorder.resumed(call, read_sent(frame, offset, NOT_SENT))
                    if quiet:
                        # No PY_YIELD reports when the call suspends again.
                        call.suspended = True
            except Exception as error:  # noqa: BLE001
                recorder.note_error("PY_RESUME", error)
        elif info.paused:
            return _DISABLE
        return None

    def _on_throw(self, code: CodeType, offset: int, exception: BaseException) -> None:
        # PY_THROW cannot be disabled.
        self._on_resume(code, offset, thrown=True)

    def _on_return(self, code: CodeType, offset: int, value: object) -> Any:
        recorder = self.recorder
        entry = recorder.codes.get(id(code))
        if entry is None:
            return None
        info = entry[1]
        if info is None:
            return _DISABLE
        if info.active:
            try:
                recorder.returned(sys._getframe(1), value)
            except Exception as error:  # noqa: BLE001
                recorder.note_error("PY_RETURN", error)
        elif info.paused:
            return _DISABLE
        return None

    def _on_yield(self, code: CodeType, offset: int, value: object) -> Any:
        recorder = self.recorder
        entry = recorder.codes.get(id(code))
        if entry is None:
            return None
        info = entry[1]
        if info is None:
            return _DISABLE
        if info.active:
            try:
                frame = sys._getframe(1)
                call = recorder.calls.get(frame)
                if call is not None:
                    recorder.suspended(frame, call, value, certain=True)
                    # The value a coroutine passes up at an await is not one of its types.
                    if info.kind == COROUTINE or call.yields > _WATCHED_YIELDS:
                        # NOTE: the events stay off for every call of this code until
                        # paused functions resume, so a generator call that starts
                        # meanwhile records no yield type. PY_RESUME stays on where a
                        # call received values other than None, for its send type.
                        info.quiet_yields = True
                        return _DISABLE
            except Exception as error:  # noqa: BLE001
                recorder.note_error("PY_YIELD", error)
        elif info.paused:
            return _DISABLE
        return None

    def _on_unwind(self, code: CodeType, offset: int, exception: BaseException) -> None:
        # PY_UNWIND cannot be disabled, so it returns nothing.
        recorder = self.recorder
        try:
            # Inside the try, because a program's RecursionError unwinds its frames at
            # the recursion limit, where this lookup can raise another one.
            entry = recorder.codes.get(id(code))
            if entry is None or entry[1] is None or not entry[1].active:
                return
            recorder.unwound(sys._getframe(1))
        except Exception as error:  # noqa: BLE001
            recorder.note_error("PY_UNWIND", error)


def _sent_value_reader() -> Optional[Callable[[FrameType, int, object], object]]:
    if os.environ.get(PURE_PYTHON_VARIABLE) == "1":
        return None
    try:
        from typetrace._fastcalls import sent_value
    except ImportError:
        return None
    return sent_value


def _claim_tool_id() -> int:
    for tool_id in _CANDIDATE_TOOL_IDS:
        if _monitoring.get_tool(tool_id) is not None:
            continue
        try:
            _monitoring.use_tool_id(tool_id, _TOOL_NAME)
        except ValueError:  # taken by another thread since get_tool()
            continue
        return tool_id
    tools_in_use = {tool_id: _monitoring.get_tool(tool_id) for tool_id in _CANDIDATE_TOOL_IDS}
    raise TracerError(
        f"No sys.monitoring tool id is free for typetrace: ids and their tools are {tools_in_use!r}; "
        "stop one of these tools before tracing"
    )
