"""Per-call bookkeeping shared by the tracing backends.

A backend turns interpreter events into calls of :meth:`Recorder.start`,
:meth:`Recorder.resumed`, :meth:`Recorder.suspended`, :meth:`Recorder.returned` and
:meth:`Recorder.unwound`. The recorder keeps one :class:`Call` per traced frame,
notes argument types when the call starts, and hands a
:class:`~typetrace.tracing.CallTrace` to the sink when the call ends.
"""

from __future__ import annotations

import builtins
import logging
import opcode
import os
import random
import sys
import threading
import weakref
from types import CodeType, FrameType, FunctionType
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional

from typetrace._qualnames import qualname_of
from typetrace._signals import raise_if_from_signal_handler
from typetrace._source import module_name_for_path
from typetrace._testonly import is_test_module
from typetrace.inference import MAIN_NAMES, TypeInferrer, is_async_yield_wrapper, unwrap_async_yield
from typetrace.tracing import CallTrace
from typetrace.typemodel import NONE, TypeRef, receiver, union

# Code object flags, as the inspect module names them; inlined so that starting
# the tracer does not import inspect.
_CO_OPTIMIZED = 0x1
_CO_VARARGS = 0x4
_CO_VARKEYWORDS = 0x8
_CO_GENERATOR = 0x20
_CO_COROUTINE = 0x80
_CO_ITERABLE_COROUTINE = 0x100
_CO_ASYNC_GENERATOR = 0x200

if TYPE_CHECKING:
    from typetrace.config import Sampling
    from typetrace.tracing import TraceSink, TraceStats

logger = logging.getLogger("typetrace.tracing")

# Kinds of code, from the code object's flags.
FUNCTION = 0
GENERATOR = 1
COROUTINE = 2
ASYNC_GENERATOR = 3

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
# Calls tracked before the recorder looks for generators that ended without an event.
_FIRST_SWEEP = 1000
# Yields of one call whose types are all inferred; later ones only when of a new class.
# Container element types that first change after these yields are missed. The
# values that a generator receives at its yield expressions follow the same rule.
_FULL_YIELDS = 16
#: Marker that the backends pass to Recorder.resumed() where a frame resumed anywhere
#: but at a yield expression, or where they cannot read the value it received.
NOT_SENT: Any = object()
_NONE_CLASS_ID = id(type(None))
# Distinct argument-type keys kept per function; the set starts over when full.
_MAX_SEEN_KEYS = 1024
# Return-value classes whose traces one shared Call keeps; the dict starts over when full.
_MAX_RETURN_CLASSES = 64
# Entries of Recorder.codes from which it first drops the code that only it still
# refers to. Later drops come when the entries have doubled since the last one.
_FIRST_CODE_SWEEP = 4096
# Traces kept per function by the identities of their types; the dict starts over
# when full.
_MAX_KNOWN_TRACES = 8
# Calls of one function with an argument that its class alone does not type, such as
# a list, after which the recorder stops caching the function's argument types.
_UNCACHED_CALLS = 8
# Events after which a suspect frame is checked again. An exception that left the frame
# keeps it alive through its traceback until the handler that caught it finishes.
_SUSPECT_CHECKS = 32


