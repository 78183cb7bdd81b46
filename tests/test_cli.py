"""The command line, run as a real subprocess on real files and a real SQLite store."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
from support import run_typetrace

from typetrace import cli

TESTS_DIR = Path(__file__).parent


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


typetrace = run_typetrace

#: Modules that typetrace run does not import before the program starts, because
#: only other commands use them or the run path does without them. NOTE: inspect is
#: not among them, because dataclasses imports it and the trace types are dataclasses.
NOT_IMPORTED_BY_RUN = {
    "ipaddress",
    "libcst",
    "pathlib",
    "tempfile",
    "typetrace._store_commands",
    "typetrace.apply",
    "typetrace.stubs",
    "typetrace.transfer",
    "typetrace.verify",
    "urllib.parse",
}

SCRIPT = """
    import sys

    from pkg.util import scale


    class Point:
        def __init__(self, x, y):
            self.x = x
            self.y = y

        def moved(self, dx):
            return Point(self.x + dx, self.y)


    def greet(name, excited=False):
        return name + ("!" if excited else "")


    def main():
        print(greet("world", excited=True))
        print(scale([1, 2], 3))
        Point(1, 2).moved(0.5)
        return int(sys.argv[1]) if len(sys.argv) > 1 else 0


    if __name__ == "__main__":
        sys.exit(main())
"""

UTIL = """
    def scale(values, factor):
        return [value * factor for value in values]


    def unused(value):
        return value
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write(tmp_path / "app.py", SCRIPT)
    write(tmp_path / "pkg" / "__init__.py", "")
    write(tmp_path / "pkg" / "util.py", UTIL)
    return tmp_path


@pytest.fixture
def traced(project: Path) -> Path:
    result = typetrace(project, "run", "--all-calls", "app.py")
    assert result.returncode == 0, result.stderr
    return project


