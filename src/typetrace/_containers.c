/* The types of exact lists, tuples, sets, frozensets and dicts in C, for
 * typetrace.inference.TypeInferrer.type_of().
 *
 * ContainerTypes.infer() walks a container as the inferrer's Python walk does: it
 * samples the same elements, spends the same element budget, and builds the same
 * cache keys. It only looks types up, in the inferrer's caches of class references
 * (_class_refs, _plain_refs) and of the generic and dict-shape references built from
 * them before (_built_refs, _shape_refs). It never adds to them. infer() returns None
 * when any element or container is not in them yet, or is of another class than the
 * ones above. The Python walk then types the whole value again and fills the caches
 * for the next value of that form. So both give the same object for a value.
 *
 * infer() calls no method of a value: it reads only exact lists, tuples, sets,
 * frozensets and dicts, and hashes tuples of ints and exact strs. It takes a
 * reference to each element it inspects and to each type it finds. A garbage
 * collection during an allocation may run a finalizer that changes a container or
 * clears a cache, and the walk then still has no freed object. Releasing an element
 * that such a finalizer removed from its container runs the element's __del__.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#ifdef Py_GIL_DISABLED
#error "typetrace._containers needs the GIL"
#endif

/* The maximum number of elements of one container that a walk may sample.
   ContainerTypes() checks its limits against it. */
#define MAX_SAMPLED 64

typedef struct {
    PyObject_HEAD
    /* The inferrer's caches: {id(class): (weak reference to the class, TypeRef)} for
       _class_refs and _plain_refs, {(id(base), *ids of parts): (parts, TypeRef)} for
       _built_refs, and {(key strings, *ids of value types): (value types, TypeRef)}
       for _shape_refs. The inferrer clears them but never replaces them. */
    PyObject *class_refs;
    PyObject *plain_refs;
    PyObject *built_refs;
    PyObject *shape_refs;
    /* The TypeRefs NONE, ANY and ELLIPSIS of typetrace.typemodel. */
    PyObject *none_ref;
    PyObject *any_ref;
    PyObject *ellipsis_ref;
    /* The limits of typetrace.inference. */
    Py_ssize_t max_elements;
    Py_ssize_t max_depth;
    Py_ssize_t head_elements;
    Py_ssize_t spread_elements;
    Py_ssize_t max_tuple_length;
    Py_ssize_t max_shape_keys;
    Py_ssize_t max_shape_key_length;
    /* Elements inspected by the values that infer() typed, and those values. */
    unsigned long long elements;
    unsigned long long typed;
} ContainerTypesObject;

/* One call of infer(), with its element budget. */
typedef struct {
    ContainerTypesObject *self;
    Py_ssize_t budget;
    Py_ssize_t inspected;
} Walk;

static PyObject *infer_at(Walk *walk, PyObject *value, Py_ssize_t depth);

/* Reserve up to *count* elements of the budget; return how many were granted. */
static Py_ssize_t
take(Walk *walk, Py_ssize_t count)
{
    Py_ssize_t granted = count <= walk->budget ? count : (walk->budget > 0 ? walk->budget : 0);
    walk->budget -= granted;
    walk->inspected += granted;
    return granted;
}

static void
release(PyObject **objects, Py_ssize_t count)
{
    for (Py_ssize_t i = 0; i < count; i++) {
        Py_XDECREF(objects[i]);
    }
}

/* Return the TypeRef that *refs*, _class_refs or _plain_refs, contains for *cls*
   while the class is alive, as a new reference. Return NULL, with no exception set,
   when it contains none. */