class CodeInfo:
    """The recorder's facts about one traced code object."""

    __slots__ = (
        "code",
        "module",
        "qualname",
        "kind",
        "params",
        "varargs",
        "varkw",
        "packed",
        "calls",
        "active",
        "recent",
        "known_traces",
        "always",
        "key_of",
        "seen_keys",
        "arg_cache",
        "uncached_calls",
        "quiet",
        "paused",
        "quiet_yields",
        "receives_sends",
        "inferrer",
        "receiver",
        "imports",
        "code_bytes",
    )

    def __init__(
        self,
        code: CodeType,
        module: str,
        qualname: str,
        always: bool = False,
        *,
        inferrer: TypeInferrer,
        guard_imports: bool = False,
    ) -> None:
        flags = code.co_flags
        self.code = code
        self.module = module
        self.qualname = qualname
        if flags & _CO_ASYNC_GENERATOR:
            self.kind = ASYNC_GENERATOR
        elif flags & (_CO_COROUTINE | _CO_ITERABLE_COROUTINE):
            self.kind = COROUTINE
        elif flags & _CO_GENERATOR:
            self.kind = GENERATOR
        else:
            self.kind = FUNCTION

        # co_varnames lists the positional parameters (positional-only first), then the
        # keyword-only ones, then *args, then **kwargs, then the other local variables.
        named = code.co_argcount + code.co_kwonlyargcount
        self.params = code.co_varnames[:named]
        position = named
        self.varargs: Optional[str] = None
        self.varkw: Optional[str] = None
        if flags & _CO_VARARGS:
            self.varargs = code.co_varnames[position]
            position += 1
        if flags & _CO_VARKEYWORDS:
            self.varkw = code.co_varnames[position]
        #: The names of *args and **kwargs that the code has.
        self.packed = tuple(name for name in (self.varargs, self.varkw) if name is not None)

        #: Calls started, for sampling.
        self.calls = 0
        #: Calls being recorded that have not ended.
        self.active = 0
        #: The last two distinct traces handed to the sink, the latest first, each with
        #: the argument types of the call it was built for. One attribute, so that
        #: threads read them together.
        self.recent: tuple[tuple[CallTrace, dict[str, TypeRef]], ...] = ()
        #: Traces handed to the sink, each with the argument types of the call it was
        #: built for, by the ids of its return, yield and argument types and the
        #: argument names. Each trace keeps its types alive, so their ids stay theirs.
        self.known_traces: dict[tuple[object, ...], tuple[CallTrace, dict[str, TypeRef]]] = {}
        #: Whether every call is recorded, whatever the sampling.
        self.always = always
        #: Maps the frame's locals at the start of a call to its argument-type key.
        self.key_of = _key_function(self.params)
        #: Argument-type keys seen so far, each with the inferrer's generation when it
        #: was last found valid and weak references to the classes whose ids it holds.
        self.seen_keys: dict[object, tuple[int, tuple[Callable[[], object], ...]]] = {}
        #: Argument-type key to what the calls with these argument classes share, for
        #: calls whose argument classes alone decide their types. ``None`` for code
        #: with ``*args`` or ``**kwargs``, whose key leaves out their elements.
        self.arg_cache: Optional[dict[object, _CachedArguments]] = None if self.packed else {}
        #: Calls whose argument types could not be cached; at _UNCACHED_CALLS the
        #: recorder stops trying for this code.
        self.uncached_calls = 0
        #: Calls since the last call with new argument types.
        self.quiet = 0
        #: Whether sampling ignores the function until the recorder resumes it.
        self.paused = False
        #: Whether the backend may have stopped reporting the yields and resumes of
        #: this code, so that its calls cannot tell when they are suspended.
        self.quiet_yields = False
        #: Whether a call of this code received a value other than None at a yield
        #: expression, so that its resumptions matter after its yields.
        self.receives_sends = False
        #: Infers the types of the function's values.
        self.inferrer = inferrer
        #: Name of the receiver parameter: the first positional parameter of a function
        #: defined in a class body. A return is compared with its value. ``None`` for
        #: other functions.
        self.receiver: Optional[str] = None
        if code.co_argcount and "." in qualname and qualname.rsplit(".", 2)[-2] != "<locals>":
            self.receiver = code.co_varnames[0]
        #: Whether the code has an import statement and its arguments are not read
        #: while builtins.__import__ is replaced (see _LOCALS_REACH_IMPORT).
        self.imports = guard_imports and _has_import(code)
        #: The code's bytecode, read once by the backends that inspect it, because
        #: Python 3.11 builds co_code on each access.
        self.code_bytes: Optional[bytes] = None


# Before Python 3.13 (PEP 667), reading frame.f_locals stores a dict of the locals
# in the frame, and an import statement that runs in the frame later passes that
# dict to builtins.__import__ as its locals argument, where it would be None
# untraced. The interpreter's own import ignores it, but a hook that the program
# installs may not: one that reads locals["__name__"] fails. So on Python 3.12, and
# on 3.11 with the evaluation-function backend, the recorder reads no arguments in
# code with an import statement while builtins.__import__ is not the function it was
# when this module was imported.
# NOTE: with a profile function (3.9 to 3.11), sys.setprofile stores that dict in
# every frame before it calls the profile function, so such a hook still receives it.
_LOCALS_REACH_IMPORT = sys.version_info[:2] == (3, 12)
_ORIGINAL_IMPORT = builtins.__import__
_IMPORT_NAME = opcode.opmap["IMPORT_NAME"]


def _import_is_replaced() -> bool:
    return builtins.__import__ is not _ORIGINAL_IMPORT


def _has_import(code: CodeType) -> bool:
    # Instructions take two bytes, the opcode first, since Python 3.6.
    return _IMPORT_NAME in code.co_code[::2]


# The inferrer's generation when the entry was made, the argument types, and the Call
# object that the calls may share, or None.
_CachedArguments = tuple[int, dict[str, TypeRef], Optional["Call"]]


def _class_references(
    local_values: Mapping[str, object], params: tuple[str, ...]
) -> tuple[Callable[[], object], ...]:
    """Return weak references to the classes of the arguments *params* in
    *local_values*: the classes whose ids an argument-type key holds."""
    references: list[Callable[[], object]] = []
    for name in params:
        try:
            references.append(weakref.ref(type(local_values[name])))
        except (KeyError, TypeError):
            # A class without weak references is taken as alive.
            continue
    return tuple(references)


def _key_function(params: tuple[str, ...]) -> Callable[[Mapping[str, object]], object]:
    """Build the function that computes a call's argument-type key from its locals.

    The key holds the ids of the argument classes, because hashing a class may run
    its metaclass's code. An id that a later class reuses is distinguished by the weak
    references that the recorder keeps beside the key.

    The function is compiled from source with one subscript per parameter, which
    runs about three times faster than mapping over an itemgetter's tuple.
    """
    if len(params) == 1:
        body = f"id(type(local_values[{params[0]!r}]))"
    else:
        body = "(" + "".join(f"id(type(local_values[{name!r}])), " for name in params) + ")"
    namespace: dict[str, Any] = {}
    exec(f"def key_of(local_values):\n    return {body}\n", {"id": id, "type": type}, namespace)  # noqa: S102
    key_of: Callable[[Mapping[str, object]], object] = namespace["key_of"]
    return key_of


