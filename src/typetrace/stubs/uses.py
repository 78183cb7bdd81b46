"""Parameter uses: how a function's body reads the value that one parameter received.

A small flow analysis over the function's ``ast`` follows the parameter's incoming
value until the name is bound to something else, and records every read of it. A
test against ``None`` narrows the value: in the branch where it is ``None``, its reads
show nothing of the types the parameter takes, so they are not recorded. Where the
analysis cannot follow the value (a nested function or comprehension reads the name,
a ``match`` statement), the read counts as :attr:`UseKind.OTHER`, which never widens
a type.
"""

from __future__ import annotations

import ast
import enum
from dataclasses import dataclass
from typing import Iterator, Optional, Union

__all__ = ["ParameterUse", "ParameterUses", "UseKind", "parameter_uses"]

AnyFunctionDef = Union[ast.FunctionDef, ast.AsyncFunctionDef]

# States of the incoming value at a point of the body, ordered so that joining two
# paths takes the larger one. ``None`` stands for a point that no path reaches.
_DEAD = 0  # the name is bound to another value on every path
_NONE = 1  # the value is still there, and a test showed it is None
_LIVE = 2  # the value is still there, of any type the parameter takes

_NESTED_SCOPES = (
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
    ast.Lambda,
    ast.ListComp,
    ast.SetComp,
    ast.DictComp,
    ast.GeneratorExp,
)


class UseKind(enum.Enum):
    """Kind of read of the parameter's value."""

    #: One argument of a call: ``f(value)`` or ``f(key=value)``.
    ARGUMENT = "argument"
    #: Unpacked into a call: ``f(*value)`` or ``f(**value)``.
    UNPACKED = "unpacked"
    #: Any other read, such as an attribute, an operator or an assignment.
    OTHER = "other"


@dataclass(frozen=True)
class ParameterUse:
    """One read of the parameter's incoming value."""

    kind: UseKind
    #: The call that receives the value; ``None`` for :attr:`UseKind.OTHER`.
    call: Optional[ast.Call] = None
    #: Index among the call's positional arguments; ``None`` for a keyword argument,
    #: an unpacked value, or a position after an unpacked ``*`` argument.
    position: Optional[int] = None
    #: Keyword of the argument, for ``f(key=value)``.
    keyword: Optional[str] = None


@dataclass(frozen=True)
class ParameterUses:
    """The reads of one parameter's incoming value in its function's body."""

    uses: tuple[ParameterUse, ...]
    #: Whether the body tests the value against ``None`` and goes on without raising
    #: when it is ``None``.
    handles_none: bool

    @property
    def only_arguments(self) -> bool:
        """Whether the value is read, and only as single arguments of calls."""
        return bool(self.uses) and all(
            use.kind is UseKind.ARGUMENT and (use.position is not None or use.keyword is not None)
            for use in self.uses
        )

    @property
    def only_unpacked(self) -> bool:
        """Whether the value is never read, or only unpacked into calls."""
        return all(use.kind is UseKind.UNPACKED for use in self.uses)


def parameter_uses(function: AnyFunctionDef, name: str) -> ParameterUses:
    """Find the reads of parameter *name*'s incoming value in the body of *function*.

    Truth tests (``if value:``, ``not value``) and tests against ``None`` are not
    recorded as reads, because every value supports them.
    """
    analysis = _Analysis(name)
    analysis.block(function.body, _LIVE)
    return ParameterUses(tuple(analysis.uses.values()), analysis.handles_none)


def _join(*states: Optional[int]) -> Optional[int]:
    reached = [state for state in states if state is not None]
    return max(reached) if reached else None


