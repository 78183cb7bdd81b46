/* The fast path of calls whose types typetrace's recorder (typetrace._recorder) has
 * already cached, shared by the sys.monitoring callbacks of CPython 3.12 and later
 * (_fastcalls.c) and by the profile hook of 3.9 to 3.11 (_profilehook.c). Each of
 * them includes this file, so every function here is static.
 *
 * A call starts on the fast path when every call of its function is recorded, and
 * the function's argument cache contains a shared Call object for the classes of its
 * arguments. It returns on the fast path when that shared Call keeps a trace for the
 * class of the returned value, and the value is not the receiver. The fast path then
 * does what Recorder.start() and Recorder.returned() would do in that case: it
 * updates the recorder's dicts and the CodeInfo's counters, and hands the trace to
 * the sink. In every other case the caller passes the event to the backend's Python
 * code, where all of the tracing logic is, and which starts over from the event.
 *
 * The fast path reads the slots of CodeInfo and Call objects at offsets found when
 * it is set up, and checks each object's type first. It holds references to the
 * recorder's dicts, which the recorder clears but never replaces.
 *
 * When the sink passes traces on to a StoreWriter (typetrace._writer), a trace object
 * that the writer already holds is appended to its inbox here, as the first branch of
 * the writer's record method does, while the session's flag for threads that a fork
 * stopped is false. Otherwise the fast path calls the sink's record method, the only
 * Python code it runs, after the recorder's state is updated. All state is guarded
 * by the GIL.
 */

#ifndef TYPETRACE_FASTCALLS_H
#define TYPETRACE_FASTCALLS_H

#ifdef Py_GIL_DISABLED
#error "typetrace's fast path of calls needs the GIL"
#endif

#if PY_VERSION_HEX < 0x030C0000
#include <structmember.h>
#define Py_T_OBJECT_EX T_OBJECT_EX
#define Py_READONLY READONLY
#endif

/* CodeInfo.kind of a plain function, FUNCTION in typetrace._recorder. Only calls of
   plain functions share a Call. */
#define FASTCALLS_FUNCTION_KIND 0

static PyObject *fastcalls_str_generation = NULL;
static PyObject *fastcalls_str_calls_recorded = NULL;
static PyObject *fastcalls_str_note_error = NULL;
static PyObject *fastcalls_str_sink_where = NULL;
static PyObject *fastcalls_str_pending_ids = NULL;
static PyObject *fastcalls_str_thread = NULL;
static PyObject *fastcalls_str_closed = NULL;
static PyObject *fastcalls_str_inbox = NULL;
static PyObject *fastcalls_str_stopped_by_fork = NULL;
static PyObject *fastcalls_one = NULL;

typedef struct {
    /* The recorder, or NULL while the fast path is off. */
    PyObject *recorder;
    /* The recorder's dicts: codes {id(code): (code, CodeInfo or None)}, calls
       {frame: Call} and receiver_ids {frame: id of the receiver}. */
    PyObject *codes;
    PyObject *calls;
    PyObject *receiver_ids;
    /* The sink's record method, and the session's TraceStats. */
    PyObject *record;
    PyObject *stats;
    /* The StoreWriter that the sink passes traces to, or NULL, the size of its full
       inbox, and the trace session, which the sink first checks for threads that
       a fork stopped. */
    PyObject *writer;
    PyObject *session;
    Py_ssize_t inbox_limit;
    PyTypeObject *info_type;
    PyTypeObject *call_type;
    /* The event names passed to the recorder's note_error() for errors at a call's
       start and return, such as "PY_START". */
    PyObject *start_where;
    PyObject *return_where;
    /* Whether sampling records every call. */
    int all_calls;
    /* Size of the calls dict from which the recorder may sweep at a call's start. */
    Py_ssize_t first_sweep;
    /* Offsets of the slots of CodeInfo and Call that the fast path uses. */
    Py_ssize_t info_kind;
    Py_ssize_t info_always;
    Py_ssize_t info_paused;
    Py_ssize_t info_imports;
    Py_ssize_t info_arg_cache;
    Py_ssize_t info_params;
    Py_ssize_t info_receiver;
    Py_ssize_t info_calls;
    Py_ssize_t info_active;
    Py_ssize_t info_inferrer;
    Py_ssize_t call_info;
    Py_ssize_t call_traces;
    /* Events handled on the fast path. */
    unsigned long long fast_starts;
    unsigned long long fast_returns;
    /* Traces appended to the writer's inbox. */
    unsigned long long inbox_appends;
} FastCalls;