class Call:
    """The types noted so far in one call that is being recorded.

    Calls of a plain function (not a generator or coroutine) that have the same
    argument types may share one object, which nothing changes after the call's start.
    """

    __slots__ = (
        "info",
        "arg_types",
        "traces",
        "yield_type",
        "pending_none",
        "suspended",
        "yields",
        "yield_classes",
        "send_type",
        "pending_send",
        "sends",
        "send_classes",
    )

    def __init__(
        self,
        info: CodeInfo,
        arg_types: dict[str, TypeRef],
        suspended: bool = False,
    ) -> None:
        self.info = info
        self.arg_types = arg_types
        #: For a Call that calls share: id() of a return value's class to the
        #: inferrer's generation and the trace of such a call, for classes that alone
        #: decide the type. ``None`` for other calls.
        self.traces: Optional[dict[int, tuple[int, CallTrace]]] = None
        self.suspended = suspended
        self.yield_type: Optional[TypeRef] = None
        # A generator suspended with the value None, where the event could also have
        # been an exception leaving the frame (Python 3.9 to 3.11 report both alike).
        # It counts as a yield once the generator resumes or is still alive.
        self.pending_none = False
        #: Values yielded so far, and the ids of their classes once there was one.
        self.yields = 0
        self.yield_classes: Optional[set[int]] = None
        self.send_type: Optional[TypeRef] = None
        # A generator received None at a yield expression, where the backend could
        # not tell a send of None from throw() or close(). It counts as a send once
        # the generator suspends or returns.
        self.pending_send = False
        #: Values received at yield expressions so far, and the ids of their classes
        #: once there was one.
        self.sends = 0
        self.send_classes: Optional[set[int]] = None

    def wants_yield(self, value: object) -> bool:
        """Return whether the type of the yielded *value* is inferred: always for the
        first yields, then only for a value of a class not yielded before, so that a
        long generator costs little after its start."""
        self.yields += 1
        if self.yield_classes is None:
            self.yield_classes = set()
        return _is_new_class(self.yield_classes, self.yields, value)

    def wants_send(self, value: object) -> bool:
        """Return whether the type of *value*, received at a yield expression, is
        inferred, by the rule of :meth:`wants_yield`."""
        self.sends += 1
        if self.send_classes is None:
            self.send_classes = set()
        return _is_new_class(self.send_classes, self.sends, value)

    def add_yield(self, ref: TypeRef) -> None:
        self.yield_type = _joined(self.yield_type, ref)

    def add_send(self, ref: TypeRef) -> None:
        self.send_type = _joined(self.send_type, ref)

    def settle_send(self) -> None:
        """Count the pending send of None, now that the frame ran on normally."""
        self.pending_send = False
        if self.wants_send(None):
            self.add_send(NONE)


def _is_new_class(classes: set[int], count: int, value: object) -> bool:
    """Return whether the *count*-th value of a kind, *value*, gets its type inferred:
    always while *count* is at most _FULL_YIELDS, and then only when the id of its
    class is not in *classes*. Add the id to *classes*."""
    class_id = id(type(value))
    if count > _FULL_YIELDS and class_id in classes:
        return False
    classes.add(class_id)
    return True


def _joined(current: Optional[TypeRef], ref: TypeRef) -> TypeRef:
    if current is None:
        return ref
    if current == ref:
        return current
    return union((current, ref))


def _is_trace_of(
    entry: tuple[CallTrace, dict[str, TypeRef]],
    arg_types: dict[str, TypeRef],
    return_type: Optional[TypeRef],
    yield_type: Optional[TypeRef],
    send_type: Optional[TypeRef],
) -> bool:
    """Return whether *entry*, a trace with the argument types of the call it was
    built for, has these very return, yield and send type objects, and equal
    argument types. Calls with cached argument types share one dict of them, and
    comparing two dicts of the same objects calls no ``__eq__`` method."""
    trace, traced_arg_types = entry
    return (
        trace.return_type is return_type
        and trace.yield_type is yield_type
        and trace.send_type is send_type
        and (traced_arg_types is arg_types or traced_arg_types == arg_types)
    )


def _has_types(
    entry: tuple[CallTrace, dict[str, TypeRef]],
    arg_types: dict[str, TypeRef],
    return_type: Optional[TypeRef],
    yield_type: Optional[TypeRef],
    send_type: Optional[TypeRef],
) -> bool:
    """Return whether the trace of *entry* has these types, compared by value."""
    trace, traced_arg_types = entry
    return (
        (trace.return_type is return_type or trace.return_type == return_type)
        and (trace.yield_type is yield_type or trace.yield_type == yield_type)
        and (trace.send_type is send_type or trace.send_type == send_type)
        and (traced_arg_types is arg_types or trace.arg_types == arg_types)
    )