static PyObject *
class_entry(PyObject *refs, PyTypeObject *cls)
{
    PyObject *key = PyLong_FromVoidPtr((void *)cls);
    if (key == NULL) {
        PyErr_Clear();
        return NULL;
    }
    PyObject *entry = PyDict_GetItemWithError(refs, key);
    Py_DECREF(key);
    if (entry == NULL || !PyTuple_CheckExact(entry) || PyTuple_GET_SIZE(entry) != 2 ||
        !PyWeakref_CheckRef(PyTuple_GET_ITEM(entry, 0))) {
        PyErr_Clear();
        return NULL;
    }
    PyObject *ref = PyTuple_GET_ITEM(entry, 1);
    Py_INCREF(ref);
#if PY_VERSION_HEX >= 0x030D0000
    PyObject *referent;
    if (PyWeakref_GetRef(PyTuple_GET_ITEM(entry, 0), &referent) < 0) {
        PyErr_Clear();
        referent = NULL;
    }
    int alive = referent == (PyObject *)cls;
    Py_XDECREF(referent);
#else
    int alive = PyWeakref_GetObject(PyTuple_GET_ITEM(entry, 0)) == (PyObject *)cls;
#endif
    if (!alive) {
        Py_DECREF(ref);
        return NULL;
    }
    return ref;
}

/* Return the reference in the second item of the entry of *cache* under *key*,
   which this function releases, as a new reference, or NULL. */
static PyObject *
cached_ref(PyObject *cache, PyObject *key)
{
    if (key == NULL) {
        PyErr_Clear();
        return NULL;
    }
    PyObject *entry = PyDict_GetItemWithError(cache, key);
    Py_DECREF(key);
    if (entry == NULL || !PyTuple_CheckExact(entry) || PyTuple_GET_SIZE(entry) != 2) {
        PyErr_Clear();
        return NULL;
    }
    PyObject *ref = PyTuple_GET_ITEM(entry, 1);
    Py_INCREF(ref);
    return ref;
}

/* The reference built before from *base*, or None for a union, and *parts*. */
static PyObject *
built(Walk *walk, PyObject *base, PyObject **parts, Py_ssize_t count)
{
    PyObject *key = PyTuple_New(count + 1);
    if (key == NULL) {
        PyErr_Clear();
        return NULL;
    }
    for (Py_ssize_t i = 0; i <= count; i++) {
        PyObject *id = PyLong_FromVoidPtr(i == 0 ? base : parts[i - 1]);
        if (id == NULL) {
            Py_DECREF(key);
            PyErr_Clear();
            return NULL;
        }
        PyTuple_SET_ITEM(key, i, id);
    }
    return cached_ref(walk->self->built_refs, key);
}

/* The type of an element: its class's reference when the class alone decides it. */
static PyObject *
element(Walk *walk, PyObject *value, Py_ssize_t depth)
{
    PyObject *ref = class_entry(walk->self->plain_refs, Py_TYPE(value));
    return ref != NULL ? ref : infer_at(walk, value, depth);
}

/* The union of the types of the *count* values at *depth*. A value of a class with a
   plain reference adds it once; every other value adds its type. */
static PyObject *
union_at(Walk *walk, PyObject **values, Py_ssize_t count, Py_ssize_t depth)
{
    PyObject *members[MAX_SAMPLED];
    PyTypeObject *added[MAX_SAMPLED];
    Py_ssize_t member_count = 0, added_count = 0;
    PyTypeObject *previous = NULL;
    PyObject *result = NULL;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyTypeObject *cls = Py_TYPE(values[i]);
        if (cls == previous) {
            continue;
        }
        PyObject *ref = class_entry(walk->self->plain_refs, cls);
        if (ref != NULL) {
            previous = cls;
            int seen = 0;
            for (Py_ssize_t j = 0; j < added_count; j++) {
                seen |= added[j] == cls;
            }
            if (seen) {
                Py_DECREF(ref);
                continue;
            }
            added[added_count++] = cls;
        }
        else {
            ref = infer_at(walk, values[i], depth);
            if (ref == NULL) {
                goto done;
            }
        }
        members[member_count++] = ref;
    }
    if (member_count == 1) {
        result = members[0];
        Py_INCREF(result);
    }
    else if (member_count > 1) {
        result = built(walk, Py_None, members, member_count);
    }
done:
    release(members, member_count);
    return result;
}

/* Store new references to the elements of *values*, an exact list or tuple, that
   the walk samples in *sampled*, and return their number. The walk samples the
   first elements, and in a longer sequence some spread over the rest up to the
   last one. */