/* Reads the argument of a call for the parameter *name*, which is co_varnames[index]
   of the code, from *source*, a frame or a locals dict, as a new reference. Returns
   NULL when the argument has no value, or on an error. */
typedef PyObject *(*ArgumentReader)(PyObject *source, Py_ssize_t index, PyObject *name);

/* The object in the slot at *offset* of *obj*, borrowed, or NULL when it is unset. */
#define FASTCALLS_SLOT(obj, offset) (*(PyObject **)((char *)(obj) + (offset)))

/* Make the interned strings of the fast path; called from the module's init. */
static int
fastcalls_module_init(void)
{
    if (fastcalls_one != NULL) {
        return 0;
    }
    fastcalls_str_generation = PyUnicode_InternFromString("generation");
    fastcalls_str_calls_recorded = PyUnicode_InternFromString("calls_recorded");
    fastcalls_str_note_error = PyUnicode_InternFromString("note_error");
    fastcalls_str_sink_where = PyUnicode_InternFromString("sink");
    fastcalls_str_pending_ids = PyUnicode_InternFromString("_pending_ids");
    fastcalls_str_thread = PyUnicode_InternFromString("_thread");
    fastcalls_str_closed = PyUnicode_InternFromString("_closed");
    fastcalls_str_inbox = PyUnicode_InternFromString("_inbox");
    fastcalls_str_stopped_by_fork = PyUnicode_InternFromString("_threads_stopped_by_fork");
    fastcalls_one = PyLong_FromLong(1);
    if (fastcalls_str_generation == NULL || fastcalls_str_calls_recorded == NULL ||
        fastcalls_str_note_error == NULL || fastcalls_str_sink_where == NULL || fastcalls_str_pending_ids == NULL ||
        fastcalls_str_thread == NULL || fastcalls_str_closed == NULL || fastcalls_str_inbox == NULL ||
        fastcalls_str_stopped_by_fork == NULL || fastcalls_one == NULL) {
        Py_CLEAR(fastcalls_one);
        return -1;
    }
    return 0;
}

/* Find the offset of the writable object slot *name* of *type*. */
static int
fastcalls_slot_offset(PyTypeObject *type, const char *name, Py_ssize_t *offset)
{
    PyObject *descr = PyObject_GetAttrString((PyObject *)type, name);
    if (descr == NULL) {
        return -1;
    }
    int found = 0;
    if (Py_IS_TYPE(descr, &PyMemberDescr_Type)) {
        PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
        if (member->type == Py_T_OBJECT_EX && !(member->flags & Py_READONLY)) {
            *offset = member->offset;
            found = 1;
        }
    }
    Py_DECREF(descr);
    if (!found) {
        PyErr_Format(PyExc_TypeError, "%s.%s is not a writable slot", type->tp_name, name);
        return -1;
    }
    return 0;
}

