"""Test-only modules: where test code and test doubles live, recognized by module name.

A class of such a module shows how a test exercised a function, not the types the
function takes in real use. Inference names it by its nearest base class from
elsewhere, and combining drops it, unless the traced function is itself test code.
"""

from __future__ import annotations

__all__ = ["TEST_HELPER_PACKAGES", "is_test_module"]

#: Top-level packages of test helper libraries whose classes stand in for real ones:
#: freezegun's ``FakeDatetime`` for :class:`datetime.datetime`, the mocks of
#: :mod:`unittest.mock` and of its ``mock`` backport, and pytest's classes, such as
#: the capture streams ``_pytest.capture.CaptureIO`` and ``EncodedFile`` that stand
#: in for :class:`io.TextIOWrapper` (``py`` is pytest's former path library).
TEST_HELPER_PACKAGES = frozenset({"freezegun", "mock", "_pytest", "pytest", "py"})

_TEST_PACKAGE_NAMES = frozenset({"test", "tests"})


def is_test_module(module: str) -> bool:
    """Return whether *module* is test code or a test helper library.

    That is a module named ``test_*``, ``*_test`` or ``conftest``, a module in a
    package named ``test`` or ``tests`` (or such a package itself), :mod:`unittest.mock`,
    or a module of :data:`TEST_HELPER_PACKAGES`.
    """
    parts = module.split(".")
    if parts[0] in TEST_HELPER_PACKAGES or module == "unittest.mock":
        return True
    last = parts[-1]
    if last.startswith("test_") or last.endswith("_test") or last == "conftest":
        return True
    return any(part in _TEST_PACKAGE_NAMES for part in parts)
