"""Apply: write the annotations of a :class:`ModuleStub` into the module's source with libcst.

The rewritten module behaves as before at run time. Names that annotations need are
imported under ``if TYPE_CHECKING:``, names from :mod:`typing` and
``typing_extensions`` included, and an
annotation that uses such a name, or a class of the module, is written as a string
unless the module has ``from __future__ import annotations``. The only name added at
run time is a private alias of :mod:`typing` for the ``TYPE_CHECKING`` test, when the
module has no runtime import of ``typing`` to reuse. Constrained ``TypeVar`` declarations
and the ``TypedDict`` classes of dict shapes go into the same ``if TYPE_CHECKING:``
block as the imports, so they exist for type checkers only.
"""

from __future__ import annotations

import ast
import difflib
import os
import stat
import sys
import tempfile
import tokenize
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import libcst as cst

from typetrace.exceptions import TypeTraceError
from typetrace.stubs.annotations import AnnotationNamer, self_module_for_target, syntax_for_target
from typetrace.stubs.model import FunctionStub, ModuleStub, ParameterStub, PropertyAccessor
from typetrace.stubs.render import format_imports
from typetrace.stubs.scan import scan_module
from typetrace.stubs.typeddicts import slot_class_name
from typetrace.typemodel import TypeRef

_Statement = Union[cst.SimpleStatementLine, cst.BaseCompoundStatement]

__all__ = ["ApplyError", "ApplyResult", "apply_stub_to_file", "apply_stub_to_source"]


class ApplyError(TypeTraceError):
    """A stub cannot be applied to a source file; the file is left unchanged."""


@dataclass(frozen=True)
class ApplyResult:
    """The outcome of applying a stub to one file."""

    path: Path
    old_source: str
    new_source: str
    #: Whether the annotations changed the source.
    changed: bool

    def diff(self) -> str:
        """Return the change as a unified diff; empty when nothing changed."""
        lines = difflib.unified_diff(
            self.old_source.splitlines(keepends=True),
            self.new_source.splitlines(keepends=True),
            fromfile=str(self.path),
            tofile=str(self.path),
        )
        return "".join(lines)


def apply_stub_to_source(
    source: str,
    stub: ModuleStub,
    *,
    target_version: tuple[int, int] = (sys.version_info[0], sys.version_info[1]),
) -> str:
    """Return *source* with the annotations of *stub* added to its traced functions.

    Functions without a stub, comments and formatting are left as they are, and
    applying the same stub again returns the same text. *target_version* is the
    oldest Python the module runs on: below 3.10, unions are written with
    ``Optional`` and ``Union``, below 3.9 generic classes with their
    :mod:`typing` aliases such as ``List``, and below 3.11 ``Self`` comes from
    ``typing_extensions``, imported only for type checkers like every added import.

    Raises:
        ApplyError: *source* cannot be parsed, or *target_version* is older than 3.7.
    """
    try:
        pep604, pep585 = syntax_for_target(target_version)
    except ValueError as error:
        raise ApplyError(str(error)) from error
    try:
        module = cst.parse_module(source)
        scan = scan_module(ast.parse(source))
    except (cst.ParserSyntaxError, SyntaxError, ValueError) as error:
        raise ApplyError(f"Cannot apply the stub of {stub.module!r}: invalid source ({error})") from error

    namer = AnnotationNamer(
        module=stub.module,
        local_classes={cls.qualname for cls in scan.iter_classes()},
        taken=scan.names,
        bindings=scan.bindings(stub.package),
        pep604=pep604,
        pep585=pep585,
        typing_at_runtime=False,
        self_module=self_module_for_target(target_version),
        target_version=target_version,
    )
    annotator = _Annotator(stub, namer, quote=not scan.future_annotations)
    annotated = module.visit(annotator)
    if not namer.imports and not namer.type_vars and not namer.typed_dicts:
        return annotated.code
    return _add_imports(annotated, namer).code


def apply_stub_to_file(
    path: Path,
    stub: ModuleStub,
    *,
    write: bool = True,
    target_version: tuple[int, int] = (sys.version_info[0], sys.version_info[1]),
) -> ApplyResult:
    """Apply *stub* to the source file at *path*, rewriting the file if *write* is true.

    The file is replaced atomically and keeps its encoding, line endings and mode.
    *target_version* is as for :func:`apply_stub_to_source`.

    Raises:
        ApplyError: the file cannot be read, parsed or written; it is left unchanged.
    """
    try:
        with tokenize.open(path) as file:
            encoding = file.encoding
        with open(path, encoding=encoding, newline="") as file:
            old_source = file.read()
    except (OSError, SyntaxError, UnicodeDecodeError) as error:
        raise ApplyError(f"Failed to read {path}: {error}") from error
    try:
        new_source = apply_stub_to_source(old_source, stub, target_version=target_version)
    except ApplyError as error:
        raise ApplyError(f"Failed to apply annotations to {path}: {error}") from error
    changed = new_source != old_source
    if write and changed:
        _write_atomic(path, new_source, encoding)
    return ApplyResult(path, old_source, new_source, changed)