class TestRun:
    def test_program_output_unchanged(self, project: Path) -> None:
        """The traced program prints what it prints untraced."""
        result = typetrace(project, "run", "app.py")
        assert result.stdout == "world!\n[3, 6]\n"

    def test_exit_code_propagated(self, project: Path) -> None:
        """The exit code of the program is the exit code of typetrace run."""
        result = typetrace(project, "run", "app.py", "7")
        assert result.returncode == 7

    def test_program_arguments_passed(self, project: Path) -> None:
        """Arguments after the script, even option-like ones, go to the program."""
        write(project / "echo.py", "import sys\nprint(sys.argv[1:])\n")
        result = typetrace(project, "run", "echo.py", "-v", "--db", "x")
        assert result.returncode == 0, result.stderr
        assert result.stdout == "['-v', '--db', 'x']\n"

    def test_store_file_named_run(self, project: Path) -> None:
        """A global option's value that reads ``run`` is not taken for the command."""
        write(project / "echo.py", "import sys\nprint(sys.argv[1:])\n")
        result = typetrace(project, "--db", "run", "run", "echo.py", "-v", "run")
        assert result.returncode == 0, result.stderr
        assert result.stdout == "['-v', 'run']\n"
        assert (project / "run").is_file()

    def test_uncaught_exception(self, project: Path) -> None:
        """A program that raises exits with 1 and prints its traceback, as python does."""
        write(project / "boom.py", "def fail():\n    raise ValueError('boom')\n\nfail()\n")
        result = typetrace(project, "run", "boom.py")
        assert result.returncode == 1
        assert "ValueError: boom" in result.stderr

    def test_run_module(self, project: Path) -> None:
        """``run -m`` runs a module as ``python -m`` does and records its calls."""
        write(project / "pkg" / "__main__.py", "from pkg.util import scale\nprint(scale([2], 2))\n")
        result = typetrace(project, "run", "-m", "pkg")
        assert result.returncode == 0, result.stderr
        assert result.stdout == "[4]\n"
        assert "pkg.util" in typetrace(project, "list-modules").stdout.split()

    @pytest.mark.parametrize(
        "run_program",
        [
            pytest.param(
                """
                def run_program(path):
                    runpy.run_path(path, run_name="__main__")
                """,
                id="run_path",
            ),
            pytest.param(
                """
                def run_program(path):
                    # As pdb does: the program runs in the globals dict of the
                    # runner's own __main__, cleared and refilled.
                    import __main__

                    namespace = __main__.__dict__
                    with open(path) as file:
                        source = file.read()
                    builtins = __builtins__
                    namespace.clear()
                    namespace.update(__name__="__main__", __file__=path, __builtins__=builtins)
                    exec(compile(source, path, "exec"), namespace)
                """,
                id="reused_globals",
            ),
        ],
    )
    @pytest.mark.parametrize(
        "launcher",
        [pytest.param(["-m", "runner"], id="module"), pytest.param(["runner.py"], id="script")],
    )
    def test_runner_that_runs_script(self, project: Path, run_program: str, launcher: list[str]) -> None:
        """A runner, run with ``-m`` or as a script, that runs another script as a new
        ``__main__``, as ``-m pdb`` and ``-m coverage run`` do, has each recorded under
        its own name."""
        runner = """
            import runpy
            import sys

            class Options:
                def __init__(self, path):
                    self.path = path

            def parse(argv):
                return Options(argv[1])

            def main():
                options = parse(sys.argv)
                run_program(options.path)
        """
        (project / "runner.py").write_text(
            textwrap.dedent(runner) + textwrap.dedent(run_program) + "\nmain()\n", encoding="utf-8"
        )
        write(
            project / "prog.py",
            """
            class Point:
                def __init__(self, x):
                    self.x = x

            def make(x):
                return Point(x)

            def use(point, callback):
                return callback(point.x)

            def double(x):
                return x * 2

            use(make(1), double)
            """,
        )
        result = typetrace(project, "run", "--all-calls", *launcher, "prog.py")
        assert result.returncode == 0, result.stderr
        modules = typetrace(project, "list-modules").stdout.split()
        assert "prog" in modules
        assert "runner" in modules
        exported = [json.loads(line) for line in typetrace(project, "export").stdout.splitlines()[1:]]
        by_name = {(entry["module"], entry["qualname"]): entry for entry in exported}
        assert by_name["runner", "parse"]["return_type"] == {"module": "runner", "qualname": "Options"}
        assert by_name["prog", "make"]["return_type"] == {"module": "prog", "qualname": "Point"}
        callback = by_name["prog", "use"]["arg_types"]["callback"]
        assert callback["function"]["module"] == "prog"
        assert ("runner", "make") not in by_name
        assert "def make(x: int) -> Point: ..." in typetrace(project, "stub", "prog.py").stdout

    def test_script_in_package_named_by_package(self, project: Path) -> None:
        """A script inside a package folder, run from the folder that contains the
        package, is recorded under its dotted name, as ``typetrace stub`` names it,
        although its own folder comes first on the import path while it runs."""
        write(project / "pkg" / "tool.py", "class Report:\n    pass\n\ndef build():\n    return Report()\n\nbuild()\n")
        result = typetrace(project, "run", "pkg/tool.py")
        assert result.returncode == 0, result.stderr
        exported = [json.loads(line) for line in typetrace(project, "export").stdout.splitlines()[1:]]
        by_name = {(entry["module"], entry["qualname"]): entry for entry in exported}
        assert list(by_name) == [("pkg.tool", "build")]
        assert by_name["pkg.tool", "build"]["return_type"] == {"module": "pkg.tool", "qualname": "Report"}
        assert "def build() -> Report: ..." in typetrace(project, "stub", "pkg/tool.py").stdout

    def test_zip_archive_named_by_file(self, project: Path) -> None:
        """A zip archive run as a script, whose ``__main__.py`` runpy runs, is recorded
        under the archive's file stem."""
        with zipfile.ZipFile(project / "bundle.zip", "w") as archive:
            archive.writestr("__main__.py", "def double(x):\n    return x * 2\n\nprint(double(2))\n")
        result = typetrace(project, "run", "bundle.zip")
        assert result.returncode == 0, result.stderr
        assert result.stdout == "4\n"
        assert typetrace(project, "list-modules").stdout.split() == ["bundle"]

    def test_missing_script(self, project: Path) -> None:
        """A script that does not exist is an error that names it, with python's exit code 2."""
        result = typetrace(project, "run", "nope.py")
        assert result.returncode == 2
        assert "'nope.py' not found" in result.stderr

    def test_traceback_as_python_prints_it(self, project: Path) -> None:
        """The traceback of an uncaught error matches python's, with no typetrace frames."""
        write(project / "boom.py", "def fail():\n    raise ValueError('boom')\n\nfail()\n")
        traced = typetrace(project, "run", "boom.py")
        plain = subprocess.run([sys.executable, "boom.py"], cwd=project, capture_output=True, text=True)
        assert traced.stderr == plain.stderr
        assert traced.returncode == plain.returncode

    @pytest.mark.parametrize(
        "program",
        [
            pytest.param(
                "import logging, sys\n"
                "logging.basicConfig(\n"
                "    stream=sys.stdout, level=logging.INFO, format='APP %(message)s'\n"
                ")\n"
                "logging.info('configured')\n",
                id="logging-basic-config",
            ),
            pytest.param(
                "import logging\nlogging.getLogger('app').warning('plain')\n",
                id="logging-last-resort",
            ),
            pytest.param(
                "import sys\n"
                "def hook(kind, value, tb):\n"
                "    print('hook:', kind.__name__, value)\n"
                "sys.excepthook = hook\n"
                "def fail():\n"
                "    raise ValueError('boom')\n"
                "fail()\n",
                id="excepthook",
            ),
            pytest.param(
                "import sys\n"
                "def hook(kind, value, tb):\n"
                "    raise KeyError('in hook')\n"
                "sys.excepthook = hook\n"
                "raise ValueError('boom')\n",
                id="raising-excepthook",
            ),
            pytest.param(
                "import atexit, sys\n"
                "print(sorted(globals()))\n"
                "print(type(__loader__).__name__, __spec__, __package__, sys.argv)\n"
                "print(sys.modules['__main__'] is sys.modules[__name__])\n"
                "class Late:\n"
                "    def __del__(self):\n"
                "        print('collected at shutdown')\n"
                "late = Late()\n"
                "atexit.register(print, 'atexit handler')\n",
                id="main-module-globals",
            ),
            pytest.param(
                "class Failure(Exception):\n    pass\n\nraise Failure('own')\n",
                id="main-exception-class",
            ),
            pytest.param(
                "import sys\ndef show(x):\n    return x\nshow(1)\nsys.stdout.close()\n",
                id="closed-stdout",
            ),
            pytest.param("print(__builtins__.len([1, 2]))\n", id="builtins-module"),
            pytest.param(
                "import sys\n"
                "def hook(kind, value, tb):\n"
                "    print('hook', kind.__name__)\n"
                "    raise SystemExit(7)\n"
                "sys.excepthook = hook\n"
                "raise ValueError('boom')\n",
                id="excepthook-exits",
            ),
            pytest.param(
                "import sys\n"
                "def hook(kind, value, tb):\n"
                "    print('handling:', sys.exc_info()[0])\n"
                "    try:\n"
                "        raise KeyError('inside')\n"
                "    except KeyError as error:\n"
                "        print('context:', repr(error.__context__))\n"
                "sys.excepthook = hook\n"
                "raise ValueError('boom')\n",
                id="excepthook-outside-except",
            ),
            pytest.param("import sys\ndel sys.excepthook\nraise ValueError('boom')\n", id="excepthook-missing"),
            pytest.param(
                "import sys\n"
                "class Writer:\n"
                "    def write(self, text):\n"
                "        sys.__stdout__.write('W:' + text)\n"
                "    def flush(self):\n"
                "        sys.__stdout__.flush()\n"
                "sys.stdout = Writer()\n"
                "print('written')\n",
                id="stdout-without-closed",
            ),
            pytest.param(
                "import sys\n"
                "class Writer:\n"
                "    closed = False\n"
                "    def write(self, text):\n"
                "        return len(text)\n"
                "    def flush(self):\n"
                "        raise OSError('flush failed')\n"
                "sys.stdout = Writer()\n",
                id="stdout-flush-fails",
            ),
            pytest.param(
                "import sys\n"
                "Odd = type('Odd', (), {'__module__': 123})\n"
                "def take(x):\n"
                "    return x\n"
                "print('start', flush=True)\n"
                "sys.stderr.close()\n"
                "take(Odd())\n"
                "print('end')\n",
                id="closed-stderr-with-warning",
            ),
        ],
    )
    def test_same_output_as_python(self, project: Path, program: str) -> None:
        """The program's logging set-up, exception hook, closed streams and
        ``__builtins__`` behave as under python: the same output and exit code."""
        write(project / "prog.py", program)
        traced = typetrace(project, "run", "prog.py")
        plain = subprocess.run(
            [sys.executable, "prog.py"], cwd=project, capture_output=True, text=True
        )
        assert traced.stdout == plain.stdout
        # Objects' addresses differ between runs.
        assert re.sub("0x[0-9a-f]+", "0x", traced.stderr) == re.sub("0x[0-9a-f]+", "0x", plain.stderr)
        assert traced.returncode == plain.returncode

    def test_config_method_raising(self, project: Path) -> None:
        """A config whose method raises ends the command with a message that names the
        method and the exception, and the program does not run."""
        write(
            project / "brokencfg.py",
            "from typetrace.config import DefaultConfig\n\n"
            "class Broken(DefaultConfig):\n"
            "    def sampling(self):\n"
            "        raise ValueError('broken on purpose')\n\n"
            "CONFIG = Broken()\n",
        )
        result = typetrace(project, "--config", "brokencfg:CONFIG", "run", "app.py")
        assert result.returncode == 1
        assert result.stdout == ""
        assert "Broken.sampling() raised ValueError: broken on purpose" in result.stderr
        assert "Traceback" not in result.stderr

    def test_run_folder_with_main(self, project: Path) -> None:
        """A folder with a __main__.py runs as under python, with the folder first on
        the import path."""
        write(project / "app" / "__main__.py", "import sys\nprint(sys.path[0])\n")
        traced = typetrace(project, "run", "app")
        assert traced.returncode == 0, traced.stderr
        assert traced.stdout == f"{project / 'app'}\n"

    def test_relative_path_not_normalized(self, project: Path) -> None:
        """__file__ of a script named with "..", joined to the working directory as
        python joins it."""
        write(project / "where.py", "print(__file__)\n")
        (project / "sub").mkdir()
        traced = typetrace(project / "sub", "run", "../where.py")
        plain = subprocess.run(
            [sys.executable, "../where.py"], cwd=project / "sub", capture_output=True, text=True
        )
        assert traced.stdout == plain.stdout == f"{project / 'sub'}/../where.py\n"

    def test_run_module_builtins(self, project: Path) -> None:
        """``run -m`` gives the module the builtins module as ``__builtins__``, as
        ``python -m`` does."""
        write(project / "shows.py", "print(__builtins__.__name__)\n")
        traced = typetrace(project, "run", "-m", "shows")
        assert (traced.stdout, traced.returncode) == ("builtins\n", 0), traced.stderr

    def test_file_is_absolute(self, project: Path) -> None:
        """__file__ of the script is absolute, as under python."""
        write(project / "where.py", "print(__file__)\n")
        result = typetrace(project, "run", "where.py")
        assert result.stdout == f"{project / 'where.py'}\n"

    def test_missing_module(self, project: Path) -> None:
        """A module that does not exist is an error that names it."""
        result = typetrace(project, "run", "-m", "no_such_module")
        assert result.returncode == 1
        assert "'no_such_module' not found" in result.stderr

    def test_imports_only_what_run_needs(self, project: Path) -> None:
        """typetrace run imports no module that only other commands need before the program runs."""
        write(project / "modules.py", "import sys\nprint('\\n'.join(sorted(sys.modules)))\n")
        # coverage.py, when its .pth file starts it in child processes, imports more.
        env = {"COVERAGE_PROCESS_START": "", "COVERAGE_PROCESS_CONFIG": ""}
        untraced = subprocess.run(
            [sys.executable, "modules.py"], cwd=project, capture_output=True, text=True, env={**os.environ, **env}
        )
        traced = typetrace(project, "run", "modules.py", env=env)
        assert traced.returncode == 0, traced.stderr
        added = set(traced.stdout.split()) - set(untraced.stdout.split())
        assert "typetrace.tracing" in added
        assert sorted(added & NOT_IMPORTED_BY_RUN) == []


