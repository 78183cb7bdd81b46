"""The libraries the accuracy benchmark runs on, and the tools it compares."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Library:
    """A maintainer-annotated library whose PyPI sdist has its test suite."""

    #: Name on PyPI.
    name: str
    #: Version of the sdist.
    version: str
    #: Import package, in ``src/<package>`` of the sdist.
    package: str
    #: Paths given to pytest, relative to the sdist's root.
    test_paths: tuple[str, ...]
    #: Packages the tests need besides pytest, pinned.
    test_requirements: tuple[str, ...] = ()
    #: Packages the library needs at run time, pinned.
    requirements: tuple[str, ...] = ()

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"


LIBRARIES = {
    library.name: library
    for library in (
        Library("click", "8.5.1", "click", ("tests",)),
        # trio 0.27.0 is the version jinja2 3.1.6 pins in requirements/tests.txt.
        Library("jinja2", "3.1.6", "jinja2", ("tests",), ("trio==0.27.0",), ("MarkupSafe==3.0.3",)),
        Library("itsdangerous", "2.2.0", "itsdangerous", ("tests",), ("freezegun==1.5.5",)),
        # humanize runs the doctests of its modules (--doctest-modules in its pytest
        # configuration), so src is a test path too.
        Library("humanize", "4.17.0", "humanize", ("src", "tests"), ("freezegun==1.5.5",)),
    )
}

#: Packages of the benchmark's virtual environment besides the libraries' own.
#: humanize 4.17.0 requires pytest 9 or newer (``minversion`` in its configuration).
TOOL_REQUIREMENTS = ("MonkeyType==23.3.0", "RightTyper==0.1.0", "pytest==9.2.0", "mypy==2.4.1", "libcst==1.9.0")

#: Tools in the order of the result tables: typetrace, typetrace with --verify,
#: MonkeyType and RightTyper.
TOOLS = ("typetrace", "typetrace-verify", "monkeytype", "righttyper")
TOOL_TITLES = {
    "typetrace": "typetrace",
    "typetrace-verify": "typetrace `--verify`",
    "monkeytype": "MonkeyType 23.3.0",
    "righttyper": "RightTyper 0.1.0",
}