class _Analysis:
    def __init__(self, name: str) -> None:
        self.name = name
        #: Reads by the ``id`` of their ``ast.Name`` node; loops visit their bodies
        #: twice, and a read counts once.
        self.uses: dict[int, ParameterUse] = {}
        self.handles_none = False
        #: The largest state seen inside each loop or ``try`` block being analysed,
        #: because ``break``, ``continue`` and exceptions leave those blocks from any
        #: point.
        self._peaks: list[int] = []

    # --- statements ---------------------------------------------------------------

    def block(self, statements: list[ast.stmt], state: Optional[int]) -> Optional[int]:
        for statement in statements:
            if state is None:
                return None
            for index, peak in enumerate(self._peaks):
                self._peaks[index] = max(peak, state)
            state = self.statement(statement, state)
        return state

    def statement(self, node: ast.stmt, state: int) -> Optional[int]:
        """Note the reads of *node*; return the state after it, ``None`` if unreachable."""
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            return self.definition(node, state)
        if isinstance(node, ast.If):
            return self.branch(node.test, node.body, node.orelse, state)
        if isinstance(node, (ast.While, ast.For, ast.AsyncFor)):
            return self.loop(node, state)
        if isinstance(node, (ast.With, ast.AsyncWith)):
            for item in node.items:
                self.expression(item.context_expr, state)
                if item.optional_vars is not None:
                    state = self.store(item.optional_vars, state)
            return self.block(node.body, state)
        if isinstance(node, ast.Try) or type(node).__name__ == "TryStar":
            return self.try_statement(node, state)

        if isinstance(node, ast.Return):
            self.expression(node.value, state)
            return None
        if isinstance(node, ast.Raise):
            self.expression(node.exc, state)
            self.expression(node.cause, state)
            return None
        if isinstance(node, (ast.Break, ast.Continue)):
            return None
        return self.simple_statement(node, state)

    def simple_statement(self, node: ast.stmt, state: int) -> int:
        """Note the reads of *node*, a statement without a body; return the state after it."""
        if isinstance(node, ast.Assign):
            self.expression(node.value, state)
            for target in node.targets:
                state = self.store(target, state)
            return state
        if isinstance(node, ast.AnnAssign):
            if node.value is None:
                return state
            self.expression(node.value, state)
            return self.store(node.target, state)
        if isinstance(node, ast.AugAssign):
            # ``value += x`` reads the value with an operator before rebinding it.
            self.expression(node.target, state)
            self.expression(node.value, state)
            return self.store(node.target, state)
        if isinstance(node, ast.Delete):
            for target in node.targets:
                state = self.store(target, state)
            return state
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            bound = {alias.asname or alias.name.split(".")[0] for alias in node.names}
            return _DEAD if self.name in bound else state

        if isinstance(node, ast.Assert):
            # ``assert value is not None`` rejects None, so it does not count as
            # handling None.
            if not _is_none_test(node.test, self.name):
                self.expression(node.test, state)
            self.expression(node.msg, state)
            return state
        if isinstance(node, ast.Expr):
            self.expression(node.value, state)
            return state
        # Other statements (``match``, ``global``, ``pass``...): every read of the name
        # counts, and the value may still be there afterwards.
        for child in self._loads(node):
            self.note(child, ParameterUse(UseKind.OTHER), state)
        return state

    def definition(
        self, node: Union[ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef], state: int
    ) -> int:
        # Decorators, defaults and bases run now; the body may run at any later time,
        # so a read of the name there counts as another use.
        for child in self._loads(node):
            self.note(child, ParameterUse(UseKind.OTHER), state)
        return _DEAD if node.name == self.name else state

    def branch(
        self, test: ast.expr, body: list[ast.stmt], orelse: list[ast.stmt], state: int
    ) -> Optional[int]:
        when_true, when_false = self.condition(test, state)
        none_branch = _none_branch(test, self.name)
        if none_branch is not None and state == _LIVE:
            handled = body if none_branch else orelse
            if not (handled and isinstance(handled[-1], ast.Raise)):
                self.handles_none = True
        return _join(self.block(body, when_true), self.block(orelse, when_false))

    def loop(self, node: Union[ast.While, ast.For, ast.AsyncFor], state: int) -> Optional[int]:
        self._peaks.append(state)
        if not isinstance(node, ast.While):
            self.expression(node.iter, state)
        body_end: Optional[int] = None
        # Two passes: the second starts from what the first left. A state moves only
        # up, from the entry state to at most _LIVE, so the reads of the second pass
        # are those of every later one.
        for _ in range(2):
            entry = max(state, body_end or _DEAD)
            if isinstance(node, ast.While):
                entry = self.condition(node.test, entry)[0]
            else:
                entry = self.store(node.target, entry)
            body_end = self.block(node.body, entry)
            self._peaks[-1] = max(self._peaks[-1], body_end or _DEAD)
        peak = self._peaks.pop()
        # The loop ends at its test or at a ``break`` anywhere in its body, so any
        # state seen in the body may remain.
        return _join(peak, self.block(node.orelse, peak))

    def try_statement(self, node: ast.stmt, state: int) -> Optional[int]:
        body: list[ast.stmt] = getattr(node, "body")
        handlers: list[ast.ExceptHandler] = getattr(node, "handlers")
        orelse: list[ast.stmt] = getattr(node, "orelse")
        finalbody: list[ast.stmt] = getattr(node, "finalbody")
        self._peaks.append(state)
        body_end = self.block(body, state)
        # An exception may leave the body at any statement.
        handler_entry = self._peaks[-1]
        ends = [self.block(orelse, body_end) if body_end is not None else None]
        for handler in handlers:
            self.expression(handler.type, handler_entry)
            entry = _DEAD if handler.name == self.name else handler_entry
            ends.append(self.block(handler.body, entry))
        end = _join(*ends)
        peak = max(self._peaks.pop(), end or _DEAD)
        if not finalbody:
            return end
        final_end = self.block(finalbody, peak)
        return None if end is None else final_end

    def store(self, target: ast.expr, state: int) -> int:
        """Bind *target*; return the state after the binding."""
        if isinstance(target, ast.Name):
            return _DEAD if target.id == self.name else state
        if isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                state = self.store(element, state)
            return state
        if isinstance(target, ast.Starred):
            return self.store(target.value, state)
        # An attribute or item target reads its object: ``value.x = 1``.
        for child in ast.iter_child_nodes(target):
            if isinstance(child, ast.expr):
                self.expression(child, state)
        return state

    # --- expressions --------------------------------------------------------------

    def condition(self, test: ast.expr, state: int) -> tuple[int, int]:
        """Note the reads of the test *test*; return the states when true and when false."""
        none_branch = _none_branch(test, self.name)
        if none_branch is None or not isinstance(test, ast.Compare):
            self.test_reads(test, state)
            return state, state
        if state != _LIVE:
            return state, state
        # Only a plain comparison narrows; ``a is None or b`` is true for other values.
        return (_NONE, _LIVE) if none_branch else (_LIVE, _NONE)

    def test_reads(self, test: ast.expr, state: int) -> None:
        """Note the reads of an expression whose value is only tested for truth."""
        if _is_truth_test(test, self.name):
            return
        if isinstance(test, ast.BoolOp):
            for value in test.values:
                self.test_reads(value, state)
            return
        self.expression(test, state)

    def expression(self, node: Optional[ast.expr], state: int) -> None:
        if node is None or state != _LIVE:
            return
        if isinstance(node, ast.Name):
            if node.id == self.name and isinstance(node.ctx, ast.Load):
                self.note(node, ParameterUse(UseKind.OTHER), state)
            return
        if _is_none_test(node, self.name):
            return
        if isinstance(node, ast.Call):
            self.call(node, state)
            return
        if isinstance(node, ast.IfExp):
            when_true, when_false = self.condition(node.test, state)
            if _none_branch(node.test, self.name) is not None:
                self.handles_none = True
            self.expression(node.body, when_true)
            self.expression(node.orelse, when_false)
            return
        if isinstance(node, ast.UnaryOp) and _is_truth_test(node, self.name):
            return
        if isinstance(node, _NESTED_SCOPES) or isinstance(node, ast.NamedExpr):
            # The analysis does not follow the value into another scope or through
            # an assignment expression; every read there counts.
            for child in ast.walk(node):
                if isinstance(child, ast.Name) and child.id == self.name:
                    self.note(child, ParameterUse(UseKind.OTHER), state)
            return
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                self.expression(child, state)
            elif isinstance(child, ast.keyword):
                self.expression(child.value, state)

    def call(self, node: ast.Call, state: int) -> None:
        self.expression(node.func, state)
        known_position = True
        for index, argument in enumerate(node.args):
            if isinstance(argument, ast.Starred):
                known_position = False
                if self._is_name(argument.value):
                    self.note(argument.value, ParameterUse(UseKind.UNPACKED, node), state)
                else:
                    self.expression(argument.value, state)
            elif self._is_name(argument):
                position = index if known_position else None
                self.note(argument, ParameterUse(UseKind.ARGUMENT, node, position=position), state)
            else:
                self.expression(argument, state)
        for keyword in node.keywords:
            if not self._is_name(keyword.value):
                self.expression(keyword.value, state)
            elif keyword.arg is None:
                self.note(keyword.value, ParameterUse(UseKind.UNPACKED, node), state)
            else:
                use = ParameterUse(UseKind.ARGUMENT, node, keyword=keyword.arg)
                self.note(keyword.value, use, state)

    def _loads(self, node: ast.AST) -> Iterator[ast.Name]:
        """Yield the reads of the name in *node* and everything inside it."""
        for child in ast.walk(node):
            if isinstance(child, ast.Name) and child.id == self.name:
                if isinstance(child.ctx, ast.Load):
                    yield child

    def _is_name(self, node: ast.AST) -> bool:
        return isinstance(node, ast.Name) and node.id == self.name

    def note(self, node: ast.AST, use: ParameterUse, state: int) -> None:
        if state == _LIVE:
            self.uses[id(node)] = use


