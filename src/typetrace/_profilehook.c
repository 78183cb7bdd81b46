/* A profile function in C for Python 3.9 to 3.11, and a frame-evaluation function
 * for 3.11 that emulates its events: the fast path of typetrace's backends in
 * typetrace._profiling. The evaluation function is described where it is defined,
 * as is the one of 3.9 and 3.10 that gives new threads the profile function.
 *
 * A Hook object is installed with PyEval_SetProfile in each traced thread. It drops
 * the c_call, c_return and c_exception events, and the return events and
 * resumptions of frames without an open recorded call, at which the handler has
 * nothing to do. It also
 * drops the call events of code that the Python side marked as skipped: code that
 * is not traced, and functions that sampling paused, except when the frame is one of
 * their recorded calls that are still open. After enable_fast_calls(), it starts and
 * returns some calls of plain functions itself, as _fastcalls.h describes. After
 * enable_fast_yields(), it handles itself the resumptions of recorded generator and
 * coroutine calls, and their suspensions whose value the recorder needs no type of
 * (see FastYields). Every other call and return event goes to the Python handler,
 * where all of the tracing logic is. The handler returns SKIP_UNTRACED or SKIP_PAUSED to mark the code of the
 * frame, or 0 to leave it as it is. While the recorder has suspect frames, every
 * call and return event goes to the handler, and none takes the fast path.
 *
 * A C profile function gets the return event of a frame that an exception leaves
 * with a NULL argument, where a Python profile function gets None, as for a return
 * or yield of None. The hook passes such an event to the handler as "unwind", and
 * other return events as "return", so the handler can tell them apart.
 *
 * The marks live in the code objects' co_extra slots (PEP 523), tagged with the value
 * of a counter, the epoch. A new Hook (a new trace session) and Hook.resume() each
 * start a new epoch. A SKIP_UNTRACED mark is valid from the epoch its Hook started in.
 * A SKIP_PAUSED mark is valid only in the epoch it was made in, so resume() unmarks
 * every paused function at once. A mark is tagged with the epoch read before the
 * handler ran, so a resume() that another thread ran meanwhile makes it stale.
 *
 * The module keeps its state in C globals and supports one interpreter per process;
 * the GIL serializes all access to them.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <frameobject.h>
#include <stdint.h>

#if PY_VERSION_HEX >= 0x030B0000
#define Py_BUILD_CORE 1
#include <internal/pycore_code.h>
#include <internal/pycore_frame.h>
#endif
#include <opcode.h>
#if defined(__linux__)
#include <pthread.h>
#endif

#if PY_VERSION_HEX < 0x03090000 || PY_VERSION_HEX >= 0x030C0000
#error "typetrace._profilehook is for CPython 3.9 to 3.11"
#endif

#include "_fastcalls.h"

/* Statuses the handler returns, also stored in the low bits of a co_extra mark. */
#define SKIP_UNTRACED 1
#define SKIP_PAUSED 2
#define STATUS_BITS 2
#define STATUS_MASK ((uintptr_t)((1 << STATUS_BITS) - 1))

/* Index of typetrace's slot in co_extra, or -1 before the module's init. */
static Py_ssize_t extra_index = -1;
/* The current epoch. Each mark is tagged with the epoch it was made in. */
static uintptr_t current_epoch = 0;
/* The event names passed to the handler. */
static PyObject *call_event = NULL;
/* The frame returned or yielded the argument. */
static PyObject *return_event = NULL;
/* An exception left the frame. */
static PyObject *unwind_event = NULL;
/* A return event that Python code passed to Hook.__call__ with the value None: a
   return or yield of None, or an exception leaving the frame. */
static PyObject *return_or_unwind_event = NULL;
#if PY_VERSION_HEX < 0x030B0000
/* The key of the mark in thread-state dicts that the thread watch of 3.9 and 3.10
   reads, set at the module's init. */
static PyObject *watched_key = NULL;
#endif

/* The fast path of the suspensions and resumptions of recorded generator and
 * coroutine calls, which does what Recorder.resumed() and Recorder.suspended() of
 * typetrace._recorder do in the cases below, and leaves every other case to the
 * handler:
 * - a resumption of a call whose pending_none is False: suspended becomes False.
 *   Where the frame receives a value other than None at a yield expression (see
 *   sent_value_of), the call must have received full_yields values there, one of
 *   the value's class among them. The value is then counted in the Call's sends.
 *   Where it receives None, pending_send becomes True, as the recorder makes it for
 *   a None that throw() may have pushed, unless None is among the classes received.
 *   A pending_send that is True also becomes False when None is among them;
 * - a coroutine that suspends with a value other than None, which it passes up to
 *   the event loop: suspended becomes True;
 * - a generator that yields a value other than None after its first full_yields
 *   yields, when the id of the value's class is in the Call's yield_classes and its
 *   pending_send is False: the yield is counted, and suspended becomes True.
 * It reads and writes the slots of Call and CodeInfo objects at offsets found when
 * it is set up, and checks each object's type first. */
typedef struct {
    /* The recorder's CodeInfo and Call classes, or NULL while the fast path is off. */
    PyTypeObject *info_type;
    PyTypeObject *call_type;
    /* Offsets of the slots used. */
    Py_ssize_t info_kind;
    Py_ssize_t call_info;
    Py_ssize_t call_suspended;
    Py_ssize_t call_pending_none;
    Py_ssize_t call_yields;
    Py_ssize_t call_yield_classes;
    Py_ssize_t call_pending_send;
    Py_ssize_t call_sends;
    Py_ssize_t call_send_classes;
    /* Yields of a call whose types the recorder always infers. */
    Py_ssize_t full_yields;
    /* id(type(None)), or NULL while the fast path is off. */
    PyObject *none_class_id;
    /* CodeInfo.kind of generators and of coroutines. */
    long generator_kind;
    long coroutine_kind;
    /* Events handled on this fast path. */
    unsigned long long resumes;
    unsigned long long suspensions;
} FastYields;

typedef struct {
    PyObject_HEAD
    /* handler(frame, event, arg) -> int, called for the events not skipped. */
    PyObject *handler;
    /* The recorder's open calls, {frame: Call}. */
    PyObject *calls;
    /* The recorder's suspects: while not empty, every call and return event goes to
       the handler, which counts the events to check the suspect frames. */
    PyObject *suspects;
    /* Errors raised by calls of the handler, as {exception class name: count}. */
    PyObject *errors;
    /* passes_on(exception) -> bool, or NULL: whether an Exception that the handler
       raised goes on to the traced program instead of being counted. */
    PyObject *passes_on;
    /* The fast path of calls with cached types, off until enable_fast_calls(). */
    FastCalls fast;
    /* The fast path of suspensions and resumptions, off until enable_fast_yields(). */
    FastYields yields;
    /* The epoch this hook started in. Older SKIP_UNTRACED marks are stale. */
    uintptr_t first_epoch;
    /* Events passed to the handler. */
    unsigned long long dispatched;
    /* Cleared by close(). A closed hook removes itself at its thread's next event. */
    int active;
} HookObject;

static PyTypeObject HookType;

static PyCodeObject *
borrowed_code(PyFrameObject *frame)
{
#if PY_VERSION_HEX < 0x030B0000
    return frame->f_code;
#else
    /* PyFrame_GetCode returns a new reference; the frame keeps the code alive. */
    PyCodeObject *code = PyFrame_GetCode(frame);
    Py_DECREF(code);
    return code;
#endif
}

/* Return the status stored in the mark of *code*, or 0 when there is no mark or
   it is stale. */
static uintptr_t
code_status(HookObject *hook, PyObject *code)
{
    void *extra = NULL;
    /* Fails only for an object that is not a code object. */
    if (_PyCode_GetExtra(code, extra_index, &extra) < 0) {
        PyErr_Clear();
        return 0;
    }
    uintptr_t mark = (uintptr_t)extra;
    uintptr_t status = mark & STATUS_MASK;
    uintptr_t epoch = mark >> STATUS_BITS;
    if (status == SKIP_UNTRACED && epoch >= hook->first_epoch) {
        return status;
    }
    if (status == SKIP_PAUSED && epoch == current_epoch) {
        return status;
    }
    return 0;
}

static uintptr_t
marked_status(HookObject *hook, PyFrameObject *frame)
{
    return code_status(hook, (PyObject *)borrowed_code(frame));
}

/* Return whether *frame* has an open recorded call, or 1 when the lookup fails.
   Store the call, borrowed, in *call*, or NULL when there is none or the lookup
   failed. */
static int
find_open_call(HookObject *hook, PyFrameObject *frame, PyObject **call)
{
    /* Frames hash by identity, so the lookup runs no Python code. */
    *call = PyDict_GetItemWithError(hook->calls, (PyObject *)frame);
    if (*call == NULL && PyErr_Occurred()) {
        PyErr_Clear();
        return 1;
    }
    return *call != NULL;
}

static int
has_open_call(HookObject *hook, PyFrameObject *frame)
{
    PyObject *call;
    return find_open_call(hook, frame, &call);
}

