"""Blame: the annotations of a stub that one new type-checker error is attributed to.

:mod:`typetrace.verify` drops the annotations that :func:`blame` names and checks
again. A blame is *certain* when it names one annotation (or one ``TypeVar`` and its
uses), or when every named annotation must go for the error to go, such as every user
of an import that cannot be resolved. Other blames are guesses, and the annotations
they drop are tried again by ``verify``'s restore step.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Optional, Union

from typetrace.stubs.annotations import TYPE_VAR_MODULE
from typetrace.stubs.model import FunctionStub, ModuleStub, ParameterKind, PropertyAccessor
from typetrace.stubs.scan import FunctionNode, scan_module
from typetrace.typemodel import TypeRef

__all__ = [
    "Blame",
    "BlameContext",
    "ErrorSite",
    "Slot",
    "annotation_of",
    "blame",
    "body_owner",
    "function_of",
    "function_slots",
    "is_type_var",
    "stub_slots",
    "unannotated_functions",
    "with_type_var_partners",
]

_Function = Union[ast.FunctionDef, ast.AsyncFunctionDef]

#: A callee named by a mypy message about the arguments of a call, such as
#: ``Argument 1 to "f" of "C"``, ``Argument "x" to "f"``, ``Too many arguments for "f"``,
#: ``Missing positional argument "x" in call to "f"`` or ``Unexpected keyword argument
#: "x" for "f"``. ``argument`` is the position or the quoted parameter name, if any.
_ARGUMENT_MESSAGE = re.compile(
    r'^(?:Argument (?P<position>\d+)|Argument "(?P<name>\w+)"|Too (?:many|few) arguments'
    r'|Missing positional arguments? "(?P<missing>\w+)"(?:, "\w+")*( in call)?'
    r'|Unexpected keyword argument "(?P<unexpected>\w+)"|Missing named argument "(?P<named>\w+)")'
    r' (?:to|for|in call to) "(?P<callee>\w+)"(?: of "(?P<owner>\w+)")?'
)
#: ``"f" does not return a value`` and ``"f" of "C" does not return a value``.
_NO_VALUE_MESSAGE = re.compile(r'^"(?P<callee>\w+)"(?: of "(?P<owner>\w+)")? does not return a value')
_QUOTED = re.compile(r'"([A-Za-z_][\w.]*)"')
#: Codes of errors that a return annotation causes in the function's own body.
_RETURN_CODES = frozenset({"return-value", "return", "no-any-return", "empty-body"})
#: mypy reports these for a whole function; only dropping all its annotations ends them.
_WHOLE_FUNCTION_CODES = frozenset({"untyped-decorator"})


@dataclass(frozen=True)
class Slot:
    """One annotation a stub adds: a parameter's, or the return's when *parameter* is ``None``."""

    qualname: str
    parameter: Optional[str]
    accessor: Optional[str] = None

    @property
    def sort_key(self) -> tuple[str, str, bool, str]:
        """Order of the slots in reports: by function, parameters before the return."""
        return (self.qualname, self.accessor or "", self.parameter is None, self.parameter or "")

    def __str__(self) -> str:
        suffix = f" ({self.accessor})" if self.accessor else ""
        if self.parameter is None:
            return f"{self.qualname}{suffix} return"
        return f"{self.qualname}{suffix} parameter {self.parameter}"


@dataclass(frozen=True)
class ErrorSite:
    """The position and text of one error: its file (empty for the annotated module), line and column, 1-based."""

    file: str
    line: int
    column: int
    code: str
    message: str


@dataclass(frozen=True)
class Blame:
    """The annotations one error is attributed to."""

    slots: frozenset[Slot]
    #: Whether every one of :attr:`slots` has to go for the error to go; see the module docstring.
    certain: bool


@dataclass
class _Located:
    """A stubbed function that has annotations, found in the annotated text."""

    function: FunctionStub
    node: FunctionNode

    @property
    def start(self) -> int:
        """First line of the definition, decorators included."""
        ast_node = self.node.node
        return min([ast_node.lineno, *(decorator.lineno for decorator in ast_node.decorator_list)])

    @property
    def body_start(self) -> int:
        return self.node.node.body[0].lineno

    @property
    def end(self) -> int:
        return self.node.node.end_lineno or self.node.node.lineno

    @property
    def class_name(self) -> str:
        parts = self.function.qualname.split(".")
        return parts[-2] if len(parts) > 1 else ""


@dataclass
class BlameContext:
    """The annotated text of a module and the stub applied to it, read once per check round.

    *root* is the folder that errors in other files are relative to.
    """

    stub: ModuleStub
    annotated: str
    root: Path
    tree: ast.Module = field(init=False)
    lines: list[str] = field(init=False)
    functions: list[_Located] = field(init=False)
    #: Dotted names (``a.b.C``, ``T``) that each slot's annotation text uses.
    used_names: dict[Slot, frozenset[str]] = field(init=False)
    _files: dict[str, Optional[tuple[ast.Module, list[str]]]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.tree = ast.parse(self.annotated)
        self.lines = self.annotated.splitlines()
        self.functions = []
        self.used_names = {}
        for node in scan_module(self.tree).iter_functions():
            function = self.stub.function(node.qualname, node.accessor)
            if function is None or not function.has_annotations:
                continue
            located = _Located(function, node)
            self.functions.append(located)
            for slot, expression in _annotation_nodes(located):
                self.used_names[slot] = frozenset(_dotted_names(expression))

    def source_of(self, file: str) -> Optional[tuple[ast.Module, list[str]]]:
        """Return the syntax tree and lines of *file*, or ``None`` if it cannot be read."""
        if file not in self._files:
            try:
                text = (self.root / file).read_text(encoding="utf-8")
                self._files[file] = (ast.parse(text), text.splitlines())
            except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
                self._files[file] = None
        return self._files[file]


def blame(error: ErrorSite, context: BlameContext) -> Blame:
    """Attribute *error* to annotations of ``context.stub``; empty when no rule applies.

    The first rule that blames anything wins:

    1. An error on a statement that ``apply`` added at module level (an import or a
       ``TypeVar`` declaration) is blamed on the annotations that use the names it
       binds, narrowed to the names the message quotes when those match.
    2. An error in a signature (decorators included) is blamed on the parameter or
       return annotation at its column, else on every annotation of that signature.
    3. An error about the arguments of a call to a stubbed function or class (mypy's
       ``Argument 2 to "f"``, ``Unexpected keyword argument "x" for "f"``) is blamed on
       the annotation of that parameter, or on the callee's parameter annotations.
    4. The return annotations of the stubbed functions called in the expression at
       the error's column, else in its statement. Failing that, for an error about a
       ``return``, the enclosing function's return annotation. Failing that, the
       annotations of the enclosing function's parameters used there.

    Rules 3 and 4 also apply to errors in other files of the package, where stubbed
    functions and classes are found by the names called. Rule 3 comes before the
    caller's own annotations, so that when the callee's annotation is the cause, the
    caller's stays. If the error remains, the next round blames the caller. A blamed
    annotation that is a ``TypeVar`` takes its other uses in the same signature with it.
    """
    if error.file:
        source = context.source_of(error.file)
        if source is None:
            return Blame(frozenset(), False)
        tree, lines = source
        enclosing = None
    else:
        tree, lines = context.tree, context.lines
        enclosing = _enclosing(error, context)
        added = _blame_added_statement(error, context)
        if added:
            return _finish(added, context, certain=True)
        if enclosing is not None and error.line < enclosing.body_start:
            slots, certain = _blame_signature(enclosing, error)
            return _finish(slots, context, certain=certain)
    callee_slots = _blame_callee_message(error, context)
    if callee_slots:
        return _finish(callee_slots, context, certain=len(callee_slots) == 1)
    statement = _statement_at(tree, error.line)
    if statement is None:
        return Blame(frozenset(), False)
    expression = _expression_at(statement, error.line, error.column)
    scopes: list[ast.AST] = [expression, statement] if expression is not None else [statement]
    slots = _blame_in_scopes(scopes, statement, error, enclosing, context)
    return _finish(slots, context, certain=len(slots) == 1)


def body_owner(error: ErrorSite, context: BlameContext) -> Optional[FunctionStub]:
    """Return the stubbed function whose body, not signature, contains *error* in the annotated module."""
    if error.file:
        return None
    enclosing = _enclosing(error, context)
    if enclosing is None or error.line < enclosing.body_start:
        return None
    return enclosing.function


def unannotated_functions(source: str) -> frozenset[tuple[str, Optional[PropertyAccessor]]]:
    """Return the qualified names and accessors of the functions in *source* that have no annotation.

    mypy's default options skip the bodies of these functions, and check a body once
    any parameter or the return of its function has an annotation. A syntax error
    gives an empty set.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return frozenset()
    return frozenset(
        (node.qualname, node.accessor)
        for node in scan_module(tree).iter_functions()
        if node.node.returns is None and all(argument.annotation is None for argument in _arguments(node.node))
    )


