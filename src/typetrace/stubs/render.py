"""Stub rendering: the text of a ``.pyi`` file for a :class:`ModuleStub`."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from typing import Iterable, Iterator, Optional

from typetrace.stubs.annotations import (
    AnnotationNamer,
    NewImport,
    self_module_for_target,
    syntax_for_target,
)
from typetrace.stubs.model import ClassStub, FunctionStub, ModuleStub, ParameterKind, ParameterStub
from typetrace.stubs.typeddicts import slot_class_name
from typetrace.typemodel import ANY, TypeRef

__all__ = ["format_imports", "render_module_stub"]

_INDENT = "    "
#: The comment above the module ``__getattr__`` that every stub ends with.
INCOMPLETE_MARKER_COMMENT = "# Functions that were not traced are left out; their names resolve to Any."


def render_module_stub(
    stub: ModuleStub,
    *,
    target_version: Optional[tuple[int, int]] = None,
    show_counts: bool = False,
) -> str:
    """Render *stub* as ``.pyi`` text, with the imports its annotations need.

    With *show_counts*, a comment such as ``# 1,234 calls traced`` precedes each
    function that has a :attr:`~FunctionStub.call_count`.

    With a *target_version*, the annotations use only syntax and :mod:`typing` names
    that this Python has: ``Optional`` and ``Union`` below 3.10, and ``List`` and the
    other :mod:`typing` aliases of generic classes below 3.9. Without one, they are
    written ``X | Y`` and ``list[X]``, which mypy and pyright accept in ``.pyi`` files
    whatever Python version they check for. ``Self`` comes from :mod:`typing` for a
    target of 3.11 or later, and from ``typing_extensions`` otherwise.

    Dict shapes become ``TypedDict`` classes, defined after the imports and named after
    the function and parameter that first use them (see
    :mod:`typetrace.stubs.typeddicts`). ``NotRequired`` comes from :mod:`typing` for a
    target version of 3.11 or newer, and from ``typing_extensions`` otherwise.

    Raises:
        ValueError: *target_version* is older than 3.7.
    """
    pep604, pep585 = (True, True) if target_version is None else syntax_for_target(target_version)
    namer = AnnotationNamer(
        module=stub.module,
        local_classes={cls.qualname for cls in _walk_classes(stub.classes)},
        taken=_stub_names(stub),
        type_var_taken=stub.source_names,
        bindings={new.bound_name: new.binding() for new in stub.source_imports},
        pep604=pep604,
        pep585=pep585,
        self_module=self_module_for_target(target_version),
        target_version=target_version,
    )
    body: list[str] = []
    own_getattr = None
    for function in stub.functions:
        if function.qualname == "__getattr__":
            own_getattr = function
            continue
        body.append("")
        body.extend(_render_function(function, namer, "", show_counts))
    for cls in stub.classes:
        body.append("")
        body.extend(_render_class(cls, namer, "", show_counts))
    # The stub contains only traced functions. The module __getattr__ returning Any
    # marks it incomplete (PEP 484), so mypy reads the module's other names as Any
    # instead of reporting them missing where another stub or the user's code uses
    # them. A module that defines a traced __getattr__ keeps its parameter types,
    # but the return stays Any: its traced return type would be wrong for every
    # function that the stub leaves out.
    body.append("")
    body.append(INCOMPLETE_MARKER_COMMENT)
    if own_getattr is not None:
        kept = replace(own_getattr, return_annotation=ANY, existing_return=None)
        body.extend(_render_function(kept, namer, "", show_counts))
    else:
        body.append(f"def __getattr__(name: str) -> {namer.render(ANY).text}: ...")
    # Declarations may add imports, so they are rendered before the header.
    definitions: list[str] = []
    for statement in namer.typed_dict_declarations(quote_forward=False):
        definitions += ["", *statement.split("\n")]
    body[0:0] = definitions
    declarations = namer.type_var_declarations(quote_forward=False)
    if declarations:
        body[0:0] = ["", *declarations]
    header = format_imports([*stub.source_imports, *namer.imports])
    lines = [*header, *body] if header else body[1:]
    return "\n".join(lines) + "\n" if lines else ""


def format_imports(imports: Iterable[NewImport]) -> list[str]:
    """Format *imports* as import statements, one ``from`` statement per module."""
    plain = sorted({new.statement() for new in imports if new.name is None})
    names: dict[str, set[str]] = defaultdict(set)
    for new in imports:
        if new.name is not None:
            names[new.module].add(new.name if new.alias is None else f"{new.name} as {new.alias}")
    from_lines = [f"from {module} import {', '.join(sorted(names[module]))}" for module in sorted(names)]
    return [*plain, *from_lines]


def _stub_names(stub: ModuleStub) -> set[str]:
    # The names the .pyi binds at module level or in a class body.
    names = {function.name for function in stub.iter_functions()} | {"__getattr__"}
    for cls in _walk_classes(stub.classes):
        names.add(cls.name)
    names.update(new.bound_name for new in stub.source_imports)
    return names


def _walk_classes(classes: Iterable[ClassStub]) -> Iterator[ClassStub]:
    for cls in classes:
        yield cls
        yield from _walk_classes(cls.classes)


def _render_class(
    cls: ClassStub, namer: AnnotationNamer, indent: str, show_counts: bool
) -> list[str]:
    bases = f"({', '.join(cls.bases)})" if cls.bases else ""
    if not cls.functions and not cls.classes and not cls.typed_dict_items:
        return [f"{indent}class {cls.name}{bases}: ..."]
    lines = [f"{indent}class {cls.name}{bases}:"]
    for key, annotation in cls.typed_dict_items:
        text = annotation if annotation is not None else namer.render(ANY).text
        lines.append(f"{indent}{_INDENT}{key}: {text}")
    for function in cls.functions:
        lines.extend(_render_function(function, namer, indent + _INDENT, show_counts))
    for nested in cls.classes:
        lines.extend(_render_class(nested, namer, indent + _INDENT, show_counts))
    return lines


def _render_function(
    function: FunctionStub, namer: AnnotationNamer, indent: str, show_counts: bool
) -> list[str]:
    lines = []
    if show_counts and function.call_count:
        noun = "call" if function.call_count == 1 else "calls"
        lines.append(f"{indent}# {function.call_count:,} {noun} traced")
    lines.extend(f"{indent}@{decorator}" for decorator in function.decorators)
    keyword = "async def" if function.is_async else "def"
    parameters = ", ".join(render_parameters(function.parameters, namer, function.qualname))
    typed_dict_name = slot_class_name(function.qualname, None)
    returns = _annotation_text(function.return_annotation, function.existing_return, namer, typed_dict_name)
    arrow = f" -> {returns}" if returns is not None else ""
    lines.append(f"{indent}{keyword} {function.name}({parameters}){arrow}: ...")
    return lines


def render_parameters(
    parameters: Iterable[ParameterStub], namer: AnnotationNamer, qualname: Optional[str] = None
) -> list[str]:
    """Render the parameter list with ``/`` and ``*`` markers and ``...`` defaults.

    *qualname*, the function's, names the TypedDict classes of the parameters; without
    it, dict shapes are written ``dict[str, V]``.
    """
    parameters = list(parameters)
    texts: list[str] = []
    kinds = [parameter.kind for parameter in parameters]
    for index, parameter in enumerate(parameters):
        if parameter.kind is ParameterKind.KEYWORD_ONLY and ParameterKind.VAR_POSITIONAL not in kinds:
            if index == 0 or parameters[index - 1].kind is not ParameterKind.KEYWORD_ONLY:
                texts.append("*")
        texts.append(_render_parameter(parameter, namer, qualname))
        is_last_positional_only = parameter.kind is ParameterKind.POSITIONAL_ONLY and (
            index + 1 == len(parameters) or parameters[index + 1].kind is not ParameterKind.POSITIONAL_ONLY
        )
        if is_last_positional_only:
            texts.append("/")
    return texts


def _render_parameter(parameter: ParameterStub, namer: AnnotationNamer, qualname: Optional[str]) -> str:
    stars = {ParameterKind.VAR_POSITIONAL: "*", ParameterKind.VAR_KEYWORD: "**"}.get(parameter.kind, "")
    typed_dict_name = None if qualname is None else slot_class_name(qualname, parameter.name)
    annotation = _annotation_text(parameter.annotation, parameter.existing, namer, typed_dict_name)
    text = f"{stars}{parameter.name}"
    if annotation is not None:
        text += f": {annotation}"
    if parameter.has_default:
        text += " = ..." if annotation is not None else "=..."
    return text


def _annotation_text(
    traced: Optional[TypeRef], existing: Optional[str], namer: AnnotationNamer, typed_dict_name: Optional[str]
) -> Optional[str]:
    if traced is not None:
        return namer.render(traced, typed_dict_name=typed_dict_name).text
    return existing