def _write_atomic(path: Path, text: str, encoding: str) -> None:
    temporary: Optional[str] = None
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with open(descriptor, "w", encoding=encoding, newline="") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except (OSError, UnicodeEncodeError) as error:
        if temporary is not None and os.path.exists(temporary):
            os.unlink(temporary)
        raise ApplyError(f"Failed to write {path}: {error}") from error


class _Annotator(cst.CSTTransformer):
    """Adds annotations to the functions that *stub* has, found by qualified name."""

    def __init__(self, stub: ModuleStub, namer: AnnotationNamer, *, quote: bool) -> None:
        super().__init__()
        self.stub = stub
        self.namer = namer
        self.quote = quote
        #: Enclosing definitions: (name, whether it is a function).
        self.scopes: list[tuple[str, bool]] = []

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        self.scopes.append((node.name.value, False))
        return True

    def leave_ClassDef(self, original_node: cst.ClassDef, updated_node: cst.ClassDef) -> cst.ClassDef:
        self.scopes.pop()
        return updated_node

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        self.scopes.append((node.name.value, True))
        # Functions inside functions have <locals> qualified names and get no stubs.
        return False

    def leave_FunctionDef(
        self, original_node: cst.FunctionDef, updated_node: cst.FunctionDef
    ) -> cst.FunctionDef:
        is_nested = any(is_function for _, is_function in self.scopes[:-1])
        qualname = ".".join(name for name, _ in self.scopes)
        self.scopes.pop()
        if is_nested:
            return updated_node
        function = self.stub.function(qualname, _accessor(updated_node))
        if function is None:
            return updated_node
        return self._annotate(updated_node, function)

    def _annotate(self, node: cst.FunctionDef, function: FunctionStub) -> cst.FunctionDef:
        by_name = {parameter.name: parameter for parameter in function.parameters}
        params = node.params
        qualname = function.qualname
        star_arg = params.star_arg
        if isinstance(star_arg, cst.Param):
            star_arg = self._param(star_arg, by_name, qualname)
        star_kwarg = params.star_kwarg
        if star_kwarg is not None:
            star_kwarg = self._param(star_kwarg, by_name, qualname)
        params = params.with_changes(
            posonly_params=[self._param(p, by_name, qualname) for p in params.posonly_params],
            params=[self._param(p, by_name, qualname) for p in params.params],
            kwonly_params=[self._param(p, by_name, qualname) for p in params.kwonly_params],
            star_arg=star_arg,
            star_kwarg=star_kwarg,
        )
        returns = node.returns
        if function.return_annotation is not None and (returns is None or self.stub.overwrite_existing):
            returns = self._annotation(function.return_annotation, slot_class_name(qualname, None))
        return node.with_changes(params=params, returns=returns)

    def _param(self, param: cst.Param, by_name: dict[str, ParameterStub], qualname: str) -> cst.Param:
        stub = by_name.get(param.name.value)
        if stub is None or stub.annotation is None:
            return param
        if param.annotation is not None and not self.stub.overwrite_existing:
            return param
        annotation = self._annotation(stub.annotation, slot_class_name(qualname, stub.name))
        changes: dict[str, object] = {"annotation": annotation}
        if param.default is not None and param.annotation is None:
            # PEP 8 spaces the = of a default only when the parameter is annotated.
            changes["equal"] = cst.AssignEqual(
                whitespace_before=cst.SimpleWhitespace(" "),
                whitespace_after=cst.SimpleWhitespace(" "),
            )
        return param.with_changes(**changes)

    def _annotation(self, ref: TypeRef, typed_dict_name: str) -> cst.Annotation:
        rendered = self.namer.render(ref, typed_dict_name=typed_dict_name)
        text = rendered.text
        if rendered.forward and self.quote:
            text = f'"{text}"'
        return cst.Annotation(cst.parse_expression(text))


def _accessor(node: cst.FunctionDef) -> Optional[PropertyAccessor]:
    for decorator in node.decorators:
        expression = decorator.decorator
        if isinstance(expression, cst.Name) and expression.value in ("property", "cached_property"):
            return PropertyAccessor.GETTER
        if isinstance(expression, cst.Attribute) and isinstance(expression.value, cst.Name):
            owner, attribute = expression.value.value, expression.attr.value
            if owner == "functools" and attribute == "cached_property":
                return PropertyAccessor.GETTER
            if owner == node.name.value and attribute == "setter":
                return PropertyAccessor.SETTER
            if owner == node.name.value and attribute == "deleter":
                return PropertyAccessor.DELETER
    return None


