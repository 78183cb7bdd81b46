"""Stub building: combine the traces of a module with its source into a :class:`ModuleStub`."""

from __future__ import annotations

import ast
import builtins
from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import Callable, Iterable, Optional, Sequence, Union

from typetrace._testonly import is_test_module
from typetrace.combining import (
    DEFAULT_MAX_UNION_SIZE,
    combine_calls,
    combine_types,
    drop_test_classes,
    match_type_var,
)
from typetrace.exceptions import TypeTraceError
from typetrace.stubs.annotations import NewImport, constrained_type_var, public_type
from typetrace.stubs.model import (
    ClassStub,
    FunctionStub,
    ModuleStub,
    ParameterKind,
    ParameterStub,
    PropertyAccessor,
)
from typetrace.stubs.callees import CalleeResolver, ScannedModule
from typetrace.stubs.scan import ClassNode, FunctionNode, ModuleScan, Parameter, scan_module
from typetrace.stubs.uses import ParameterUses, parameter_uses
from typetrace.tracing import CallTrace
from typetrace.typemodel import (
    ANY,
    CALLABLE,
    NONE,
    FunctionRef,
    ShapeKey,
    TypeRef,
    callable_type,
    union,
    without_shapes,
)

__all__ = ["ModuleLoader", "ModuleSource", "StubBuildError", "build_stub"]

_OBJECT = TypeRef("builtins", "object")
_TYPE = ("builtins", "type")
_ITERATOR = ("typing", "Iterator")
_GENERATOR = ("typing", "Generator")
_ASYNC_ITERATOR = ("typing", "AsyncIterator")
_ASYNC_GENERATOR = ("typing", "AsyncGenerator")
_COROUTINE = ("collections.abc", "Coroutine")
_POSITIONAL = (ParameterKind.POSITIONAL_ONLY, ParameterKind.POSITIONAL_OR_KEYWORD)
_NO_RETURN = TypeRef("typing", "NoReturn")
_KEPT_DECORATORS = frozenset({"staticmethod", "classmethod", "property"})
_BINDING_DECORATORS = frozenset({"staticmethod", "classmethod"})
_TYPED_DICT_MODULES = frozenset({"typing", "typing_extensions"})
#: Attributes of ``object`` that are not methods, such as ``__doc__``. A ``def`` with
#: such a name (usually under a property-like decorator) would clash with the type
#: that typeshed gives the attribute, so it is left out of the stub.
_OBJECT_DATA_ATTRIBUTES = frozenset(
    {name for name in dir(object) if not callable(getattr(object, name))} | {"__slots__", "__annotations__"}
)
#: Methods whose parameters typeshed declares as ``object`` on every class.
_OBJECT_PARAMETER_METHODS = frozenset({"__eq__", "__ne__"})
#: Methods that typeshed declares with the same signature on ``object`` and on every
#: builtin class that defines them (``def __str__(self) -> str``), and whose return
#: type Python checks at run time. Traced types cannot make an override of them
#: incompatible, so they are annotated in subclasses of builtin classes too.
_DATA_MODEL_METHODS = frozenset({"__str__", "__repr__", "__format__"})
_VARIADIC = (ParameterKind.VAR_POSITIONAL, ParameterKind.VAR_KEYWORD)
#: Methods that mypy does not check against the base class's signature.
_CONSTRUCTORS = frozenset({"__init__", "__new__", "__init_subclass__"})


class StubBuildError(TypeTraceError):
    """The source of a module cannot be read to build its stub."""


@dataclass(frozen=True)
class ModuleSource:
    """Another module that calls in the stubbed module may reach: its source and traces."""

    source: str
    traces: Sequence[CallTrace]
    #: Whether the source is a package's ``__init__.py``, which matters for its
    #: relative imports.
    is_package: bool = False


#: Returns the :class:`ModuleSource` of a module by name, or ``None`` when the module
#: has no source to read.
ModuleLoader = Callable[[str], Optional[ModuleSource]]


