"""Tests for finding module sources without importing them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from typetrace._source import (
    ModuleSourceNotFoundError,
    find_module_source,
    is_source_path,
    module_name_for_path,
)


def write(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


class TestFindModuleSource:
    def test_module_file(self, tmp_path: Path) -> None:
        expected = write(tmp_path / "pkg" / "mod.py")
        write(tmp_path / "pkg" / "__init__.py")
        assert find_module_source("pkg.mod", [str(tmp_path)]) == expected

    def test_package_init(self, tmp_path: Path) -> None:
        expected = write(tmp_path / "pkg" / "__init__.py")
        assert find_module_source("pkg", [str(tmp_path)]) == expected

    def test_namespace_package(self, tmp_path: Path) -> None:
        expected = write(tmp_path / "ns" / "sub" / "mod.py")
        assert find_module_source("ns.sub.mod", [str(tmp_path)]) == expected

    def test_first_entry_wins(self, tmp_path: Path) -> None:
        first = write(tmp_path / "a" / "mod.py")
        write(tmp_path / "b" / "mod.py")
        assert find_module_source("mod", [str(tmp_path / "a"), str(tmp_path / "b")]) == first

    def test_does_not_import(self, tmp_path: Path) -> None:
        write(tmp_path / "boom.py", "raise SystemExit('imported')\n")
        find_module_source("boom", [str(tmp_path)])
        assert "boom" not in sys.modules

    def test_default_path_uses_cwd(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        expected = write(tmp_path / "localmod.py")
        monkeypatch.chdir(tmp_path)
        assert find_module_source("localmod").resolve() == expected.resolve()

    def test_missing_module_message(self, tmp_path: Path) -> None:
        with pytest.raises(ModuleSourceNotFoundError) as info:
            find_module_source("no.such.mod", [str(tmp_path)])
        message = str(info.value)
        assert "'no.such.mod'" in message
        assert str(tmp_path) in message
        assert "PYTHONPATH" in message
        assert "file path" in message

    def test_invalid_module_name(self, tmp_path: Path) -> None:
        with pytest.raises(ModuleSourceNotFoundError, match="Invalid module name"):
            find_module_source("a..b", [str(tmp_path)])


class TestModuleNameForPath:
    def test_package_module(self, tmp_path: Path) -> None:
        write(tmp_path / "pkg" / "__init__.py")
        write(tmp_path / "pkg" / "sub" / "__init__.py")
        path = write(tmp_path / "pkg" / "sub" / "mod.py")
        assert module_name_for_path(path, [str(tmp_path)]) == "pkg.sub.mod"

    def test_package_init(self, tmp_path: Path) -> None:
        path = write(tmp_path / "pkg" / "__init__.py")
        assert module_name_for_path(path, [str(tmp_path)]) == "pkg"

    def test_nearest_entry(self, tmp_path: Path) -> None:
        write(tmp_path / "src" / "pkg" / "__init__.py")
        path = write(tmp_path / "src" / "pkg" / "mod.py")
        search = [str(tmp_path), str(tmp_path / "src")]
        assert module_name_for_path(path, search) == "pkg.mod"

    def test_script_outside_path(self, tmp_path: Path) -> None:
        path = write(tmp_path / "scripts" / "run_me.py")
        assert module_name_for_path(path, [str(tmp_path / "elsewhere")]) == "run_me"

    def test_round_trip(self, tmp_path: Path) -> None:
        write(tmp_path / "pkg" / "__init__.py")
        path = write(tmp_path / "pkg" / "mod.py")
        name = module_name_for_path(path, [str(tmp_path)])
        assert find_module_source(name, [str(tmp_path)]) == path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("pkg.mod", False, id="dotted"),
        pytest.param("mod", False, id="plain"),
        pytest.param("script.py", True, id="py-suffix"),
        pytest.param("dir/mod", True, id="slash"),
        pytest.param("./mod", True, id="relative"),
        pytest.param("my-script", True, id="not-identifier"),
    ],
)
def test_is_source_path(text: str, expected: bool) -> None:
    assert is_source_path(text) is expected
