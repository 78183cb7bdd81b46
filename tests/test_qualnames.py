"""Qualified names of code objects on Python 3.9 and 3.10, which do not keep them."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import pytest

import typetrace._qualnames as qualnames
from typetrace._qualnames import qualname_of

pytestmark = pytest.mark.skipif(sys.version_info >= (3, 11), reason="3.11 keeps co_qualname")


def test_from_source_file(tmp_path: Path) -> None:
    """The name comes from the source file."""
    path = tmp_path / "with_source.py"
    source = "class Outer:\n    def method(self):\n        pass\n"
    path.write_text(source)
    namespace: dict[str, Any] = {}
    exec(compile(source, str(path), "exec"), namespace)  # noqa: S102

    assert qualname_of(namespace["Outer"].method.__code__) == "Outer.method"


def test_heap_searches_capped_per_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Code whose file has no source is named from its function by a search of the
    heap, for the first 64 code objects of the file, and by co_name after that."""
    searched: list[str] = []
    search = qualnames._qualname_from_function

    def counting(code: Any) -> Optional[str]:
        searched.append(code.co_name)
        return search(code)

    monkeypatch.setattr(qualnames, "_qualname_from_function", counting)
    filename = str(tmp_path / "no_source.py")
    names = []
    for _ in range(100):
        namespace: dict[str, Any] = {}
        source = "class Made:\n    def method(self):\n        pass\n"
        exec(compile(source, filename, "exec"), namespace)  # noqa: S102
        names.append(qualname_of(namespace["Made"].method.__code__))

    assert len(searched) == 64
    assert names[:64] == ["Made.method"] * 64
    assert names[64:] == ["method"] * 36
