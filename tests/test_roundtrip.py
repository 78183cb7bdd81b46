"""A real library, end to end: trace its tests, stub, check with mypy, apply, test again."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROUNDTRIP = Path(__file__).parent.parent / "scripts" / "roundtrip.py"


def test_toolz_roundtrip(tmp_path: Path) -> None:
    """toolz 1.2.0 from its sdist passes its tests before tracing, traced, and annotated."""
    result = subprocess.run(
        [sys.executable, str(ROUNDTRIP), "--requirement", "toolz==1.2.0", "--work", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "mypy accepts" in result.stdout
    assert "round trip of toolz==1.2.0 passed" in result.stdout