class TestParser:
    @pytest.mark.parametrize(
        ("argv", "expected"),
        [
            pytest.param(["run", "app.py"], True, id="run"),
            pytest.param(["-v", "--db", "x.sqlite3", "--config", "c:C", "run"], True, id="options"),
            pytest.param(["--db=x.sqlite3", "--config=c:C", "run", "-m", "pkg"], True, id="equals"),
            pytest.param(["--db", "run", "list-modules"], False, id="run-as-option-value"),
            pytest.param(["--help", "run"], False, id="help-first"),
            pytest.param(["--version", "run"], False, id="version-first"),
            pytest.param(["--verb", "run"], False, id="abbreviation"),
            pytest.param(["stub", "run"], False, id="other-command"),
            pytest.param([], False, id="empty"),
        ],
    )
    def test_selects_run(self, argv: list[str], expected: bool) -> None:
        """Only run, after nothing but global options, gets the parser of run alone."""
        assert cli._selects_run(argv) is expected

    def test_run_help_unchanged(self, capsys: pytest.CaptureFixture[str]) -> None:
        """``run --help`` prints the same help from the run-only parser as from the whole one."""
        with pytest.raises(SystemExit):
            cli.build_parser().parse_args(["run", "--help"])
        whole = capsys.readouterr().out
        with pytest.raises(SystemExit):
            cli.main(["run", "--help"])
        run_only = capsys.readouterr().out
        assert run_only == whole
        assert "--all-calls" in run_only

    def test_help_lists_every_command(self, capsys: pytest.CaptureFixture[str]) -> None:
        """``--help`` before run still lists every command."""
        with pytest.raises(SystemExit):
            cli.main(["--help", "run"])
        output = capsys.readouterr().out
        for command in ("run", "list-modules", "stub", "apply", "prune", "stats", "export", "import"):
            assert f"    {command} " in output


