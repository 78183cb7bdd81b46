"""Tracing backends for Python 3.9 to 3.11, built on :func:`sys.setprofile` events.

The profile function receives a ``"call"`` event when a frame starts or resumes and a
``"return"`` event when it returns, yields, awaits or is left by an exception. The
instruction at ``frame.f_lasti`` tells these apart: ``RETURN_VALUE`` for a return, a
yield instruction for a suspension, anything else for an exception. An exception
thrown into a suspended generator leaves it at its yield instruction with the value
``None``, exactly like a real ``yield None``; the recorder settles that case later by
checking whether the generator still holds the frame.

A profile function runs for every call and return of all code, the standard library
included, and for every call of a builtin. :class:`HookBackend` therefore installs
the C profile function of :mod:`typetrace._profilehook`, which drops the events of
builtins, of code that is not traced and of functions that sampling paused, and
passes the rest to the same Python methods as :class:`ProfileBackend`. It is also
installed in the threads that were running before tracing began, which
:func:`threading.setprofile` does not reach. A C profile
function also gets a NULL value where an exception leaves the frame, so the hook
passes those events to the handler as "unwind" events, and a yield of ``None`` needs
no later check.

On Python 3.11 a profile function costs about twice the untraced run time by itself,
because 3.11 runs every instruction through its tracing path while one is set. There
:class:`EvalHookBackend` installs the same C hook as the interpreter's
frame-evaluation function (PEP 523) instead, which passes the handler the same
events and leaves the instruction dispatch alone. It falls back to
:class:`HookBackend` when another tool set an evaluation function, or with
``TYPETRACE_PROFILE_HOOK=1``.

Both C backends also record some calls without the Python handler: the calls of
plain functions whose argument types and return type the recorder has cached, while
every call of the function is recorded (``--all-calls``, or a function that
``Sampling.always_record`` names). The hook then does in C what
:meth:`Recorder.start` and :meth:`Recorder.returned` do in that case, and hands the
trace to the sink (see ``typetrace/_fastcalls.h``, shared with the callbacks of
Python 3.12). Without ``all_calls`` or ``always_record`` this fast path is not set
up. In every sampling mode, the hook also handles by itself the resumptions of
recorded generator and coroutine calls, a coroutine's suspensions with a value
(what it awaits), and a generator's yields after its first 16 when it yielded a
value of the same class before, where the recorder would only update the state of
the call.
The environment variable ``TYPETRACE_NO_FAST_CALLS=1``, read when tracing starts, turns
both fast paths off, so that every event goes to the handler. The hook's
``fast_starts``, ``fast_returns``, ``inbox_appends``, ``fast_resumes`` and
``fast_suspensions`` count the events that the fast paths handled.

At a resumption that reaches the handler, ``sent_value()`` of the C module reads the
value that a generator receives at a yield expression, for the call's send type. The
hook's fast path also counts such values of classes that the call received before.
``throw()`` and ``close()`` pass ``None`` the same way, so the recorder counts a
``None`` only once the generator suspends or returns.

The C module is built when a C compiler is available at installation. Without it,
or with the environment variable ``TYPETRACE_PURE_PYTHON=1``, :class:`ProfileBackend`
handles every event in Python, and records no send types.
"""

from __future__ import annotations

import dis
import logging
import os
import sys
import threading
from types import FrameType, ModuleType
from typing import Any, Callable, Optional

from typetrace._recorder import (
    _FIRST_SWEEP,
    _FULL_YIELDS,
    COROUTINE,
    FUNCTION,
    GENERATOR,
    NOT_SENT,
    Call,
    CodeInfo,
    Recorder,
)
from typetrace._signals import raised_by_signal_handler
from typetrace._writer import INBOX_LIMIT
from typetrace.tracing import NO_FAST_CALLS_VARIABLE, PURE_PYTHON_VARIABLE, TracerError, _SessionSink

__all__ = ["EvalHookBackend", "HookBackend", "ProfileBackend", "make_profile_backend"]

logger = logging.getLogger("typetrace.tracing")

#: Environment variable that selects the C profile function over the evaluation
#: function on Python 3.11 when set to 1.
PROFILE_HOOK_VARIABLE = "TYPETRACE_PROFILE_HOOK"