static Py_ssize_t
sample_sequence(Walk *walk, PyObject *values, PyObject **sampled)
{
    Py_ssize_t length = PySequence_Fast_GET_SIZE(values);
    PyObject **items = PySequence_Fast_ITEMS(values);
    Py_ssize_t head = walk->self->head_elements;
    Py_ssize_t count = 0;
    if (length <= head) {
        Py_ssize_t granted = take(walk, length);
        for (; count < granted; count++) {
            sampled[count] = items[count];
            Py_INCREF(items[count]);
        }
        return count;
    }
    /* The positions head + rest * k // spread for k from 1 to spread - 1, and the last
       one, in order and without repeats. */
    Py_ssize_t spread = walk->self->spread_elements;
    Py_ssize_t rest = length - head;
    Py_ssize_t positions[MAX_SAMPLED];
    Py_ssize_t position_count = 0;
    for (Py_ssize_t k = 1; k <= spread; k++) {
        Py_ssize_t position = k < spread ? head + rest * k / spread : length - 1;
        if (position_count == 0 || positions[position_count - 1] != position) {
            positions[position_count++] = position;
        }
    }
    Py_ssize_t granted = take(walk, head + position_count);
    Py_ssize_t first = granted < head ? granted : head;
    for (; count < first; count++) {
        sampled[count] = items[count];
        Py_INCREF(items[count]);
    }
    for (Py_ssize_t i = 0; i < granted - head && i < position_count; i++) {
        sampled[count] = items[positions[i]];
        Py_INCREF(sampled[count]);
        count++;
    }
    return count;
}

/* Store new references to up to the first *limit* items of the iterator *iterator*
   in *sampled*, and return their number, or -1 on an error, which is cleared. */
static Py_ssize_t
sample_iterator(PyObject *iterator, Py_ssize_t limit, PyObject **sampled)
{
    Py_ssize_t count = 0;
    while (count < limit) {
        PyObject *item = PyIter_Next(iterator);
        if (item == NULL) {
            break;
        }
        sampled[count++] = item;
    }
    if (PyErr_Occurred()) {
        PyErr_Clear();
        release(sampled, count);
        return -1;
    }
    return count;
}

/* A list, or a tuple of more than max_tuple_length elements when *tail* is
   ELLIPSIS: *base*[union of the sampled elements], or *base*[that, ...]. */
static PyObject *
walk_sequence(Walk *walk, PyObject *value, PyObject *base, Py_ssize_t depth, PyObject *tail)
{
    PyObject *sampled[MAX_SAMPLED];
    Py_ssize_t count = sample_sequence(walk, value, sampled);
    PyObject *parts[2] = {NULL, tail};
    if (count == 0) {
        if (tail == NULL) {
            Py_INCREF(base);
            return base;
        }
        parts[0] = walk->self->any_ref;
        return built(walk, base, parts, 2);
    }
    parts[0] = union_at(walk, sampled, count, depth);
    release(sampled, count);
    if (parts[0] == NULL) {
        return NULL;
    }
    PyObject *result = built(walk, base, parts, tail == NULL ? 1 : 2);
    Py_DECREF(parts[0]);
    return result;
}

static PyObject *
walk_tuple(Walk *walk, PyObject *value, PyObject *base, Py_ssize_t depth)
{
    Py_ssize_t length = PyTuple_GET_SIZE(value);
    if (length == 0) {
        Py_INCREF(base);
        return base;
    }
    if (length > walk->self->max_tuple_length) {
        return walk_sequence(walk, value, base, depth, walk->self->ellipsis_ref);
    }
    PyObject *members[MAX_SAMPLED];
    Py_ssize_t granted = take(walk, length);
    Py_ssize_t count = 0;
    PyObject *result = NULL;
    for (; count < length; count++) {
        if (count < granted) {
            members[count] = element(walk, PyTuple_GET_ITEM(value, count), depth);
            if (members[count] == NULL) {
                goto done;
            }
        }
        else {
            members[count] = walk->self->any_ref;
            Py_INCREF(members[count]);
        }
    }
    result = built(walk, base, members, length);
done:
    release(members, count);
    return result;
}