def build_stub(
    module: str,
    traces: Sequence[CallTrace],
    source: str,
    *,
    overwrite_existing: bool = False,
    max_union_size: int = DEFAULT_MAX_UNION_SIZE,
    is_package: bool = False,
    modules: Optional[ModuleLoader] = None,
) -> ModuleStub:
    """Build the stub of *module* from its *traces* and its *source* text.

    Only functions that appear both in the traces and in the source are stubbed.
    Functions defined inside other functions (``<locals>`` in the qualified name) and
    ``@overload`` signatures are skipped. The types observed for each parameter,
    return and yield are combined by :func:`typetrace.combining.combine_types`, which
    widens unions of more than *max_union_size* members. Unless *module* is test code,
    classes of test modules are dropped first (see
    :func:`typetrace.combining.drop_test_classes`).

    A method's return is ``Self`` when every observed call returned its receiver
    (``None`` aside), from instances of any class. A classmethod's return is
    ``Self`` when every call returned an instance of exactly ``cls``, and calls came
    from at least two classes: with one class, the trace cannot tell ``cls()`` from
    a hard-coded ``Base()``, which is wrong for subclasses. Other functions that
    returned their first argument get its type.

    A parameter whose value the function only passes on to other functions, as an
    argument of their calls, also takes what those functions' parameters take (see
    :meth:`_Builder.parameter_type`). *modules* loads the other modules that such
    calls reach; without it, only calls within *module* are followed. Pass
    *is_package* when *source* is a package's ``__init__.py``.

    Raises:
        StubBuildError: *source* is not valid Python.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError as error:
        raise StubBuildError(f"Cannot build the stub of {module!r}: invalid source ({error})") from error
    project = _Project(modules, overwrite_existing, max_union_size)
    builder = project.add(module, tree, traces, is_package)
    scan = builder.scan
    functions, classes = builder.build_members(scan.members)
    # Classes that annotations or bases name but that have no traced methods are
    # stubbed without members, so the stub still defines every name it uses.
    classes = builder.add_referenced_classes(scan.members, classes)
    return ModuleStub(
        module=module,
        functions=tuple(functions),
        classes=tuple(classes),
        overwrite_existing=overwrite_existing,
        source_imports=tuple(sorted(builder.needed_imports)),
        source_names=frozenset(scan.names),
        is_package=is_package,
    )


def _group_traces(
    module: str, traces: Iterable[CallTrace]
) -> tuple[dict[str, list[CallTrace]], dict[str, list[CallTrace]]]:
    """Group the traces of *module* by qualified name: those of functions that a stub
    can contain, and those of functions defined inside other functions."""
    grouped: dict[str, list[CallTrace]] = defaultdict(list)
    nested: dict[str, list[CallTrace]] = defaultdict(list)
    for trace in traces:
        if trace.module == module:
            target = nested if "<locals>" in trace.qualname else grouped
            target[trace.qualname].append(trace)
    return grouped, nested


class _Project:
    """The stubbed module and the other modules that its calls reach, with a builder each."""

    def __init__(
        self, loader: Optional[ModuleLoader], overwrite_existing: bool, max_union_size: int
    ) -> None:
        self._loader = loader
        self._overwrite_existing = overwrite_existing
        self._max_union_size = max_union_size
        self._builders: dict[str, Optional[_Builder]] = {}
        # The Callable of each function that a traced value was, and the functions
        # whose Callable is being built.
        self._signatures: dict[FunctionRef, TypeRef] = {}
        self._pending_signatures: set[FunctionRef] = set()

    def add(
        self, module: str, tree: ast.Module, traces: Iterable[CallTrace], is_package: bool
    ) -> _Builder:
        grouped, nested = _group_traces(module, traces)
        builder = _Builder(
            module,
            scan_module(tree),
            self._overwrite_existing,
            grouped,
            self._max_union_size,
            keep_test_classes=is_test_module(module),
            is_package=is_package,
            project=self,
            nested_traces=nested,
        )
        self._builders[module] = builder
        return builder

    def resolve_callables(self, ref: TypeRef) -> TypeRef:
        """Return *ref* with every ``Callable`` that names a function replaced by the
        ``Callable`` of that function (see :meth:`signature`), at any depth."""
        if not _names_function(ref):
            return ref
        if ref.function is not None:
            return self.signature(ref.function)
        args = tuple(self.resolve_callables(arg) for arg in ref.args)
        if ref.is_union:
            return union(args)
        shape = tuple(ShapeKey(key.name, self.resolve_callables(key.value), key.required) for key in ref.shape)
        return TypeRef(ref.module, ref.qualname, args, shape, bases=ref.bases)

    def signature(self, function: FunctionRef) -> TypeRef:
        """Return the ``Callable`` with the types that the traced calls of *function*
        show, or a bare ``Callable`` when its source or its traces are missing.

        A function whose signature needs its own signature, through a parameter or
        return that was the function itself, gets a bare ``Callable`` there.
        """
        cached = self._signatures.get(function)
        if cached is not None:
            return cached
        if function in self._pending_signatures:
            return CALLABLE
        self._pending_signatures.add(function)
        try:
            builder = self.builder(function.module)
            result = None if builder is None else builder.callable_of(function.qualname, function.bound)
        finally:
            self._pending_signatures.discard(function)
        self._signatures[function] = result or CALLABLE
        return self._signatures[function]

    def builder(self, module: str) -> Optional[_Builder]:
        """Return the builder of *module*, loading the module once; ``None`` if it has no source."""
        if module not in self._builders:
            self._builders[module] = None
            loaded = self._loader(module) if self._loader is not None else None
            if loaded is not None:
                try:
                    tree = ast.parse(loaded.source)
                except SyntaxError:
                    return None
                self.add(module, tree, loaded.traces, loaded.is_package)
        return self._builders[module]

    def scanned(self, module: str) -> Optional[ScannedModule]:
        builder = self.builder(module)
        return None if builder is None else builder.scanned


@dataclass
class _Builder:
    module: str
    scan: ModuleScan
    overwrite_existing: bool
    traces: dict[str, list[CallTrace]]
    max_union_size: int = DEFAULT_MAX_UNION_SIZE
    keep_test_classes: bool = False
    is_package: bool = False
    project: Optional[_Project] = None
    needed_imports: set[NewImport] = field(default_factory=set)
    referenced_classes: set[str] = field(default_factory=set)
    #: Results of :meth:`parameter_type` by function and parameter name.
    _parameter_types: dict[tuple[str, str], Optional[TypeRef]] = field(
        default_factory=dict, init=False
    )
    #: The parameters whose type :meth:`parameter_type` is computing.
    _pending: set[tuple[str, str]] = field(default_factory=set, init=False)
    _resolver: Optional[CalleeResolver] = field(default=None, init=False)
    #: Traces of the functions defined inside other functions, by qualified name.
    #: They are not stubbed, but give the ``Callable`` of such a function.
    nested_traces: dict[str, list[CallTrace]] = field(default_factory=dict)

    @property
    def scanned(self) -> ScannedModule:
        return ScannedModule(self.module, self.scan, self.is_package)

    def build_members(
        self, members: list[Union[FunctionNode, ClassNode]], owner: Optional[ClassNode] = None
    ) -> tuple[list[FunctionStub], list[ClassStub]]:
        functions: list[FunctionStub] = []
        classes: list[ClassStub] = []
        for member in members:
            if isinstance(member, ClassNode):
                methods, nested = self.build_members(member.members, member)
                # Every class is stubbed, even without traced methods, because
                # annotations in other modules' stubs may name it.
                classes.append(self.class_stub(member, methods, nested))
            elif self._is_stubbed(member, members) and not self._overrides_builtin(member, owner):
                stub = self.function_stub(member)
                if stub is not None:
                    functions.append(stub)
        return functions, classes

    def _overrides_builtin(self, function: FunctionNode, owner: Optional[ClassNode]) -> bool:
        """Whether *function* redefines an attribute of a builtin base class.

        Traced types are usually narrower than the base's signature, which mypy reports
        as an incompatible override, so such methods are not annotated. ``object``'s own
        methods are exempt: their typeshed signatures accept what tracing observes,
        except the parameters of ``__eq__`` and ``__ne__``, which are handled when the
        parameters are built.
        """
        name = function.node.name
        if owner is None or name in _CONSTRUCTORS or name in _DATA_MODEL_METHODS:
            return False
        if name in _OBJECT_DATA_ATTRIBUTES:
            return True
        for base in owner.node.bases:
            if not isinstance(base, ast.Name) or base.id in self.scan.names:
                continue
            base_class = getattr(builtins, base.id, None)
            if isinstance(base_class, type) and base_class is not object and hasattr(base_class, name):
                return True
        return False

    def _is_stubbed(self, function: FunctionNode, siblings: list[Union[FunctionNode, ClassNode]]) -> bool:
        if function.qualname not in self.traces or function.is_overload:
            return False
        same_name = [
            other
            for other in siblings
            if isinstance(other, FunctionNode) and other.qualname == function.qualname
        ]
        if any(other.is_overload for other in same_name):
            return False
        if function.accessor is not None:
            return True
        # A name defined twice is bound to its last definition at run time.
        return same_name[-1] is function

    def class_stub(
        self, node: ClassNode, methods: list[FunctionStub], nested: list[ClassStub]
    ) -> ClassStub:
        kept = []
        for base in node.node.bases:
            text = self.resolve_expression(base)
            if text is not None:
                kept.append(text)
        for keyword in node.node.keywords:
            text = self.resolve_expression(keyword.value)
            if text is not None and keyword.arg is not None:
                kept.append(f"{keyword.arg}={text}")
        return ClassStub(
            name=node.node.name,
            qualname=node.qualname,
            functions=tuple(methods),
            classes=tuple(nested),
            bases=tuple(kept),
            typed_dict_items=self.typed_dict_items(node),
        )

    def typed_dict_items(self, node: ClassNode) -> tuple[tuple[str, Optional[str]], ...]:
        """Return the items of *node* if it derives from ``TypedDict`` directly, else ``()``.

        A ``TypedDict`` stubbed without its items would accept no key. The classes that
        ``apply`` writes for dict shapes are such classes.
        """
        if not any(self._is_typed_dict_base(base) for base in node.node.bases):
            return ()
        items = []
        for statement in node.node.body:
            if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
                items.append((statement.target.id, self.existing_annotation(statement.annotation)))
        return tuple(items)

    def _is_typed_dict_base(self, base: ast.expr) -> bool:
        # TypedDict imported by name, or through an import of its module.
        if isinstance(base, ast.Name):
            new = self.scan.imports.get(base.id)
            return new is not None and new.name == "TypedDict" and new.module in _TYPED_DICT_MODULES
        if isinstance(base, ast.Attribute) and base.attr == "TypedDict" and isinstance(base.value, ast.Name):
            new = self.scan.imports.get(base.value.id)
            return new is not None and new.name is None and new.module in _TYPED_DICT_MODULES
        return False

    def add_referenced_classes(
        self, members: list[Union[FunctionNode, ClassNode]], classes: list[ClassStub]
    ) -> list[ClassStub]:
        # Stubbing a class may name more classes through its bases, so repeat until
        # no new class is added.
        local_classes = {cls.qualname for cls in self.scan.iter_classes()}
        while True:
            present = {cls.qualname for cls in _walk_classes(classes)}
            missing = (self.referenced_classes & local_classes) - present
            if not missing:
                return classes
            classes = self._merge_skeletons(members, classes, missing)

    def _merge_skeletons(
        self,
        members: list[Union[FunctionNode, ClassNode]],
        classes: list[ClassStub],
        missing: set[str],
    ) -> list[ClassStub]:
        by_name = {cls.qualname: cls for cls in classes}
        result = []
        for member in members:
            if not isinstance(member, ClassNode):
                continue
            existing = by_name.get(member.qualname)
            wanted = any(name == member.qualname or name.startswith(member.qualname + ".") for name in missing)
            if existing is None and not wanted:
                continue
            nested = self._merge_skeletons(
                member.members, list(existing.classes) if existing else [], missing
            )
            methods = list(existing.functions) if existing else []
            result.append(self.class_stub(member, methods, nested))
        return result

    def function_stub(self, function: FunctionNode) -> Optional[FunctionStub]:
        traces = self._traces_for(function)
        if not traces:
            return None
        traces = _checked_receivers(function, traces)
        node = function.node
        parameters = self.parameter_stubs(function)
        existing_return = self.existing_annotation(node.returns)
        return_type = self.return_annotation(function, traces)
        if return_type is None and _never_returns(function):
            return_type = _NO_RETURN
        if existing_return is not None and not self.overwrite_existing:
            return_type = None
        elif return_type is not None:
            existing_return = None
        if return_type is not None and not function.is_generator:
            linked = self.linked_type_var(function, traces, parameters)
            if linked is not None:
                type_var, names = linked
                parameters = tuple(
                    replace(parameter, annotation=type_var) if parameter.name in names else parameter
                    for parameter in parameters
                )
                return_type = type_var
        self.note_references(return_type)
        for parameter in parameters:
            self.note_references(parameter.annotation)
        return FunctionStub(
            name=node.name,
            qualname=function.qualname,
            parameters=parameters,
            return_annotation=return_type,
            existing_return=existing_return,
            is_async=isinstance(node, ast.AsyncFunctionDef),
            decorators=tuple(self.kept_decorators(function)),
            accessor=function.accessor,
            call_count=sum(trace.call_count for trace in traces),
        )

    def _traces_for(self, function: FunctionNode) -> list[CallTrace]:
        traces = self.traces[function.qualname]
        if function.accessor is None:
            return traces
        # The getter, setter and deleter of a property share one qualified name, so
        # traces are told apart by their parameters: a setter has two.
        # NOTE: getter and deleter calls cannot be told apart; a traced deleter call
        # adds None to the getter's return type, and deleters get no traces.
        if function.accessor is PropertyAccessor.SETTER:
            return [trace for trace in traces if len(trace.arg_types) >= 2]
        if function.accessor is PropertyAccessor.GETTER:
            return [trace for trace in traces if len(trace.arg_types) <= 1]
        return []

    def parameter_stubs(self, function: FunctionNode) -> tuple[ParameterStub, ...]:
        skip_first = function.is_method and not function.is_staticmethod
        takes_object = function.is_method and function.node.name in _OBJECT_PARAMETER_METHODS
        stubs = []
        for index, parameter in enumerate(function.parameters()):
            arg, kind, default = parameter
            traced = None
            if not (skip_first and index == 0 and kind is not ParameterKind.VAR_POSITIONAL):
                traced = self.parameter_type(function, parameter)
                if takes_object and traced is not None:
                    traced = _OBJECT
            existing = self.existing_annotation(arg.annotation)
            if existing is not None and not self.overwrite_existing:
                traced = None
            elif traced is not None:
                existing = None
            stubs.append(ParameterStub(arg.arg, kind, default is not None, traced, existing))
        return tuple(stubs)

    def parameter_type(self, function: FunctionNode, parameter: Parameter) -> Optional[TypeRef]:
        """Return the type to write for *parameter* of *function*, or ``None`` for none.

        The type combines the types that traced calls passed with more that the source
        shows the parameter takes:

        * When the body only passes the parameter's value on, as an argument of calls
          to traced functions, whatever all those callees' parameters take. Tests
          against ``None`` and truth tests do not count as uses.
        * ``None``, when the default is ``None`` or when the body tests the value
          against ``None`` and goes on without raising.

        A parameter that only ever held its ``None`` default, with no callee to say
        more, gets no type: the trace shows nothing of the type it takes. A
        ``*args`` or ``**kwargs`` that no traced call filled gets ``Any`` when the body
        only unpacks it into calls or does not read it, because the function accepts
        whatever it passes on, or anything.
        """
        key = (function.qualname, parameter.arg.arg)
        if key in self._parameter_types:
            return self._parameter_types[key]
        if key in self._pending:
            # A cycle of calls that pass the value on: the types observed here are
            # all this parameter adds.
            return self._observed_type(function, parameter.arg.arg)
        self._pending.add(key)
        try:
            result = self._parameter_type(function, parameter)
        finally:
            self._pending.discard(key)
        self._parameter_types[key] = result
        return result

    def _observed_type(self, function: FunctionNode, name: str) -> Optional[TypeRef]:
        if function.qualname not in self.traces:
            return None
        traces = self._traces_for(function)
        return self.combine_slot(traces, lambda trace: trace.arg_types.get(name))

    def _parameter_type(self, function: FunctionNode, parameter: Parameter) -> Optional[TypeRef]:
        arg, kind, default = parameter
        observed = self._observed_type(function, arg.arg)
        uses = parameter_uses(function.node, arg.arg)
        if kind in _VARIADIC:
            if observed is None and uses.only_unpacked and function.qualname in self.traces:
                return ANY
            return observed
        traced = observed
        forwarded = self._forwarded_type(function, uses)
        if forwarded is not None:
            traced = self.combine([observed, forwarded])
        if traced is None:
            return None
        if traced == NONE and _is_none_literal(default):
            # No call passed a value, so the trace shows nothing of the type the
            # parameter takes; None alone would reject every real value.
            return None
        if _is_none_literal(default) or uses.handles_none:
            # The default is a value of the parameter too, even if no call left it
            # in place while tracing, and so is a None that the body handles.
            traced = self.combine([traced, NONE])
        return traced

    def _forwarded_type(self, function: FunctionNode, uses: ParameterUses) -> Optional[TypeRef]:
        """Return what every callee that receives the parameter's value takes.

        ``None`` unless every read of the value is an argument of a call that
        resolves to a function with a type for that parameter (other than ``Any``).
        """
        if self.project is None or not uses.only_arguments:
            return None
        if self._resolver is None:
            self._resolver = CalleeResolver(self.scanned, self.project.scanned)
        accepted = []
        for use in uses.uses:
            assert use.call is not None
            callee = self._resolver.resolve(use.call, function)
            if callee is None:
                return None
            builder = self.project.builder(callee.module)
            parameter = callee.parameter(use.position, use.keyword)
            if builder is None or parameter is None:
                return None
            if builder.returns_argument_type(callee.function, parameter):
                return None
            callee_type = builder.parameter_type(callee.function, parameter)
            if callee_type is None or callee_type == ANY:
                return None
            accepted.append(callee_type)
        return _common_members(accepted)

    def returns_argument_type(self, function: FunctionNode, parameter: Parameter) -> bool:
        """Check whether *function* returned the type of *parameter*'s argument in every
        traced call, with at least two different types.

        Such a function passes the type of its argument on to its caller (a
        ``TypeVar`` in effect), so what it accepts does not bound what its caller
        accepts: the caller goes on with the value it was given. One type alone does
        not tell a function that returns its argument from one that returns that type.
        """
        name = parameter.arg.arg
        calls = [trace for trace in self.traces.get(function.qualname, ()) if name in trace.arg_types]
        passed = {trace.arg_types[name] for trace in calls}
        if len(passed) < 2:
            return False
        return all(trace.return_type == trace.arg_types[name] for trace in calls)

    def linked_type_var(
        self, function: FunctionNode, traces: list[CallTrace], parameters: tuple[ParameterStub, ...]
    ) -> Optional[tuple[TypeRef, tuple[str, ...]]]:
        """Return a constrained ``TypeVar`` for the return and the parameters that move with it.

        See :func:`typetrace.combining.match_type_var` for when they do. Only
        parameters with an annotation to write and without a default, which would have
        to fit every constraint, are candidates.
        """
        if function.accessor is not None or function.node.name in _OBJECT_PARAMETER_METHODS:
            return None
        candidates = [
            parameter.name
            for parameter in parameters
            if parameter.annotation is not None
            and not parameter.has_default
            and parameter.kind not in (ParameterKind.VAR_POSITIONAL, ParameterKind.VAR_KEYWORD)
        ]
        calls = [(trace.arg_types, trace.return_type) for trace in traces]
        match = match_type_var(calls, candidates, max_constraints=self.max_union_size)
        if match is None:
            return None
        # A constraint is written inline, where a dict shape has no TypedDict name.
        constraints = tuple(
            without_shapes(self.combine([constraint]) or ANY) for constraint in match.constraints
        )
        public = [public_type(constraint, self.module) for constraint in constraints]
        # Constraints that become Any, or the same public class, cannot be told apart.
        if ANY in public or len(set(public)) != len(public):
            return None
        return constrained_type_var(constraints), match.parameters

    def return_annotation(self, function: FunctionNode, traces: list[CallTrace]) -> Optional[TypeRef]:
        """Return the annotation of what *function* returns, from its *traces*.

        A generator that received only ``None`` at its yield expressions, or whose
        send type was not recorded, and that returned ``None`` or never returned, gets
        an ``Iterator`` (``AsyncIterator``). Otherwise it gets a ``Generator`` of the
        yield, send and return types (``AsyncGenerator`` of the first two), with
        ``Any`` for a send type that was not recorded or a return that never came.
        """
        returned = self.combine_slot(traces, lambda trace: trace.return_type)
        if not function.is_generator:
            return returned
        yielded = self.combine_slot(traces, lambda trace: trace.yield_type)
        if yielded is None:
            return None
        sent = self.combine_slot(traces, lambda trace: trace.send_type)
        if isinstance(function.node, ast.AsyncFunctionDef):
            if sent is None or sent == NONE:
                return TypeRef(*_ASYNC_ITERATOR, (yielded,))
            return TypeRef(*_ASYNC_GENERATOR, (yielded, sent))
        if (sent is None or sent == NONE) and (returned is None or returned == NONE):
            return TypeRef(*_ITERATOR, (yielded,))
        return TypeRef(*_GENERATOR, (yielded, sent or ANY, returned or ANY))

    def callable_of(self, qualname: str, bound: bool) -> Optional[TypeRef]:
        """Return the ``Callable`` of the function *qualname* from its traced calls.

        Return ``None`` when the function has no traces or no definition in the
        source. Also return ``None`` when a decorator other than ``staticmethod`` and
        ``classmethod`` wraps it, because the value was then the wrapper, which may
        take and return other types.

        The parameters, after the first one of a *bound* method, are listed when they
        are all positional and without defaults, and written ``...`` otherwise. An
        ``async def`` returns a ``Coroutine`` of the awaited type, and a generator
        the ``Iterator`` or ``Generator`` that its stub would write.

        A qualname with several definitions, such as one in each branch of an
        ``if``, has its parameters listed only when all definitions have the same
        names, kinds and defaults. Its return is the traced one only when all are
        ``async def`` or none is, and all are generators or none is. Otherwise the
        return is ``Any``.
        """
        traces = self.traces.get(qualname) or self.nested_traces.get(qualname)
        if not traces:
            return None
        definitions = self._find_definitions(qualname)
        if not definitions:
            return None
        for function in definitions:
            if function.accessor is not None:
                return None
            if any(decorator not in _BINDING_DECORATORS for decorator in function.decorators):
                return None
        # Any of the definitions, as in both branches of an if, may be the one whose
        # value was traced, so only what they all share is written.
        function = definitions[-1]
        same_kind = all(_function_kind(other) == _function_kind(function) for other in definitions)
        same_parameters = all(_parameter_layout(other) == _parameter_layout(function) for other in definitions)
        traces = [_without_receiver(trace) for trace in traces]
        parameters = function.parameters()
        if bound and parameters and parameters[0].kind is not ParameterKind.VAR_POSITIONAL:
            parameters = parameters[1:]
        if same_kind:
            returns = self.return_annotation(function, traces)
        else:
            returns = None
        if returns is None:
            returns = _NO_RETURN if all(_never_returns(other) for other in definitions) else ANY
        if same_kind and isinstance(function.node, ast.AsyncFunctionDef) and not function.is_generator:
            returns = TypeRef(*_COROUTINE, (ANY, ANY, returns))
        listed = same_parameters and all(
            parameter.kind in _POSITIONAL and parameter.default is None for parameter in parameters
        )
        if not listed:
            return CALLABLE if returns == ANY else callable_type(None, returns)
        types = [self.combine_slot(traces, _argument_reader(parameter)) or ANY for parameter in parameters]
        # Written inline, where a dict shape has no TypedDict name.
        return without_shapes(callable_type(types, returns))

    def _find_definitions(self, qualname: str) -> list[FunctionNode]:
        """Return the definitions of the function *qualname* in source order, searched
        inside function bodies for a name with ``<locals>``."""
        if "<locals>" in qualname:
            return _find_nested(self.scan, qualname)
        return [
            function
            for function in self.scan.iter_functions()
            if function.qualname == qualname and not function.is_overload
        ]

    def combine(self, types: Iterable[Optional[TypeRef]]) -> Optional[TypeRef]:
        """Combine the observed *types* of one slot; ``None`` when none was observed."""
        observed = [self.resolve_callables(ref) for ref in types if ref is not None]
        if not observed:
            return None
        if not self.keep_test_classes:
            observed = drop_test_classes(observed)
            if not observed:
                return ANY
        return combine_types(observed, max_union_size=self.max_union_size)

    def combine_slot(
        self, traces: Iterable[CallTrace], read: Callable[[CallTrace], Optional[TypeRef]]
    ) -> Optional[TypeRef]:
        """Combine the types that *read* gets from *traces*, weighted by their call counts.

        ``None`` when no trace has a type for the slot. See
        :func:`typetrace.combining.combine_calls`.
        """
        observed = []
        for trace in traces:
            ref = read(trace)
            if ref is not None:
                observed.append((self.resolve_callables(ref), trace.call_count))
        if not observed:
            return None
        if not self.keep_test_classes:
            cleaned = [(drop_test_classes([ref]), count) for ref, count in observed]
            observed = [(kept[0], count) for kept, count in cleaned if kept]
            if not observed:
                return ANY
        return combine_calls(observed, max_union_size=self.max_union_size)

    def resolve_callables(self, ref: TypeRef) -> TypeRef:
        """Return *ref* with the functions it names replaced by their ``Callable``.

        Without a project the references stay, and annotations write them as a bare
        ``Callable``.
        """
        return ref if self.project is None else self.project.resolve_callables(ref)

    def note_references(self, ref: Optional[TypeRef]) -> None:
        if ref is None:
            return
        for part in _walk_types(public_type(ref, self.module)):
            if part.module == self.module:
                self.referenced_classes.add(part.qualname)

    def kept_decorators(self, function: FunctionNode) -> list[str]:
        kept = []
        for decorator, node in zip(function.decorators, function.node.decorator_list):
            if decorator in _KEPT_DECORATORS and decorator not in self.scan.names:
                kept.append(decorator)
            elif function.accessor is not None and decorator == f"{function.node.name}.{function.accessor.value}":
                kept.append(decorator)
            elif not isinstance(node, ast.Call):
                text = self.resolve_expression(node)
                if text is not None:
                    kept.append(text)
        return kept

    def existing_annotation(self, annotation: Optional[ast.expr]) -> Optional[str]:
        """Return the source annotation as text the stub can use, or ``None``.

        NOTE: an annotation that uses a name the module defines other than by import
        or class (a type alias, a TypeVar) is dropped from the stub.
        """
        if annotation is None:
            return None
        if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
            try:
                annotation = ast.parse(annotation.value, mode="eval").body
            except SyntaxError:
                return None
        return self.resolve_expression(annotation)

    def resolve_expression(self, expression: ast.expr) -> Optional[str]:
        """Return *expression* as text if every name in it is defined in the stub.

        Imports it needs are added to :attr:`needed_imports` and classes of the
        module it names to :attr:`referenced_classes`.
        """
        imports = set()
        classes = set()
        local_classes = {cls.qualname for cls in self.scan.iter_classes()}
        for node in ast.walk(expression):
            if not isinstance(node, ast.Name):
                continue
            dotted = _dotted_name(expression, node)
            if node.id in self.scan.imports:
                imports.add(self.scan.imports[node.id])
            elif dotted in local_classes:
                classes.add(dotted)
            elif node.id in local_classes:
                classes.add(node.id)
            elif node.id in self.scan.names or not hasattr(builtins, node.id):
                return None
        self.needed_imports |= imports
        self.referenced_classes |= classes
        return ast.unparse(expression)


def _checked_receivers(function: FunctionNode, traces: list[CallTrace]) -> list[CallTrace]:
    """Return *traces* with a return observed as the receiver kept as such only where
    it means ``Self`` for *function*, and replaced by the value's type elsewhere.

    The recorder marks a value that was the first argument, or an instance of exactly
    the first argument when that is a class, in any function defined in a class body.
    """
    node = function.node
    positional = [*node.args.posonlyargs, *node.args.args]
    kind = None
    if function.is_method and not function.is_staticmethod and positional:
        kind = "class" if function.takes_class else "instance"
    first = positional[0].arg if positional else ""
    checked = []
    classes = set()
    for trace in traces:
        returned = trace.return_type
        if returned is None or not returned.is_receiver or not returned.args:
            checked.append(trace)
            continue
        value = returned.args[0]
        receiver_type = trace.arg_types.get(first)
        # A receiver that is a class means a metaclass method, where PEP 673 rejects
        # Self. A receiver that is None comes from an unbound call: C.method(None).
        is_instance = (value.module, value.qualname) != _TYPE and value != NONE
        if kind == "instance" and receiver_type == value and is_instance:
            checked.append(trace)
        elif kind == "class" and receiver_type == TypeRef(*_TYPE, (value,)):
            classes.add(value)
            checked.append(trace)
        else:
            checked.append(replace(trace, return_type=value))
    if kind == "class" and len(classes) < 2:
        return [_without_receiver(trace) for trace in checked]
    return checked


def _without_receiver(trace: CallTrace) -> CallTrace:
    returned = trace.return_type
    if returned is None or not returned.is_receiver or not returned.args:
        return trace
    return replace(trace, return_type=returned.args[0])


def _dotted_name(root: ast.expr, name: ast.Name) -> str:
    # The longest attribute chain that starts at *name*: ``Outer.Inner`` for the
    # ``Outer`` in ``list[Outer.Inner]``.
    best = name.id
    for node in ast.walk(root):
        chain = []
        current: ast.expr = node  # type: ignore[assignment]
        while isinstance(current, ast.Attribute):
            chain.append(current.attr)
            current = current.value
        if current is name and chain:
            candidate = ".".join([name.id, *reversed(chain)])
            if len(candidate) > len(best):
                best = candidate
    return best


def _never_returns(function: FunctionNode) -> bool:
    """Whether *function* ends in ``raise`` and has no ``return``, so no call of it
    returns normally.

    The caller checks that no traced call returned. ``raise NotImplementedError``
    and abstract methods are left out, because subclasses override them with methods
    that return, which a ``NoReturn`` in the base would make incompatible overrides.
    """
    node = function.node
    if function.is_generator or not node.body or any("abstractmethod" in name for name in function.decorators):
        return False
    last = node.body[-1]
    if not isinstance(last, ast.Raise) or _raises_not_implemented(last):
        return False
    return not any(isinstance(inner, ast.Return) for inner in _walk_own_body(node))


def _raises_not_implemented(statement: ast.Raise) -> bool:
    raised = statement.exc.func if isinstance(statement.exc, ast.Call) else statement.exc
    return isinstance(raised, ast.Name) and raised.id in ("NotImplementedError", "NotImplemented")


def _walk_own_body(node: ast.AST) -> Iterable[ast.AST]:
    # The statements of the function itself, not those of nested functions or classes.
    for child in ast.iter_child_nodes(node):
        yield child
        if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            yield from _walk_own_body(child)


def _argument_reader(parameter: Parameter) -> Callable[[CallTrace], Optional[TypeRef]]:
    name = parameter.arg.arg
    return lambda trace: trace.arg_types.get(name)


def _names_function(ref: TypeRef) -> bool:
    if ref.function is not None:
        return True
    return any(_names_function(arg) for arg in ref.args) or any(_names_function(key.value) for key in ref.shape)


def _find_nested(scan: ModuleScan, qualname: str) -> list[FunctionNode]:
    """Find the definitions of a function defined inside another, such as
    ``outer.<locals>.Helper.run``, in the bodies of the functions that enclose it.

    Every definition of each enclosing function and class is searched, so a name
    defined in both branches of an ``if`` gives two definitions.
    """
    outer_name, *scopes = qualname.split(".<locals>.")
    nodes: list[ast.AST] = [function.node for function in scan.iter_functions() if function.qualname == outer_name]
    is_method = False
    for scope in scopes:
        *classes, name = scope.split(".")
        for class_name in classes:
            nodes = [found for node in nodes for found in _own_definitions(node, class_name, (ast.ClassDef,))]
        is_method = bool(classes)
        kinds = (ast.FunctionDef, ast.AsyncFunctionDef)
        nodes = [found for node in nodes for found in _own_definitions(node, name, kinds)]
    definitions = []
    for node in nodes:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            decorators = [ast.unparse(decorator) for decorator in node.decorator_list]
            definitions.append(FunctionNode(qualname, node, is_method, decorators, accessor=None))
    return definitions


def _own_definitions(scope: ast.AST, name: str, kinds: tuple[type[ast.AST], ...]) -> list[ast.AST]:
    # The definitions in the body of *scope* itself, not in a nested scope, in source order.
    return [node for node in _walk_own_body(scope) if isinstance(node, kinds) and getattr(node, "name", None) == name]


def _function_kind(function: FunctionNode) -> tuple[bool, bool]:
    """Return whether *function* is an ``async def`` and whether it is a generator."""
    return isinstance(function.node, ast.AsyncFunctionDef), function.is_generator


def _parameter_layout(function: FunctionNode) -> list[tuple[ParameterKind, str, bool]]:
    """Return the kind, name and whether it has a default of each parameter."""
    return [(parameter.kind, parameter.arg.arg, parameter.default is not None) for parameter in function.parameters()]


def _common_members(types: Sequence[TypeRef]) -> Optional[TypeRef]:
    """Return the union of the members that every one of *types* has, or ``None``."""
    memberships = [set(ref.args) if ref.is_union else {ref} for ref in types]
    common = set.intersection(*memberships)
    return union(common) if common else None


def _is_none_literal(node: Optional[ast.expr]) -> bool:
    return isinstance(node, ast.Constant) and node.value is None


def _walk_types(ref: TypeRef) -> Iterable[TypeRef]:
    yield ref
    for arg in ref.args:
        yield from _walk_types(arg)


def _walk_classes(classes: Iterable[ClassStub]) -> Iterable[ClassStub]:
    for cls in classes:
        yield cls
        yield from _walk_classes(cls.classes)
