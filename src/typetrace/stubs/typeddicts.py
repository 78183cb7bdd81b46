"""TypedDict definitions for dict shapes: their class names and their source text.

A dict shape (see :mod:`typetrace.typemodel`) is written as a ``TypedDict`` class named
after the slot it is first used in: ``<Function><Parameter>`` or ``<Function>Return``
in CamelCase, with the names of enclosing classes in front for a method. A shape nested
under a key of another shape adds the key: ``<Outer><Key>``.

A definition uses the class syntax when every key can be written as a class attribute.
Otherwise it uses the functional syntax, ``Name = TypedDict("Name", {...})``. That is
the case for keys that are not identifiers, are keywords, start with two underscores
(which a class body would name-mangle), or equal a name that the value types use.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass
from typing import Collection, Optional

__all__ = ["TypedDictDefinition", "TypedDictItem", "key_class_name", "slot_class_name"]

#: CamelCase name used when a function or key name has no letters or digits to use.
_FALLBACK_NAME = "Dict"


def slot_class_name(qualname: str, parameter: Optional[str]) -> str:
    """Return the class name for a shape used by *parameter* of the function *qualname*.

    *parameter* ``None`` means the return annotation: ``Outer.load_user`` and ``None``
    give ``OuterLoadUserReturn``.
    """
    parts = [_camel_case(part) for part in qualname.split(".")]
    parts.append("Return" if parameter is None else _camel_case(parameter))
    name = "".join(parts)
    return name if name[:1].isalpha() else _FALLBACK_NAME + name


def key_class_name(parent: str, key: str) -> str:
    """Return the class name for a shape nested under *key* of the class *parent*."""
    return parent + _camel_case(key)


def _camel_case(name: str) -> str:
    # "load_user" -> "LoadUser", "__init__" -> "Init", "userId" -> "UserId". Characters
    # other than letters and digits separate words, so "content-type" -> "ContentType".
    words = [word for word in re.split(r"[\W_]+", name) if word]
    text = "".join(word[0].upper() + word[1:] for word in words)
    # Some characters that re counts as word characters, such as "²", cannot be part
    # of an identifier.
    text = "".join(character for character in text if f"A{character}".isidentifier())
    return text or _FALLBACK_NAME


@dataclass(frozen=True)
class TypedDictItem:
    """One item of a TypedDict definition, with its value type as annotation text."""

    key: str
    #: The value type as annotation text.
    value: str
    #: Whether the key is required; a ``NotRequired`` item otherwise.
    required: bool
    #: Whether *value* names a class of the module, which a definition placed before
    #: that class quotes.
    names_local_class: bool = False


@dataclass(frozen=True)
class TypedDictDefinition:
    """A TypedDict class to define next to the annotations that use it."""

    name: str
    items: tuple[TypedDictItem, ...]

    def uses_class_syntax(self, names: Collection[str] = ()) -> bool:
        """Return whether every key can be written as an attribute in a class body.

        A key equal to one of *names*, the names that the value types use, would hide
        that name from the annotations that follow it in the class body.
        """
        return all(_is_attribute_name(item.key) and item.key not in names for item in self.items)

    @property
    def is_total(self) -> bool:
        """Whether any key is required, so that the class is not written ``total=False``."""
        return any(item.required for item in self.items)

    @property
    def needs_not_required(self) -> bool:
        """Whether some keys are required and some are not, so ``NotRequired`` marks the latter."""
        return self.is_total and not all(item.required for item in self.items)

    def lines(self, typed_dict: str, not_required: Optional[str], *, quote_local: bool = False) -> list[str]:
        """Return the source lines of the definition.

        *typed_dict* is the expression for ``TypedDict`` and *not_required* the one for
        ``NotRequired``, or ``None`` when :attr:`needs_not_required` is false. With
        *quote_local*, value types that name a class of the module are quoted.

        Raises:
            ValueError: the definition needs ``NotRequired`` and *not_required* is ``None``.
        """
        if self.needs_not_required and not_required is None:
            raise ValueError(f"TypedDict {self.name} has optional keys and needs NotRequired")
        values = []
        for item in self.items:
            value = f'"{item.value}"' if quote_local and item.names_local_class else item.value
            if self.needs_not_required and not item.required:
                value = f"{not_required}[{value}]"
            values.append(value)
        total = "" if self.is_total else ", total=False"
        names = set(re.findall(r"\w+", " ".join([typed_dict, *values])))
        if self.uses_class_syntax(names):
            body = [f"    {item.key}: {value}" for item, value in zip(self.items, values)]
            return [f"class {self.name}({typed_dict}{total}):", *body]
        fields = ", ".join(f"{_string_literal(item.key)}: {value}" for item, value in zip(self.items, values))
        return [f'{self.name} = {typed_dict}("{self.name}", {{{fields}}}{total})']


def _is_attribute_name(key: str) -> bool:
    return key.isidentifier() and not keyword.iskeyword(key) and not key.startswith("__")


def _string_literal(text: str) -> str:
    """Return a Python string literal for *text*, in double quotes where that needs no escape."""
    literal = repr(text)
    if literal.startswith("'") and '"' not in text:
        # repr() used single quotes and escaped no quote inside, so double quotes fit.
        return f'"{literal[1:-1]}"'
    return literal
