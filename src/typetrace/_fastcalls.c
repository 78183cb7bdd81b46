/* PY_START and PY_RETURN callbacks in C for the sys.monitoring backend of CPython
 * 3.12 and later (typetrace._monitoring): the fast path of calls whose types the
 * recorder (typetrace._recorder) has already cached.
 *
 * A call starts on the fast path when every call of its function is recorded, and
 * the function's argument cache contains a shared Call object for the classes of its
 * arguments. It returns on the fast path when that shared Call holds a trace for the
 * class of the returned value, and the value is not the receiver. The fast path then
 * does what the recorder's Python code would do in that case: it updates the
 * recorder's dicts and the CodeInfo's counters, and hands the trace to the sink.
 * Every other event goes to the backend's Python callback, where all of the tracing
 * logic is, and which starts over from the event.
 *
 * The callbacks read the slots of CodeInfo and Call objects at offsets found when a
 * Callbacks object is made, and check each object's type first. They hold references
 * to the recorder's dicts, which the recorder clears but never replaces.
 *
 * When the sink passes traces on to a StoreWriter (typetrace._writer), a trace object
 * that the writer already holds is appended to its inbox here, as the first branch of
 * the writer's record method does, while the session's flag for threads that a fork
 * stopped is false. Otherwise the fast path calls the sink's record method, the only
 * Python code it runs, after the recorder's state is updated. All state is guarded
 * by the GIL.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#if PY_VERSION_HEX < 0x030C0000
#error "typetrace._fastcalls is for CPython 3.12 and later"
#endif
#ifdef Py_GIL_DISABLED
#error "typetrace._fastcalls needs the GIL"
#endif

static PyObject *str_generation = NULL;
static PyObject *str_calls_recorded = NULL;
static PyObject *str_note_error = NULL;
static PyObject *str_sink_where = NULL;
static PyObject *str_start_where = NULL;
static PyObject *str_return_where = NULL;
static PyObject *int_one = NULL;
static PyObject *str_pending_ids = NULL;
static PyObject *str_thread = NULL;
static PyObject *str_closed = NULL;
static PyObject *str_inbox = NULL;
static PyObject *str_stopped_by_fork = NULL;

typedef struct {
    PyObject_HEAD
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
    /* The backend's Python callbacks, for the events the fast path leaves. */
    PyObject *start_fallback;
    PyObject *return_fallback;
    /* sys.monitoring.DISABLE. */
    PyObject *disable;
    PyTypeObject *info_type;
    PyTypeObject *call_type;
    /* Whether sampling records every call. */
    int all_calls;
    /* Size of the calls dict from which the recorder may sweep at a call's start. */
    Py_ssize_t first_sweep;
    /* Offsets of the slots of CodeInfo and Call that the fast path uses. */
    Py_ssize_t info_always;
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
} CallbacksObject;

/* The object in the slot at *offset* of *obj*, borrowed, or NULL when it is unset. */
#define SLOT(obj, offset) (*(PyObject **)((char *)(obj) + (offset)))

/* Find the offset of the writable object slot *name* of *type*. */
static int
slot_offset(PyTypeObject *type, const char *name, Py_ssize_t *offset)
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

/* Add *delta* to the int in the slot at *offset* of *obj*. */
static int
add_to_slot(PyObject *obj, Py_ssize_t offset, Py_ssize_t delta)
{
    PyObject *old = SLOT(obj, offset);
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
    SLOT(obj, offset) = new_value;
    Py_DECREF(old);
    return 0;
}

/* Return the CodeInfo of *code*, or None when its calls are not traced, both
   borrowed from the recorder's codes dict. Return NULL when the recorder has no entry
   for it, or on an error, which is cleared. */
static PyObject *
info_of(CallbacksObject *self, PyObject *code)
{
    PyObject *code_id = PyLong_FromVoidPtr(code);
    if (code_id == NULL) {
        PyErr_Clear();
        return NULL;
    }
    PyObject *entry = PyDict_GetItemWithError(self->codes, code_id);
    Py_DECREF(code_id);
    if (entry == NULL || !PyTuple_CheckExact(entry) || PyTuple_GET_SIZE(entry) != 2) {
        PyErr_Clear();
        return NULL;
    }
    return PyTuple_GET_ITEM(entry, 1);
}