def _finish(slots: Iterable[Slot], context: BlameContext, *, certain: bool) -> Blame:
    with_partners = with_type_var_partners(set(slots), context.stub)
    return Blame(frozenset(with_partners), certain)


# --- Rules ------------------------------------------------------------------------


def _enclosing(error: ErrorSite, context: BlameContext) -> Optional[_Located]:
    for located in context.functions:
        if located.start <= error.line <= located.end:
            return located
    return None


def _blame_added_statement(error: ErrorSite, context: BlameContext) -> set[Slot]:
    """Rule 1: the users of the names bound by an import or ``TypeVar`` at module level."""
    statement = _module_statement_at(context.tree, error.line)
    if statement is None:
        return set()
    bound = _bound_names(statement)
    quoted = set(_QUOTED.findall(error.message))
    narrowed = {name: path for name, path in bound.items() if path in quoted or name in quoted or path.rsplit(".", 1)[-1] in quoted}
    if narrowed:
        bound = narrowed
    slots = set()
    for slot, names in context.used_names.items():
        for used in names:
            if any(used == name or used.startswith(name + ".") for name in bound):
                slots.add(slot)
    return slots


def _bound_names(statement: ast.stmt) -> dict[str, str]:
    """Return the names (dotted for ``import a.b``) that *statement* binds, with what they name."""
    bound: dict[str, str] = {}
    if isinstance(statement, ast.Import):
        for alias in statement.names:
            bound[alias.asname or alias.name] = alias.name
    elif isinstance(statement, ast.ImportFrom):
        for alias in statement.names:
            bound[alias.asname or alias.name] = f"{statement.module or ''}.{alias.name}"
    elif isinstance(statement, ast.Assign):
        for target in statement.targets:
            if isinstance(target, ast.Name):
                bound[target.id] = target.id
    return bound