# The statuses an event handler returns to the C hook for the frame's code: that
# the code stays watched, or that the hook may drop its events, except those of
# frames with an open recorded call. _profilehook.c defines the same numbers.
WATCH = 0
# The code is not traced.
SKIP_UNTRACED = 1
# Sampling paused the function. Frames with an open recorded call still get events.
SKIP_PAUSED = 2

_RETURN_VALUE = dis.opmap["RETURN_VALUE"]
_YIELD_VALUE = dis.opmap["YIELD_VALUE"]
# Python 3.9 and 3.10 suspend in "yield from" and "await" at YIELD_FROM, with f_lasti
# moved back to the instruction before it, so that YIELD_FROM runs again on resume.
_YIELD_FROM = dis.opmap.get("YIELD_FROM", -1)
# Python 3.11 starts every function with RESUME 0; later RESUMEs follow a yield.
_RESUME = dis.opmap.get("RESUME", -1)


# Whether a signal handler can run at the first instruction of a Python function,
# before any try of its body. Python 3.11 handles pending signals at RESUME. Python
# 3.9 and 3.10 do not handle them just before the SETUP_FINALLY of a try.
_SIGNALS_AT_FUNCTION_START = sys.version_info >= (3, 11)
# The end of the warning of a removed profile function where that can happen.
_SIGNAL_CAUSE = (
    ", or Python removed it because a signal handler of the program raised an exception "
    "as the pure-Python profile function started"
)


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
        # The thread that installed the profile function, the one whose profile
        # function uninstall() checks.
        self._installed_in: Optional[int] = None
        self._removal_logged = False
        # Idents of the threads where an exception left the profile function, which
        # makes CPython remove it. _note_removed logs that removal.
        self._removed_in: set[int] = set()
        #: sent_value() of the C hook, which reads the value that a resumed frame
        #: receives at a yield expression, or None: Python cannot read it.
        self._read_sent: Optional[Callable[[FrameType, object], object]] = None

    def install(self) -> None:
        _check_no_profiler()
        self._active = True
        self._installed_in = threading.get_ident()
        threading.setprofile(self._profile)
        sys.setprofile(self._profile)

    def uninstall(self) -> None:
        # Checked while _active is true, because once it is false, the next event of
        # this thread, such as the call of sys.getprofile, makes _profile remove itself.
        program_profile = self._installed_in == threading.get_ident() and _warn_if_changed(
            self._profile,
            removed_by_tracer=self._installed_in in self._removed_in,
            signal_may_remove=_SIGNALS_AT_FUNCTION_START,
        )
        # Threads started while tracing keep the profile function until their next
        # event. There _profile finds _active false and removes itself.
        self._active = False
        # The program's own profile function, if it set one, stays.
        if not program_profile:
            sys.setprofile(None)
        threading.setprofile(None)

    def _profile(self, frame: FrameType, event: str, arg: Any) -> None:
        # The outer try comes first, because Python 3.9 and 3.10 run no signal handler
        # just before the SETUP_FINALLY of a try, so a handler's exception leaves
        # through _note_removed. NOTE: Python 3.11 runs handlers at the RESUME before
        # the try, so there such an exception can leave unnoticed.
        try:
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
                # Raises the exception of a program's signal handler again.
                self.recorder.note_error(f"profile {event}", error)
        except BaseException:
            # After stop() the function removes itself anyway.
            if self._active:
                self._removed_in.add(threading.get_ident())
                self._note_removed()
            raise

    def _note_removed(self) -> None:
        # CPython removes a Python profile function that raises from the thread where
        # it raised. The exceptions that go through are those of the program's signal
        # handlers, KeyboardInterrupt included, so the thread is the main thread.
        if not self._removal_logged:
            self._removal_logged = True
            logger.warning(
                "An exception of the program's signal handler was raised in the tracer's "
                "profile function, so Python removed it; later calls in the main thread "
                "are not traced. The C profile hook has no such limit."
            )

    # The event methods return WATCH, SKIP_UNTRACED or SKIP_PAUSED for HookBackend.

    def _on_call(self, frame: FrameType, start: Optional[bool] = None) -> int:
        """Handle a call event. *start* is true when the frame starts and false when it
        resumes. When it is None, the frame's instruction decides."""
        recorder = self.recorder
        call = recorder.calls.get(frame)
        if call is not None:
            read_sent = self._read_sent
            if read_sent is None:
                recorder.resumed(call)
            else:
                recorder.resumed(call, read_sent(frame, NOT_SENT), certain=False)
            return WATCH
        code = frame.f_code
        entry = recorder.codes.get(id(code))
        info = entry[1] if entry is not None else recorder.code_info(code, frame)
        if info is None:
            return SKIP_UNTRACED
        if start is None:
            start = _is_function_start(frame, self._bytes_of(info))
        # A resumed frame without a call started before tracing or was not sampled.
        if start:
            recorder.start(frame, info)
        return SKIP_PAUSED if info.paused else WATCH

    def _on_return(self, frame: FrameType, value: Any, exact: bool = False) -> int:
        """Handle a return event. Unless *exact*, the event may also be an exception
        leaving the frame, with the value None."""
        recorder = self.recorder
        call = recorder.calls.get(frame)
        if call is None:
            return self._status_without_call(frame)
        if exact and call.info.kind == FUNCTION:
            # Only a generator or coroutine can suspend.
            recorder.returned(frame, value)
            return WATCH
        code_bytes = self._bytes_of(call.info)
        offset = frame.f_lasti
        opcode = code_bytes[offset]
        if opcode == _RETURN_VALUE:
            recorder.returned(frame, value)
        elif opcode == _YIELD_VALUE or opcode == _YIELD_FROM or _next_opcode(code_bytes, offset) == _YIELD_FROM:
            # An exception leaving the frame is reported with the value None.
            recorder.suspended(frame, call, value, certain=exact or value is not None)
        else:
            recorder.unwound(frame)
        return WATCH

    def _on_unwind(self, frame: FrameType) -> int:
        """Handle an exception leaving *frame*, which only the C hook reports apart
        from returns."""
        recorder = self.recorder
        if frame not in recorder.calls:
            return self._status_without_call(frame)
        recorder.unwound(frame)
        return WATCH

    def _status_without_call(self, frame: FrameType) -> int:
        entry = self.recorder.codes.get(id(frame.f_code))
        if entry is None:
            # Code first seen at a return: a frame that started before tracing.
            return WATCH
        info = entry[1]
        if info is None:
            return SKIP_UNTRACED
        return SKIP_PAUSED if info.paused else WATCH

    def _bytes_of(self, info: CodeInfo) -> bytes:
        code_bytes = info.code_bytes
        if code_bytes is None:
            code_bytes = info.code_bytes = info.code.co_code
        return code_bytes