static void
remove_hook(void)
{
#if PY_VERSION_HEX < 0x030B0000
    /* typetrace, not the program, removes the hook, so the thread watch of a later
       session may give the thread its hook. */
    PyThreadState *tstate = PyThreadState_Get();
    if (tstate->dict != NULL && watched_key != NULL && PyDict_DelItem(tstate->dict, watched_key) < 0) {
        PyErr_Clear();
    }
#endif
    /* An audit hook may reject the sys.setprofile event. PyEval_SetProfile() would
       print that exception, and it must not reach the traced program either. */
    if (_PyEval_SetProfile(PyThreadState_Get(), NULL, NULL) < 0) {
        PyErr_Clear();
    }
}

static void
count_error(HookObject *hook)
{
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    const char *name = type != NULL ? ((PyTypeObject *)type)->tp_name : "unknown";
    PyObject *key = PyUnicode_FromString(name);
    if (key != NULL) {
        PyObject *count = PyDict_GetItemWithError(hook->errors, key);
        if (count != NULL || !PyErr_Occurred()) {
            long previous = count != NULL ? PyLong_AsLong(count) : 0;
            PyObject *updated = PyLong_FromLong(previous + 1);
            if (updated != NULL) {
                PyDict_SetItem(hook->errors, key, updated);
                Py_DECREF(updated);
            }
        }
        Py_DECREF(key);
    }
    /* A failure to count (no memory) is dropped as well. */
    PyErr_Clear();
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(traceback);
}

/* Return whether the Exception that is set goes on to the traced program, as
   hook->passes_on decides. The exception stays set. An error of passes_on itself is
   dropped, and the exception is then counted. */
static int
passes_on(HookObject *hook)
{
    if (hook->passes_on == NULL) {
        return 0;
    }
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyErr_NormalizeException(&type, &value, &traceback);
    if (value != NULL && traceback != NULL) {
        PyException_SetTraceback(value, traceback);
    }
    PyObject *verdict = PyObject_CallOneArg(hook->passes_on, value != NULL ? value : Py_None);
    int passes = verdict != NULL && PyObject_IsTrue(verdict) == 1;
    Py_XDECREF(verdict);
    PyErr_Clear();
    PyErr_Restore(type, value, traceback);
    return passes;
}

/* Settle the exception that the handler or the fast path raised. Return -1, with
   the exception still set, when it goes on to the traced program, as it would from
   a profile function written in Python. That is an exception that is not an
   Exception, such as the KeyboardInterrupt of a signal that arrived while the
   handler ran, or one that passes_on accepts, such as the exception of a program's
   signal handler. Count and clear any other exception, and return 0. */
static int
settle_exception(HookObject *hook)
{
    if (PyErr_ExceptionMatches(PyExc_Exception) && !passes_on(hook)) {
        count_error(hook);
        return 0;
    }
    return -1;
}

/* Pass one event to the handler and store the mark it returns. Returns -1 for an
   exception that goes on to the traced program, as settle_exception decides. */
static int
dispatch(HookObject *hook, PyFrameObject *frame, PyObject *event, PyObject *arg)
{
    uintptr_t epoch = current_epoch;
    PyObject *args[3] = {(PyObject *)frame, event, arg != NULL ? arg : Py_None};
    int outcome = 0;
    hook->dispatched++;
    /* The handler may end the session, which drops the thread's reference to the
       hook. */
    Py_INCREF(hook);
    PyObject *result = PyObject_Vectorcall(hook->handler, args, 3, NULL);
    if (result == NULL) {
        outcome = settle_exception(hook);
    }
    else {
        long status = PyLong_Check(result) ? PyLong_AsLong(result) : 0;
        if (status == -1 && PyErr_Occurred()) {
            count_error(hook);
        }
        else if (status == SKIP_UNTRACED || status == SKIP_PAUSED) {
            uintptr_t mark = (epoch << STATUS_BITS) | (uintptr_t)status;
            if (_PyCode_SetExtra((PyObject *)borrowed_code(frame), extra_index, (void *)mark) < 0) {
                count_error(hook);
            }
        }
        Py_DECREF(result);
    }
    Py_DECREF(hook);
    return outcome;
}

/* Return a new reference to the locals dict of *frame*, made from its fast locals
   as reading frame.f_locals in Python makes it, or NULL on an error, which is
   cleared. */
static PyObject *
locals_of(PyFrameObject *frame)
{
#if PY_VERSION_HEX >= 0x030B0000
    PyObject *locals = PyFrame_GetLocals(frame);
#else
    PyObject *locals = NULL;
    if (PyFrame_FastToLocalsWithError(frame) == 0) {
        locals = frame->f_locals;
        Py_XINCREF(locals);
    }
#endif
    if (locals == NULL || !PyDict_CheckExact(locals)) {
        PyErr_Clear();
        Py_XDECREF(locals);
        return NULL;
    }
    return locals;
}

static PyObject *
read_local(PyObject *locals, Py_ssize_t Py_UNUSED(index), PyObject *name)
{
    /* The keys are the code's variable names, str objects, so the lookup runs no
       Python code. */
    PyObject *value = PyDict_GetItemWithError(locals, name);
    Py_XINCREF(value);
    return value;
}

/* Read the argument of parameter *index* from the fast locals of *frame*, a frame
   whose code has no cell parameters. Parameters take the first fast locals, in the
   order of co_varnames. */
static PyObject *
read_parameter(PyObject *frame, Py_ssize_t index, PyObject *Py_UNUSED(name))
{
#if PY_VERSION_HEX >= 0x030B0000
    PyObject *value = ((PyFrameObject *)frame)->f_frame->localsplus[index];
#else
    PyObject *value = ((PyFrameObject *)frame)->f_localsplus[index];
#endif
    Py_XINCREF(value);
    return value;
}

/* Return whether read_parameter() reads the first *count* parameters of *code*:
   they are parameters of the code, and none is a cell variable, which a closure
   uses. On 3.11 the fast local of a cell variable contains the argument until
   MAKE_CELL runs and the cell after that. On 3.9 and 3.10 only the cell contains
   the argument. */
static int
reads_fast_locals(PyCodeObject *code, Py_ssize_t count)
{
    if (count > (Py_ssize_t)code->co_argcount + code->co_kwonlyargcount) {
        return 0;
    }
#if PY_VERSION_HEX >= 0x030B0000
    for (Py_ssize_t i = 0; i < count; i++) {
        if (_PyLocals_GetKind(code->co_localspluskinds, (int)i) & CO_FAST_CELL) {
            return 0;
        }
    }
    return 1;
#else
    return code->co_cell2arg == NULL;
#endif
}

#if PY_VERSION_HEX >= 0x030B0000
/* C stack, in bytes, that frames with events of the 3.11 evaluation function may
   use, or an eighth of a smaller stack than 8 MiB. Below that a frame runs with the
   default evaluation function. Each frame with events takes about twice the C stack
   of an untraced frame that a C function calls (functools.reduce, a generator's
   next()), so that the deeper frames of such a recursion have almost the whole
   stack left, as untraced. */
#define TRACED_STACK (1024 * 1024)
#else
/* C stack left, in bytes, below which a call event of 3.9 and 3.10 raises
   RecursionError, or a quarter of a smaller stack than 1 MiB. */
#define STACK_RESERVE (256 * 1024)
#endif
/* The lowest address of the calling thread's C stack that frames with events may
   use: 0 before the thread's first check, and 1 where the bounds are unknown. */
static _Thread_local uintptr_t stack_floor = 0;

/* Return the lowest address of the calling thread's C stack that frames with events
   may use, or 1 where the stack's bounds are unknown. The stack grows down. */
static uintptr_t
find_stack_floor(void)
{
#if defined(__linux__)
    pthread_attr_t attributes;
    void *lowest;
    size_t size;
    if (pthread_getattr_np(pthread_self(), &attributes) != 0) {
        return 1;
    }
    int failed = pthread_attr_getstack(&attributes, &lowest, &size);
    pthread_attr_destroy(&attributes);
    if (failed || lowest == NULL) {
        return 1;
    }
#if PY_VERSION_HEX >= 0x030B0000
    size_t traced = size / 8 < TRACED_STACK ? size / 8 : TRACED_STACK;
    return (uintptr_t)lowest + size - traced;
#else
    size_t reserve = size / 4 < STACK_RESERVE ? size / 4 : STACK_RESERVE;
    return (uintptr_t)lowest + reserve;
#endif
#else
    /* NOTE: other systems get no check, so a deep recursion can still crash there. */
    return 1;
#endif
}

/* Return whether the calling thread's C stack is below its floor. */
static int
stack_is_low(void)
{
    char stack_marker;
    if (stack_floor == 0) {
        stack_floor = find_stack_floor();
    }
    return (uintptr_t)&stack_marker < stack_floor;
}

/* The fast path's functions are not inlined into route_event. Inlined, they made
   a run with default sampling on 3.10 about 2% slower, with the fast path on or
   off (the interpreter workload of benchmarks/overhead, 4 to 5 runs each). */
#if defined(__GNUC__) || defined(__clang__)
#define NOINLINE __attribute__((noinline))
#else
#define NOINLINE
#endif