def _blame_signature(located: _Located, error: ErrorSite) -> tuple[set[Slot], bool]:
    """Rule 2: the annotation at the error's column, else every one of the function."""
    if error.code in _WHOLE_FUNCTION_CODES:
        return set(function_slots(located.function)), True
    node = located.node.node
    for argument in _arguments(node):
        if _covers(argument, error) or (argument.annotation is not None and _covers(argument.annotation, error)):
            slot = _slot(located.function, argument.arg)
            return ({slot} if slot is not None else set()), True
    if node.returns is not None and _covers(node.returns, error):
        slot = _slot(located.function, None)
        return ({slot} if slot is not None else set()), True
    return set(function_slots(located.function)), False


def _blame_callee_message(error: ErrorSite, context: BlameContext) -> set[Slot]:
    """Rule 3: the parameter annotations of a stubbed callee that the message names."""
    match = _ARGUMENT_MESSAGE.match(error.message)
    if match is not None:
        slots: set[Slot] = set()
        for located in _callees(match["callee"], match["owner"], context):
            slots |= _argument_slots(located, match)
        return slots
    match = _NO_VALUE_MESSAGE.match(error.message)
    if match is not None:
        returns = (_slot(located.function, None) for located in _callees(match["callee"], match["owner"], context))
        return {slot for slot in returns if slot is not None}
    return set()


def _argument_slots(located: _Located, match: re.Match[str]) -> set[Slot]:
    function = located.function
    name = match["name"] or match["missing"] or match["unexpected"] or match["named"]
    if name is None and match["position"] is not None:
        name = _parameter_at(located, int(match["position"]))
    if name is not None:
        slot = _slot(function, name)
        if slot is not None:
            return {slot}
        keywords = [parameter for parameter in function.parameters if parameter.kind is ParameterKind.VAR_KEYWORD]
        slots = {_slot(function, parameter.name) for parameter in keywords}
        if slots - {None}:
            return {slot for slot in slots if slot is not None}
    return {slot for slot in function_slots(function) if slot.parameter is not None}