/* A set or frozenset: *base*[union of its first elements]. */
static PyObject *
walk_set(Walk *walk, PyObject *value, PyObject *base, Py_ssize_t depth)
{
    Py_ssize_t granted = take(walk, walk->self->head_elements);
    PyObject *iterator = PyObject_GetIter(value);
    if (iterator == NULL) {
        PyErr_Clear();
        return NULL;
    }
    PyObject *sampled[MAX_SAMPLED];
    Py_ssize_t count = sample_iterator(iterator, granted, sampled);
    Py_DECREF(iterator);
    if (count <= 0) {
        if (count == 0) {
            Py_INCREF(base);
            return base;
        }
        return NULL;
    }
    PyObject *part = union_at(walk, sampled, count, depth);
    release(sampled, count);
    if (part == NULL) {
        return NULL;
    }
    PyObject *result = built(walk, base, &part, 1);
    Py_DECREF(part);
    return result;
}

/* A dict that is not typed by its shape: *base*[keys, values], by its first items. */
static PyObject *
walk_mapping(Walk *walk, PyObject *value, PyObject *base, Py_ssize_t depth)
{
    Py_ssize_t granted = take(walk, walk->self->head_elements);
    PyObject *keys[MAX_SAMPLED], *values[MAX_SAMPLED];
    Py_ssize_t count = 0, position = 0;
    PyObject *key, *item;
    while (count < granted && PyDict_Next(value, &position, &key, &item)) {
        Py_INCREF(key);
        Py_INCREF(item);
        keys[count] = key;
        values[count] = item;
        count++;
    }
    PyObject *result = NULL;
    if (count == 0) {
        Py_INCREF(base);
        return base;
    }
    PyObject *parts[2];
    parts[0] = union_at(walk, keys, count, depth);
    if (parts[0] != NULL) {
        parts[1] = union_at(walk, values, count, depth);
        if (parts[1] != NULL) {
            result = built(walk, base, parts, 2);
            Py_DECREF(parts[1]);
        }
        Py_DECREF(parts[0]);
    }
    release(keys, count);
    release(values, count);
    return result;
}

/* A dict, typed by its shape when it has at most max_shape_keys keys and the budget
   covers them. Each key must be an exact str of at most max_shape_key_length
   characters. Any other dict is typed as a mapping. */
static PyObject *
walk_dict(Walk *walk, PyObject *value, PyObject *base, Py_ssize_t depth)
{
    ContainerTypesObject *self = walk->self;
    Py_ssize_t length = PyDict_GET_SIZE(value);
    if (length <= 0 || length > self->max_shape_keys || length > walk->budget) {
        return walk_mapping(walk, value, base, depth);
    }
    PyObject *names = PyTuple_New(length);
    if (names == NULL) {
        PyErr_Clear();
        return NULL;
    }
    /* The dict may have changed while the tuple was allocated. */
    PyObject *values[MAX_SAMPLED];
    Py_ssize_t count = 0, position = 0;
    PyObject *key, *item;
    int shaped = PyDict_GET_SIZE(value) == length;
    while (shaped && PyDict_Next(value, &position, &key, &item)) {
        if (!PyUnicode_CheckExact(key) || PyUnicode_GET_LENGTH(key) > self->max_shape_key_length) {
            shaped = 0;
            break;
        }
        Py_INCREF(key);
        PyTuple_SET_ITEM(names, count, key);
        Py_INCREF(item);
        values[count] = item;
        count++;
    }
    if (!shaped) {
        release(values, count);
        Py_DECREF(names);
        return walk_mapping(walk, value, base, depth);
    }
    take(walk, length);
    PyObject *value_types[MAX_SAMPLED];
    Py_ssize_t typed = 0;
    PyObject *result = NULL;
    for (; typed < length; typed++) {
        value_types[typed] = element(walk, values[typed], depth);
        if (value_types[typed] == NULL) {
            goto done;
        }
    }
    PyObject *cache_key = PyTuple_New(length + 1);
    if (cache_key == NULL) {
        PyErr_Clear();
        goto done;
    }
    Py_INCREF(names);
    PyTuple_SET_ITEM(cache_key, 0, names);
    for (Py_ssize_t i = 0; i < length; i++) {
        PyObject *id = PyLong_FromVoidPtr(value_types[i]);
        if (id == NULL) {
            PyErr_Clear();
            Py_DECREF(cache_key);
            goto done;
        }
        PyTuple_SET_ITEM(cache_key, i + 1, id);
    }
    result = cached_ref(self->shape_refs, cache_key);
done:
    release(value_types, typed);
    release(values, count);
    Py_DECREF(names);
    return result;
}