/* Return 1 when *generation*, taken from a cache entry, is the current generation
   of the inferrer of *info*, 0 when it is not or on an error, which is cleared. */
static int
is_current(CallbacksObject *self, PyObject *info, PyObject *generation)
{
    PyObject *inferrer = SLOT(info, self->info_inferrer);
    if (inferrer == NULL) {
        return 0;
    }
    PyObject *current = PyObject_GetAttr(inferrer, str_generation);
    if (current == NULL) {
        PyErr_Clear();
        return 0;
    }
    int same = PyLong_CheckExact(current) && PyLong_CheckExact(generation) &&
               PyObject_RichCompareBool(current, generation, Py_EQ) == 1;
    Py_DECREF(current);
    PyErr_Clear();
    return same;
}

/* Pass the exception that is set to the recorder's note_error(), with *where*.
   Return -1 when note_error() raises, which it does for an exception that a signal
   handler of the program raised, so that the program gets it. Return -1 with the
   exception still set when it is not an Exception, such as KeyboardInterrupt, which
   the Python callbacks do not catch either. */
static int
note_error(CallbacksObject *self, PyObject *where)
{
    if (!PyErr_ExceptionMatches(PyExc_Exception)) {
        return -1;
    }
    PyObject *error = PyErr_GetRaisedException();
    PyObject *result = PyObject_CallMethodObjArgs(self->recorder, str_note_error, where, error, NULL);
    Py_DECREF(error);
    if (result == NULL) {
        return -1;
    }
    Py_DECREF(result);
    return 0;
}

/* Compute the argument-type key of the call in *frame*, as the key function of
   typetrace._recorder does: the id of the argument's class for one parameter, and a
   tuple of them for other counts. Store a new reference to the first argument's
   value in *first*, or NULL without parameters. Return NULL when a parameter has no
   value, or on an error, both cleared. */