def _known_trace(
    info: CodeInfo,
    arg_types: dict[str, TypeRef],
    return_type: Optional[TypeRef],
    yield_type: Optional[TypeRef],
    send_type: Optional[TypeRef],
) -> tuple[CallTrace, dict[str, TypeRef]]:
    """Return the trace of *info* built before from these type objects, or one of its
    last two traces with equal types, with the argument types it was built for, or
    a new one. A function whose calls take more than two forms then still hands the
    sink trace objects that it has built already."""
    key = (id(return_type), id(yield_type), id(send_type), *arg_types, *map(id, arg_types.values()))
    known = info.known_traces
    entry = known.get(key)
    if entry is not None:
        return entry
    # Equal types built as other objects, such as the union of a generator's yields.
    for recent in info.recent:
        if _has_types(recent, arg_types, return_type, yield_type, send_type):
            return recent
    trace = CallTrace(
        info.module, info.qualname, arg_types, return_type, yield_type, send_type=send_type
    )
    if len(known) >= _MAX_KNOWN_TRACES:
        known.clear()
    entry = known[key] = (trace, arg_types)
    return entry


def _finished_frame() -> FrameType:
    return sys._getframe()


def _reference_counts(frames: list[FrameType]) -> list[int]:
    return [sys.getrefcount(frame) for frame in frames]


def _measure_orphan_refcount() -> int:
    # The reference count that _reference_counts() reports for a frame held only by a
    # dict key and the list passed in; it differs between Python versions.
    probe = {_finished_frame(): None}
    return _reference_counts(list(probe))[0]


_ORPHAN_REFCOUNT = _measure_orphan_refcount()

# type.__dict__ as the class's own mapping, even where a metaclass defines __dict__.
_class_dict = type.__dict__["__dict__"].__get__


def _code_refcount(entry: tuple[CodeType, Optional[CodeInfo]]) -> int:
    return sys.getrefcount(entry[0])


def _measure_dead_code_refcount() -> int:
    # The reference count that _code_refcount() reports for a code object that only
    # an entry of Recorder.codes refers to; it differs between Python versions. The
    # code of a nested function would also be a constant of this function's code.
    entry = (compile("pass", "<probe>", "exec"), None)
    return _code_refcount(entry)


_DEAD_CODE_REFCOUNT = _measure_dead_code_refcount()


def _only_recorder_refers(entry: tuple[CodeType, Optional[CodeInfo]]) -> bool:
    """Return whether only the recorder refers to the code of *entry*: its entry in
    Recorder.codes, and its CodeInfo if it has one."""
    return _code_refcount(entry) <= _DEAD_CODE_REFCOUNT + (entry[1] is not None)


def _is_property_deleter(
    code: CodeType, qualname: str, module_globals: Mapping[str, object]
) -> bool:
    """Return whether *code* is the deleter of a property of a class that the module's
    globals reach by *qualname*. No code of the program runs: the lookups read the
    dicts of the module and of the classes."""
    if code.co_argcount != 1 or "." not in qualname or not isinstance(module_globals, dict):
        return False
    *owner_path, name = qualname.split(".")
    owner = dict.get(module_globals, owner_path[0])
    for part in [*owner_path[1:], name]:
        if not isinstance(owner, type):
            return False
        owner = _class_dict(owner).get(part)
    if not isinstance(owner, property):
        return False
    deleter = owner.fdel
    return isinstance(deleter, FunctionType) and deleter.__code__ is code


def _name_of_main(
    module: str, spec_name: Optional[str], filename: Optional[str], main_scripts: Mapping[str, str]
) -> str:
    """Return the name of the module a main script runs as: the module of ``-m``, or
    the name that *main_scripts* gives its file, or the name of its file on the
    import path, or *module* when none of these is known."""
    if spec_name is not None and spec_name not in MAIN_NAMES:
        return spec_name[: -len(".__main__")] if spec_name.endswith(".__main__") else spec_name
    if filename is not None:
        name = main_scripts.get(filename)
        if name is not None:
            return name
        if filename.endswith(".py"):
            return module_name_for_path(filename)
    return module