/* The type of *value* at *depth*, as a new reference, or NULL when the Python walk
   must type it. */
static PyObject *
infer_at(Walk *walk, PyObject *value, Py_ssize_t depth)
{
    ContainerTypesObject *self = walk->self;
    if (value == Py_None) {
        Py_INCREF(self->none_ref);
        return self->none_ref;
    }
    PyTypeObject *cls = Py_TYPE(value);
    if (cls != &PyList_Type && cls != &PyTuple_Type && cls != &PySet_Type && cls != &PyFrozenSet_Type &&
        cls != &PyDict_Type) {
        return NULL;
    }
    PyObject *base = class_entry(self->class_refs, cls);
    if (base == NULL) {
        return NULL;
    }
    PyObject *result;
    if (depth >= self->max_depth) {
        result = self->any_ref;
        Py_INCREF(result);
    }
    else if (cls == &PyList_Type) {
        result = walk_sequence(walk, value, base, depth + 1, NULL);
    }
    else if (cls == &PyTuple_Type) {
        result = walk_tuple(walk, value, base, depth + 1);
    }
    else if (cls == &PyDict_Type) {
        result = walk_dict(walk, value, base, depth + 1);
    }
    else {
        result = walk_set(walk, value, base, depth + 1);
    }
    Py_DECREF(base);
    return result;
}

static PyObject *
container_types_infer(ContainerTypesObject *self, PyObject *value)
{
    Walk walk = {self, self->max_elements, 0};
    PyObject *result = infer_at(&walk, value, 0);
    if (result == NULL) {
        if (PyErr_Occurred()) {
            /* Each step clears its errors; this is a safeguard. */
            PyErr_Clear();
        }
        Py_RETURN_NONE;
    }
    self->elements += (unsigned long long)walk.inspected;
    self->typed++;
    return result;
}

static int
read_limit(PyObject *limits, const char *name, Py_ssize_t low, Py_ssize_t high, Py_ssize_t *limit)
{
    PyObject *value = PyDict_GetItemString(limits, name);
    if (value == NULL) {
        PyErr_Format(PyExc_TypeError, "ContainerTypes(): missing keyword argument %s", name);
        return -1;
    }
    *limit = PyLong_AsSsize_t(value);
    if (*limit == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (*limit < low || *limit > high) {
        PyErr_Format(PyExc_ValueError, "ContainerTypes(): invalid %s=%zd, expected %zd to %zd", name, *limit, low,
                     high);
        return -1;
    }
    return 0;
}

static int
container_types_init(ContainerTypesObject *self, PyObject *args, PyObject *kwargs)
{
    /* infer() trusts the limits, which size its arrays, so they never change. */
    if (self->class_refs != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "ContainerTypes is initialized already; make a new one instead");
        return -1;
    }
    PyObject *class_refs, *plain_refs, *built_refs, *shape_refs, *none_ref, *any_ref, *ellipsis_ref;
    if (!PyArg_ParseTuple(args, "O!O!O!O!OOO:ContainerTypes", &PyDict_Type, &class_refs, &PyDict_Type, &plain_refs,
                          &PyDict_Type, &built_refs, &PyDict_Type, &shape_refs, &none_ref, &any_ref, &ellipsis_ref)) {
        return -1;
    }
    if (kwargs == NULL || PyDict_GET_SIZE(kwargs) != 7) {
        PyErr_SetString(PyExc_TypeError, "ContainerTypes() takes exactly the 7 limits as keyword arguments");
        return -1;
    }
    Py_ssize_t max_elements, max_depth, head_elements, spread_elements, max_tuple_length, max_shape_keys,
        max_shape_key_length;
    if (read_limit(kwargs, "max_elements", 0, PY_SSIZE_T_MAX, &max_elements) < 0 ||
        read_limit(kwargs, "max_depth", 0, 64, &max_depth) < 0 ||
        read_limit(kwargs, "head_elements", 0, MAX_SAMPLED / 2, &head_elements) < 0 ||
        read_limit(kwargs, "spread_elements", 1, MAX_SAMPLED / 2, &spread_elements) < 0 ||
        read_limit(kwargs, "max_tuple_length", 0, MAX_SAMPLED, &max_tuple_length) < 0 ||
        read_limit(kwargs, "max_shape_keys", 0, MAX_SAMPLED, &max_shape_keys) < 0 ||
        read_limit(kwargs, "max_shape_key_length", 0, PY_SSIZE_T_MAX, &max_shape_key_length) < 0) {
        return -1;
    }
    self->max_elements = max_elements;
    self->max_depth = max_depth;
    self->head_elements = head_elements;
    self->spread_elements = spread_elements;
    self->max_tuple_length = max_tuple_length;
    self->max_shape_keys = max_shape_keys;
    self->max_shape_key_length = max_shape_key_length;
    Py_INCREF(class_refs);
    self->class_refs = class_refs;
    Py_INCREF(plain_refs);
    self->plain_refs = plain_refs;
    Py_INCREF(built_refs);
    self->built_refs = built_refs;
    Py_INCREF(shape_refs);
    self->shape_refs = shape_refs;
    Py_INCREF(none_ref);
    self->none_ref = none_ref;
    Py_INCREF(any_ref);
    self->any_ref = any_ref;
    Py_INCREF(ellipsis_ref);
    self->ellipsis_ref = ellipsis_ref;
    return 0;
}