/* Start the call in *frame*, whose call event has the argument *arg*, on the fast
   path, as the handler's start of a call would. Return 1 when it did, 0 when the
   handler must get the event, and -1 when an exception goes on to the program. */
static NOINLINE int
fast_start(HookObject *hook, PyFrameObject *frame, PyObject *arg)
{
    FastCalls *fast = &hook->fast;
    /* False from the evaluation function is a resume. Only a plain function, which
       never resumes, starts on the fast path, so the profile function's None is a
       start there. */
    if (fast->recorder == NULL || arg == Py_False) {
        return 0;
    }
    PyObject *info = fastcalls_info_of(fast, (PyObject *)borrowed_code(frame));
    if (info == NULL || !Py_IS_TYPE(info, fast->info_type) || !fastcalls_may_start(fast, info)) {
        return 0;
    }
    Py_INCREF(info);
    int started = 0;
    PyObject *params = FASTCALLS_SLOT(info, fast->info_params);
    if (reads_fast_locals(borrowed_code(frame), PyTuple_GET_SIZE(params))) {
        /* The same values as in frame.f_locals, without making that dict. */
        started = fastcalls_start(fast, info, (PyObject *)frame, read_parameter, (PyObject *)frame);
    }
    else {
        PyObject *locals = locals_of(frame);
        if (locals != NULL) {
            started = fastcalls_start(fast, info, (PyObject *)frame, read_local, locals);
            Py_DECREF(locals);
        }
    }
    Py_DECREF(info);
    return started;
}

/* Record on the fast path *call*, the open call of *frame*, which returned *value*,
   as the handler would. Return 1 when it did, 0 when the handler must get the event,
   and -1 when an exception goes on to the program. */
static NOINLINE int
fast_return(HookObject *hook, PyObject *call, PyFrameObject *frame, PyObject *value)
{
    return fastcalls_return_call(&hook->fast, call, NULL, (PyObject *)frame, value);
}

/* Store a new reference to *value* in the slot at *offset* of *obj*. */
static void
set_slot(PyObject *obj, Py_ssize_t offset, PyObject *value)
{
    PyObject *old = FASTCALLS_SLOT(obj, offset);
    Py_INCREF(value);
    FASTCALLS_SLOT(obj, offset) = value;
    Py_XDECREF(old);
}

/* Return whether *frame*, whose return event the hook handles, suspended at a yield
   or an await instead of returning. */
static int
frame_suspended(PyFrameObject *frame)
{
#if PY_VERSION_HEX >= 0x030B0000
    /* "yield from" and "await" suspend at YIELD_VALUE too, which is never
       specialized. */
    return _Py_OPCODE(*frame->f_frame->prev_instr) == YIELD_VALUE;
#elif PY_VERSION_HEX >= 0x030A0000
    return frame->f_state == FRAME_SUSPENDED;
#else
    /* Set at YIELD_VALUE and YIELD_FROM, and left NULL by a return. */
    return frame->f_stacktop != NULL;
#endif
}

#if PY_VERSION_HEX >= 0x030B0000
/* The thread whose call event the evaluation function of 3.11 reports for a frame
   that throw() or close() resumes, which pushed None as a send would, or NULL. Another
   thread's throw() while the handler runs replaces it, and then clears it. */
static PyThreadState *resuming_by_throw = NULL;
#endif

/* Return the value that *frame* receives as the value of a yield expression, borrowed,
   or NULL. Valid only at the call event that resumes *frame*, when the value that
   send() or next() passes is on top of the frame's value stack, before the frame runs.
   NULL where the frame resumes after anything but a yield expression: its start, a
   "yield from" or an await, whose values go to the inner iterator. throw() and close()
   also push None, which this cannot tell from a send of None. */
static PyObject *
sent_value_of(PyFrameObject *frame)
{
#if PY_VERSION_HEX >= 0x030B0000
    if (resuming_by_throw != NULL && resuming_by_throw == PyThreadState_Get()) {
        return NULL;
    }
    _PyInterpreterFrame *inner = frame->f_frame;
    if (inner == NULL || inner->stacktop <= inner->f_code->co_nlocalsplus ||
        inner->prev_instr <= _PyCode_CODE(inner->f_code)) {
        return NULL;
    }
    /* The evaluation function reports the call event before the frame runs, at its
       YIELD_VALUE, and the profile function at the RESUME after it. The oparg of that
       RESUME is 1 after a yield expression, 2 after "yield from" and 3 after await. */
    _Py_CODEUNIT *resume = inner->prev_instr;
    if (_Py_OPCODE(*resume) == YIELD_VALUE) {
        resume++;
    }
    int opcode = _Py_OPCODE(*resume);
    if ((opcode != RESUME && opcode != RESUME_QUICK) || _Py_OPARG(*resume) != 1 ||
        _Py_OPCODE(resume[-1]) != YIELD_VALUE) {
        return NULL;
    }
    /* A NULL, which PUSH_NULL leaves on the stack, reads as no value. */
    return inner->localsplus[inner->stacktop - 1];
#else
    PyCodeObject *code = frame->f_code;
    const _Py_CODEUNIT *instructions = (const _Py_CODEUNIT *)PyBytes_AS_STRING(code->co_code);
    Py_ssize_t count = PyBytes_GET_SIZE(code->co_code) / (Py_ssize_t)sizeof(_Py_CODEUNIT);
    /* 3.9 counts f_lasti in bytes, 3.10 in instructions. At a "yield from" or an
       await, f_lasti is one instruction before YIELD_FROM, which runs again. */
#if PY_VERSION_HEX >= 0x030A0000
    Py_ssize_t index = frame->f_lasti;
    PyObject **top = frame->f_stackdepth > 0 ? frame->f_valuestack + frame->f_stackdepth : NULL;
#else
    Py_ssize_t index = frame->f_lasti / (Py_ssize_t)sizeof(_Py_CODEUNIT);
    PyObject **top = frame->f_stacktop;
#endif
    if (index < 0 || index >= count || _Py_OPCODE(instructions[index]) != YIELD_VALUE || top == NULL ||
        top <= frame->f_valuestack) {
        return NULL;
    }
    return top[-1];
#endif
}

static PyObject *
profilehook_sent_value(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyFrame_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "sent_value() takes a frame and a default");
        return NULL;
    }
    PyObject *value = sent_value_of((PyFrameObject *)args[0]);
    if (value == NULL) {
        value = args[1];
    }
    Py_INCREF(value);
    return value;
}

/* Return whether the call event of *frame* with the argument *arg* resumes the
   frame, when that is known without the handler. */
static int
is_resumption(PyFrameObject *frame, PyObject *arg)
{
#if PY_VERSION_HEX >= 0x030B0000
    /* The evaluation function passes False for a resumption. The profile function of
       3.11 passes None for both. */
    return arg == Py_False;
#else
    /* -1 until the frame's first instruction runs. */
    return frame->f_lasti >= 0;
#endif
}

/* Return whether the set *classes* contains the id of *type*. */
static int
has_class_id(PyObject *classes, PyTypeObject *type)
{
    /* id(type(value)); a set of ints looks it up without running Python code. */
    PyObject *class_id = PyLong_FromVoidPtr((void *)type);
    if (class_id == NULL) {
        PyErr_Clear();
        return 0;
    }
    int known = PySet_Contains(classes, class_id);
    Py_DECREF(class_id);
    if (known < 0) {
        PyErr_Clear();
    }
    return known == 1;
}

/* Return the count in the slot at *offset* of *call* when it is at least *least*,
   or -1. */
static Py_ssize_t
count_from(PyObject *call, Py_ssize_t offset, Py_ssize_t least)
{
    PyObject *count = FASTCALLS_SLOT(call, offset);
    if (count == NULL || !PyLong_CheckExact(count)) {
        return -1;
    }
    Py_ssize_t done = PyLong_AsSsize_t(count);
    if (done < least || done == PY_SSIZE_T_MAX) {
        /* Also -1 on an error, which the handler meets again. */
        PyErr_Clear();
        return -1;
    }
    return done;
}

/* Store *count* in the slot at *offset* of *call*. Return 0, or -1 on an error,
   which is cleared. */
static int
store_count(PyObject *call, Py_ssize_t offset, Py_ssize_t count)
{
    PyObject *updated = PyLong_FromSsize_t(count);
    if (updated == NULL) {
        PyErr_Clear();
        return -1;
    }
    set_slot(call, offset, updated);
    Py_DECREF(updated);
    return 0;
}

/* Handle on the fast path the resumption of *call*, the open call of *frame*. Return
   1 when it did, and 0 when the handler must get the event. */
