/* PY_START and PY_RETURN callbacks in C for the sys.monitoring backend of CPython
 * 3.12 and later (typetrace._monitoring): the fast path of calls whose types the
 * recorder (typetrace._recorder) has already cached, which _fastcalls.h describes.
 * Every event that the fast path leaves goes to the backend's Python callback.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#if PY_VERSION_HEX < 0x030C0000
#error "typetrace._fastcalls is for CPython 3.12 and later"
#endif

#include "_fastcalls.h"

#define Py_BUILD_CORE 1
#include <internal/pycore_frame.h>
#include <opcode.h>

typedef struct {
    PyObject_HEAD
    FastCalls fast;
    /* The backend's Python callbacks, for the events the fast path leaves. */
    PyObject *start_fallback;
    PyObject *return_fallback;
    /* sys.monitoring.DISABLE. */
    PyObject *disable;
} CallbacksObject;

static PyObject *
read_frame_variable(PyObject *frame, Py_ssize_t Py_UNUSED(index), PyObject *name)
{
    return PyFrame_GetVar((PyFrameObject *)frame, name);
}

static PyObject *
start_event(CallbacksObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs == 2) {
        PyObject *info = fastcalls_info_of(&self->fast, args[0]);
        if (info == Py_None) {
            return Py_NewRef(self->disable);
        }
        if (info != NULL && Py_IS_TYPE(info, self->fast.info_type) && fastcalls_may_start(&self->fast, info)) {
            PyFrameObject *frame = PyEval_GetFrame();
            int started = 0;
            if (frame != NULL) {
                Py_INCREF(info);
                Py_INCREF(frame);
                started = fastcalls_start(&self->fast, info, (PyObject *)frame, read_frame_variable, (PyObject *)frame);
                Py_DECREF(frame);
                Py_DECREF(info);
            }
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

static PyObject *
return_event(CallbacksObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        return PyObject_Vectorcall(self->return_fallback, args, nargs, NULL);
    }
    PyObject *info = fastcalls_info_of(&self->fast, args[0]);
    if (info == Py_None) {
        return Py_NewRef(self->disable);
    }
    if (info == NULL || !Py_IS_TYPE(info, self->fast.info_type)) {
        return PyObject_Vectorcall(self->return_fallback, args, nargs, NULL);
    }
    PyObject *active = FASTCALLS_SLOT(info, self->fast.info_active);
    PyFrameObject *frame = PyEval_GetFrame();
    if (active == NULL || !PyLong_CheckExact(active) || PyObject_IsTrue(active) != 1 || frame == NULL) {
        PyErr_Clear();
        return PyObject_Vectorcall(self->return_fallback, args, nargs, NULL);
    }
    Py_INCREF(info);
    Py_INCREF(frame);
    int returned = fastcalls_return(&self->fast, info, (PyObject *)frame, args[2]);
    Py_DECREF(frame);
    Py_DECREF(info);
    if (returned < 0) {
        return NULL;
    }
    if (returned > 0) {
        Py_RETURN_NONE;
    }
    return PyObject_Vectorcall(self->return_fallback, args, nargs, NULL);
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
    if (fastcalls_setup(&self->fast, recorder, info_type, call_type, all_calls, first_sweep, writer, session,
                        inbox_limit, "PY_START", "PY_RETURN") < 0) {
        return -1;
    }
    Py_XSETREF(self->start_fallback, Py_NewRef(start_fallback));
    Py_XSETREF(self->return_fallback, Py_NewRef(return_fallback));
    Py_XSETREF(self->disable, Py_NewRef(disable));
    return 0;
}

static int
callbacks_traverse(CallbacksObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->start_fallback);
    Py_VISIT(self->return_fallback);
    Py_VISIT(self->disable);
    return fastcalls_traverse(&self->fast, visit, arg);
}

static int
callbacks_clear(CallbacksObject *self)
{
    fastcalls_clear(&self->fast);
    Py_CLEAR(self->start_fallback);
    Py_CLEAR(self->return_fallback);
    Py_CLEAR(self->disable);
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
    return PyLong_FromUnsignedLongLong(self->fast.fast_starts);
}

static PyObject *
callbacks_get_fast_returns(CallbacksObject *self, void *Py_UNUSED(closure))
{
    return PyLong_FromUnsignedLongLong(self->fast.fast_returns);
}

static PyObject *
callbacks_get_inbox_appends(CallbacksObject *self, void *Py_UNUSED(closure))
{
    return PyLong_FromUnsignedLongLong(self->fast.inbox_appends);
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

/* The RESUME oparg of a resumption at a yield expression, in its two low bits. */
#define RESUME_AFTER_YIELD 1

static int
is_resume(int opcode)
{
#if PY_VERSION_HEX >= 0x030D0000
    if (opcode == RESUME_CHECK) {
        return 1;
    }
#endif
    return opcode == RESUME || opcode == INSTRUMENTED_RESUME;
}

/* sent_value(frame, offset, default): called in the PY_RESUME callback of the RESUME
   at *offset*. Where that RESUME follows a yield expression, return the value that
   *frame* receives there, on top of its value stack. Otherwise, after "yield from" or
   an await, whose values go to the inner iterator, return *default*.
   INSTRUMENTED_RESUME saves the stack pointer in the frame before it calls the
   callback. */
static PyObject *
fastcalls_sent_value(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyFrame_Check(args[0]) || !PyLong_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "sent_value() takes a frame, an offset and a default");
        return NULL;
    }
    Py_ssize_t offset = PyLong_AsSsize_t(args[1]);
    if (offset == -1 && PyErr_Occurred()) {
        return NULL;
    }
    _PyInterpreterFrame *inner = ((PyFrameObject *)args[0])->f_frame;
    if (inner == NULL) {
        return Py_NewRef(args[2]);
    }
#if PY_VERSION_HEX >= 0x030D0000
    PyCodeObject *code = _PyFrame_GetCode(inner);
    _Py_CODEUNIT *current = inner->instr_ptr;
#else
    PyCodeObject *code = inner->f_code;
    _Py_CODEUNIT *current = inner->prev_instr;
#endif
    Py_ssize_t count = Py_SIZE(code);
    if (offset < 0 || offset % (Py_ssize_t)sizeof(_Py_CODEUNIT) != 0 ||
        offset / (Py_ssize_t)sizeof(_Py_CODEUNIT) >= count ||
        current != _PyCode_CODE(code) + offset / (Py_ssize_t)sizeof(_Py_CODEUNIT) ||
        !is_resume(current->op.code) || (current->op.arg & 3) != RESUME_AFTER_YIELD ||
        inner->stacktop <= code->co_nlocalsplus) {
        return Py_NewRef(args[2]);
    }
    /* A NULL, which PUSH_NULL leaves on the stack, reads as no value. */
    PyObject *top = inner->localsplus[inner->stacktop - 1];
    return Py_NewRef(top != NULL ? top : args[2]);
}

static PyMethodDef fastcalls_functions[] = {
    {"sent_value", (PyCFunction)(void (*)(void))fastcalls_sent_value, METH_FASTCALL,
     "sent_value(frame, offset, default)\n\n"
     "In the PY_RESUME callback of the instruction at offset, return the value that frame "
     "receives as the value of a yield expression, or default where it resumes after "
     "anything else."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef fastcalls_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "typetrace._fastcalls",
    .m_methods = fastcalls_functions,
    .m_doc = "The C fast path of typetrace's sys.monitoring backend.",
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__fastcalls(void)
{
    if (fastcalls_module_init() < 0) {
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
