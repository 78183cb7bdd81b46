"""Start tracing in a child of a traced program, then run the hidden ``sitecustomize``.

Python's :mod:`site` imports ``sitecustomize`` at start-up, and this one is found
first because typetrace puts its folder at the front of ``PYTHONPATH``. It removes
that folder from ``sys.path``, so the program sees the path it would see untraced,
and then runs the next ``sitecustomize`` on the path, if there is one.
"""

import importlib.machinery
import importlib.util
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))


def _start_tracing() -> None:
    try:
        from typetrace._subprocess import start_from_environment
    except ImportError:
        # typetrace is not installed for this interpreter.
        return
    start_from_environment()


def _run_hidden_sitecustomize() -> None:
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", sys.path)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)


sys.path[:] = [entry for entry in sys.path if os.path.abspath(entry or os.curdir) != _HERE]
_start_tracing()
_run_hidden_sitecustomize()