static int
fastcalls_find_offsets(FastCalls *fast, PyTypeObject *info_type, PyTypeObject *call_type)
{
    if (fastcalls_slot_offset(info_type, "kind", &fast->info_kind) < 0 ||
        fastcalls_slot_offset(info_type, "always", &fast->info_always) < 0 ||
        fastcalls_slot_offset(info_type, "paused", &fast->info_paused) < 0 ||
        fastcalls_slot_offset(info_type, "imports", &fast->info_imports) < 0 ||
        fastcalls_slot_offset(info_type, "arg_cache", &fast->info_arg_cache) < 0 ||
        fastcalls_slot_offset(info_type, "params", &fast->info_params) < 0 ||
        fastcalls_slot_offset(info_type, "receiver", &fast->info_receiver) < 0 ||
        fastcalls_slot_offset(info_type, "calls", &fast->info_calls) < 0 ||
        fastcalls_slot_offset(info_type, "active", &fast->info_active) < 0 ||
        fastcalls_slot_offset(info_type, "inferrer", &fast->info_inferrer) < 0 ||
        fastcalls_slot_offset(call_type, "info", &fast->call_info) < 0 ||
        fastcalls_slot_offset(call_type, "traces", &fast->call_traces) < 0) {
        return -1;
    }
    return 0;
}

/* Release the references of *fast*, which turns the fast path off. */
static void
fastcalls_clear(FastCalls *fast)
{
    Py_CLEAR(fast->recorder);
    Py_CLEAR(fast->codes);
    Py_CLEAR(fast->calls);
    Py_CLEAR(fast->receiver_ids);
    Py_CLEAR(fast->record);
    Py_CLEAR(fast->stats);
    Py_CLEAR(fast->writer);
    Py_CLEAR(fast->session);
    Py_CLEAR(fast->info_type);
    Py_CLEAR(fast->call_type);
    Py_CLEAR(fast->start_where);
    Py_CLEAR(fast->return_where);
}

static int
fastcalls_traverse(FastCalls *fast, visitproc visit, void *arg)
{
    Py_VISIT(fast->recorder);
    Py_VISIT(fast->codes);
    Py_VISIT(fast->calls);
    Py_VISIT(fast->receiver_ids);
    Py_VISIT(fast->record);
    Py_VISIT(fast->stats);
    Py_VISIT(fast->writer);
    Py_VISIT(fast->session);
    Py_VISIT(fast->info_type);
    Py_VISIT(fast->call_type);
    Py_VISIT(fast->start_where);
    Py_VISIT(fast->return_where);
    return 0;
}

/* Set up the fast path for *recorder*, whose CodeInfo and Call classes are
   *info_type* and *call_type*. *writer* and *session* may be None. Errors at a
   call's start and return are passed to the recorder's note_error() with
   *start_where* and *return_where*. The counters keep their values. */
static int
fastcalls_setup(FastCalls *fast, PyObject *recorder, PyTypeObject *info_type, PyTypeObject *call_type,
                int all_calls, Py_ssize_t first_sweep, PyObject *writer, PyObject *session, Py_ssize_t inbox_limit,
                const char *start_where, const char *return_where)
{
    if (fastcalls_find_offsets(fast, info_type, call_type) < 0) {
        return -1;
    }
    PyObject *codes = PyObject_GetAttrString(recorder, "codes");
    PyObject *calls = PyObject_GetAttrString(recorder, "calls");
    PyObject *receiver_ids = PyObject_GetAttrString(recorder, "receiver_ids");
    PyObject *sink = PyObject_GetAttrString(recorder, "sink");
    PyObject *record = sink == NULL ? NULL : PyObject_GetAttrString(sink, "record");
    PyObject *stats = PyObject_GetAttrString(recorder, "stats");
    PyObject *start_name = PyUnicode_InternFromString(start_where);
    PyObject *return_name = PyUnicode_InternFromString(return_where);
    Py_XDECREF(sink);
    if (codes == NULL || calls == NULL || receiver_ids == NULL || record == NULL || stats == NULL ||
        start_name == NULL || return_name == NULL) {
        goto error;
    }
    if (!PyDict_CheckExact(codes) || !PyDict_CheckExact(calls) || !PyDict_CheckExact(receiver_ids)) {
        PyErr_SetString(PyExc_TypeError, "the recorder's codes, calls and receiver_ids must be dicts");
        goto error;
    }
    fastcalls_clear(fast);
    Py_INCREF(recorder);
    fast->recorder = recorder;
    fast->codes = codes;
    fast->calls = calls;
    fast->receiver_ids = receiver_ids;
    fast->record = record;
    fast->stats = stats;
    fast->start_where = start_name;
    fast->return_where = return_name;
    Py_INCREF(info_type);
    fast->info_type = info_type;
    Py_INCREF(call_type);
    fast->call_type = call_type;
    if (writer != Py_None) {
        Py_INCREF(writer);
        fast->writer = writer;
    }
    if (session != Py_None) {
        Py_INCREF(session);
        fast->session = session;
    }
    fast->inbox_limit = inbox_limit;
    fast->all_calls = all_calls;
    fast->first_sweep = first_sweep;
    return 0;
error:
    Py_XDECREF(codes);
    Py_XDECREF(calls);
    Py_XDECREF(receiver_ids);
    Py_XDECREF(record);
    Py_XDECREF(stats);
    Py_XDECREF(start_name);
    Py_XDECREF(return_name);
    return -1;
}