def _parameter_at(located: _Located, position: int) -> Optional[str]:
    """Return the parameter that positional argument *position* (1-based) of a call binds."""
    node = located.node.node
    positional = [*node.args.posonlyargs, *node.args.args]
    bound_first = located.node.is_method and not located.node.is_staticmethod
    if bound_first or located.function.name in ("__init__", "__new__"):
        positional = positional[1:]
    if position <= len(positional):
        return positional[position - 1].arg
    return node.args.vararg.arg if node.args.vararg is not None else None


def _callees(name: str, owner: Optional[str], context: BlameContext) -> list[_Located]:
    """Return the stubbed functions that a call of *name* (a method of *owner*) may run.

    A class name stands for its ``__init__`` and ``__new__``, as in mypy's messages.
    """
    found = []
    for located in context.functions:
        function_name, class_name = located.function.name, located.class_name
        if function_name == name and (owner is None or class_name == owner):
            found.append(located)
        elif owner is None and class_name == name and function_name in ("__init__", "__new__"):
            found.append(located)
    return found


def _blame_in_scopes(
    scopes: list[ast.AST], statement: ast.stmt, error: ErrorSite, enclosing: Optional[_Located], context: BlameContext
) -> set[Slot]:
    """Rule 4, from the narrowest scope out: returns of stubbed callees, the enclosing return, the parameters used."""
    for scope in scopes:
        slots = set()
        for name in _called_names(scope):
            for located in _callees(name, None, context):
                slot = _slot(located.function, None)
                if slot is not None:
                    slots.add(slot)
        if slots:
            return slots
    if enclosing is None:
        return set()
    return_slot = _slot(enclosing.function, None)
    if return_slot is not None and error.code in _RETURN_CODES:
        return {return_slot}
    for scope in scopes:
        slots = {slot for slot in (_slot(enclosing.function, name) for name in _parameter_names(scope, enclosing)) if slot is not None}
        if slots:
            return slots
    if return_slot is not None and isinstance(statement, ast.Return):
        return {return_slot}
    return set()


def _parameter_names(scope: ast.AST, enclosing: _Located) -> list[str]:
    parameters = {argument.arg for argument in _arguments(enclosing.node.node)}
    used = [node.id for node in ast.walk(scope) if isinstance(node, ast.Name)]
    return [name for name in dict.fromkeys(used) if name in parameters and _slot(enclosing.function, name) is not None]


def _called_names(scope: ast.AST) -> list[str]:
    names = []
    for node in ast.walk(scope):
        if isinstance(node, ast.Call):
            if isinstance(node.func, ast.Name):
                names.append(node.func.id)
            elif isinstance(node.func, ast.Attribute):
                names.append(node.func.attr)
    return list(dict.fromkeys(names))


# --- Syntax helpers ---------------------------------------------------------------


def _module_statement_at(tree: ast.Module, line: int) -> Optional[ast.stmt]:
    """Return the import or ``TypeVar`` declaration at *line*, at module level or in a module-level ``if``."""
    statements: list[ast.stmt] = list(tree.body)
    while statements:
        statement = statements.pop()
        end = statement.end_lineno or statement.lineno
        if not statement.lineno <= line <= end:
            continue
        if isinstance(statement, ast.If):
            statements.extend(statement.body)
            statements.extend(statement.orelse)
        elif isinstance(statement, (ast.Import, ast.ImportFrom)) or _is_type_var_declaration(statement):
            return statement
    return None


def _is_type_var_declaration(statement: ast.stmt) -> bool:
    if not isinstance(statement, ast.Assign) or not isinstance(statement.value, ast.Call):
        return False
    function = statement.value.func
    name = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", "")
    return name == "TypeVar"


def _statement_at(tree: ast.Module, line: int) -> Optional[ast.stmt]:
    """Return the innermost statement that spans *line*."""
    found: Optional[ast.stmt] = None
    candidates: list[ast.stmt] = list(tree.body)
    while candidates:
        statement = candidates.pop()
        if not statement.lineno <= line <= (statement.end_lineno or statement.lineno):
            continue
        found = statement
        candidates = [child for child in ast.iter_child_nodes(statement) if isinstance(child, ast.stmt)]
    return found