static NOINLINE int
fast_resume(FastYields *yields, PyObject *call, PyFrameObject *frame)
{
    if (FASTCALLS_SLOT(call, yields->call_pending_none) != Py_False) {
        /* The last suspension may have been a yield of None, which the handler
           counts now. */
        return 0;
    }
    PyObject *sent = sent_value_of(frame);
    int pending = FASTCALLS_SLOT(call, yields->call_pending_send) != Py_False;
    if (sent != NULL || pending) {
        PyObject *classes = FASTCALLS_SLOT(call, yields->call_send_classes);
        int has_classes = classes != NULL && Py_IS_TYPE(classes, &PySet_Type);
        int none_known = has_classes && PySet_Contains(classes, yields->none_class_id) == 1;
        if (sent == Py_None) {
            /* None has one type, so a None of a class received before needs
               nothing. Another one is a send of None or throw(): pending until the
               frame suspends or returns, which the handler gets while pending_send
               is True. */
            set_slot(call, yields->call_pending_send, none_known ? Py_False : Py_True);
        }
        else {
            if (pending && !none_known) {
                return 0;
            }
            if (sent != NULL) {
                Py_ssize_t done = count_from(call, yields->call_sends, yields->full_yields);
                if (done < 0 || !has_classes || !has_class_id(classes, Py_TYPE(sent)) ||
                    store_count(call, yields->call_sends, done + 1) < 0) {
                    return 0;
                }
            }
            if (pending) {
                set_slot(call, yields->call_pending_send, Py_False);
            }
        }
    }
    set_slot(call, yields->call_suspended, Py_False);
    yields->resumes++;
    return 1;
}

/* Handle on the fast path the suspension of *call*, the open call of *frame*, with
   *value*, which is not None. Return 1 when it did, and 0 when the handler must get
   the event. */
static NOINLINE int
fast_suspend(FastYields *yields, PyObject *call, PyFrameObject *frame, PyObject *value)
{
    PyObject *info = FASTCALLS_SLOT(call, yields->call_info);
    if (info == NULL || !Py_IS_TYPE(info, yields->info_type) || !frame_suspended(frame)) {
        return 0;
    }
    if (fastcalls_slot_equals(info, yields->info_kind, yields->coroutine_kind)) {
        set_slot(call, yields->call_suspended, Py_True);
        yields->suspensions++;
        return 1;
    }
    if (!fastcalls_slot_equals(info, yields->info_kind, yields->generator_kind) ||
        FASTCALLS_SLOT(call, yields->call_pending_send) != Py_False) {
        /* The handler counts a pending send at the suspension. */
        return 0;
    }
    PyObject *classes = FASTCALLS_SLOT(call, yields->call_yield_classes);
    if (classes == NULL || !Py_IS_TYPE(classes, &PySet_Type)) {
        return 0;
    }
    Py_ssize_t done = count_from(call, yields->call_yields, yields->full_yields);
    if (done < 0 || !has_class_id(classes, Py_TYPE(value)) || store_count(call, yields->call_yields, done + 1) < 0) {
        return 0;
    }
    set_slot(call, yields->call_suspended, Py_True);
    yields->suspensions++;
    return 1;
}

/* Pass one event of an active hook to the handler unless the hook may drop it or
   handle it on the fast path.
   *exact* is false for events that Python code passed to Hook.__call__, where an
   exception leaving the frame has the argument None. */
static int
route_event(HookObject *hook, PyFrameObject *frame, int what, PyObject *arg, int exact)
{
    PyObject *event;
    if (what == PyTrace_CALL) {
        event = call_event;
    }
    else if (what != PyTrace_RETURN) {
        return 0;
    }
    else if (!exact && arg == Py_None) {
        event = return_or_unwind_event;
    }
    else {
        event = arg == NULL ? unwind_event : return_event;
    }
    if (PyDict_GET_SIZE(hook->suspects) != 0) {
        /* The handler counts these events down to check the suspects. */
        return dispatch(hook, frame, event, arg);
    }
    uintptr_t status = marked_status(hook, frame);
    if (status == SKIP_UNTRACED) {
        return 0;
    }
    /* Return events matter to the handler only for frames with an open recorded
       call. Call events of other frames go to it to start calls, unless sampling
       paused the function. */
    PyObject *call;
    if (find_open_call(hook, frame, &call)) {
        FastYields *yields = &hook->yields;
        if (call != NULL && yields->call_type != NULL && Py_IS_TYPE(call, yields->call_type)) {
            if (event == call_event ? fast_resume(yields, call, frame)
                                    : event == return_event && arg != Py_None && fast_suspend(yields, call, frame, arg)) {
                return 0;
            }
        }
        if (call != NULL && event == return_event && hook->fast.recorder != NULL) {
            /* A return or a yield with a value. The fast path takes only calls of
               plain functions, which never yield. The sink that it calls may end the
               session, which drops the thread's reference to the hook. */
            Py_INCREF(hook);
            int returned = fast_return(hook, call, frame, arg);
            int outcome = returned < 0 ? settle_exception(hook) : 0;
            Py_DECREF(hook);
            if (returned != 0) {
                return outcome;
            }
        }
        return dispatch(hook, frame, event, arg);
    }
    /* A frame without an open call that resumes has no call to start. */
    if (what == PyTrace_RETURN || status == SKIP_PAUSED || is_resumption(frame, arg)) {
        return 0;
    }
    /* An error at the start runs Python code, the recorder's note_error(). */
    Py_INCREF(hook);
    int started = fast_start(hook, frame, arg);
    int outcome = started < 0 ? settle_exception(hook) : 0;
    Py_DECREF(hook);
    if (started != 0) {
        return outcome;
    }
    return dispatch(hook, frame, event, arg);
}

/* Handle one event of the profile function. */
static int
hook_event(HookObject *hook, PyFrameObject *frame, int what, PyObject *arg, int exact)
{
    if (!hook->active) {
        remove_hook();
        return 0;
    }
    return route_event(hook, frame, what, arg, exact);
}

static int
hook_profile(PyObject *self, PyFrameObject *frame, int what, PyObject *arg)
{
#if PY_VERSION_HEX < 0x030B0000
    /* While a profile function is set, 3.9 and 3.10 use more C stack per Python
       call. A recursion that untraced 3.10 ran 19,800 calls deep crashed at 16,100
       (8 MiB stack, x86-64), so near the end of the stack the call raises instead. */
    if (what == PyTrace_CALL && stack_is_low()) {
        PyErr_SetString(PyExc_RecursionError,
                        "maximum recursion depth exceeded: the C stack is nearly full, and typetrace's "
                        "profile function makes each call use more of it");
        return -1;
    }
#endif
    return hook_event((HookObject *)self, frame, what, arg, 1);
}

/* Thread ids whose frames get no events from an evaluation function: typetrace's own
   threads. NOTE: a thread started later that gets the id of one of them, after it
   ended, is not traced either. */
#define MAX_SKIPPED_THREADS 16

static unsigned long skipped_threads[MAX_SKIPPED_THREADS];
static int skipped_thread_count = 0;

static int
is_skipped_thread(PyThreadState *tstate)
{
    for (int i = 0; i < skipped_thread_count; i++) {
        if (skipped_threads[i] == tstate->thread_id) {
            return 1;
        }
    }
    return 0;
}

/* Store the thread ids of the collection *skipped*, at most MAX_SKIPPED_THREADS.
   Return 0, or -1 with an exception that names *method*. */
static int
set_skipped_threads(PyObject *skipped, const char *method)
{
    PyObject *idents = PySequence_Fast(skipped, "expected a collection of thread ids");
    if (idents == NULL) {
        return -1;
    }
    Py_ssize_t count = PySequence_Fast_GET_SIZE(idents);
    if (count > MAX_SKIPPED_THREADS) {
        PyErr_Format(PyExc_ValueError, "%s takes at most %d thread ids, got %zd", method, MAX_SKIPPED_THREADS,
                     count);
        Py_DECREF(idents);
        return -1;
    }
    unsigned long values[MAX_SKIPPED_THREADS];
    for (Py_ssize_t i = 0; i < count; i++) {
        values[i] = PyLong_AsUnsignedLong(PySequence_Fast_GET_ITEM(idents, i));
        if (values[i] == (unsigned long)-1 && PyErr_Occurred()) {
            Py_DECREF(idents);
            return -1;
        }
    }
    Py_DECREF(idents);
    memcpy(skipped_threads, values, sizeof(values[0]) * (size_t)count);
    skipped_thread_count = (int)count;
    return 0;
}

#if PY_VERSION_HEX < 0x030B0000
/* The watch of new threads of Python 3.9 and 3.10: a frame-evaluation function
 * (PEP 523) that makes the hook the profile function of each thread that runs a
 * frame without one, before the frame runs.
 *
 * threading.setprofile() reaches only the threads of the threading module. Threads
 * that _thread.start_new_thread() starts, and those that C code makes with
 * PyGILState_Ensure(), get the hook from this function at their first frame. Every
 * way of installing the hook marks the thread in its thread-state dict, and the watch
 * gives the hook only to threads without the mark. So a thread whose program removed
 * its profile function, with sys.setprofile(None), keeps none. Threads whose ids are
 * skipped get nothing. On 3.9 and 3.10 the default evaluation function
 * runs each call of a Python function in a C call of its own, so this one adds a C
 * call and a few checks per frame. */

/* The hook that the watch installs, a strong reference, or NULL. */
static HookObject *watch_hook = NULL;

/* Mark *tstate* as a thread that got a hook, which every way of installing one does.
   Return 0, or -1 with an exception. */
static int
mark_thread(PyThreadState *tstate)
{
    if (tstate->dict == NULL) {
        tstate->dict = PyDict_New();
        if (tstate->dict == NULL) {
            return -1;
        }
    }
    return PyDict_SetItem(tstate->dict, watched_key, Py_True);
}

