"""Tests of typetrace._testonly: which module names are test code."""

from __future__ import annotations

import pytest

from typetrace._testonly import is_test_module


@pytest.mark.parametrize(
    "module",
    ["test_shapes", "pkg.tests.helpers", "tests", "pkg.test.util", "shapes_test", "conftest",
     "pkg.conftest", "freezegun.api", "mock.mock", "unittest.mock"],
)  # fmt: skip
def test_test_modules(module: str) -> None:
    assert is_test_module(module)


@pytest.mark.parametrize(
    "module",
    ["shapes", "testing", "pkg.testing.tools", "contest", "latest", "attest_util", "unittest",
     "unittest.case", "pkg.mockup", "pytest_helpers"],
)  # fmt: skip
def test_library_modules(module: str) -> None:
    assert not is_test_module(module)
