"""Run a script, or a module with -m, under typetrace's C profile hook set to drop every
event. This shows about what any profile function costs on Python 3.9 to 3.11,
whatever it does.

    python profile_floor.py workload.py ARGS
    python profile_floor.py -m pytest ARGS
    python profile_floor.py --eval workload.py ARGS

Only the main thread gets the hook. With --eval, on Python 3.11 only, the hook is
installed as the frame-evaluation function of the interpreter instead, which every
thread runs, and which is how typetrace traces on 3.11.
"""

from __future__ import annotations

import runpy
import sys
from types import FrameType
from typing import Any

from typetrace import _profilehook


def skip_code(frame: FrameType, event: str, arg: Any) -> int:
    # Marks the code at its first call event, so that the hook drops its later events.
    return _profilehook.SKIP_UNTRACED


def main() -> None:
    arguments = sys.argv[1:]
    hook = _profilehook.Hook(skip_code, {}, {})
    if arguments[0] == "--eval":
        arguments = arguments[1:]
        if not hook.install_eval([]):
            raise SystemExit("another frame-evaluation function is set")
    else:
        hook.install()
    if arguments[0] == "-m":
        sys.argv = arguments[1:]
        runpy.run_module(arguments[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = arguments
        runpy.run_path(arguments[0], run_name="__main__")


if __name__ == "__main__":
    main()