static PyObject *
argument_key(PyFrameObject *frame, PyObject *params, PyObject **first)
{
    *first = NULL;
    Py_ssize_t count = PyTuple_GET_SIZE(params);
    if (count == 1) {
        PyObject *value = PyFrame_GetVar(frame, PyTuple_GET_ITEM(params, 0));
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
        PyObject *value = PyFrame_GetVar(frame, PyTuple_GET_ITEM(params, i));
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

/* Start the call on the fast path. Return 1 when it did, 0 when the Python callback
   must handle the event, and -1 when the recorder's note_error() raised. */
static int
fast_start(CallbacksObject *self, PyObject *info)
{
    if (!self->all_calls && SLOT(info, self->info_always) != Py_True) {
        return 0;
    }
    if (SLOT(info, self->info_imports) != Py_False) {
        /* The Python code decides whether the arguments may be read. */
        return 0;
    }
    PyObject *cache = SLOT(info, self->info_arg_cache);
    PyObject *params = SLOT(info, self->info_params);
    PyObject *receiver = SLOT(info, self->info_receiver);
    if (cache == NULL || !PyDict_CheckExact(cache) || params == NULL || !PyTuple_CheckExact(params) ||
        receiver == NULL) {
        return 0;
    }
    if (receiver != Py_None && (PyTuple_GET_SIZE(params) == 0 || PyTuple_GET_ITEM(params, 0) != receiver)) {
        return 0;
    }
    if (PyDict_GET_SIZE(self->calls) >= self->first_sweep) {
        /* The Python code sweeps when the dict has grown to its threshold. */
        return 0;
    }
    PyFrameObject *frame = PyEval_GetFrame();
    if (frame == NULL) {
        return 0;
    }
    PyObject *first;
    PyObject *key = argument_key(frame, params, &first);
    if (key == NULL) {
        return 0;
    }
    PyObject *entry = PyDict_GetItemWithError(cache, key);
    Py_DECREF(key);
    if (entry == NULL || !PyTuple_CheckExact(entry) || PyTuple_GET_SIZE(entry) != 3 ||
        PyTuple_GET_ITEM(entry, 2) == Py_None || !is_current(self, info, PyTuple_GET_ITEM(entry, 0))) {
        PyErr_Clear();
        Py_XDECREF(first);
        return 0;
    }
    PyObject *shared_call = PyTuple_GET_ITEM(entry, 2);
    Py_INCREF(shared_call);
    int status = 0;
    if (receiver != Py_None) {
        PyObject *receiver_id = PyLong_FromVoidPtr(first);
        if (receiver_id == NULL || PyDict_SetItem(self->receiver_ids, (PyObject *)frame, receiver_id) < 0) {
            status = -1;
        }
        Py_XDECREF(receiver_id);
    }
    if (status == 0 && PyDict_SetItem(self->calls, (PyObject *)frame, shared_call) < 0) {
        status = -1;
    }
    if (status == 0 && (add_to_slot(info, self->info_calls, 1) < 0 || add_to_slot(info, self->info_active, 1) < 0)) {
        status = -1;
    }
    Py_DECREF(shared_call);
    Py_XDECREF(first);
    if (status < 0) {
        return note_error(self, str_start_where) < 0 ? -1 : 1;
    }
    self->fast_starts++;
    return 1;
}

static PyObject *
start_event(CallbacksObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs == 2) {
        PyObject *info = info_of(self, args[0]);
        if (info == Py_None) {
            return Py_NewRef(self->disable);
        }
        if (info != NULL && Py_IS_TYPE(info, self->info_type)) {
            Py_INCREF(info);
            int started = fast_start(self, info);
            Py_DECREF(info);
            if (started < 0) {
                return NULL;
            }
            if (started > 0) {
                Py_RETURN_NONE;
            }
        }
    }
    return PyObject_Vectorcall(self->start_fallback, args, nargs, NULL);
}

/* Return the attribute *name* of *obj*, borrowed from its instance dict, or NULL
   when it is not there. */
static PyObject *
instance_attribute(PyObject *obj, PyObject *name)
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
   writer already registered this object, its thread runs, and the inbox is not full. Return 1
   when it appended, 0 when the record method must take the trace. */
static int
append_to_inbox(CallbacksObject *self, PyObject *trace)
{
    PyObject *writer = self->writer;
    if (instance_attribute(self->session, str_stopped_by_fork) != Py_False) {
        return 0;
    }
    PyObject *pending_ids = instance_attribute(writer, str_pending_ids);
    PyObject *thread = instance_attribute(writer, str_thread);
    PyObject *closed = instance_attribute(writer, str_closed);
    PyObject *inbox = instance_attribute(writer, str_inbox);
    if (pending_ids == NULL || !PyDict_CheckExact(pending_ids) || thread == NULL || thread == Py_None ||
        closed != Py_False || inbox == NULL || !PyList_CheckExact(inbox) ||
        PyList_GET_SIZE(inbox) >= self->inbox_limit) {
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
    self->inbox_appends++;
    return 1;
}

/* Hand *trace* to the sink and count it, as the recorder's _hand_over() does. */
static PyObject *
hand_over(CallbacksObject *self, PyObject *trace)
{
    PyObject *result;
    if (self->writer != NULL && self->session != NULL && append_to_inbox(self, trace)) {
        result = Py_NewRef(Py_None);
    }
    else {
        result = PyObject_CallOneArg(self->record, trace);
    }
    if (result == NULL) {
        if (note_error(self, str_sink_where) < 0) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    Py_DECREF(result);
    PyObject *count = PyObject_GetAttr(self->stats, str_calls_recorded);
    if (count != NULL) {
        PyObject *new_count = PyNumber_Add(count, int_one);
        Py_DECREF(count);
        if (new_count != NULL) {
            int set = PyObject_SetAttr(self->stats, str_calls_recorded, new_count);
            Py_DECREF(new_count);
            if (set == 0) {
                Py_RETURN_NONE;
            }
        }
    }
    PyErr_Clear();
    Py_RETURN_NONE;
}

/* Return the trace that the shared Call of the call in *frame* keeps for the class
   of *value*, as a new reference, or NULL when the Python callback must handle the
   event. */
static PyObject *
cached_trace(CallbacksObject *self, PyObject *info, PyObject *frame, PyObject *value)
{
    PyObject *call = PyDict_GetItemWithError(self->calls, frame);
    if (call == NULL || !Py_IS_TYPE(call, self->call_type)) {
        PyErr_Clear();
        return NULL;
    }
    PyObject *traces = SLOT(call, self->call_traces);
    PyObject *receiver = SLOT(info, self->info_receiver);
    if (traces == NULL || !PyDict_CheckExact(traces) || SLOT(call, self->call_info) != info || receiver == NULL) {
        return NULL;
    }
    if (receiver != Py_None) {
        /* A return of the receiver, or of an instance of exactly its class, is marked. */
        PyObject *receiver_id = PyDict_GetItemWithError(self->receiver_ids, frame);
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
        !is_current(self, info, PyTuple_GET_ITEM(entry, 0))) {
        PyErr_Clear();
        return NULL;
    }
    return Py_NewRef(PyTuple_GET_ITEM(entry, 1));
}

static PyObject *
return_event(CallbacksObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        return PyObject_Vectorcall(self->return_fallback, args, nargs, NULL);
    }
    PyObject *info = info_of(self, args[0]);
    if (info == Py_None) {
        return Py_NewRef(self->disable);
    }
    if (info == NULL || !Py_IS_TYPE(info, self->info_type)) {
        return PyObject_Vectorcall(self->return_fallback, args, nargs, NULL);
    }
    PyObject *active = SLOT(info, self->info_active);
    PyFrameObject *frame = PyEval_GetFrame();
    if (active == NULL || !PyLong_CheckExact(active) || PyObject_IsTrue(active) != 1 || frame == NULL) {
        PyErr_Clear();
        return PyObject_Vectorcall(self->return_fallback, args, nargs, NULL);
    }
    Py_INCREF(info);
    Py_INCREF(frame);
    PyObject *trace = cached_trace(self, info, (PyObject *)frame, args[2]);
    if (trace == NULL) {
        Py_DECREF(frame);
        Py_DECREF(info);
        return PyObject_Vectorcall(self->return_fallback, args, nargs, NULL);
    }
    PyObject *result = NULL;
    if (PyDict_DelItem(self->calls, (PyObject *)frame) < 0) {
        goto error;
    }
    if (SLOT(info, self->info_receiver) != Py_None) {
        if (PyDict_Contains(self->receiver_ids, (PyObject *)frame) == 1 &&
            PyDict_DelItem(self->receiver_ids, (PyObject *)frame) < 0) {
            goto error;
        }
        PyErr_Clear();
    }
    if (add_to_slot(info, self->info_active, -1) < 0) {
        goto error;
    }
    self->fast_returns++;
    result = hand_over(self, trace);
    goto done;
error:
    if (note_error(self, str_return_where) == 0) {
        result = Py_NewRef(Py_None);
    }
done:
    Py_DECREF(trace);
    Py_DECREF(frame);
    Py_DECREF(info);
    return result;
}

/* The callbacks hold a reference to themselves while they run, because
   sys.monitoring holds none to a callback it calls, and the sink or a Python
   callback may stop the session, which drops the last one. */

static PyObject *
callbacks_on_start(CallbacksObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_INCREF(self);
    PyObject *result = start_event(self, args, nargs);
    Py_DECREF(self);
    return result;
}

static PyObject *
callbacks_on_return(CallbacksObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_INCREF(self);
    PyObject *result = return_event(self, args, nargs);
    Py_DECREF(self);
    return result;
}

static int
callbacks_init(CallbacksObject *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {
        "recorder", "info_type", "call_type", "start_fallback", "return_fallback", "disable",
        "all_calls", "first_sweep", "writer", "session", "inbox_limit", NULL};
    PyObject *recorder, *start_fallback, *return_fallback, *disable, *writer = Py_None, *session = Py_None;
    PyTypeObject *info_type, *call_type;
    int all_calls;
    Py_ssize_t first_sweep, inbox_limit = 0;
    if (!PyArg_ParseTupleAndKeywords(
            args, kwargs, "OO!O!OOOpn|OOn:Callbacks", keywords, &recorder, &PyType_Type, &info_type, &PyType_Type,
            &call_type, &start_fallback, &return_fallback, &disable, &all_calls, &first_sweep, &writer,
            &session, &inbox_limit)) {
        return -1;
    }
    if (slot_offset(info_type, "always", &self->info_always) < 0 ||
        slot_offset(info_type, "imports", &self->info_imports) < 0 ||
        slot_offset(info_type, "arg_cache", &self->info_arg_cache) < 0 ||
        slot_offset(info_type, "params", &self->info_params) < 0 ||
        slot_offset(info_type, "receiver", &self->info_receiver) < 0 ||
        slot_offset(info_type, "calls", &self->info_calls) < 0 ||
        slot_offset(info_type, "active", &self->info_active) < 0 ||
        slot_offset(info_type, "inferrer", &self->info_inferrer) < 0 ||
        slot_offset(call_type, "info", &self->call_info) < 0 ||
        slot_offset(call_type, "traces", &self->call_traces) < 0) {
        return -1;
    }
    PyObject *codes = PyObject_GetAttrString(recorder, "codes");
    PyObject *calls = PyObject_GetAttrString(recorder, "calls");
    PyObject *receiver_ids = PyObject_GetAttrString(recorder, "receiver_ids");
    PyObject *sink = PyObject_GetAttrString(recorder, "sink");
    PyObject *record = sink == NULL ? NULL : PyObject_GetAttrString(sink, "record");
    PyObject *stats = PyObject_GetAttrString(recorder, "stats");
    Py_XDECREF(sink);
    if (codes == NULL || calls == NULL || receiver_ids == NULL || record == NULL || stats == NULL) {
        goto error;
    }
    if (!PyDict_CheckExact(codes) || !PyDict_CheckExact(calls) || !PyDict_CheckExact(receiver_ids)) {
        PyErr_SetString(PyExc_TypeError, "the recorder's codes, calls and receiver_ids must be dicts");
        goto error;
    }
    Py_XSETREF(self->recorder, Py_NewRef(recorder));
    Py_XSETREF(self->codes, codes);
    Py_XSETREF(self->calls, calls);
    Py_XSETREF(self->receiver_ids, receiver_ids);
    Py_XSETREF(self->record, record);
    Py_XSETREF(self->stats, stats);
    Py_XSETREF(self->start_fallback, Py_NewRef(start_fallback));
    Py_XSETREF(self->return_fallback, Py_NewRef(return_fallback));
    Py_XSETREF(self->disable, Py_NewRef(disable));
    Py_XSETREF(self->info_type, (PyTypeObject *)Py_NewRef(info_type));
    Py_XSETREF(self->call_type, (PyTypeObject *)Py_NewRef(call_type));
    Py_XSETREF(self->writer, writer == Py_None ? NULL : Py_NewRef(writer));
    Py_XSETREF(self->session, session == Py_None ? NULL : Py_NewRef(session));
    self->inbox_limit = inbox_limit;
    self->all_calls = all_calls;
    self->first_sweep = first_sweep;
    return 0;
error:
    Py_XDECREF(codes);
    Py_XDECREF(calls);
    Py_XDECREF(receiver_ids);
    Py_XDECREF(record);
    Py_XDECREF(stats);
    return -1;
}

static int
callbacks_traverse(CallbacksObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->recorder);
    Py_VISIT(self->codes);
    Py_VISIT(self->calls);
    Py_VISIT(self->receiver_ids);
    Py_VISIT(self->record);
    Py_VISIT(self->stats);
    Py_VISIT(self->writer);
    Py_VISIT(self->session);
    Py_VISIT(self->start_fallback);
    Py_VISIT(self->return_fallback);
    Py_VISIT(self->disable);
    Py_VISIT(self->info_type);
    Py_VISIT(self->call_type);
    return 0;
}

static int
callbacks_clear(CallbacksObject *self)
{
    Py_CLEAR(self->recorder);
    Py_CLEAR(self->codes);
    Py_CLEAR(self->calls);
    Py_CLEAR(self->receiver_ids);
    Py_CLEAR(self->record);
    Py_CLEAR(self->stats);
    Py_CLEAR(self->writer);
    Py_CLEAR(self->session);
    Py_CLEAR(self->start_fallback);
    Py_CLEAR(self->return_fallback);
    Py_CLEAR(self->disable);
    Py_CLEAR(self->info_type);
    Py_CLEAR(self->call_type);
    return 0;
}

static void
callbacks_dealloc(CallbacksObject *self)
{
    PyObject_GC_UnTrack(self);
    callbacks_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
callbacks_get_fast_starts(CallbacksObject *self, void *Py_UNUSED(closure))
{
    return PyLong_FromUnsignedLongLong(self->fast_starts);
}

static PyObject *
callbacks_get_fast_returns(CallbacksObject *self, void *Py_UNUSED(closure))
{
    return PyLong_FromUnsignedLongLong(self->fast_returns);
}

static PyObject *
callbacks_get_inbox_appends(CallbacksObject *self, void *Py_UNUSED(closure))
{
    return PyLong_FromUnsignedLongLong(self->inbox_appends);
}

static PyMethodDef callbacks_methods[] = {
    {"on_start", (PyCFunction)(void (*)(void))callbacks_on_start, METH_FASTCALL,
     "The PY_START callback: on_start(code, offset)."},
    {"on_return", (PyCFunction)(void (*)(void))callbacks_on_return, METH_FASTCALL,
     "The PY_RETURN callback: on_return(code, offset, value)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef callbacks_getset[] = {
    {"fast_starts", (getter)callbacks_get_fast_starts, NULL, "Calls started on the fast path.", NULL},
    {"fast_returns", (getter)callbacks_get_fast_returns, NULL, "Calls that returned on the fast path.", NULL},
    {"inbox_appends", (getter)callbacks_get_inbox_appends, NULL, "Traces appended to the writer's inbox.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject CallbacksType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "typetrace._fastcalls.Callbacks",
    .tp_basicsize = sizeof(CallbacksObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "PY_START and PY_RETURN callbacks that record calls with cached types in C.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)callbacks_init,
    .tp_traverse = (traverseproc)callbacks_traverse,
    .tp_clear = (inquiry)callbacks_clear,
    .tp_dealloc = (destructor)callbacks_dealloc,
    .tp_methods = callbacks_methods,
    .tp_getset = callbacks_getset,
};

static struct PyModuleDef fastcalls_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "typetrace._fastcalls",
    .m_doc = "The C fast path of typetrace's sys.monitoring backend.",
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__fastcalls(void)
{
    str_generation = PyUnicode_InternFromString("generation");
    str_calls_recorded = PyUnicode_InternFromString("calls_recorded");
    str_note_error = PyUnicode_InternFromString("note_error");
    str_sink_where = PyUnicode_InternFromString("sink");
    str_start_where = PyUnicode_InternFromString("PY_START");
    str_return_where = PyUnicode_InternFromString("PY_RETURN");
    int_one = PyLong_FromLong(1);
    str_pending_ids = PyUnicode_InternFromString("_pending_ids");
    str_thread = PyUnicode_InternFromString("_thread");
    str_closed = PyUnicode_InternFromString("_closed");
    str_inbox = PyUnicode_InternFromString("_inbox");
    str_stopped_by_fork = PyUnicode_InternFromString("_threads_stopped_by_fork");
    if (str_pending_ids == NULL || str_thread == NULL || str_closed == NULL || str_inbox == NULL ||
        str_stopped_by_fork == NULL) {
        return NULL;
    }
    if (str_generation == NULL || str_calls_recorded == NULL || str_note_error == NULL || str_sink_where == NULL ||
        str_start_where == NULL || str_return_where == NULL || int_one == NULL) {
        return NULL;
    }
    if (PyType_Ready(&CallbacksType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&fastcalls_module);
    if (module == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(module, "Callbacks", (PyObject *)&CallbacksType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