static void
watch_thread(PyThreadState *tstate, HookObject *hook)
{
    if (is_skipped_thread(tstate)) {
        return;
    }
    int marked = tstate->dict == NULL ? 0 : PyDict_Contains(tstate->dict, watched_key);
    /* The mark comes first, because PyEval_SetProfile() runs audit hooks, whose
       frames come back here. */
    if (marked != 0 || mark_thread(tstate) < 0) {
        return;
    }
    /* Unlike PyEval_SetProfile(), this leaves the exception of an audit hook that
       rejects the sys.setprofile event set, where the hook counts it, instead of
       printing it. */
    if (_PyEval_SetProfile(tstate, hook_profile, (PyObject *)hook) < 0) {
        count_error(hook);
    }
}

static PyObject *
watch_frame(PyThreadState *tstate, PyFrameObject *frame, int throwflag)
{
    HookObject *hook = watch_hook;
    if (hook != NULL && tstate->c_profilefunc == NULL && !tstate->tracing && hook->active) {
        /* throw() and close() set the exception to raise in the frame. */
        PyObject *type, *value, *traceback;
        PyErr_Fetch(&type, &value, &traceback);
        Py_INCREF(hook);
        watch_thread(tstate, hook);
        Py_DECREF(hook);
        /* No memory for the mark: the thread stays untraced. */
        PyErr_Clear();
        PyErr_Restore(type, value, traceback);
    }
    return _PyEval_EvalFrameDefault(tstate, frame, throwflag);
}

static PyObject *
hook_install_thread_watch(HookObject *hook, PyObject *skipped)
{
    if (!hook->active) {
        PyErr_SetString(PyExc_RuntimeError, "Hook.install_thread_watch() called after Hook.close()");
        return NULL;
    }
    PyInterpreterState *interp = PyThreadState_GetInterpreter(PyThreadState_Get());
    _PyFrameEvalFunction previous = _PyInterpreterState_GetEvalFrameFunc(interp);
    if (previous != _PyEval_EvalFrameDefault && previous != watch_frame) {
        /* Another tool's evaluation function, which this one would bypass. */
        Py_RETURN_FALSE;
    }
    if (set_skipped_threads(skipped, "Hook.install_thread_watch()") < 0) {
        return NULL;
    }
    Py_INCREF(hook);
    Py_XSETREF(watch_hook, hook);
    _PyInterpreterState_SetEvalFrameFunc(interp, watch_frame);
    Py_RETURN_TRUE;
}

static PyObject *
hook_uninstall_thread_watch(HookObject *hook, PyObject *Py_UNUSED(ignored))
{
    if (watch_hook != hook) {
        Py_RETURN_FALSE;
    }
    PyInterpreterState *interp = PyThreadState_GetInterpreter(PyThreadState_Get());
    if (_PyInterpreterState_GetEvalFrameFunc(interp) == watch_frame) {
        _PyInterpreterState_SetEvalFrameFunc(interp, _PyEval_EvalFrameDefault);
    }
    skipped_thread_count = 0;
    Py_CLEAR(watch_hook);
    Py_RETURN_TRUE;
}
#endif

#if PY_VERSION_HEX >= 0x030B0000
/* The frame-evaluation function of Python 3.11 (PEP 523).
 *
 * While a profile function is set, Python 3.11 runs every instruction through its
 * tracing path. An evaluation function costs nothing per instruction, so on 3.11
 * the Hook can instead be installed with Hook.install_eval() as the interpreter's
 * evaluation function, which every thread calls to run each frame. It passes the
 * handler the events that the profile function would pass, derived from the state
 * of the frame before and after the call of _PyEval_EvalFrameDefault:
 *
 * - "call" where 3.11 reports a call event: where a frame runs its RESUME
 *   instruction (the start of a function, the first run of a generator or
 *   coroutine, and each resume after a yield or await) and where throw() or
 *   close() raises an exception in a suspended frame. A generator function's own
 *   frame, which only creates the generator with RETURN_GENERATOR, gets no event.
 *   The argument is True at the start of a function and False at a resume, where
 *   the profile function passes None.
 * - "return" with the value when the frame returns or yields, and "unwind" when an
 *   exception leaves it.
 *
 * Code marked SKIP_UNTRACED, and code marked SKIP_PAUSED except in frames with an
 * open recorded call, runs without a frame object and without a call of the
 * handler. While the evaluation function is set, Python 3.11 does not inline calls
 * of Python functions, so each call nests one C call deeper. With an 8 MiB stack on
 * x86-64, a recursion between 20,000 and 30,000 calls deep ran out of C stack,
 * where untraced 3.11 goes on until the recursion limit. So when a thread has used
 * more than TRACED_STACK bytes of its C stack, eval_frame sets the default
 * evaluation function back until that frame returns: the frames it calls are
 * inlined again, as untraced, and get no events (see suspend_deep_frame).
 */

/* Call events that 3.11 reports when a frame starts to run in _PyEval_EvalFrameDefault. */
#define ENTRY_NONE 0
#define ENTRY_START 1
#define ENTRY_RESUME 2

#define GENERATOR_FLAGS (CO_GENERATOR | CO_COROUTINE | CO_ASYNC_GENERATOR)

/* The installed hook, a strong reference, or NULL. */
static HookObject *eval_hook = NULL;

/* Frames that run with the default evaluation function because the C stack of
   their thread was low. */
static int deep_frames = 0;

/* Return the call event that 3.11 reports when *frame* starts to run. */
static int
entry_kind(_PyInterpreterFrame *frame, int throwflag)
{
    if (throwflag) {
        return ENTRY_RESUME;
    }
    PyCodeObject *code = frame->f_code;
    _Py_CODEUNIT *previous = frame->prev_instr;
    if (previous < _PyCode_CODE(code)) {
        /* A new frame. That of a generator function runs RETURN_GENERATOR, which
           returns the generator without events. */
        return (code->co_flags & GENERATOR_FLAGS) ? ENTRY_NONE : ENTRY_START;
    }
    if (_Py_OPCODE(*previous) == RETURN_GENERATOR) {
        /* The first run of a generator: POP_TOP drops the value sent, then RESUME 0. */
        return ENTRY_START;
    }
    int next = _Py_OPCODE(previous[1]);
    if (next == RESUME || next == RESUME_QUICK) {
        return _Py_OPARG(previous[1]) == 0 ? ENTRY_START : ENTRY_RESUME;
    }
    /* throw() on a generator that delegates with "yield from" or "await", when the
       inner iterator finished: the frame goes on after its SEND without RESUME. */
    return ENTRY_NONE;
}

/* Return whether the handler may need an event of *frame*, following the rules of
   route_event, which makes the final choice. */
static int
needs_events(HookObject *hook, PyThreadState *tstate, _PyInterpreterFrame *frame, int entry)
{
    /* A frame without a frame object has no open call, so without a call event it
       needs no event. */
    if (frame->frame_obj == NULL && entry == ENTRY_NONE) {
        return 0;
    }
    if (!hook->active) {
        return 0;
    }
    uintptr_t status = 0;
    if (PyDict_GET_SIZE(hook->suspects) == 0) {
        status = code_status(hook, (PyObject *)frame->f_code);
        if (status == SKIP_UNTRACED) {
            return 0;
        }
        /* A frame without an open call needs events only to start one. */
        if (!(frame->frame_obj != NULL && has_open_call(hook, frame->frame_obj))
            && (entry != ENTRY_START || status == SKIP_PAUSED)) {
            return 0;
        }
    }
    /* Near the recursion limit, _PyEval_EvalFrameDefault raises RecursionError before
       the frame runs, where 3.11 reports no event. */
    if (tstate->recursion_remaining <= 0) {
        return 0;
    }
    return !is_skipped_thread(tstate);
}

/* Return a new reference to the frame object of *frame*, made if there is none. */
static PyFrameObject *
frame_object_of(PyThreadState *tstate, _PyInterpreterFrame *frame)
{
    if (frame->frame_obj != NULL) {
        Py_INCREF(frame->frame_obj);
        return frame->frame_obj;
    }
    /* _PyFrame_GetFrameObject is not exported, but PyEval_GetFrame makes the frame
       object of the thread's current frame. So the frame becomes the current one for
       that call. PyEval_GetFrame skips a frame that has not reached its first
       traceable instruction, so a new frame points there meanwhile. */
    _PyCFrame *cframe = tstate->cframe;
    _PyInterpreterFrame *current = cframe->current_frame;
    _Py_CODEUNIT *previous = frame->prev_instr;
    _Py_CODEUNIT *first_traceable = _PyCode_CODE(frame->f_code) + frame->f_code->_co_firsttraceable;
    if (frame->owner != FRAME_OWNED_BY_GENERATOR && previous < first_traceable) {
        frame->prev_instr = first_traceable;
    }
    frame->previous = current;
    cframe->current_frame = frame;
    PyFrameObject *object = PyEval_GetFrame();
    cframe->current_frame = current;
    frame->prev_instr = previous;
    if (object == NULL || frame->frame_obj != object) {
        return NULL;
    }
    Py_INCREF(object);
    return object;
}

