"""typetrace's last-resort handler: the text of logging's own, and no exception when
stderr cannot be written."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

WARNINGS = textwrap.dedent(
    """
    import logging
    {prelude}
    logging.getLogger("typetrace.part").warning("first %s", 1)
    logging.getLogger("typetrace.part").info("not shown")
    try:
        1 / 0
    except ZeroDivisionError:
        logging.getLogger("typetrace").exception("second")
    """
)


def run_python(tmp_path: Path, source: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "program.py"
    script.write_text(source)
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    "configure",
    [
        pytest.param("", id="no-handlers"),
        pytest.param("import sys\nlogging.basicConfig(stream=sys.stdout)", id="basic-config"),
        pytest.param("logging.lastResort = None", id="last-resort-off"),
        pytest.param(
            "import sys\nlogging.lastResort = logging.StreamHandler(sys.stdout)",
            id="last-resort-replaced",
        ),
    ],
)
def test_same_text_as_logging(tmp_path: Path, configure: str) -> None:
    """With typetrace imported, its warnings read as logging's own handlers write them,
    once each."""
    # The same number of lines, so that the tracebacks match.
    plain = run_python(tmp_path, WARNINGS.format(prelude=f"import os\n{configure}"))
    with_typetrace = run_python(tmp_path, WARNINGS.format(prelude=f"import typetrace\n{configure}"))

    assert with_typetrace.returncode == plain.returncode == 0
    assert with_typetrace.stdout == plain.stdout
    assert with_typetrace.stderr == plain.stderr
    assert plain.stdout + plain.stderr != ""


def test_tracer_warning_with_closed_stderr(tmp_path: Path) -> None:
    """A warning of the tracer while the program's stderr is closed changes neither
    the program's output nor its exit code."""
    source = textwrap.dedent(
        """
        import sys
        import typetrace

        Odd = type("Odd", (), {"__module__": 123})

        def take(value):
            return value

        with typetrace.trace(CONFIG):
            print("start", flush=True)
            sys.stderr.close()
            take(Odd())
            print("end", flush=True)
        """
    )
    db = tmp_path / "traces.sqlite3"
    config = f"typetrace.DefaultConfig({str(db)!r})"
    result = run_python(tmp_path, source.replace("CONFIG", config))

    assert result.stdout == "start\nend\n"
    assert result.returncode == 0