/* Add *delta* to the int in the slot at *offset* of *obj*. */
static int
fastcalls_add_to_slot(PyObject *obj, Py_ssize_t offset, Py_ssize_t delta)
{
    PyObject *old = FASTCALLS_SLOT(obj, offset);
    if (old == NULL || !PyLong_CheckExact(old)) {
        PyErr_SetString(PyExc_TypeError, "a counter of typetrace's recorder is not an int");
        return -1;
    }
    Py_ssize_t value = PyLong_AsSsize_t(old);
    if (value == -1 && PyErr_Occurred()) {
        return -1;
    }
    PyObject *new_value = PyLong_FromSsize_t(value + delta);
    if (new_value == NULL) {
        return -1;
    }
    FASTCALLS_SLOT(obj, offset) = new_value;
    Py_DECREF(old);
    return 0;
}

/* Return 1 when the slot at *offset* of *obj* contains an int equal to *expected*. */
static int
fastcalls_slot_equals(PyObject *obj, Py_ssize_t offset, long expected)
{
    PyObject *value = FASTCALLS_SLOT(obj, offset);
    if (value == NULL || !PyLong_CheckExact(value)) {
        return 0;
    }
    long number = PyLong_AsLong(value);
    if (number == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    return number == expected;
}

/* Return the CodeInfo of *code*, or None when its calls are not traced, both
   borrowed from the recorder's codes dict. Return NULL when the recorder has no entry
   for it, or on an error, which is cleared. */
static PyObject *
fastcalls_info_of(FastCalls *fast, PyObject *code)
{
    PyObject *code_id = PyLong_FromVoidPtr(code);
    if (code_id == NULL) {
        PyErr_Clear();
        return NULL;
    }
    PyObject *entry = PyDict_GetItemWithError(fast->codes, code_id);
    Py_DECREF(code_id);
    if (entry == NULL || !PyTuple_CheckExact(entry) || PyTuple_GET_SIZE(entry) != 2 ||
        PyTuple_GET_ITEM(entry, 0) != code) {
        PyErr_Clear();
        return NULL;
    }
    return PyTuple_GET_ITEM(entry, 1);
}

/* Return 1 when *generation*, taken from a cache entry, is the current generation
   of the inferrer of *info*, 0 when it is not or on an error, which is cleared. */
static int
fastcalls_is_current(FastCalls *fast, PyObject *info, PyObject *generation)
{
    PyObject *inferrer = FASTCALLS_SLOT(info, fast->info_inferrer);
    if (inferrer == NULL) {
        return 0;
    }
    PyObject *current = PyObject_GetAttr(inferrer, fastcalls_str_generation);
    if (current == NULL) {
        PyErr_Clear();
        return 0;
    }
    /* CPython caches the ints up to 256, so small generations are one object. */
    int same = current == generation || (PyLong_CheckExact(current) && PyLong_CheckExact(generation) &&
                                         PyObject_RichCompareBool(current, generation, Py_EQ) == 1);
    Py_DECREF(current);
    PyErr_Clear();
    return same;
}

/* Pass the Exception that is set to the recorder's note_error(), with *where*, as
   the recorder's Python code does with the errors it catches, and return 0.
   Return -1, with an exception set, in two cases, and the caller then lets the
   exception go on to the program. One is an exception that is not an Exception,
   such as KeyboardInterrupt, which the Python code does not catch either. The other
   is an exception of note_error(), which raises the exception of a signal handler
   of the program again. */
static int
fastcalls_note_error(FastCalls *fast, PyObject *where)
{
    if (!PyErr_ExceptionMatches(PyExc_Exception)) {
        return -1;
    }
    PyObject *type, *error, *traceback;
    PyErr_Fetch(&type, &error, &traceback);
    PyErr_NormalizeException(&type, &error, &traceback);
    if (error == NULL) {
        Py_XDECREF(type);
        Py_XDECREF(traceback);
        return 0;
    }
    if (traceback != NULL) {
        /* raised_by_signal_handler() in typetrace._signals reads the traceback. */
        PyException_SetTraceback(error, traceback);
    }
    Py_XDECREF(type);
    Py_XDECREF(traceback);
    PyObject *result =
        PyObject_CallMethodObjArgs(fast->recorder, fastcalls_str_note_error, where, error, NULL);
    Py_DECREF(error);
    if (result == NULL) {
        return -1;
    }
    Py_DECREF(result);
    return 0;
}

/* Compute the argument-type key of a call, as the key function of
   typetrace._recorder does: the id of the argument's class for one parameter, and a
   tuple of them for other counts. *read* reads each argument of *params* from
   *source*. Store a new reference to the first argument's value in *first*, or NULL
   without parameters. Return NULL when a parameter has no value, or on an error,
   both cleared. */
static PyObject *
fastcalls_argument_key(ArgumentReader read, PyObject *source, PyObject *params, PyObject **first)
{
    *first = NULL;
    Py_ssize_t count = PyTuple_GET_SIZE(params);
    if (count == 1) {
        PyObject *value = read(source, 0, PyTuple_GET_ITEM(params, 0));
        if (value == NULL) {
            PyErr_Clear();
            return NULL;
        }
        PyObject *key = PyLong_FromVoidPtr((void *)Py_TYPE(value));
        if (key == NULL) {
            PyErr_Clear();
            Py_DECREF(value);
            return NULL;
        }
        *first = value;
        return key;
    }
    PyObject *key = PyTuple_New(count);
    if (key == NULL) {
        PyErr_Clear();
        return NULL;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *value = read(source, i, PyTuple_GET_ITEM(params, i));
        if (value == NULL) {
            goto error;
        }
        PyObject *class_id = PyLong_FromVoidPtr((void *)Py_TYPE(value));
        if (class_id == NULL) {
            Py_DECREF(value);
            goto error;
        }
        PyTuple_SET_ITEM(key, i, class_id);
        if (i == 0) {
            *first = value;
        }
        else {
            Py_DECREF(value);
        }
    }
    return key;
error:
    PyErr_Clear();
    Py_CLEAR(*first);
    Py_DECREF(key);
    return NULL;
}

/* Return 1 when a call of the code of *info* may start on the fast path, as far as
   the checks that read no argument tell, and 0 when the caller must pass the event
   to the Python code. */
static int
fastcalls_may_start(FastCalls *fast, PyObject *info)
{
    if (!fast->all_calls && FASTCALLS_SLOT(info, fast->info_always) != Py_True) {
        return 0;
    }
    if (FASTCALLS_SLOT(info, fast->info_imports) != Py_False) {
        /* The Python code decides whether the arguments may be read. */
        return 0;
    }
    if (FASTCALLS_SLOT(info, fast->info_paused) != Py_False) {
        /* The Python code marks the function as paused. */
        return 0;
    }
    if (!fastcalls_slot_equals(info, fast->info_kind, FASTCALLS_FUNCTION_KIND)) {
        return 0;
    }
    PyObject *cache = FASTCALLS_SLOT(info, fast->info_arg_cache);
    PyObject *params = FASTCALLS_SLOT(info, fast->info_params);
    PyObject *receiver = FASTCALLS_SLOT(info, fast->info_receiver);
    if (cache == NULL || !PyDict_CheckExact(cache) || params == NULL || !PyTuple_CheckExact(params) ||
        receiver == NULL) {
        return 0;
    }
    if (receiver != Py_None && (PyTuple_GET_SIZE(params) == 0 || PyTuple_GET_ITEM(params, 0) != receiver)) {
        return 0;
    }
    if (PyDict_GET_SIZE(fast->calls) >= fast->first_sweep) {
        /* The Python code sweeps when the dict has grown to its threshold. */
        return 0;
    }
    return 1;
}

/* Start the call in *frame* of the code of *info* on the fast path, for which
   fastcalls_may_start() returned 1, reading its arguments from *source* with *read*.
   Return 1 when it did, 0 when the caller must pass the event to the Python code,
   and -1 when an exception goes on to the program. */
static int
fastcalls_start(FastCalls *fast, PyObject *info, PyObject *frame, ArgumentReader read, PyObject *source)
{
    PyObject *cache = FASTCALLS_SLOT(info, fast->info_arg_cache);
    PyObject *params = FASTCALLS_SLOT(info, fast->info_params);
    PyObject *receiver = FASTCALLS_SLOT(info, fast->info_receiver);
    PyObject *first;
    PyObject *key = fastcalls_argument_key(read, source, params, &first);
    if (key == NULL) {
        return 0;
    }
    PyObject *entry = PyDict_GetItemWithError(cache, key);
    Py_DECREF(key);
    if (entry == NULL || !PyTuple_CheckExact(entry) || PyTuple_GET_SIZE(entry) != 3 ||
        PyTuple_GET_ITEM(entry, 2) == Py_None || !fastcalls_is_current(fast, info, PyTuple_GET_ITEM(entry, 0))) {
        PyErr_Clear();
        Py_XDECREF(first);
        return 0;
    }
    PyObject *shared_call = PyTuple_GET_ITEM(entry, 2);
    Py_INCREF(shared_call);
    int status = 0;
    if (receiver != Py_None) {
        PyObject *receiver_id = PyLong_FromVoidPtr(first);
        if (receiver_id == NULL || PyDict_SetItem(fast->receiver_ids, frame, receiver_id) < 0) {
            status = -1;
        }
        Py_XDECREF(receiver_id);
    }
    if (status == 0 && PyDict_SetItem(fast->calls, frame, shared_call) < 0) {
        status = -1;
    }
    if (status == 0 && (fastcalls_add_to_slot(info, fast->info_calls, 1) < 0 ||
                        fastcalls_add_to_slot(info, fast->info_active, 1) < 0)) {
        status = -1;
    }
    Py_DECREF(shared_call);
    Py_XDECREF(first);
    if (status < 0) {
        return fastcalls_note_error(fast, fast->start_where) < 0 ? -1 : 1;
    }
    fast->fast_starts++;
    return 1;
}

/* Return the attribute *name* of *obj*, borrowed from its instance dict, or NULL
   when it is not there. */
static PyObject *
fastcalls_instance_attribute(PyObject *obj, PyObject *name)
{
    PyObject *dict = PyObject_GenericGetDict(obj, NULL);
    if (dict == NULL) {
        PyErr_Clear();
        return NULL;
    }
    PyObject *value = PyDict_GetItemWithError(dict, name);
    Py_DECREF(dict);
    PyErr_Clear();
    return value;
}

/* Append *trace* to the writer's inbox when the writer's record method would: the
   writer has this object pending, its thread runs, and the inbox is not full. Return 1
   when it appended, 0 when the record method must take the trace. */
static int
fastcalls_append_to_inbox(FastCalls *fast, PyObject *trace)
{
    if (fastcalls_instance_attribute(fast->session, fastcalls_str_stopped_by_fork) != Py_False) {
        return 0;
    }
    PyObject *writer_dict = PyObject_GenericGetDict(fast->writer, NULL);
    if (writer_dict == NULL) {
        PyErr_Clear();
        return 0;
    }
    /* Borrowed references: the writer's dict keeps them alive, and no Python code
       runs before the append. */
    PyObject *pending_ids = PyDict_GetItemWithError(writer_dict, fastcalls_str_pending_ids);
    PyObject *thread = PyDict_GetItemWithError(writer_dict, fastcalls_str_thread);
    PyObject *closed = PyDict_GetItemWithError(writer_dict, fastcalls_str_closed);
    PyObject *inbox = PyDict_GetItemWithError(writer_dict, fastcalls_str_inbox);
    Py_DECREF(writer_dict);
    PyErr_Clear();
    if (pending_ids == NULL || !PyDict_CheckExact(pending_ids) || thread == NULL || thread == Py_None ||
        closed != Py_False || inbox == NULL || !PyList_CheckExact(inbox) ||
        PyList_GET_SIZE(inbox) >= fast->inbox_limit) {
        return 0;
    }
    PyObject *trace_id = PyLong_FromVoidPtr(trace);
    if (trace_id == NULL) {
        PyErr_Clear();
        return 0;
    }
    PyObject *known = PyDict_GetItemWithError(pending_ids, trace_id);
    Py_DECREF(trace_id);
    if (known == NULL || !PyTuple_CheckExact(known) || PyTuple_GET_SIZE(known) < 1 ||
        PyTuple_GET_ITEM(known, 0) != trace) {
        PyErr_Clear();
        return 0;
    }
    if (PyList_Append(inbox, trace) < 0) {
        PyErr_Clear();
        return 0;
    }
    fast->inbox_appends++;
    return 1;
}

/* Hand *trace* to the sink and count it, as the recorder's _hand_over() does.
   Return -1 when an exception goes on to the program, else 0. */
static int
fastcalls_hand_over(FastCalls *fast, PyObject *trace)
{
    if (fast->writer == NULL || fast->session == NULL || !fastcalls_append_to_inbox(fast, trace)) {
        PyObject *result = PyObject_CallOneArg(fast->record, trace);
        if (result == NULL) {
            return fastcalls_note_error(fast, fastcalls_str_sink_where);
        }
        Py_DECREF(result);
    }
    PyObject *count = PyObject_GetAttr(fast->stats, fastcalls_str_calls_recorded);
    if (count != NULL) {
        PyObject *new_count = PyNumber_Add(count, fastcalls_one);
        Py_DECREF(count);
        if (new_count != NULL) {
            int set = PyObject_SetAttr(fast->stats, fastcalls_str_calls_recorded, new_count);
            Py_DECREF(new_count);
            if (set == 0) {
                return 0;
            }
        }
    }
    PyErr_Clear();
    return 0;
}

/* Return the trace that *call*, a shared Call of the code of *info* open in
   *frame*, has cached for the class of *value*, as a new reference, or NULL when
   the caller must pass the event to the Python code. */
static PyObject *
fastcalls_cached_trace(FastCalls *fast, PyObject *info, PyObject *call, PyObject *frame, PyObject *value)
{
    PyObject *traces = FASTCALLS_SLOT(call, fast->call_traces);
    PyObject *receiver = FASTCALLS_SLOT(info, fast->info_receiver);
    if (traces == NULL || !PyDict_CheckExact(traces) || receiver == NULL ||
        !fastcalls_slot_equals(info, fast->info_kind, FASTCALLS_FUNCTION_KIND)) {
        return NULL;
    }
    if (receiver != Py_None) {
        /* A return of the receiver, or of an instance of exactly its class, is marked. */
        PyObject *receiver_id = PyDict_GetItemWithError(fast->receiver_ids, frame);
        if (receiver_id != NULL) {
            void *receiver_address = PyLong_AsVoidPtr(receiver_id);
            if (receiver_address == (void *)value || receiver_address == (void *)Py_TYPE(value)) {
                return NULL;
            }
        }
        PyErr_Clear();
    }
    PyObject *class_id = PyLong_FromVoidPtr((void *)Py_TYPE(value));
    if (class_id == NULL) {
        PyErr_Clear();
        return NULL;
    }
    PyObject *entry = PyDict_GetItemWithError(traces, class_id);
    Py_DECREF(class_id);
    if (entry == NULL || !PyTuple_CheckExact(entry) || PyTuple_GET_SIZE(entry) != 2 ||
        !fastcalls_is_current(fast, info, PyTuple_GET_ITEM(entry, 0))) {
        PyErr_Clear();
        return NULL;
    }
    PyObject *trace = PyTuple_GET_ITEM(entry, 1);
    Py_INCREF(trace);
    return trace;
}

/* Record on the fast path *call*, the value of *frame* in the recorder's calls
   dict, which returned *value*. When *expected_info* is not NULL, the call must be
   one of that CodeInfo. Return 1 when it did, 0 when the caller must pass the event
   to the Python code, and -1 when an exception goes on to the program. */
static int
fastcalls_return_call(FastCalls *fast, PyObject *call, PyObject *expected_info, PyObject *frame, PyObject *value)
{
    if (!Py_IS_TYPE(call, fast->call_type)) {
        return 0;
    }
    PyObject *info = FASTCALLS_SLOT(call, fast->call_info);
    if (info == NULL || !Py_IS_TYPE(info, fast->info_type) || (expected_info != NULL && info != expected_info)) {
        return 0;
    }
    /* Removing the call from the dict may drop the last references to both. */
    Py_INCREF(call);
    Py_INCREF(info);
    int status = 0;
    PyObject *trace = fastcalls_cached_trace(fast, info, call, frame, value);
    if (trace == NULL) {
        goto done;
    }
    status = 1;
    if (PyDict_DelItem(fast->calls, frame) < 0) {
        goto error;
    }
    if (FASTCALLS_SLOT(info, fast->info_receiver) != Py_None && PyDict_DelItem(fast->receiver_ids, frame) < 0) {
        /* A call whose receiver argument the Python code did not find has no entry. */
        if (!PyErr_ExceptionMatches(PyExc_KeyError)) {
            goto error;
        }
        PyErr_Clear();
    }
    if (fastcalls_add_to_slot(info, fast->info_active, -1) < 0) {
        goto error;
    }
    fast->fast_returns++;
    if (fastcalls_hand_over(fast, trace) < 0) {
        status = -1;
    }
    goto done;
error:
    if (fastcalls_note_error(fast, fast->return_where) < 0) {
        status = -1;
    }
done:
    Py_XDECREF(trace);
    Py_DECREF(info);
    Py_DECREF(call);
    return status;
}

/* Record on the fast path the call open in *frame*, as fastcalls_return_call()
   does. */
static int
fastcalls_return(FastCalls *fast, PyObject *expected_info, PyObject *frame, PyObject *value)
{
    PyObject *call = PyDict_GetItemWithError(fast->calls, frame);
    if (call == NULL) {
        PyErr_Clear();
        return 0;
    }
    return fastcalls_return_call(fast, call, expected_info, frame, value);
}

#endif