def _next_opcode(code_bytes: bytes, offset: int) -> int:
    return code_bytes[offset + 2] if offset + 2 < len(code_bytes) else -1


class HookBackend(ProfileBackend):
    """Installs the C profile function of :mod:`typetrace._profilehook`, which passes
    only the events of watched code to the methods of :class:`ProfileBackend`.

    ``recorder.on_resume`` calls the hook's ``resume()``, which unmarks the functions
    that sampling paused. The hook keeps references to ``recorder.calls`` and
    ``recorder.suspects``, so the recorder clears these dicts and never replaces them.
    """

    def __init__(self, recorder: Recorder, profilehook: ModuleType) -> None:
        super().__init__(recorder)
        self._read_sent = profilehook.sent_value
        self._hook = profilehook.Hook(
            self._handle, recorder.calls, recorder.suspects, passes_on=raised_by_signal_handler
        )
        #: The hook while its fast path of calls with cached types is on, with the
        #: counters ``fast_starts``, ``fast_returns`` and ``inbox_appends``, or None.
        self.fast_callbacks: Any = None

    def _enable_fast_paths(self) -> None:
        if os.environ.get(NO_FAST_CALLS_VARIABLE) == "1":
            logger.debug(
                "%s=1 is set, so the C hook passes every call to its handler",
                NO_FAST_CALLS_VARIABLE,
            )
            return
        self._hook.enable_fast_yields(CodeInfo, Call, _FULL_YIELDS, GENERATOR, COROUTINE)
        recorder = self.recorder
        sampling = recorder.sampling
        if not (sampling.all_calls or sampling.always_record):
            # The fast path of calls handles only functions whose calls are all recorded.
            return
        sink = recorder.sink
        writer, session = sink.store_writer() if isinstance(sink, _SessionSink) else (None, None)
        self._hook.enable_fast_calls(
            recorder,
            CodeInfo,
            Call,
            sampling.all_calls,
            _FIRST_SWEEP,
            writer,
            session,
            INBOX_LIMIT,
        )
        self.fast_callbacks = self._hook

    def install(self) -> None:
        _check_no_profiler()
        self._enable_fast_paths()
        self._active = True
        self._installed_in = threading.get_ident()
        hook = self._hook
        recorder = self.recorder

        def start_thread(frame: FrameType, event: str, arg: Any) -> None:
            # The Python profile function of threads started while tracing, because
            # threading.setprofile() takes only a Python callable. It hands the thread
            # to the C hook at the thread's first event, or, when the hook is closed,
            # the hook removes it.
            if hook.active:
                try:
                    hook.install()
                except Exception as error:  # noqa: BLE001 - such as an audit hook's refusal
                    recorder.note_error("profile hook install", error)
            hook(frame, event, arg)

        hook.install()
        recorder.on_resume = hook.resume
        # Threads that were running before tracing began, except typetrace's own.
        own = [
            thread.ident
            for thread in threading.enumerate()
            if thread.name.startswith("typetrace-") and thread.ident is not None
        ]
        hook.install_other_threads(own)
        # On 3.9 and 3.10 the watch gives every new thread the hook, also those that
        # the threading module does not start. 3.11 has no watch, and traces through
        # the evaluation function unless TYPETRACE_PROFILE_HOOK=1 is set.
        install_watch = getattr(hook, "install_thread_watch", None)
        if install_watch is not None and install_watch(own):
            return
        if install_watch is not None:
            logger.debug(
                "Another frame-evaluation function is set, so threads that the threading "
                "module does not start are not traced"
            )
        threading.setprofile(start_thread)

    def uninstall(self) -> None:
        # Threads started while tracing keep the hook until their next event, where
        # the closed hook removes itself.
        self._active = False
        # A C profile function that raises stays set, so typetrace never removes the
        # hook from the thread that installed it before close().
        replaced = self._installed_in == threading.get_ident() and _warn_if_changed(
            self._hook, removed_by_tracer=False, signal_may_remove=False
        )
        self._hook.close()
        uninstall_watch = getattr(self._hook, "uninstall_thread_watch", None)
        if uninstall_watch is not None:
            uninstall_watch()
        self.recorder.on_resume = None
        # The program's own profile function, if it set one, stays.
        if not replaced:
            try:
                sys.setprofile(None)
            except Exception as error:  # noqa: BLE001 - such as an audit hook's refusal
                # The closed hook passes no more events on.
                logger.debug("Failed to remove the profile hook: %r", error)
        threading.setprofile(None)
        for name, count in self._hook.errors.items():
            self.recorder.add_errors(f"profile hook: {name}", count)

    def _handle(self, frame: FrameType, event: str, arg: Any) -> int:
        # The hook's events, as _profilehook.c documents them.
        try:
            recorder = self.recorder
            if recorder.suspects:
                recorder.check_suspects()
            if event == "call":
                # True or False from the evaluation function, None from the profile
                # function.
                return self._on_call(frame, arg)
            if event == "return":
                return self._on_return(frame, arg, exact=True)
            if event == "unwind":
                return self._on_unwind(frame)
            return self._on_return(frame, arg)
        except Exception as error:  # noqa: BLE001 - the traced program must not see tracer errors
            self.recorder.note_error(f"profile {event}", error)
        return WATCH