def _is_none_test(node: ast.expr, name: str) -> bool:
    """Check whether *node* is ``name is None`` or ``name is not None`` (either side)."""
    if not (isinstance(node, ast.Compare) and len(node.ops) == 1):
        return False
    if not isinstance(node.ops[0], (ast.Is, ast.IsNot)):
        return False
    sides = (node.left, node.comparators[0])
    has_name = any(isinstance(side, ast.Name) and side.id == name for side in sides)
    has_none = any(isinstance(side, ast.Constant) and side.value is None for side in sides)
    return has_name and has_none


def _none_branch(test: ast.expr, name: str) -> Optional[bool]:
    """Return which branch of *test* a ``None`` value of *name* takes, if the test decides it.

    ``True`` for ``name is None`` and for an ``or`` with it, ``False`` for
    ``name is not None`` and for an ``and`` with it, ``None`` otherwise.
    """
    if _is_none_test(test, name):
        assert isinstance(test, ast.Compare)
        return isinstance(test.ops[0], ast.Is)
    if isinstance(test, ast.BoolOp):
        none_operator = ast.Is if isinstance(test.op, ast.Or) else ast.IsNot
        for value in test.values:
            if _is_none_test(value, name):
                assert isinstance(value, ast.Compare)
                if isinstance(value.ops[0], none_operator):
                    return isinstance(test.op, ast.Or)
    return None


def _is_truth_test(node: ast.expr, name: str) -> bool:
    """Check whether *node* is ``name`` or ``not name``, which only take the value's truth."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        node = node.operand
    return isinstance(node, ast.Name) and node.id == name