/* Pass one event to the handler with tracing paused in the thread, so that the
   handler's own calls get no events, as in a profile function. */
static int
route_eval_event(HookObject *hook, PyThreadState *tstate, PyFrameObject *frame, int what, PyObject *arg)
{
    PyThreadState_EnterTracing(tstate);
    int outcome = route_event(hook, frame, what, arg, 1);
    PyThreadState_LeaveTracing(tstate);
    return outcome;
}

/* Run *frame* with the events of route_event around it. */
static PyObject *
eval_watched(HookObject *hook, PyThreadState *tstate, _PyInterpreterFrame *frame, int throwflag, int entry)
{
    /* throw() and close() set the exception to raise in the frame. */
    PyObject *type = NULL, *value = NULL, *traceback = NULL;
    if (throwflag) {
        PyErr_Fetch(&type, &value, &traceback);
    }
    PyFrameObject *object = frame_object_of(tstate, frame);
    if (object == NULL) {
        /* No memory for the frame object; the frame runs without events. */
        PyErr_Clear();
        if (throwflag) {
            PyErr_Restore(type, value, traceback);
        }
        return _PyEval_EvalFrameDefault(tstate, frame, throwflag);
    }
    /* The handler may end the session, which drops eval_hook's reference. */
    Py_INCREF(hook);
    int raise = 0;
    if (entry != ENTRY_NONE) {
        PyObject *start = entry == ENTRY_START ? Py_True : Py_False;
        /* Tracing is paused in the thread while the handler runs, so no other frame
           of the thread reaches route_event meanwhile. */
        if (throwflag) {
            resuming_by_throw = tstate;
        }
        raise = route_eval_event(hook, tstate, object, PyTrace_CALL, start) < 0;
        if (resuming_by_throw == tstate) {
            resuming_by_throw = NULL;
        }
    }
    if (raise) {
        /* The handler raised an exception that is not an Exception. As where a
           profile function raises at a call event, it is raised in the frame, so
           the frame's exception handlers see it. */
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(traceback);
        throwflag = 1;
    }
    else if (throwflag) {
        PyErr_Restore(type, value, traceback);
    }
    PyObject *result = _PyEval_EvalFrameDefault(tstate, frame, throwflag);
    if (eval_hook != hook) {
        /* Uninstalled while the frame ran: like a removed profile function, the
           hook reports nothing more. */
    }
    else if (result != NULL) {
        if (route_eval_event(hook, tstate, object, PyTrace_RETURN, result) < 0) {
            Py_CLEAR(result);
        }
    }
    else {
        PyErr_Fetch(&type, &value, &traceback);
        if (route_eval_event(hook, tstate, object, PyTrace_RETURN, NULL) < 0) {
            Py_XDECREF(type);
            Py_XDECREF(value);
            Py_XDECREF(traceback);
        }
        else {
            PyErr_Restore(type, value, traceback);
        }
    }
    Py_DECREF(object);
    Py_DECREF(hook);
    return result;
}

static PyObject *eval_frame(PyThreadState *tstate, _PyInterpreterFrame *frame, int throwflag);

/* Run *frame* and the frames it calls with the default evaluation function, which
   inlines calls of Python functions and so uses no C stack for them, and set this
   one back when it returns, unless the hook was uninstalled meanwhile. Other
   threads' new frames get no events meanwhile either. */
static PyObject *
suspend_deep_frame(PyThreadState *tstate, _PyInterpreterFrame *frame, int throwflag)
{
    PyInterpreterState *interp = tstate->interp;
    _PyInterpreterState_SetEvalFrameFunc(interp, _PyEval_EvalFrameDefault);
    deep_frames++;
    PyObject *result = _PyEval_EvalFrameDefault(tstate, frame, throwflag);
    deep_frames--;
    if (deep_frames == 0 && eval_hook != NULL &&
        _PyInterpreterState_GetEvalFrameFunc(interp) == _PyEval_EvalFrameDefault) {
        _PyInterpreterState_SetEvalFrameFunc(interp, eval_frame);
    }
    return result;
}

static PyObject *
eval_frame(PyThreadState *tstate, _PyInterpreterFrame *frame, int throwflag)
{
    HookObject *hook = eval_hook;
    /* tracing is set while a profile or trace function, or the handler, runs. */
    if (hook == NULL || tstate->tracing) {
        return _PyEval_EvalFrameDefault(tstate, frame, throwflag);
    }
    if (stack_is_low()) {
        return suspend_deep_frame(tstate, frame, throwflag);
    }
    int entry = entry_kind(frame, throwflag);
    int needed;
    if (throwflag) {
        /* The exception that throw() or close() raises in the frame is set, and the
           dict lookups in needs_events must not see it. */
        PyObject *type, *value, *traceback;
        PyErr_Fetch(&type, &value, &traceback);
        needed = needs_events(hook, tstate, frame, entry);
        PyErr_Restore(type, value, traceback);
    }
    else {
        needed = needs_events(hook, tstate, frame, entry);
    }
    if (!needed) {
        return _PyEval_EvalFrameDefault(tstate, frame, throwflag);
    }
    return eval_watched(hook, tstate, frame, throwflag, entry);
}

static PyObject *
hook_install_eval(HookObject *hook, PyObject *skipped)
{
    if (!hook->active) {
        PyErr_SetString(PyExc_RuntimeError, "Hook.install_eval() called after Hook.close()");
        return NULL;
    }
    PyInterpreterState *interp = PyThreadState_GetInterpreter(PyThreadState_Get());
    _PyFrameEvalFunction previous = _PyInterpreterState_GetEvalFrameFunc(interp);
    if (previous != _PyEval_EvalFrameDefault && previous != eval_frame) {
        /* Another tool's evaluation function, which this one would bypass. */
        Py_RETURN_FALSE;
    }
    if (eval_hook != NULL && eval_hook != hook && eval_hook->active) {
        PyErr_SetString(PyExc_RuntimeError, "another Hook is installed as the evaluation function");
        return NULL;
    }
    if (set_skipped_threads(skipped, "Hook.install_eval()") < 0) {
        return NULL;
    }
    Py_INCREF(hook);
    Py_XSETREF(eval_hook, hook);
    _PyInterpreterState_SetEvalFrameFunc(interp, eval_frame);
    Py_RETURN_TRUE;
}

static PyObject *
hook_uninstall_eval(HookObject *hook, PyObject *Py_UNUSED(ignored))
{
    if (eval_hook != hook) {
        Py_RETURN_FALSE;
    }
    PyInterpreterState *interp = PyThreadState_GetInterpreter(PyThreadState_Get());
    if (_PyInterpreterState_GetEvalFrameFunc(interp) == eval_frame) {
        _PyInterpreterState_SetEvalFrameFunc(interp, _PyEval_EvalFrameDefault);
    }
    skipped_thread_count = 0;
    /* Frames that still run in eval_frame hold references of their own. */
    Py_CLEAR(eval_hook);
    Py_RETURN_TRUE;
}

static PyObject *
eval_function_is_default(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(ignored))
{
    PyInterpreterState *interp = PyThreadState_GetInterpreter(PyThreadState_Get());
    _PyFrameEvalFunction current = _PyInterpreterState_GetEvalFrameFunc(interp);
    return PyBool_FromLong(current == _PyEval_EvalFrameDefault);
}
#endif

/* Hook */

static PyObject *
hook_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"handler", "calls", "suspects", "passes_on", NULL};
    PyObject *handler, *calls, *suspects, *passes = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO!O!|$O:Hook", keywords, &handler, &PyDict_Type, &calls,
                                     &PyDict_Type, &suspects, &passes)) {
        return NULL;
    }
    if (!PyCallable_Check(handler)) {
        PyErr_Format(PyExc_TypeError, "Hook handler must be callable, got %R", handler);
        return NULL;
    }
    if (passes != Py_None && !PyCallable_Check(passes)) {
        PyErr_Format(PyExc_TypeError, "Hook passes_on must be callable or None, got %R", passes);
        return NULL;
    }
    HookObject *hook = (HookObject *)type->tp_alloc(type, 0);
    if (hook == NULL) {
        return NULL;
    }
    hook->errors = PyDict_New();
    if (hook->errors == NULL) {
        Py_DECREF(hook);
        return NULL;
    }
    Py_INCREF(handler);
    hook->handler = handler;
    Py_INCREF(calls);
    hook->calls = calls;
    Py_INCREF(suspects);
    hook->suspects = suspects;
    if (passes != Py_None) {
        Py_INCREF(passes);
        hook->passes_on = passes;
    }
    hook->first_epoch = ++current_epoch;
    hook->dispatched = 0;
    hook->active = 1;
    return (PyObject *)hook;
}

static int
hook_traverse(HookObject *hook, visitproc visit, void *arg)
{
    Py_VISIT(hook->handler);
    Py_VISIT(hook->calls);
    Py_VISIT(hook->suspects);
    Py_VISIT(hook->errors);
    Py_VISIT(hook->passes_on);
    Py_VISIT(hook->yields.info_type);
    Py_VISIT(hook->yields.call_type);
    return fastcalls_traverse(&hook->fast, visit, arg);
}