class EvalHookBackend(HookBackend):
    """Installs the hook of :mod:`typetrace._profilehook` as the interpreter's
    frame-evaluation function (PEP 523), on Python 3.11 only.

    The evaluation function runs each frame of every thread, also of threads that
    were running before tracing began, and passes the handler the events that the
    profile function would pass, so the methods of :class:`ProfileBackend` serve it
    unchanged. Unlike a profile function, it leaves 3.11's instruction dispatch on
    its fast path. typetrace's own threads that run when tracing starts get no events.
    """

    def __init__(self, recorder: Recorder, profilehook: ModuleType) -> None:
        super().__init__(recorder, profilehook)
        # No profile function gives every frame a locals dict. So the recorder's reads
        # of f_locals would be the only locals dicts that an import hook receives.
        recorder.guard_import_locals = True

    def install(self) -> None:
        _check_no_profiler()
        self._enable_fast_paths()
        own = [thread.ident for thread in threading.enumerate() if thread.name.startswith("typetrace-")]
        if not self._hook.install_eval([ident for ident in own if ident is not None]):
            raise TracerError(
                "Another frame-evaluation function was set after tracing chose its backend; "
                f"set {PROFILE_HOOK_VARIABLE}=1 to trace with the profile function"
            )
        self._active = True
        self.recorder.on_resume = self._hook.resume

    def uninstall(self) -> None:
        self._active = False
        self._hook.close()
        self._hook.uninstall_eval()
        self.recorder.on_resume = None
        for name, count in self._hook.errors.items():
            self.recorder.add_errors(f"profile hook: {name}", count)