def _expression_at(statement: ast.stmt, line: int, column: int) -> Optional[ast.expr]:
    """Return the largest expression of *statement* that starts at *line* and *column*.

    mypy reports an unsupported operand at the right operand, so an operand stands for
    the whole operation.
    """
    best: Optional[ast.expr] = None
    parents: dict[ast.AST, ast.AST] = {}
    for node in ast.walk(statement):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
        if isinstance(node, ast.expr) and node.lineno == line and node.col_offset + 1 == column:
            if best is None or _span(node) > _span(best):
                best = node
    parent = parents.get(best) if best is not None else None
    if isinstance(parent, (ast.BinOp, ast.Compare, ast.BoolOp)):
        return parent
    return best


def _span(node: ast.expr) -> tuple[int, int]:
    return ((node.end_lineno or node.lineno) - node.lineno, (node.end_col_offset or 0) - node.col_offset)


def _covers(node: ast.AST, error: ErrorSite) -> bool:
    start = (node.lineno, node.col_offset + 1)  # type: ignore[attr-defined]
    end = (node.end_lineno, node.end_col_offset + 1)  # type: ignore[attr-defined]
    return bool(start <= (error.line, error.column) <= end)


def _arguments(node: _Function) -> list[ast.arg]:
    arguments = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
    return arguments + [arg for arg in (node.args.vararg, node.args.kwarg) if arg is not None]


def _annotation_nodes(located: _Located) -> Iterator[tuple[Slot, ast.expr]]:
    node = located.node.node
    for argument in _arguments(node):
        slot = _slot(located.function, argument.arg)
        if slot is not None and argument.annotation is not None:
            yield slot, argument.annotation
    slot = _slot(located.function, None)
    if slot is not None and node.returns is not None:
        yield slot, node.returns


def _dotted_names(expression: ast.expr) -> Iterator[str]:
    """Yield the names and dotted names in an annotation, reading quoted parts as code."""
    for node in ast.walk(expression):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            try:
                parsed = ast.parse(node.value, mode="eval")
            except SyntaxError:
                continue
            yield from _dotted_names(parsed.body)
        elif isinstance(node, ast.Attribute):
            parts = [node.attr]
            value = node.value
            while isinstance(value, ast.Attribute):
                parts.append(value.attr)
                value = value.value
            if isinstance(value, ast.Name):
                yield ".".join([value.id, *reversed(parts)])
        elif isinstance(node, ast.Name):
            yield node.id


# --- Slots of a stub ---------------------------------------------------------------


def _slot(function: FunctionStub, parameter: Optional[str]) -> Optional[Slot]:
    """Return the slot of *parameter* (``None``: the return) if the stub annotates it."""
    slot = Slot(function.qualname, parameter, function.accessor.value if function.accessor else None)
    return slot if annotation_of(function, slot) is not None else None


def function_slots(function: FunctionStub) -> list[Slot]:
    """Return the slots that *function*'s stub annotates, parameters first."""
    names: list[Optional[str]] = [parameter.name for parameter in function.parameters]
    slots = [_slot(function, name) for name in [*names, None]]
    return [slot for slot in slots if slot is not None]


def stub_slots(stub: ModuleStub) -> list[Slot]:
    """Return every slot that *stub* annotates."""
    return [slot for function in stub.iter_functions() for slot in function_slots(function)]


def function_of(stub: ModuleStub, slot: Slot) -> Optional[FunctionStub]:
    """Return the function of *stub* that *slot* belongs to."""
    accessor = PropertyAccessor(slot.accessor) if slot.accessor else None
    return stub.function(slot.qualname, accessor)


def annotation_of(function: FunctionStub, slot: Slot) -> Optional[TypeRef]:
    """Return the annotation that *function*'s stub gives *slot*, or ``None``."""
    if slot.parameter is None:
        return function.return_annotation
    for parameter in function.parameters:
        if parameter.name == slot.parameter:
            return parameter.annotation
    return None


def is_type_var(ref: Optional[TypeRef]) -> bool:
    """Return whether *ref* is a constrained ``TypeVar`` that the stub declares."""
    return ref is not None and ref.module == TYPE_VAR_MODULE


def with_type_var_partners(slots: set[Slot], stub: ModuleStub) -> set[Slot]:
    """Return *slots* with the other uses, in the same signature, of each ``TypeVar`` among them."""
    result = set(slots)
    for slot in slots:
        function = function_of(stub, slot)
        if function is None or not is_type_var(annotation_of(function, slot)):
            continue
        type_var = annotation_of(function, slot)
        result |= {other for other in function_slots(function) if annotation_of(function, other) == type_var}
    return result