static int
hook_clear(HookObject *hook)
{
    /* A thread may still have the hook installed; it then removes the hook. */
    hook->active = 0;
    Py_CLEAR(hook->handler);
    Py_CLEAR(hook->calls);
    Py_CLEAR(hook->suspects);
    Py_CLEAR(hook->errors);
    Py_CLEAR(hook->passes_on);
    Py_CLEAR(hook->yields.info_type);
    Py_CLEAR(hook->yields.call_type);
    Py_CLEAR(hook->yields.none_class_id);
    fastcalls_clear(&hook->fast);
    return 0;
}

static void
hook_dealloc(HookObject *hook)
{
    PyObject_GC_UnTrack(hook);
    hook_clear(hook);
    Py_TYPE(hook)->tp_free((PyObject *)hook);
}

static PyObject *
hook_call(HookObject *hook, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"frame", "event", "arg", NULL};
    PyObject *frame, *event, *arg;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!UO:Hook", keywords, &PyFrame_Type, &frame, &event, &arg)) {
        return NULL;
    }
    int what;
    if (PyUnicode_CompareWithASCIIString(event, "call") == 0) {
        what = PyTrace_CALL;
    }
    else if (PyUnicode_CompareWithASCIIString(event, "return") == 0) {
        what = PyTrace_RETURN;
    }
    else {
        /* The C events, which hook_event ignores whatever their number. */
        what = PyTrace_C_CALL;
    }
    if (hook_event(hook, (PyFrameObject *)frame, what, arg, 0) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
hook_install(HookObject *hook, PyObject *Py_UNUSED(ignored))
{
    if (!hook->active) {
        PyErr_SetString(PyExc_RuntimeError, "Hook.install() called after Hook.close()");
        return NULL;
    }
#if PY_VERSION_HEX < 0x030B0000
    if (mark_thread(PyThreadState_Get()) < 0) {
        return NULL;
    }
#endif
    PyEval_SetProfile(hook_profile, (PyObject *)hook);
    if (PyErr_Occurred()) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* Make *hook* the profile function of *tstate*, another thread of this interpreter,
   the way PyEval_SetProfile does for the calling thread. The fields are set directly,
   because _PyEval_SetProfile of Python 3.9 to 3.11 runs the audit hooks with
   *tstate* instead of the calling thread's state. The caller holds the GIL, so
   *tstate* is not running Python code, and checked that it has no profile function
   or the closed hook of an earlier session, whose reference is dropped here. */
static void
set_profile_of(PyThreadState *tstate, HookObject *hook)
{
#if PY_VERSION_HEX < 0x030B0000
    if (mark_thread(tstate) < 0) {
        /* Without the mark, the thread watch gives the thread the hook again after
           its program removes it. */
        PyErr_Clear();
    }
#endif
    Py_INCREF(hook);
    PyObject *previous = tstate->c_profileobj;
    tstate->c_profileobj = (PyObject *)hook;
    tstate->c_profilefunc = hook_profile;
    Py_XDECREF(previous);
#if PY_VERSION_HEX >= 0x030B0000
    tstate->cframe->use_tracing = tstate->tracing == 0 ? 255 : 0;
#elif PY_VERSION_HEX >= 0x030A0000
    tstate->cframe->use_tracing = 1;
#else
    tstate->use_tracing = 1;
#endif
}

static PyObject *
hook_install_other_threads(HookObject *hook, PyObject *skipped)
{
    if (!hook->active) {
        PyErr_SetString(PyExc_RuntimeError, "Hook.install_other_threads() called after Hook.close()");
        return NULL;
    }
    PyThreadState *current = PyThreadState_Get();
    PyInterpreterState *interp = PyThreadState_GetInterpreter(current);
    long installed = 0;
    for (PyThreadState *tstate = PyInterpreterState_ThreadHead(interp); tstate != NULL;
         tstate = PyThreadState_Next(tstate)) {
        /* A thread with a profile function of its own keeps it. The closed hook of an
           earlier session, which would remove itself at the thread's next event, is
           replaced. */
        if (tstate == current ||
            (tstate->c_profilefunc != NULL &&
             !(tstate->c_profilefunc == hook_profile && !((HookObject *)tstate->c_profileobj)->active))) {
            continue;
        }
        PyObject *ident = PyLong_FromUnsignedLong(tstate->thread_id);
        if (ident == NULL) {
            return NULL;
        }
        int skip = PySequence_Contains(skipped, ident);
        Py_DECREF(ident);
        if (skip < 0) {
            return NULL;
        }
        if (!skip) {
            set_profile_of(tstate, hook);
            installed++;
        }
    }
    return PyLong_FromLong(installed);
}

static PyObject *
hook_enable_fast_calls(HookObject *hook, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {
        "recorder", "info_type", "call_type", "all_calls", "first_sweep", "writer", "session", "inbox_limit", NULL};
    PyObject *recorder, *writer = Py_None, *session = Py_None;
    PyTypeObject *info_type, *call_type;
    int all_calls;
    Py_ssize_t first_sweep, inbox_limit = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO!O!pn|OOn:enable_fast_calls", keywords, &recorder,
                                     &PyType_Type, &info_type, &PyType_Type, &call_type, &all_calls, &first_sweep,
                                     &writer, &session, &inbox_limit)) {
        return NULL;
    }
    if (hook->calls == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Hook.enable_fast_calls() called on a cleared hook");
        return NULL;
    }
    FastCalls fast = {0};
    if (fastcalls_setup(&fast, recorder, info_type, call_type, all_calls, first_sweep, writer, session,
                        inbox_limit, "profile call", "profile return") < 0) {
        return NULL;
    }
    if (fast.calls != hook->calls) {
        PyErr_SetString(PyExc_ValueError, "Hook.enable_fast_calls() takes the recorder whose calls dict the hook has");
        fastcalls_clear(&fast);
        return NULL;
    }
    fastcalls_clear(&hook->fast);
    fast.fast_starts = hook->fast.fast_starts;
    fast.fast_returns = hook->fast.fast_returns;
    fast.inbox_appends = hook->fast.inbox_appends;
    hook->fast = fast;
    Py_RETURN_NONE;
}

static PyObject *
hook_enable_fast_yields(HookObject *hook, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"info_type", "call_type", "full_yields", "generator_kind", "coroutine_kind", NULL};
    PyTypeObject *info_type, *call_type;
    Py_ssize_t full_yields;
    long generator_kind, coroutine_kind;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!O!nll:enable_fast_yields", keywords, &PyType_Type,
                                     &info_type, &PyType_Type, &call_type, &full_yields, &generator_kind,
                                     &coroutine_kind)) {
        return NULL;
    }
    if (full_yields < 0) {
        PyErr_Format(PyExc_ValueError, "Hook.enable_fast_yields() takes a full_yields of 0 or more, got %zd",
                     full_yields);
        return NULL;
    }
    FastYields yields = hook->yields;
    if (fastcalls_slot_offset(info_type, "kind", &yields.info_kind) < 0 ||
        fastcalls_slot_offset(call_type, "info", &yields.call_info) < 0 ||
        fastcalls_slot_offset(call_type, "suspended", &yields.call_suspended) < 0 ||
        fastcalls_slot_offset(call_type, "pending_none", &yields.call_pending_none) < 0 ||
        fastcalls_slot_offset(call_type, "yields", &yields.call_yields) < 0 ||
        fastcalls_slot_offset(call_type, "yield_classes", &yields.call_yield_classes) < 0 ||
        fastcalls_slot_offset(call_type, "pending_send", &yields.call_pending_send) < 0 ||
        fastcalls_slot_offset(call_type, "sends", &yields.call_sends) < 0 ||
        fastcalls_slot_offset(call_type, "send_classes", &yields.call_send_classes) < 0) {
        return NULL;
    }
    if (yields.none_class_id == NULL) {
        yields.none_class_id = PyLong_FromVoidPtr((void *)Py_TYPE(Py_None));
        if (yields.none_class_id == NULL) {
            return NULL;
        }
    }
    yields.full_yields = full_yields;
    yields.generator_kind = generator_kind;
    yields.coroutine_kind = coroutine_kind;
    Py_INCREF(info_type);
    Py_INCREF(call_type);
    yields.info_type = info_type;
    yields.call_type = call_type;
    PyTypeObject *old_info_type = hook->yields.info_type, *old_call_type = hook->yields.call_type;
    hook->yields = yields;
    Py_XDECREF(old_info_type);
    Py_XDECREF(old_call_type);
    Py_RETURN_NONE;
}

static PyObject *
hook_resume(HookObject *hook, PyObject *Py_UNUSED(ignored))
{
    current_epoch++;
    Py_RETURN_NONE;
}

static PyObject *
hook_close(HookObject *hook, PyObject *Py_UNUSED(ignored))
{
    hook->active = 0;
    Py_RETURN_NONE;
}

static PyObject *
hook_get_errors(HookObject *hook, void *Py_UNUSED(closure))
{
    return PyDict_Copy(hook->errors);
}

static PyObject *
hook_get_dispatched(HookObject *hook, void *Py_UNUSED(closure))
{
    return PyLong_FromUnsignedLongLong(hook->dispatched);
}