def make_profile_backend(recorder: Recorder) -> ProfileBackend:
    """Return the fastest backend available for *recorder*.

    That is an :class:`EvalHookBackend` on Python 3.11 and a :class:`HookBackend` on
    3.9 and 3.10. On 3.11, a :class:`HookBackend` is returned when another tool set a
    frame-evaluation function or ``TYPETRACE_PROFILE_HOOK=1`` is set. A
    :class:`ProfileBackend` is returned when the C hook is not built or
    ``TYPETRACE_PURE_PYTHON=1`` is set.
    """
    if os.environ.get(PURE_PYTHON_VARIABLE) == "1":
        logger.debug("%s=1 is set, so tracing uses the pure-Python profile function", PURE_PYTHON_VARIABLE)
        return ProfileBackend(recorder)
    try:
        from typetrace import _profilehook
    except ImportError as error:
        logger.debug("The C profile hook failed to import (%s), so tracing uses the pure-Python profile function", error)
        return ProfileBackend(recorder)
    if not hasattr(_profilehook, "eval_function_is_default"):
        # Python 3.9 and 3.10.
        return HookBackend(recorder, _profilehook)
    if os.environ.get(PROFILE_HOOK_VARIABLE) == "1":
        logger.debug("%s=1 is set, so tracing uses the C profile function", PROFILE_HOOK_VARIABLE)
        return HookBackend(recorder, _profilehook)
    if not _profilehook.eval_function_is_default():
        logger.debug("Another tool set a frame-evaluation function, so tracing uses the C profile function")
        return HookBackend(recorder, _profilehook)
    return EvalHookBackend(recorder, _profilehook)


def _warn_if_changed(profile_function: object, *, removed_by_tracer: bool, signal_may_remove: bool) -> bool:
    """Log a warning when the current thread's profile function is no longer
    *profile_function*, because the program set its own or removed it, so the calls of
    this thread after that were not recorded. Return true when another profile
    function is set.

    *removed_by_tracer* is true when CPython removed *profile_function* from this
    thread because an exception left it. That removal was logged when it happened,
    so it gets no warning here. *signal_may_remove* is true when a signal handler's
    exception can also remove *profile_function* unnoticed, and the warning then
    names that cause too.
    """
    current = sys.getprofile()
    if current is None:
        if not removed_by_tracer:
            logger.warning(
                "typetrace's profile function was removed from thread %r before tracing stopped, "
                "so the calls of this thread after that were not recorded. The traced program "
                "removed it with sys.setprofile(None) or by stopping a profiler that had replaced it%s",
                threading.current_thread().name,
                _SIGNAL_CAUSE if signal_may_remove else "",
            )
        return False
    if current != profile_function:
        logger.warning(
            "The traced program replaced typetrace's profile function with %r, so its later calls "
            "in this thread were not recorded; on Python 3.9 to 3.11 typetrace and another "
            "profiler cannot run at the same time",
            current,
        )
        return True
    return False


def _check_no_profiler() -> None:
    previous = sys.getprofile()
    if previous is not None:
        raise TracerError(
            f"Another profiler is active (sys.getprofile() returned {previous!r}); "
            "stop it before tracing with typetrace"
        )