class TestListModules:
    def test_lists_script_and_package(self, traced: Path) -> None:
        """The script is listed under its file stem, next to the modules it imported."""
        result = typetrace(traced, "list-modules")
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ["app", "pkg.util"]

    def test_empty_store(self, project: Path) -> None:
        """An empty store is reported as an error, not as an empty list."""
        result = typetrace(project, "list-modules")
        assert result.returncode == 1
        assert "No traces in" in result.stderr


class TestStub:
    def test_module_stub(self, traced: Path) -> None:
        """The stub of a module annotates its traced functions only."""
        result = typetrace(traced, "stub", "pkg.util")
        assert result.returncode == 0, result.stderr
        assert result.stdout == STUB_UTIL
        ast.parse(result.stdout)

    def test_script_stub_by_path(self, traced: Path) -> None:
        """A script is stubbed by its path, with its classes and methods."""
        result = typetrace(traced, "stub", "app.py")
        assert result.returncode == 0, result.stderr
        assert result.stdout == STUB_APP

    def test_output_dir(self, traced: Path) -> None:
        """--output-dir writes one .pyi per traced module of a package, laid out like it."""
        result = typetrace(traced, "stub", "pkg", "--output-dir", "stubs")
        assert result.returncode == 0, result.stderr
        assert (traced / "stubs" / "pkg" / "util.pyi").read_text() == STUB_UTIL

    def test_output_dir_package_init(self, traced: Path) -> None:
        """A package folder in the output gets an __init__.pyi even without traces."""
        assert typetrace(traced, "stub", "pkg", "--output-dir", "stubs").returncode == 0
        init = (traced / "stubs" / "pkg" / "__init__.pyi").read_text()
        assert init.endswith("def __getattr__(name: str) -> Any: ...\n")

    def test_syntax_error_names_file(self, traced: Path) -> None:
        """A module that no longer parses is an error naming its file, and stays untouched."""
        path = traced / "pkg" / "util.py"
        path.write_text(path.read_text() + "\ndef broken(:\n")
        before = path.read_bytes()
        result = typetrace(traced, "apply", "pkg.util")
        assert result.returncode == 1
        assert f"Cannot read {path}: invalid syntax" in result.stderr
        assert path.read_bytes() == before

    def test_package_without_output_dir(self, traced: Path) -> None:
        """A package name without --output-dir is an error that suggests it."""
        result = typetrace(traced, "stub", "pkg")
        assert result.returncode == 1
        assert "--output-dir" in result.stderr

    def test_stub_passes_mypy(self, traced: Path) -> None:
        """mypy accepts the generated stubs."""
        assert typetrace(traced, "stub", "pkg", "--output-dir", "stubs").returncode == 0
        checked = subprocess.run(
            [sys.executable, "-m", "mypy", "--strict", "stubs/pkg/util.pyi"],
            cwd=traced,
            capture_output=True,
            text=True,
        )
        assert checked.returncode == 0, checked.stdout

    def test_untraced_module(self, traced: Path) -> None:
        """A module without traces is an error that points at list-modules."""
        result = typetrace(traced, "stub", "pkg.other")
        assert result.returncode == 1
        assert "No traces for module 'pkg.other'" in result.stderr
        assert "list-modules" in result.stderr

    def test_module_source_missing(self, traced: Path) -> None:
        """A traced module whose source cannot be found is an error naming the module."""
        (traced / "pkg" / "util.py").unlink()
        result = typetrace(traced, "stub", "pkg.util")
        assert result.returncode == 1
        assert "pkg.util" in result.stderr

    def test_corrupt_row_skipped(self, traced: Path) -> None:
        """A row that cannot be decoded is skipped and counted; the other rows still count."""
        import sqlite3
        from contextlib import closing

        with closing(sqlite3.connect(traced / "traces.sqlite3")) as connection, connection:
            updated = connection.execute(
                "UPDATE typetrace_traces SET arg_types = '{not json' WHERE qualname = 'greet'"
            ).rowcount
        assert updated == 1
        result = typetrace(traced, "stub", "app.py", "--verbose")
        assert result.returncode == 0, result.stderr
        assert "Skipped 1 undecodable trace(s) of app" in result.stderr
        assert "{not json" in result.stderr
        assert "def greet" not in result.stdout
        assert "def main() -> int: ..." in result.stdout