def _add_imports(module: cst.Module, namer: AnnotationNamer) -> cst.Module:
    body = list(module.body)
    # TypeVar declarations and TypedDict classes go after the imports they need, in the
    # same block, so they exist only for type checkers, like the imports. A constraint
    # or TypedDict value that names a class of the module is quoted even under
    # ``from __future__ import annotations``, because TypeVar arguments and the values
    # of a functional TypedDict are not annotations, and the class comes later.
    definitions = namer.typed_dict_declarations(quote_forward=True)
    declarations = namer.type_var_declarations(quote_forward=True)
    lines = [*format_imports(namer.imports), *declarations]
    block_index = _type_checking_block(body)
    new_statements: list[_Statement] = []
    if block_index is not None:
        block = body[block_index]
        assert isinstance(block, cst.If) and isinstance(block.body, cst.IndentedBlock)
        statements = [cst.parse_statement(line + "\n") for line in lines]
        for definition in definitions:
            parsed = cst.parse_statement(definition + "\n")
            statements.append(parsed.with_changes(leading_lines=[cst.EmptyLine(indent=False)]))
        inner = block.body.with_changes(body=[*block.body.body, *statements])
        body[block_index] = block.with_changes(body=inner)
    else:
        test, typing_import = _type_checking_test(namer)
        if typing_import is not None:
            new_statements.append(cst.parse_statement(typing_import + "\n"))
        # Each TypedDict definition follows a blank line, and a class definition spans
        # several lines, each indented into the block.
        definition_lines = [line for definition in definitions for line in ["", *definition.split("\n")]]
        indented = "".join(f"    {line}\n" if line else "\n" for line in [*lines, *definition_lines])
        block = cst.parse_statement(f"if {test}:\n{indented}")
        new_statements.append(block.with_changes(leading_lines=[cst.EmptyLine()]))
    position = _import_position(body)
    body[position:position] = new_statements
    following = position + len(new_statements)
    if new_statements and following < len(body):
        body[following] = _separated(body[following])
    return module.with_changes(body=body)


def _separated(statement: _Statement) -> _Statement:
    """Give *statement* the blank lines PEP 8 puts after an import block, if it has none."""
    if not isinstance(statement, (cst.SimpleStatementLine, cst.BaseCompoundStatement)):
        return statement
    if statement.leading_lines:
        return statement
    count = 2 if isinstance(statement, (cst.FunctionDef, cst.ClassDef)) else 1
    return statement.with_changes(leading_lines=[cst.EmptyLine() for _ in range(count)])


def _type_checking_test(namer: AnnotationNamer) -> tuple[str, Optional[str]]:
    """Return the condition of a new ``if TYPE_CHECKING:`` block, and the import it needs.

    An existing runtime import of ``typing`` or ``TYPE_CHECKING`` is reused. Otherwise
    ``typing`` is imported under a private name, which ``from m import *`` skips; mypy
    and pyright read ``<alias>.TYPE_CHECKING`` as ``typing.TYPE_CHECKING``.
    """
    for bound, binding in namer.bindings.items():
        if not binding.runtime:
            continue
        if not binding.is_module and binding.target == "typing.TYPE_CHECKING":
            return bound, None
        if binding.is_module and binding.target == "typing":
            return f"{bound}.TYPE_CHECKING", None
    alias = namer.free_name("_typing")
    return f"{alias}.TYPE_CHECKING", f"import typing as {alias}"


def _import_position(body: Sequence[cst.BaseStatement]) -> int:
    """Return the index after the docstring and the imports at the top of the module."""
    position = 0
    for index, statement in enumerate(body):
        if not isinstance(statement, cst.SimpleStatementLine):
            break
        is_docstring = index == 0 and _is_docstring(statement)
        is_import = all(isinstance(small, (cst.Import, cst.ImportFrom)) for small in statement.body)
        if not (is_docstring or is_import):
            break
        position = index + 1
    return position


def _is_docstring(statement: cst.SimpleStatementLine) -> bool:
    return (
        len(statement.body) == 1
        and isinstance(statement.body[0], cst.Expr)
        and isinstance(statement.body[0].value, (cst.SimpleString, cst.ConcatenatedString))
    )


def _type_checking_block(body: Sequence[cst.BaseStatement]) -> Optional[int]:
    for index, statement in enumerate(body):
        if not isinstance(statement, cst.If) or not isinstance(statement.body, cst.IndentedBlock):
            continue
        test: Union[cst.BaseExpression, None] = statement.test
        if isinstance(test, cst.Name) and test.value == "TYPE_CHECKING":
            return index
        if isinstance(test, cst.Attribute) and test.attr.value == "TYPE_CHECKING":
            return index
    return None