static PyObject *
hook_get_active(HookObject *hook, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(hook->active);
}

static PyObject *
hook_get_fast_starts(HookObject *hook, void *Py_UNUSED(closure))
{
    return PyLong_FromUnsignedLongLong(hook->fast.fast_starts);
}

static PyObject *
hook_get_fast_returns(HookObject *hook, void *Py_UNUSED(closure))
{
    return PyLong_FromUnsignedLongLong(hook->fast.fast_returns);
}

static PyObject *
hook_get_inbox_appends(HookObject *hook, void *Py_UNUSED(closure))
{
    return PyLong_FromUnsignedLongLong(hook->fast.inbox_appends);
}

static PyObject *
hook_get_fast_resumes(HookObject *hook, void *Py_UNUSED(closure))
{
    return PyLong_FromUnsignedLongLong(hook->yields.resumes);
}

static PyObject *
hook_get_fast_suspensions(HookObject *hook, void *Py_UNUSED(closure))
{
    return PyLong_FromUnsignedLongLong(hook->yields.suspensions);
}

static PyMethodDef hook_methods[] = {
    {"install", (PyCFunction)hook_install, METH_NOARGS,
     "Make this hook the profile function of the calling thread."},
#if PY_VERSION_HEX < 0x030B0000
    {"install_thread_watch", (PyCFunction)hook_install_thread_watch, METH_O,
     "Make this hook the profile function of each thread, except those whose ids are in "
     "the given sequence (at most 16), that runs a frame without a profile function and "
     "did not get the hook before. Return False, and install nothing, when another "
     "evaluation function than CPython's default is set."},
    {"uninstall_thread_watch", (PyCFunction)hook_uninstall_thread_watch, METH_NOARGS,
     "Stop the watch of install_thread_watch() if this hook runs it; return whether it did."},
#endif
    {"install_other_threads", (PyCFunction)hook_install_other_threads, METH_O,
     "Make this hook the profile function of every other thread of the interpreter "
     "that has none and whose thread id is not in the given collection; return how "
     "many threads got it."},
#if PY_VERSION_HEX >= 0x030B0000
    {"install_eval", (PyCFunction)hook_install_eval, METH_O,
     "Make this hook the interpreter's frame-evaluation function, which passes the "
     "handler the events of every thread except those whose ids are in the given "
     "sequence (at most 16). Return False, and install nothing, when another "
     "evaluation function than CPython's default is set."},
    {"uninstall_eval", (PyCFunction)hook_uninstall_eval, METH_NOARGS,
     "Restore CPython's default evaluation function if this hook is installed as the "
     "evaluation function; return whether it was."},
#endif
    {"enable_fast_calls", (PyCFunction)(void (*)(void))hook_enable_fast_calls, METH_VARARGS | METH_KEYWORDS,
     "enable_fast_calls(recorder, info_type, call_type, all_calls, first_sweep, writer=None, session=None, "
     "inbox_limit=0)\n\n"
     "Start and return on the fast path, without the handler, the calls of plain functions whose types "
     "the recorder has cached, while every call of the function is recorded: all_calls is true or the "
     "function's CodeInfo.always is. info_type and call_type are the recorder's CodeInfo and Call "
     "classes, first_sweep the size of recorder.calls at which the recorder may sweep, and writer, "
     "session and inbox_limit those of the 3.12 callbacks of typetrace._fastcalls."},
    {"enable_fast_yields", (PyCFunction)(void (*)(void))hook_enable_fast_yields, METH_VARARGS | METH_KEYWORDS,
     "enable_fast_yields(info_type, call_type, full_yields, generator_kind, coroutine_kind)\n\n"
     "Handle without the handler the resumptions of recorded generator and coroutine calls, the "
     "suspensions of coroutines with a value other than None, and the yields of generators after "
     "their first full_yields yields of a value whose class they yielded before. info_type and "
     "call_type are the recorder's CodeInfo and Call classes, and generator_kind and "
     "coroutine_kind the CodeInfo.kind of generators and coroutines."},
    {"resume", (PyCFunction)hook_resume, METH_NOARGS,
     "Unmark the functions marked SKIP_PAUSED, so that their next events reach the handler."},
    {"close", (PyCFunction)hook_close, METH_NOARGS,
     "Deactivate the hook; each thread that has it removes it at its next event."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef hook_getset[] = {
    {"errors", (getter)hook_get_errors, NULL,
     "Exceptions raised by calls of the handler, as {class name: count}.", NULL},
    {"dispatched", (getter)hook_get_dispatched, NULL, "Events passed to the handler.", NULL},
    {"active", (getter)hook_get_active, NULL, "Whether close() has not been called.", NULL},
    {"fast_starts", (getter)hook_get_fast_starts, NULL, "Calls started on the fast path.", NULL},
    {"fast_returns", (getter)hook_get_fast_returns, NULL, "Calls that returned on the fast path.", NULL},
    {"inbox_appends", (getter)hook_get_inbox_appends, NULL, "Traces appended to the writer's inbox.", NULL},
    {"fast_resumes", (getter)hook_get_fast_resumes, NULL, "Resumptions handled on the fast path.", NULL},
    {"fast_suspensions", (getter)hook_get_fast_suspensions, NULL, "Suspensions handled on the fast path.",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyDoc_STRVAR(hook_doc,
"Hook(handler, calls, suspects)\n\n"
"A profile function that calls handler(frame, event, arg) for the call and return\n"
"events of frames in the dict calls, and for the call events that start other\n"
"frames unless the handler returned SKIP_UNTRACED or SKIP_PAUSED for their code.\n"
"As the profile function of 3.11, which passes None at both, it also calls it for\n"
"the call events that resume such frames. While\n"
"the dict suspects is not empty, it calls the handler for every call and return\n"
"event. The event is \"call\", \"return\" (the frame returned or yielded arg) or\n"
"\"unwind\" (an exception left the frame). Calling the hook as\n"
"hook(frame, event, arg) handles one sys.setprofile event as the profile function\n"
"would, except that a \"return\" event with the value None reaches the handler as\n"
"\"return_or_unwind\", because a Python profile function gets None for both.");

static PyTypeObject HookType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "typetrace._profilehook.Hook",
    .tp_basicsize = sizeof(HookObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = hook_doc,
    .tp_new = hook_new,
    .tp_dealloc = (destructor)hook_dealloc,
    .tp_traverse = (traverseproc)hook_traverse,
    .tp_clear = (inquiry)hook_clear,
    .tp_call = (ternaryfunc)hook_call,
    .tp_methods = hook_methods,
    .tp_getset = hook_getset,
};

/* Module */

static PyMethodDef module_methods[] = {
    {"sent_value", (PyCFunction)(void (*)(void))profilehook_sent_value, METH_FASTCALL,
     "sent_value(frame, default)\n\n"
     "Return the value that frame receives as the value of a yield expression, or default "
     "where it resumes after anything else. Valid only in the handler's call event that "
     "resumes frame."},
#if PY_VERSION_HEX >= 0x030B0000
    {"eval_function_is_default", eval_function_is_default, METH_NOARGS,
     "Return whether the interpreter runs frames with CPython's default evaluation "
     "function, so that no other tool set one."},
#endif
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef profilehook_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "typetrace._profilehook",
    .m_methods = module_methods,
    .m_doc = "A profile function in C that calls typetrace's Python handler only for the "
             "events of code it watches.",
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__profilehook(void)
{
    if (fastcalls_module_init() < 0) {
        return NULL;
    }
#if PY_VERSION_HEX < 0x030B0000
    if (watched_key == NULL) {
        watched_key = PyUnicode_InternFromString("typetrace.profile_hook_installed");
        if (watched_key == NULL) {
            return NULL;
        }
    }
#endif
    if (extra_index < 0) {
        /* The marks are integers, not pointers, so nothing is freed with the code. */
        extra_index = _PyEval_RequestCodeExtraIndex(NULL);
        if (extra_index < 0) {
            return NULL;
        }
    }
    if (call_event == NULL) {
        call_event = PyUnicode_InternFromString("call");
        return_event = PyUnicode_InternFromString("return");
        unwind_event = PyUnicode_InternFromString("unwind");
        return_or_unwind_event = PyUnicode_InternFromString("return_or_unwind");
        if (call_event == NULL || return_event == NULL || unwind_event == NULL || return_or_unwind_event == NULL) {
            Py_CLEAR(call_event);
            Py_CLEAR(return_event);
            Py_CLEAR(unwind_event);
            Py_CLEAR(return_or_unwind_event);
            return NULL;
        }
    }
    if (PyType_Ready(&HookType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&profilehook_module);
    if (module == NULL) {
        return NULL;
    }
    Py_INCREF(&HookType);
    if (PyModule_AddObject(module, "Hook", (PyObject *)&HookType) < 0) {
        Py_DECREF(&HookType);
        Py_DECREF(module);
        return NULL;
    }
    if (PyModule_AddIntConstant(module, "SKIP_UNTRACED", SKIP_UNTRACED) < 0
        || PyModule_AddIntConstant(module, "SKIP_PAUSED", SKIP_PAUSED) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