def test_stub_follows_calls_into_other_modules(tmp_path: Path) -> None:
    """A value passed on to a function of another module takes what that function took."""
    write(tmp_path / "codec" / "__init__.py", "")
    write(
        tmp_path / "codec" / "text.py",
        """
        def want_bytes(s):
            return s.encode() if isinstance(s, str) else s
        """,
    )
    write(
        tmp_path / "codec" / "signer.py",
        """
        from .text import want_bytes


        def sign(value):
            value = want_bytes(value)
            return value + b"."
        """,
    )
    write(
        tmp_path / "main.py",
        """
        from codec.signer import sign
        from codec.text import want_bytes

        want_bytes("text")
        sign(b"data")
        """,
    )
    assert typetrace(tmp_path, "run", "main.py").returncode == 0
    result = typetrace(tmp_path, "stub", "codec.signer")
    assert result.returncode == 0, result.stderr
    assert "def sign(value: bytes | str) -> bytes: ..." in result.stdout


class TestApply:
    def test_apply_writes_annotations(self, traced: Path) -> None:
        """apply writes the annotations into the module's source file."""
        result = typetrace(traced, "apply", "pkg.util")
        assert result.returncode == 0, result.stderr
        assert (traced / "pkg" / "util.py").read_text() == APPLIED_UTIL

    def test_apply_is_idempotent(self, traced: Path) -> None:
        """Applying twice changes nothing the second time."""
        assert typetrace(traced, "apply", "pkg.util").returncode == 0
        first = (traced / "pkg" / "util.py").read_text()
        assert typetrace(traced, "apply", "pkg.util").returncode == 0
        assert (traced / "pkg" / "util.py").read_text() == first

    def test_diff_does_not_write(self, traced: Path) -> None:
        """--diff prints the change and leaves the file alone."""
        before = (traced / "pkg" / "util.py").read_text()
        result = typetrace(traced, "apply", "pkg.util", "--diff")
        assert result.returncode == 0, result.stderr
        assert "+def scale(values: list[int], factor: int) -> list[int]:" in result.stdout
        assert (traced / "pkg" / "util.py").read_text() == before

    def test_applied_script_still_runs(self, traced: Path) -> None:
        """The annotated script and module run with the same output."""
        assert typetrace(traced, "apply", "pkg.util").returncode == 0
        assert typetrace(traced, "apply", "app.py").returncode == 0
        result = subprocess.run([sys.executable, "app.py"], cwd=traced, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert result.stdout == "world!\n[3, 6]\n"


class TestErrors:
    def test_unreadable_database(self, project: Path) -> None:
        """A file that is not a database is an error naming the file; it is not overwritten."""
        (project / "traces.sqlite3").write_bytes(b"this is not a database" * 100)
        result = typetrace(project, "list-modules")
        assert result.returncode == 1
        assert "traces.sqlite3" in result.stderr
        assert (project / "traces.sqlite3").read_bytes() == b"this is not a database" * 100

    def test_config_module_missing(self, project: Path) -> None:
        """--config naming a missing module is an error naming it."""
        result = typetrace(project, "--config", "nope_config:CONFIG", "list-modules")
        assert result.returncode == 1
        assert "'nope_config' not found" in result.stderr

    def test_config_not_a_config(self, project: Path) -> None:
        """--config naming something other than a Config names the fix."""
        write(project / "bad_config.py", "CONFIG = 42\n")
        result = typetrace(project, "--config", "bad_config:CONFIG", "list-modules")
        assert result.returncode == 1
        assert "not a typetrace.config.Config" in result.stderr

    def test_config_raises_on_import(self, project: Path) -> None:
        """A typetrace_config.py that fails to import is reported, not ignored."""
        write(project / "typetrace_config.py", "raise RuntimeError('broken config')\n")
        result = typetrace(project, "list-modules")
        assert result.returncode == 1
        assert "broken config" in result.stderr

    def test_invalid_config_syntax(self, project: Path) -> None:
        """--config without a colon is rejected with the expected form."""
        result = typetrace(project, "--config", "just_a_module", "list-modules")
        assert result.returncode == 1
        assert "module:attribute" in result.stderr


USER_CONFIG = """
    import sys
    sys.path.insert(0, {tests_dir!r})

    from db.user_store import UserJsonLinesStore
    from typetrace.config import Config


    class JsonConfig(Config):
        def trace_store(self):
            return UserJsonLinesStore.make_store("traces.jsonl")


    CONFIG = JsonConfig()
"""


class TestStubCounts:
    def test_show_counts_comments_each_function(self, traced: Path) -> None:
        """--show-counts puts the number of traced calls above each function."""
        result = typetrace(traced, "stub", "app.py", "--show-counts")
        assert result.returncode == 0, result.stderr
        assert result.stdout == STUB_APP_WITH_COUNTS
        ast.parse(result.stdout)

    def test_counts_of_several_runs_add_up(self, project: Path) -> None:
        """The counts are those of every run stored, with thousands separated."""
        loop = "def double(x):\n    return x * 2\n\n\nfor i in range(1500):\n    double(i)\n"
        write(project / "loop.py", loop)
        for _ in range(2):
            assert typetrace(project, "run", "--all-calls", "loop.py").returncode == 0
        result = typetrace(project, "stub", "loop.py", "--show-counts")
        assert result.returncode == 0, result.stderr
        assert "\n# 3,000 calls traced\ndef double(x: int) -> int: ...\n" in result.stdout


def test_user_store_serves_every_command(project: Path) -> None:
    """A store the user writes and returns from trace_store() works for every command."""
    write(project / "typetrace_config.py", USER_CONFIG.format(tests_dir=str(TESTS_DIR)))
    assert typetrace(project, "run", "--all-calls", "app.py").returncode == 0
    assert (project / "traces.jsonl").exists()
    assert not (project / "traces.sqlite3").exists()
    assert typetrace(project, "list-modules").stdout.split() == ["app", "pkg.util"]
    assert typetrace(project, "stub", "pkg.util").stdout == STUB_UTIL
    assert typetrace(project, "apply", "pkg.util").returncode == 0
    assert (project / "pkg" / "util.py").read_text() == APPLIED_UTIL


STUB_UTIL = """\
from typing import Any

def scale(values: list[int], factor: int) -> list[int]: ...

# Functions that were not traced are left out; their names resolve to Any.
def __getattr__(name: str) -> Any: ...
"""

STUB_APP = """\
from typing import Any

def greet(name: str, excited: bool = ...) -> str: ...

def main() -> int: ...

class Point:
    def __init__(self, x: float, y: int) -> None: ...
    def moved(self, dx: float) -> Point: ...

# Functions that were not traced are left out; their names resolve to Any.
def __getattr__(name: str) -> Any: ...
"""

STUB_APP_WITH_COUNTS = """\
from typing import Any

# 1 call traced
def greet(name: str, excited: bool = ...) -> str: ...

# 1 call traced
def main() -> int: ...

class Point:
    # 2 calls traced
    def __init__(self, x: float, y: int) -> None: ...
    # 1 call traced
    def moved(self, dx: float) -> Point: ...

# Functions that were not traced are left out; their names resolve to Any.
def __getattr__(name: str) -> Any: ...
"""

APPLIED_UTIL = """\
def scale(values: list[int], factor: int) -> list[int]:
    return [value * factor for value in values]


def unused(value):
    return value
"""