static int
container_types_traverse(ContainerTypesObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->class_refs);
    Py_VISIT(self->plain_refs);
    Py_VISIT(self->built_refs);
    Py_VISIT(self->shape_refs);
    Py_VISIT(self->none_ref);
    Py_VISIT(self->any_ref);
    Py_VISIT(self->ellipsis_ref);
    return 0;
}

static int
container_types_clear(ContainerTypesObject *self)
{
    Py_CLEAR(self->class_refs);
    Py_CLEAR(self->plain_refs);
    Py_CLEAR(self->built_refs);
    Py_CLEAR(self->shape_refs);
    Py_CLEAR(self->none_ref);
    Py_CLEAR(self->any_ref);
    Py_CLEAR(self->ellipsis_ref);
    return 0;
}

static void
container_types_dealloc(ContainerTypesObject *self)
{
    PyObject_GC_UnTrack(self);
    container_types_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
container_types_infer_method(ContainerTypesObject *self, PyObject *value)
{
    if (self->class_refs == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "ContainerTypes was not initialized");
        return NULL;
    }
    return container_types_infer(self, value);
}

static PyObject *
container_types_get_elements(ContainerTypesObject *self, void *Py_UNUSED(closure))
{
    return PyLong_FromUnsignedLongLong(self->elements);
}

static PyObject *
container_types_get_typed(ContainerTypesObject *self, void *Py_UNUSED(closure))
{
    return PyLong_FromUnsignedLongLong(self->typed);
}

static PyMethodDef container_types_methods[] = {
    {"infer", (PyCFunction)container_types_infer_method, METH_O,
     "Return the type of value from the caches, or None when the Python walk must type it."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef container_types_getset[] = {
    {"elements", (getter)container_types_get_elements, NULL, "Elements inspected by the values typed here.", NULL},
    {"typed", (getter)container_types_get_typed, NULL, "Values typed here.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject ContainerTypesType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "typetrace._containers.ContainerTypes",
    .tp_basicsize = sizeof(ContainerTypesObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Types of exact containers, looked up in a TypeInferrer's caches.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)container_types_init,
    .tp_traverse = (traverseproc)container_types_traverse,
    .tp_clear = (inquiry)container_types_clear,
    .tp_dealloc = (destructor)container_types_dealloc,
    .tp_methods = container_types_methods,
    .tp_getset = container_types_getset,
};

static struct PyModuleDef containers_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "typetrace._containers",
    .m_doc = "Types of exact containers in C, for typetrace.inference.",
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__containers(void)
{
    if (PyType_Ready(&ContainerTypesType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&containers_module);
    if (module == NULL) {
        return NULL;
    }
    Py_INCREF(&ContainerTypesType);
    if (PyModule_AddObject(module, "ContainerTypes", (PyObject *)&ContainerTypesType) < 0) {
        Py_DECREF(&ContainerTypesType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