class Recorder:
    """Notes the types of traced calls and hands each finished call to a sink."""

    def __init__(
        self,
        sink: TraceSink,
        code_filter: Optional[Callable[[CodeType], bool]],
        sampling: Sampling,
        stats: TraceStats,
        main_module: Optional[str] = None,
        *,
        main_scripts: Optional[Mapping[str, str]] = None,
    ) -> None:
        self.sink = sink
        self.code_filter = code_filter
        self.sampling = sampling
        self.stats = stats
        #: The module name recorded for all code and classes of main scripts; when it
        #: is None, each main script's name is read from its globals.
        self.main_module = main_module
        #: Module names to record for main scripts, keyed by ``__file__``. They override
        #: the name from the file's place on the import path, because ``typetrace run
        #: SCRIPT`` names SCRIPT before it adds the script's folder to that path.
        self.main_scripts: Mapping[str, str] = dict(main_scripts or {})
        self.inferrer = TypeInferrer(main_module, test_stand_ins=True, resolve_main=self._main_module_name)
        #: The inferrer for functions of test modules, which record test classes as
        #: they are (see typetrace._testonly).
        self.test_inferrer = TypeInferrer(main_module, resolve_main=self._main_module_name)
        # id() of a value's type to the type marked as the receiver's, so that repeated
        # calls reuse one reference. The entry refers to the value's type, which keeps
        # the id from being reused while the entry exists.
        self._receiver_types: dict[int, TypeRef] = {}
        #: Whether reading a frame's locals may change what an import hook receives,
        #: see _LOCALS_REACH_IMPORT. The backend sets it before tracing starts.
        self.guard_import_locals = _LOCALS_REACH_IMPORT
        #: Traced frames whose calls have not ended. The C profile hook of Python 3.9
        #: to 3.11 keeps references to this dict and to self.suspects, so both are
        #: cleared, never replaced.
        self.calls: dict[FrameType, Call] = {}
        #: id() of the receiver argument (see CodeInfo.receiver) of each open call that
        #: has one, at the call's start. While the parameter still refers to it, no
        #: other object has this id. Only the id is kept, so the recorder holds no
        #: reference to the object.
        self.receiver_ids: dict[FrameType, int] = {}
        # id(code) -> (code, its info or None when it is not traced). The code object
        # is kept so that its id is not reused while the entry exists.
        self.codes: dict[int, tuple[CodeType, Optional[CodeInfo]]] = {}
        self._codes_sweep_at = _FIRST_CODE_SWEEP
        self._drop_lock = threading.Lock()
        #: Frames whose last event may have been an exception leaving them, each with
        #: the number of checks left before the recorder waits for the next sweep.
        self.suspects: dict[FrameType, int] = {}
        self._random = random.Random()
        self._sweep_at = _FIRST_SWEEP
        #: Functions paused by sampling, until resume_paused().
        self.paused: list[CodeInfo] = []
        # Serializes pausing, which the traced threads do, with resume_paused(), which
        # the session's resume thread also calls.
        self._pause_lock = threading.Lock()
        #: Called after paused functions resume; the backend sets it to re-enable the
        #: events it disabled for them.
        self.on_resume: Optional[Callable[[], None]] = None
        # (module, __spec__.name, __file__) of a main script to the module name
        # resolved for it, when main_module is None. The key reads the globals' values
        # rather than their identity, because pdb runs the program in the globals
        # dict of its own __main__ after clearing it.
        self._main_names: dict[tuple[str, Optional[str], Optional[str]], str] = {}
        self._errors_lock = threading.Lock()

    # Code selection

    def code_info(self, code: CodeType, frame: FrameType) -> Optional[CodeInfo]:
        """Return the info of *code*, or ``None`` when its calls are not traced."""
        entry = self.codes.get(id(code))
        if entry is not None:
            return entry[1]
        info = None
        if self._accepts(code):
            module = frame.f_globals.get("__name__")
            if not isinstance(module, str):
                module = "<unknown>"
            elif module in MAIN_NAMES:
                module = self._main_module_name(module, frame.f_globals)
            qualname = qualname_of(code, frame.f_globals)
            # A property's deleter has the qualified name of its getter, and its
            # traces, returning None, would join the getter's.
            if not _is_property_deleter(code, qualname, frame.f_globals):
                inferrer = self.test_inferrer if is_test_module(module) else self.inferrer
                always = self.sampling.records_always(f"{module}:{qualname}")
                info = CodeInfo(
                    code,
                    module,
                    qualname,
                    always,
                    inferrer=inferrer,
                    guard_imports=self.guard_import_locals,
                )
            # New code often means a new phase of the program, with new callers.
            if self.paused:
                self.resume_paused()
        if len(self.codes) >= self._codes_sweep_at:
            self._drop_dead_code()
        # Another thread may have stored an info for the code meanwhile, and calls
        # already started with it, so the first one stored stays.
        return self.codes.setdefault(id(code), (code, info))[1]

    def _drop_dead_code(self) -> None:
        """Drop the entries of code objects that only the recorder still refers to.

        Such code comes from ``exec()``, ``namedtuple()`` or a dataclass, made for
        objects that the program no longer uses. Without the drop, code made while
        the program runs would accumulate. A function object, a running frame or an
        enclosing code object refers to each code that can still run.

        One thread drops at a time, and the others go on without waiting. Only the
        dropping thread removes entries, so the code of an entry that it found dead
        stays alive, and its id taken, until it removes the entry.
        """
        if not self._drop_lock.acquire(blocking=False):
            return
        try:
            while True:
                dropped = False
                for key, entry in list(self.codes.items()):
                    if _only_recorder_refers(entry):
                        self.codes.pop(key, None)
                        dropped = True
                # The constants of a dropped code object, such as the code of the
                # functions that a module or a class body defines, may have no other
                # referrer now.
                if not dropped:
                    break
            self._codes_sweep_at = max(_FIRST_CODE_SWEEP, 2 * len(self.codes))
        finally:
            self._drop_lock.release()

    def _main_module_name(self, module: str, module_globals: Mapping[str, object]) -> str:
        """Name the module that a program's main script runs as, from its globals.

        One process may run several main scripts: ``python -m coverage run prog.py``
        runs coverage's ``__main__``, which runs prog.py as a new ``__main__``.
        """
        if self.main_module:
            return self.main_module
        spec = module_globals.get("__spec__")
        spec_name = getattr(spec, "name", None)
        filename = module_globals.get("__file__")
        key = (
            module,
            spec_name if isinstance(spec_name, str) else None,
            filename if isinstance(filename, str) else None,
        )
        name = self._main_names.get(key)
        if name is None:
            name = _name_of_main(*key, self.main_scripts)
            self._main_names[key] = name
        return name

    def _accepts(self, code: CodeType) -> bool:
        # Module and class bodies lack CO_OPTIMIZED; lambdas, comprehensions and
        # generator expressions have names like "<lambda>".
        if not code.co_flags & _CO_OPTIMIZED or code.co_name.startswith("<"):
            return False
        if os.path.abspath(code.co_filename).startswith(_PACKAGE_DIR):
            return False
        if self.code_filter is None:
            return True
        try:
            return bool(self.code_filter(code))
        except Exception as error:  # noqa: BLE001 - a user filter must not break the program
            self.note_error("code filter", error)
            return False

    # Events

    def start(self, frame: FrameType, info: CodeInfo) -> bool:
        """Start recording the call running in *frame* if sampling selects it.

        Returns false when the function is paused, so that the backend may stop
        reporting its calls until :meth:`resume_paused`.
        """
        info.calls += 1
        sampling = self.sampling
        if not (info.always or sampling.all_calls):
            if info.paused:
                return False
            if info.calls > sampling.first_calls:
                if not self._selects_later_call(frame, info, sampling):
                    return not info.paused
            elif sampling.new_types:
                self._is_new_key(frame, info)
        if len(self.calls) >= self._sweep_at:
            self.sweep()
        # Without resume events, a call counts as possibly suspended from its start,
        # so that sweep() checks it. A frame that still runs has a reference from the
        # interpreter, so sweep() leaves it alone.
        if info.imports and _import_is_replaced():
            # Arguments are not read, so the import hook gets no locals dict.
            call = Call(info, {}, info.quiet_yields)
        else:
            # Read once: on Python 3.12 and older, each read copies the fast locals.
            local_values = frame.f_locals
            arg_types = None
            key = None
            cache = info.arg_cache
            if cache is not None:
                try:
                    key = info.key_of(local_values)
                except KeyError:
                    entry = None
                else:
                    entry = cache.get(key)
                if entry is not None and entry[0] == info.inferrer.generation:
                    shared_call = entry[2]
                    if shared_call is not None:
                        # The key read every parameter, the receiver included.
                        if info.receiver is not None:
                            self.receiver_ids[frame] = id(local_values[info.receiver])
                        self.calls[frame] = shared_call
                        info.active += 1
                        return True
                    arg_types = entry[1]
            if arg_types is None:
                arg_types = self._argument_types(local_values, info, key)
            receiver_name = info.receiver
            if receiver_name is not None and receiver_name in local_values:
                self.receiver_ids[frame] = id(local_values[receiver_name])
            call = Call(info, arg_types, info.quiet_yields)
        self.calls[frame] = call
        info.active += 1
        return True

    def _selects_later_call(self, frame: FrameType, info: CodeInfo, sampling: Sampling) -> bool:
        if sampling.new_types and self._is_new_key(frame, info):
            info.quiet = 0
            return True
        info.quiet += 1
        if self._random.random() < sampling.rate:
            return True
        if sampling.pause_after is not None and info.quiet >= sampling.pause_after:
            with self._pause_lock:
                info.paused = True
                self.paused.append(info)
        return False

    def _is_new_key(self, frame: FrameType, info: CodeInfo) -> bool:
        if info.imports and _import_is_replaced():
            return False
        # Before 3.13 each read of f_locals copies the frame's variables into a dict.
        local_values = frame.f_locals
        try:
            key = info.key_of(local_values)
        except KeyError:
            # A parameter deleted before the event; such calls are not keyed.
            return False
        seen = info.seen_keys
        generation = info.inferrer.generation
        entry = seen.get(key)
        if entry is not None:
            if entry[0] == generation:
                return False
            # A class died since, and a class made later may have taken its id.
            if all(alive() is not None for alive in entry[1]):
                seen[key] = (generation, entry[1])
                return False
        if len(seen) >= _MAX_SEEN_KEYS:
            seen.clear()
        seen[key] = (generation, _class_references(local_values, info.params))
        return True

    def resume_paused(self) -> None:
        """Watch the paused functions again for ``resume_calls`` calls each."""
        pause_after = self.sampling.pause_after or 0
        window = self.sampling.resume_calls
        with self._pause_lock:
            paused, self.paused = self.paused, []
            for info in paused:
                info.quiet = max(0, pause_after - window)
                info.paused = False
        if paused and self.on_resume is not None:
            self.on_resume()

    def _argument_types(
        self, local_values: Mapping[str, Any], info: CodeInfo, key: object
    ) -> dict[str, TypeRef]:
        # *key* is the argument-type key of the call, or None when it is not known.
        # Reads the generation first, so that a class that dies meanwhile makes the
        # cached entry stale.
        generation = info.inferrer.generation
        type_of = info.inferrer.type_of
        arg_types: dict[str, TypeRef] = {}
        for name in info.params:
            if name in local_values:
                arg_types[name] = type_of(local_values[name])
        # *args and **kwargs are typed by their elements; with no elements there is
        # nothing to record.
        for packed in info.packed:
            if packed in local_values:
                element_type = info.inferrer.element_type(local_values[packed])
                if element_type is not None:
                    arg_types[packed] = element_type
        if info.arg_cache is not None:
            self._cache_argument_types(local_values, info, arg_types, generation, key)
        return arg_types

    def _cache_argument_types(
        self,
        local_values: Mapping[str, Any],
        info: CodeInfo,
        arg_types: dict[str, TypeRef],
        generation: int,
        key: object,
    ) -> None:
        cache = info.arg_cache
        assert cache is not None
        plain_type = info.inferrer.plain_type
        cacheable = len(arg_types) == len(info.params)
        for name in info.params:
            if not cacheable:
                break
            cacheable = plain_type(local_values[name]) is arg_types[name]
        if not cacheable:
            # Containers, classes and functions are typed by more than their class.
            info.uncached_calls += 1
            if info.uncached_calls >= _UNCACHED_CALLS:
                info.arg_cache = None
            return
        if len(cache) >= _MAX_SEEN_KEYS:
            cache.clear()
        # A call of a plain function is never changed after its start, so all such
        # calls with these argument classes share one object.
        shared_call = None
        if info.kind == FUNCTION:
            shared_call = Call(info, arg_types)
            shared_call.traces = {}
        if key is None:
            key = info.key_of(local_values)
        cache[key] = (generation, arg_types, shared_call)

    def resumed(self, call: Call, sent: object = NOT_SENT, certain: bool = True) -> None:
        """Note that a suspended generator or coroutine runs again.

        *sent* is the value that the frame received as the value of a yield
        expression, or :data:`NOT_SENT` where it resumed elsewhere or the backend
        cannot read it. *certain* is false when a *sent* of ``None`` may also have been
        pushed by ``throw()`` or ``close()``, as Python 3.9 to 3.11 do.
        """
        call.suspended = False
        if call.pending_none:
            call.pending_none = False
            call.add_yield(NONE)
        if call.pending_send:
            call.settle_send()
        if sent is NOT_SENT:
            return
        if sent is None:
            classes = call.send_classes
            if classes is not None and _NONE_CLASS_ID in classes:
                # None has one type, which the send type has already.
                return
            if not certain:
                call.pending_send = True
                return
        if call.wants_send(sent):
            info = call.info
            if sent is not None:
                info.receives_sends = True
            call.add_send(info.inferrer.type_of(sent))

    def suspended(self, frame: FrameType, call: Call, value: object, certain: bool) -> None:
        """Note that *frame* suspended with *value*: a yield, or an ``await`` that passed
        *value* up to the event loop.

        *certain* is false when the event may also have been an exception leaving the
        frame, which Python 3.9 to 3.11 report like a yield of ``None``.
        """
        call.suspended = True
        if call.pending_send and (certain or value is not None):
            call.settle_send()
        kind = call.info.kind
        if kind == GENERATOR:
            if value is not None:
                if call.wants_yield(value):
                    call.add_yield(call.info.inferrer.type_of(value))
                return
            if certain:
                call.add_yield(NONE)
                return
            call.pending_none = True
        elif kind == ASYNC_GENERATOR and is_async_yield_wrapper(value):
            yielded = unwrap_async_yield(value)
            if call.wants_yield(yielded):
                call.add_yield(call.info.inferrer.type_of(yielded))
            return
        if value is None and not certain:
            self.suspects[frame] = _SUSPECT_CHECKS

    def returned(self, frame: FrameType, value: object) -> None:
        """Record the call in *frame*, which returned *value*."""
        call = self.calls.pop(frame, None)
        if call is None:
            return
        if call.pending_send:
            call.settle_send()
        info = call.info
        # The value is the receiver, or an instance of exactly the receiver class as
        # cls() in a classmethod returns.
        receiver_id = self.receiver_ids.pop(frame, None) if info.receiver is not None else None
        is_receiver = receiver_id is not None and (id(value) == receiver_id or id(type(value)) == receiver_id)
        traces = call.traces
        if traces is not None and not is_receiver:
            entry = traces.get(id(type(value)))
            if entry is not None and entry[0] == info.inferrer.generation:
                info.active -= 1
                self._hand_over(entry[1])
                return
        generation = info.inferrer.generation
        return_type = info.inferrer.type_of(value)
        if is_receiver:
            marked = self._receiver_types.get(id(return_type))
            return_type = marked if marked is not None else self._receiver_type(return_type)
        trace = self.emit(call, return_type)
        if traces is not None and not is_receiver and info.inferrer.plain_type(value) is return_type:
            if len(traces) >= _MAX_RETURN_CLASSES:
                traces.clear()
            traces[id(type(value))] = (generation, trace)

    def _receiver_type(self, ref: TypeRef) -> TypeRef:
        """Mark *ref*, the type of a returned value that was the receiver, and cache it."""
        if len(self._receiver_types) >= _MAX_SEEN_KEYS:
            self._receiver_types.clear()
        marked = self._receiver_types[id(ref)] = receiver(ref)
        return marked

    def unwound(self, frame: FrameType) -> None:
        """Record the call in *frame*, which an exception left."""
        call = self.calls.pop(frame, None)
        if call is not None:
            if call.info.receiver is not None:
                self.receiver_ids.pop(frame, None)
            if call.pending_none:
                call.pending_none = False
            call.pending_send = False
            self.emit(call, None)

    def emit(self, call: Call, return_type: Optional[TypeRef]) -> CallTrace:
        """Hand the trace of *call* to the sink, and return it."""
        info = call.info
        info.active -= 1
        if call.pending_none:
            call.add_yield(NONE)
        # A function called again with the types of a trace built before reuses that
        # trace, which saves building a CallTrace, and lets the writer count the call
        # by the object's id. The last two traces are checked first, so that a
        # function whose return type alternates between two types finds its traces
        # without building a key.
        recent = info.recent
        arg_types = call.arg_types
        yield_type = call.yield_type
        send_type = call.send_type
        if recent and _is_trace_of(recent[0], arg_types, return_type, yield_type, send_type):
            trace = recent[0][0]
        elif len(recent) == 2 and _is_trace_of(
            recent[1], arg_types, return_type, yield_type, send_type
        ):
            trace = recent[1][0]
            info.recent = (recent[1], recent[0])
        else:
            entry = _known_trace(info, arg_types, return_type, yield_type, send_type)
            trace = entry[0]
            info.recent = (entry, *[other for other in recent if other is not entry][:1])
        self._hand_over(trace)
        return trace

    def _hand_over(self, trace: CallTrace) -> None:
        try:
            self.sink.record(trace)
        except Exception as error:  # noqa: BLE001 - a failing sink must not break the program
            self.note_error("sink", error)
            return
        self.stats.calls_recorded += 1

    # Calls without a final event

    def check_suspects(self) -> None:
        """Record the suspect frames that have ended, because no generator references
        them any more."""
        candidates = self._due_suspects()
        # The suspects dict is one more reference to each candidate.
        self._release_orphans(candidates, extra_references=1)
        for frame in candidates:
            if frame not in self.calls:
                self.suspects.pop(frame, None)

    def _due_suspects(self) -> list[FrameType]:
        # A function of its own, so that no loop variable outlives it and adds a
        # reference to a frame that is about to be counted.
        candidates = []
        for frame, checks_left in list(self.suspects.items()):
            call = self.calls.get(frame)
            if call is None or not call.suspended or checks_left <= 1:
                del self.suspects[frame]
            else:
                self.suspects[frame] = checks_left - 1
                candidates.append(frame)
        return candidates

    def sweep(self) -> None:
        """Record suspended calls whose generator or coroutine is gone.

        Python 3.13 closes a generator suspended outside any ``try`` block without an
        event, so only the frame's reference count shows that it ended.
        """
        # list() copies the items in one step, so other threads may change the dict.
        suspended = [frame for frame, call in list(self.calls.items()) if call.suspended]
        self._release_orphans(suspended)
        self._sweep_at = max(_FIRST_SWEEP, 2 * len(self.calls))

    def _release_orphans(self, frames: list[FrameType], extra_references: int = 0) -> None:
        # Besides self.calls and *frames*, which the calibration also counts, only
        # *extra_references* known references to each frame may exist.
        counts = _reference_counts(frames)
        for frame, count in zip(frames, counts):
            if count <= _ORPHAN_REFCOUNT + extra_references:
                self.unwound(frame)

    def finish_all(self) -> None:
        """Record every call still open: suspended generators and coroutines, and calls
        still running in other threads, with the types seen so far."""
        self.suspects.clear()
        self.sweep()
        calls = list(self.calls.values())
        self.calls.clear()
        self.receiver_ids.clear()
        for call in calls:
            self.emit(call, None)
        self.codes.clear()

    def forget_calls(self) -> None:
        """Drop the open calls, which in a child made by :func:`os.fork` belong to the
        parent; the parent records them."""
        self.suspects.clear()
        self.calls.clear()
        self.receiver_ids.clear()
        for _code, info in list(self.codes.values()):
            if info is not None:
                info.active = 0

    # Errors

    def add_errors(self, kind: str, count: int) -> None:
        """Count *count* errors of *kind* that a C profile hook caught, and log them."""
        with self._errors_lock:
            errors = self.stats.errors
            errors[kind] = errors.get(kind, 0) + count
        logger.warning("Errors in the tracer (%s, %d times); the traced program continued.", kind, count)

    def note_error(self, where: str, error: BaseException) -> None:
        """Count an error caught in the tracer and log the first one of each kind.

        Raises:
            BaseException: *error* itself, when a signal handler of the program raised
                it, so that it reaches the program as it would untraced.
        """
        try:
            raise_if_from_signal_handler(error)
            kind = f"{where}: {type(error).__name__}"
            with self._errors_lock:
                errors = self.stats.errors
                errors[kind] = errors.get(kind, 0) + 1
                first = errors[kind] == 1
            if first:
                logger.warning(
                    "Error in the tracer (%s); the traced program continues. "
                    "Later errors of this kind are only counted.",
                    kind,
                    exc_info=error,
                )
        except RecursionError as failure:
            # Near the program's recursion limit, the check and the log call fail too,
            # and their exception would reach the program in place of its own.
            if failure is error:
                raise
