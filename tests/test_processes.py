"""Child processes of a traced program, run for real: multiprocessing with each start
method, process pools, subprocesses, os._exit(), SIGTERM and the environment switch."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Optional

import pytest
from support import PURE_PYTHON_BACKENDS, locked_by_other_process

from typetrace._profiling import PURE_PYTHON_VARIABLE
from typetrace._sigterm import WRITE_TIMEOUT
from typetrace._subprocess import STARTUP_DIR, SUBPROCESS_ENV_VAR, ChildSettings, settings_for
from typetrace.config import DefaultConfig, override_config
from typetrace.db.sqlite import SQLiteStore
from typetrace.tracing import CallTrace
from typetrace.typemodel import TypeRef

INT = TypeRef("builtins", "int")
STR = TypeRef("builtins", "str")
FLOAT = TypeRef("builtins", "float")

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="uses fork and POSIX start methods")


def clean_environment(**extra: str) -> dict[str, str]:
    """The test process's environment without typetrace's variables, so that a traced
    test run does not leak into the programs under test."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("TYPETRACE")}
    env.pop("PYTHONPATH", None)
    env.update(extra)
    return env


def backend_environment(tracing_backend: str, **extra: str) -> dict[str, str]:
    """clean_environment() that makes the programs under test trace with *tracing_backend*."""
    if tracing_backend in PURE_PYTHON_BACKENDS:
        extra[PURE_PYTHON_VARIABLE] = "1"
    return clean_environment(**extra)


def run_python(args: list[str], cwd: Path, env: Optional[dict[str, str]] = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=env if env is not None else clean_environment(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def run_until_sigterm(
    args: list[str], cwd: Path, env: dict[str, str]
) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run Python with *args*, send it SIGTERM once it prints its first line, and return
    the result and the seconds from the signal to the end of the process."""
    return run_until_signal([sys.executable, *args], cwd, env, signal.SIGTERM)


def run_until_signal(
    command: list[str], cwd: Path, env: dict[str, str], signum: int
) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run *command*, send it *signum* once it prints its first line, and return the
    result and the seconds from the signal to the end of the process.

    The process starts with the default action for *signum*, also where the test
    run itself ignores it (a shell's background job ignores SIGINT)."""
    with subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signum, signal.SIG_DFL),
    ) as process:
        assert process.stdout is not None
        try:
            first_line = process.stdout.readline()
            signalled = time.monotonic()
            process.send_signal(signum)
            rest, stderr = process.communicate(timeout=60)
        except BaseException:
            process.kill()
            process.communicate()
            raise
        elapsed = time.monotonic() - signalled
    return subprocess.CompletedProcess(command, process.returncode, first_line + rest, stderr), elapsed


def run_args(db: Path, *args: str) -> list[str]:
    """Python's arguments that run *args* under ``typetrace run`` into the store *db*."""
    return ["-m", "typetrace", "run", "--db", str(db), *args]


def traced_run(tmp_path: Path, script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_python(["-m", "typetrace", "run", "--db", str(tmp_path / "traces.sqlite3"), script, *args], tmp_path)


def stored(db: Path) -> list[CallTrace]:
    store = SQLiteStore.make_store(str(db))
    try:
        return [thunk.to_trace() for module in store.list_modules() for thunk in store.filter(module)]
    finally:
        store.close()


def calls_of(traces: list[CallTrace], funcname: str) -> int:
    return sum(trace.call_count for trace in traces if trace.funcname == funcname)


def write(path: Path, source: str) -> None:
    path.write_text(textwrap.dedent(source))


WORKER = """
    import multiprocessing
    import sys


    def in_child(label):
        return len(label)


    if __name__ == "__main__":
        context = multiprocessing.get_context(sys.argv[1])
        process = context.Process(target=in_child, args=(sys.argv[1],))
        process.start()
        process.join()
        print("child exit code", process.exitcode)
        sys.exit(7)
"""


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_multiprocessing_child_traced(tmp_path: Path, method: str) -> None:
    """A multiprocessing child writes its calls to the parent's store, and the
    program's output and exit code stay as they are untraced."""
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"start method {method} is not available here")
    write(tmp_path / "worker.py", WORKER)

    untraced = run_python(["worker.py", method], tmp_path)
    traced = traced_run(tmp_path, "worker.py", method)

    assert traced.returncode == untraced.returncode == 7
    assert traced.stdout == untraced.stdout == "child exit code 0\n"
    assert traced.stderr == untraced.stderr
    traces = stored(tmp_path / "traces.sqlite3")
    assert calls_of(traces, "worker:in_child") == 1
    [trace] = [trace for trace in traces if trace.funcname == "worker:in_child"]
    assert dict(trace.arg_types) == {"label": STR}
    assert trace.return_type == INT


POOL = """
    import multiprocessing
    import sys
    from concurrent.futures import ProcessPoolExecutor


    def double(value):
        return value * 2


    if __name__ == "__main__":
        context = multiprocessing.get_context(sys.argv[1])
        with ProcessPoolExecutor(2, mp_context=context) as executor:
            print(sum(executor.map(double, [0.5] * 40)))
"""


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_process_pool_workers_traced(tmp_path: Path, method: str) -> None:
    """With --all-calls, every call a ProcessPoolExecutor worker runs is counted once."""
    write(tmp_path / "pool.py", POOL)

    traced = run_python(
        ["-m", "typetrace", "run", "--db", str(tmp_path / "traces.sqlite3"), "--all-calls", "pool.py", method],
        tmp_path,
    )

    assert traced.returncode == 0, traced.stderr
    assert traced.stdout == "40.0\n"
    traces = stored(tmp_path / "traces.sqlite3")
    assert calls_of(traces, "pool:double") == 40
    assert {trace.return_type for trace in traces if trace.funcname == "pool:double"} == {FLOAT}


def test_python_subprocess_traced(tmp_path: Path) -> None:
    """A Python subprocess that inherits the environment is traced under its own
    script's name, and its output reaches the parent unchanged."""
    write(
        tmp_path / "parent.py",
        """
        import subprocess
        import sys

        result = subprocess.run([sys.executable, "child.py", "abc"])
        print("child returned", result.returncode)
        """,
    )
    write(
        tmp_path / "child.py",
        """
        import sys


        def measure(text):
            return len(text)


        print("length", measure(sys.argv[1]))
        sys.exit(5)
        """,
    )

    traced = traced_run(tmp_path, "parent.py")

    assert traced.returncode == 0, traced.stderr
    assert traced.stdout == "length 3\nchild returned 5\n"
    assert traced.stderr == ""
    traces = stored(tmp_path / "traces.sqlite3")
    [trace] = [trace for trace in traces if trace.funcname == "child:measure"]
    assert dict(trace.arg_types) == {"text": STR}
    assert trace.return_type == INT


IMPORT_HOOK_PROGRAM = """
    import builtins
    import sys

    real_import = builtins.__import__


    def reject_imports(name, *args, **kwargs):
        sys.stderr.write(f"import under the hook: {name}\\n")
        if name.startswith(sys.argv[1]):
            raise RuntimeError(f"import of {name} rejected")
        return real_import(name, *args, **kwargs)


    builtins.__import__ = reject_imports


    def answer():
        return 1


    print(answer(), answer())
"""


@pytest.mark.parametrize("rejected", ["_sysconfigdata", ""], ids=["sysconfigdata", "every-import"])
def test_child_import_hook_sees_no_tracer_import(tmp_path: Path, rejected: str) -> None:
    """A traced child that replaces builtins.__import__ runs as it does untraced: the
    tracer imports nothing while the program runs or while its traces are written at
    exit, so the hook receives no import."""
    write(tmp_path / "hook.py", IMPORT_HOOK_PROGRAM)
    write(
        tmp_path / "parent.py",
        f"""
        import subprocess
        import sys

        result = subprocess.run([sys.executable, "hook.py", {rejected!r}])
        print("child returned", result.returncode)
        """,
    )

    traced = traced_run(tmp_path, "parent.py")

    assert traced.returncode == 0, traced.stderr
    assert traced.stderr == ""
    assert traced.stdout == "1 1\nchild returned 0\n"
    traces = stored(tmp_path / "traces.sqlite3")
    assert calls_of(traces, "hook:answer") == 2


LOCALS_HOOK_PROGRAM = """
    import builtins

    real_import = builtins.__import__
    importers = []


    def note_importer(name, globals=None, locals=None, fromlist=(), level=0):
        # Reads the locals argument, which is None for an import in a function and
        # the module's namespace for one at module level.
        if locals:
            locals["__name__"]
        if name == "json" and globals and globals["__name__"] == "__main__":
            importers.append(locals)
        return real_import(name, globals, locals, fromlist, level)


    builtins.__import__ = note_importer


    def load(name):
        import json

        return json.dumps(name)


    print(load("a"), load("b"))
    builtins.__import__ = real_import
    print(importers)
"""


@pytest.mark.skipif(
    sys.version_info < (3, 11), reason="sys.setprofile, which traces 3.9 and 3.10, gives every frame a locals dict"
)
@pytest.mark.skipif(
    sys.version_info[:2] == (3, 11) and os.environ.get(PURE_PYTHON_VARIABLE) == "1",
    reason="the pure-Python backend of 3.11 runs through sys.setprofile",
)
def test_import_hook_gets_no_function_locals(tmp_path: Path) -> None:
    """An import in a traced function passes None as locals to the program's import
    hook, as it does untraced; the call is still recorded, without its arguments."""
    write(tmp_path / "hook.py", LOCALS_HOOK_PROGRAM)

    untraced = run_python(["hook.py"], tmp_path)
    traced = traced_run(tmp_path, "hook.py")

    assert untraced.stdout == '"a" "b"\n[None, None]\n', untraced.stderr
    assert traced.returncode == 0, traced.stderr
    assert traced.stderr == ""
    assert traced.stdout == untraced.stdout
    traces = stored(tmp_path / "traces.sqlite3")
    assert calls_of(traces, "hook:load") == 2
    assert {trace.return_type for trace in traces if trace.funcname == "hook:load"} == {STR}


def test_subprocess_sees_untraced_sys_path(tmp_path: Path) -> None:
    """The startup hook's folder is gone from a child's sys.path once it has run."""
    write(tmp_path / "parent.py", "import subprocess, sys\nsubprocess.run([sys.executable, 'child.py'])\n")
    write(tmp_path / "child.py", "import sys\nprint(any('_startup' in entry for entry in sys.path))\n")

    traced = traced_run(tmp_path, "parent.py")

    assert traced.stdout == "False\n"


def test_hidden_sitecustomize_still_runs(tmp_path: Path) -> None:
    """A sitecustomize that the startup hook hides on the path still runs in the child."""
    site_dir = tmp_path / "site"
    site_dir.mkdir()
    write(site_dir / "sitecustomize.py", "import builtins\nbuiltins.SITE_MARK = 'ran'\n")
    write(tmp_path / "parent.py", "import subprocess, sys\nsubprocess.run([sys.executable, 'child.py'])\n")
    write(tmp_path / "child.py", "def mark():\n    return SITE_MARK\n\nprint(mark())\n")
    env = clean_environment(PYTHONPATH=str(site_dir))

    traced = run_python(["-m", "typetrace", "run", "--db", str(tmp_path / "traces.sqlite3"), "parent.py"], tmp_path, env)

    assert traced.stdout == "ran\n", traced.stderr
    traces = stored(tmp_path / "traces.sqlite3")
    assert calls_of(traces, "child:mark") == 1


def test_plain_fork_with_os_exit(tmp_path: Path) -> None:
    """A child of os.fork() that ends with os._exit() writes its traces, and so does a
    parent that ends that way."""
    write(
        tmp_path / "forker.py",
        """
        import os
        import sys


        def in_child(value):
            return value


        def in_parent(value):
            return value


        pid = os.fork()
        if pid == 0:
            in_child(1)
            os._exit(3)
        _, status = os.waitpid(pid, 0)
        print("child", os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") else status >> 8)
        in_parent("x")
        sys.stdout.flush()
        os._exit(4)
        """,
    )

    traced = traced_run(tmp_path, "forker.py")

    assert traced.returncode == 4
    assert traced.stdout == "child 3\n"
    traces = stored(tmp_path / "traces.sqlite3")
    assert calls_of(traces, "forker:in_child") == 1
    assert calls_of(traces, "forker:in_parent") == 1


@pytest.mark.parametrize("mode", [[], ["--all-calls"]], ids=["default", "all-calls"])
def test_fork_after_threads_started_prints_nothing(tmp_path: Path, mode: list[str]) -> None:
    """A program that forks once the writer thread runs prints what it prints untraced:
    typetrace ends its threads around the fork, so Python 3.12+ has no multi-threaded
    fork to warn about."""
    write(
        tmp_path / "late_fork.py",
        """
        import os
        import time


        def work(value):
            return value


        # Fewer calls than sampling needs to pause work(), so the child's call of it
        # is recorded.
        for number in range(50):
            work(number)
        time.sleep(0.3)
        pid = os.fork()
        if pid == 0:
            work("child")
            os._exit(0)
        os.waitpid(pid, 0)
        work(1.5)
        print("done")
        """,
    )
    plain = run_python(["late_fork.py"], tmp_path)

    traced = run_python(
        ["-m", "typetrace", "run", "--db", str(tmp_path / "traces.sqlite3"), *mode, "late_fork.py"], tmp_path
    )

    assert traced.stdout == plain.stdout
    assert traced.stderr == plain.stderr
    assert traced.returncode == plain.returncode
    argument_types = {trace.arg_types["value"] for trace in stored(tmp_path / "traces.sqlite3")}
    assert STR in argument_types
    assert FLOAT in argument_types


def test_auto_import_starts_tracing(tmp_path: Path) -> None:
    """TYPETRACE=1 with ``import typetrace.auto`` traces until the process exits."""
    write(
        tmp_path / "service.py",
        """
        import typetrace.auto


        def handle(request):
            return {"ok": request}


        for index in range(3):
            handle(index)
        """,
    )
    db = tmp_path / "auto.sqlite3"

    untraced = run_python(["service.py"], tmp_path, clean_environment(TYPETRACE_DB=str(db)))
    traced = run_python(["service.py"], tmp_path, clean_environment(TYPETRACE="1", TYPETRACE_DB=str(db)))

    assert untraced.returncode == traced.returncode == 0
    assert traced.stdout == traced.stderr == ""
    assert calls_of(stored(db), "service:handle") == 3


def test_auto_import_with_locked_store(tmp_path: Path) -> None:
    """A store that another process holds in exclusive locking mode delays the start
    of the service by about 5 s, and the service then runs untraced with an error
    that names the store."""
    write(tmp_path / "service.py", "import typetrace.auto\n\nprint('started')\n")
    db = tmp_path / "auto.sqlite3"
    SQLiteStore(str(db)).close()

    with locked_by_other_process(db, exclusive_mode=True):
        started = time.monotonic()
        traced = subprocess.run(
            [sys.executable, "service.py"],
            cwd=tmp_path,
            env=clean_environment(TYPETRACE="1", TYPETRACE_DB=str(db)),
            capture_output=True,
            text=True,
            timeout=30,
        )
        elapsed = time.monotonic() - started

    assert traced.returncode == 0, traced.stderr
    assert traced.stdout == "started\n"
    assert elapsed < 10.0
    assert "the program runs untraced" in traced.stderr
    assert f"Failed to open the SQLite trace store {db}: database is locked" in traced.stderr
    assert "stayed locked by another process for 5 s" in traced.stderr


def test_locked_store_ends_program_in_time(tmp_path: Path) -> None:
    """A store that another process keeps locked holds the traced program at exit for
    the writer's 10 s close timeout, and the warning counts the calls not written."""
    write(
        tmp_path / "program.py",
        """
        import sys


        def handle(request):
            return request


        for index in range(3):
            handle(index)
        sys.exit(7)
        """,
    )
    db = tmp_path / "traces.sqlite3"
    SQLiteStore(str(db)).close()

    with locked_by_other_process(db):
        started = time.monotonic()
        traced = subprocess.run(
            [sys.executable, *run_args(db, "program.py")],
            cwd=tmp_path,
            env=clean_environment(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        elapsed = time.monotonic() - started

    assert traced.returncode == 7, traced.stderr
    assert 10.0 <= elapsed < 14.0
    assert "did not finish within 10.0 s, so 3 recorded calls were not written" in traced.stderr
    assert f"SQLiteStore('{db}')" in traced.stderr
    assert calls_of(stored(db), "program:handle") == 0


def test_auto_import_off_by_default(tmp_path: Path) -> None:
    write(tmp_path / "service.py", "import typetrace.auto\n\ndef handle():\n    return 1\n\nhandle()\n")
    db = tmp_path / "auto.sqlite3"

    result = run_python(["service.py"], tmp_path, clean_environment(TYPETRACE_DB=str(db)))

    assert result.returncode == 0
    assert not db.exists()


def test_start_and_stop_in_program(tmp_path: Path) -> None:
    """typetrace.start() returns a session that typetrace.stop() ends."""
    write(
        tmp_path / "program.py",
        """
        import typetrace


        def traced(value):
            return value


        def untraced(value):
            return value


        session = typetrace.start()
        traced(1.0)
        stats = typetrace.stop()
        untraced(1)
        print(session.active, stats is session.stats, stats.calls_recorded)
        """,
    )
    db = tmp_path / "session.sqlite3"

    result = run_python(["program.py"], tmp_path, clean_environment(TYPETRACE_DB=str(db)))

    assert result.stdout == "False True 1\n", result.stderr
    traces = stored(db)
    assert calls_of(traces, "program:traced") == 1
    assert calls_of(traces, "program:untraced") == 0


@pytest.mark.parametrize(
    ("arguments", "module"),
    [
        pytest.param("", "program", id="default"),
        pytest.param("main_module='renamed'", "renamed", id="main_module"),
    ],
)
def test_trace_block_in_script(tmp_path: Path, arguments: str, module: str) -> None:
    """typetrace.trace() in a script run as ``python program.py`` records its code and
    classes under the script's module name, as typetrace.start() does, unless
    main_module names another."""
    write(
        tmp_path / "program.py",
        f"""
        import typetrace


        class Point:
            def __init__(self, x):
                self.x = x


        def make(x):
            return Point(x)


        with typetrace.trace({arguments}):
            make(1)
        """,
    )
    db = tmp_path / "block.sqlite3"

    result = run_python(["program.py"], tmp_path, clean_environment(TYPETRACE_DB=str(db)))

    assert result.returncode == 0, result.stderr
    traces = {(trace.module, trace.qualname): trace for trace in stored(db)}
    assert sorted(traces) == [(module, "Point.__init__"), (module, "make")]
    assert traces[module, "make"].return_type == TypeRef(module, "Point")


def test_broken_settings_leave_child_untraced(tmp_path: Path) -> None:
    """Settings a child cannot read are logged, and the child runs as usual."""
    write(tmp_path / "child.py", "print('ran')\n")
    env = clean_environment(PYTHONPATH=STARTUP_DIR, **{SUBPROCESS_ENV_VAR: "not json"})

    result = run_python(["child.py"], tmp_path, env)

    assert result.returncode == 0
    assert result.stdout == "ran\n"
    assert "Failed to start tracing" in result.stderr


def test_settings_resolve_relative_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A relative SQLite path is made absolute, so a child in another folder finds it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TYPETRACE_DB", raising=False)

    settings = settings_for(override_config(DefaultConfig(), db="rel.sqlite3", all_calls=True))

    assert settings == ChildSettings(db=str(tmp_path / "rel.sqlite3"), all_calls=True)
    assert ChildSettings.from_json(settings.to_json()) == settings


def test_settings_keep_urls() -> None:
    settings = settings_for(DefaultConfig("postgresql://user@127.0.0.1:5432/test"))

    assert settings is not None
    assert settings.db == "postgresql://user@127.0.0.1:5432/test"



def test_traced_under_coverage(tmp_path: Path) -> None:
    """Under ``coverage run``, typetrace records the calls and coverage measures the
    lines; on 3.12+ coverage uses sys.monitoring too."""
    pytest.importorskip("coverage")
    write(
        tmp_path / "covered.py",
        """
        def branch(value):
            if value:
                return "yes"
            return "no"


        print(branch(1), branch(0))
        """,
    )
    env = clean_environment(COVERAGE_CORE="sysmon", COVERAGE_FILE=str(tmp_path / ".coverage"))
    db = tmp_path / "traces.sqlite3"

    result = run_python(["-m", "coverage", "run", "-m", "typetrace", "run", "--db", str(db), "covered.py"], tmp_path, env)
    report = run_python(["-m", "coverage", "report", "--include=covered.py", "--format=total"], tmp_path, env)

    assert result.returncode == 0, result.stderr
    assert result.stdout == "yes no\n"
    assert report.stdout.strip() == "100", report.stdout + report.stderr
    assert calls_of(stored(db), "covered:branch") == 2


POOL_WITH_BLOCK = """
    import multiprocessing
    import sys


    def square(value):
        return value * value


    if __name__ == "__main__":
        context = multiprocessing.get_context(sys.argv[1])
        with context.Pool(2) as pool:
            print(sum(pool.map(square, range(40))))
"""


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_pool_with_block_keeps_worker_calls(
    tmp_path: Path, method: str, tracing_backend: str
) -> None:
    """Leaving a Pool's with block ends its workers with SIGTERM, and each worker writes
    its calls before it ends."""
    write(tmp_path / "pool_block.py", POOL_WITH_BLOCK)
    env = backend_environment(tracing_backend)
    db = tmp_path / "traces.sqlite3"

    untraced = run_python(["pool_block.py", method], tmp_path, env)
    traced = run_python(run_args(db, "--all-calls", "pool_block.py", method), tmp_path, env)

    assert traced.returncode == untraced.returncode == 0, traced.stderr
    assert traced.stdout == untraced.stdout == "20540\n"
    assert traced.stderr == untraced.stderr
    assert calls_of(stored(db), "pool_block:square") == 40


SERVICE = """
    import time

    import typetrace.auto


    def handle(request):
        return {"ok": request}


    for number in range(3):
        handle(number)
    print("ready", flush=True)
    time.sleep(60)
    print("not reached")
"""


@pytest.mark.parametrize("start", ["run", "auto"])
def test_sigterm_keeps_recorded_calls(tmp_path: Path, start: str, tracing_backend: str) -> None:
    """A traced process ended by SIGTERM writes the calls it recorded and still ends
    killed by SIGTERM, under typetrace run and with TYPETRACE=1."""
    write(tmp_path / "service.py", SERVICE)
    db = tmp_path / "traces.sqlite3"
    if start == "run":
        args = run_args(db, "service.py")
        env = backend_environment(tracing_backend)
    else:
        args = ["service.py"]
        env = backend_environment(tracing_backend, TYPETRACE="1", TYPETRACE_DB=str(db))

    untraced, _ = run_until_sigterm(["service.py"], tmp_path, backend_environment(tracing_backend))
    traced, _ = run_until_sigterm(args, tmp_path, env)

    assert traced.returncode == untraced.returncode == -signal.SIGTERM
    assert traced.stdout == untraced.stdout == "ready\n"
    assert traced.stderr == untraced.stderr == ""
    assert calls_of(stored(db), "service:handle") == 3


LOCKED_WRITER = """
    import time

    from typetrace.tracing import active_session


    def handle(request):
        return request


    for number in range(3):
        handle(number)
    # Taken as record() takes it, for SIGTERM to arrive in the middle of a record().
    active_session()._writer.{lock}.acquire()
    print("ready", flush=True)
    time.sleep(60)
"""


def test_sigterm_inside_record_still_writes(tmp_path: Path, tracing_backend: str) -> None:
    """The main thread has taken the lock of the pending traces when SIGTERM arrives,
    and never releases it. The pending traces are written all the same."""
    write(tmp_path / "locked.py", LOCKED_WRITER.format(lock="_lock"))
    db = tmp_path / "traces.sqlite3"

    traced, _ = run_until_sigterm(
        run_args(db, "locked.py"), tmp_path, backend_environment(tracing_backend)
    )

    assert traced.returncode == -signal.SIGTERM, traced.stderr
    assert traced.stderr == ""
    assert calls_of(stored(db), "locked:handle") == 3


def test_sigterm_with_stuck_write_ends_in_time(tmp_path: Path, tracing_backend: str) -> None:
    """A write that cannot start is given up after the timeout: the process still ends
    killed by SIGTERM, its pending calls are lost, and the store stays readable."""
    write(tmp_path / "stuck.py", LOCKED_WRITER.format(lock="_write_lock"))
    db = tmp_path / "traces.sqlite3"

    traced, elapsed = run_until_sigterm(
        run_args(db, "stuck.py"), tmp_path, backend_environment(tracing_backend)
    )

    assert traced.returncode == -signal.SIGTERM, traced.stderr
    assert traced.stderr == ""
    assert WRITE_TIMEOUT <= elapsed < WRITE_TIMEOUT + 5.0
    assert calls_of(stored(db), "stuck:handle") == 0


SIGNAL_IN_OTHER_THREAD = """
    import signal
    import threading
    import time


    def handle(request):
        return request


    def send_sigterm():
        time.sleep(0.2)
        signal.raise_signal(signal.SIGTERM)


    handle(1)
    blocker = threading.Lock()
    blocker.acquire()
    # raise_signal() delivers SIGTERM to the calling thread, so the system call that
    # the main thread blocks in is not interrupted: as when SIGTERM arrives just
    # before the main thread blocks.
    threading.Thread(target=send_sigterm).start()
    blocker.acquire()
"""


def test_sigterm_while_main_thread_blocks(tmp_path: Path, tracing_backend: str) -> None:
    """SIGTERM that does not interrupt the main thread's blocking call, where Python
    would not run the handler, still ends the process after the traces are written."""
    write(tmp_path / "blocked.py", SIGNAL_IN_OTHER_THREAD)
    db = tmp_path / "traces.sqlite3"
    env = backend_environment(tracing_backend)

    untraced = subprocess.run(
        [sys.executable, "blocked.py"], cwd=tmp_path, env=env, capture_output=True, timeout=30
    )
    traced = subprocess.run(
        [sys.executable, *run_args(db, "blocked.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        timeout=30,
    )

    assert traced.returncode == untraced.returncode == -signal.SIGTERM, traced.stderr
    assert traced.stderr == untraced.stderr == b""
    assert calls_of(stored(db), "blocked:handle") == 1


SLOW_STORE_CONFIG = """
    import sys
    import time

    from typetrace.config import DefaultConfig
    from typetrace.db.sqlite import SQLiteStore


    class SlowStore(SQLiteStore):
        def add(self, traces):
            print("writing", flush=True)
            time.sleep(1.0)
            super().add(traces)


    class SlowConfig(DefaultConfig):
        def trace_store(self):
            return SlowStore(sys.argv[-1])


    CONFIG = SlowConfig()
"""

EXITING = """
    def handle(request):
        return request


    handle(1)
    handle(2)
"""


def test_sigterm_during_write_at_exit(tmp_path: Path, tracing_backend: str) -> None:
    """SIGTERM arrives while the process writes its traces at exit: the write
    finishes, and the process ends killed by SIGTERM."""
    write(tmp_path / "slow_config.py", SLOW_STORE_CONFIG)
    write(tmp_path / "exiting.py", EXITING)
    db = tmp_path / "traces.sqlite3"

    traced, elapsed = run_until_sigterm(
        ["-m", "typetrace", "run", "--config", "slow_config:CONFIG", "exiting.py", str(db)],
        tmp_path,
        backend_environment(tracing_backend),
    )

    assert traced.returncode == -signal.SIGTERM, traced.stderr
    assert traced.stdout == "writing\n"
    assert traced.stderr == ""
    assert elapsed < WRITE_TIMEOUT + 5.0
    assert calls_of(stored(db), "exiting:handle") == 2


SLOW_ATEXIT = """
    import atexit
    import time

    import typetrace.auto


    def handle(request):
        return request


    def slow_exit():
        print("exiting", flush=True)
        time.sleep(30)


    # Runs before typetrace's own exit handler, which was registered first.
    atexit.register(slow_exit)
    handle(1)
    handle(2)
"""


def test_sigterm_during_atexit_handler(tmp_path: Path, tracing_backend: str) -> None:
    """SIGTERM arrives while an exit handler of the program runs, where Python 3.12
    starts no thread: the traces are written all the same."""
    write(tmp_path / "at_exit.py", SLOW_ATEXIT)
    db = tmp_path / "traces.sqlite3"
    env = backend_environment(tracing_backend, TYPETRACE="1", TYPETRACE_DB=str(db))

    untraced, _ = run_until_sigterm(["at_exit.py"], tmp_path, backend_environment(tracing_backend))
    traced, elapsed = run_until_sigterm(["at_exit.py"], tmp_path, env)

    assert traced.returncode == untraced.returncode == -signal.SIGTERM
    assert traced.stdout == untraced.stdout == "exiting\n"
    assert traced.stderr == untraced.stderr == ""
    assert elapsed < WRITE_TIMEOUT + 5.0
    assert calls_of(stored(db), "at_exit:handle") == 2


OWN_HANDLER = """
    import signal
    import sys
    import time


    def handle(request):
        return request


    def on_sigterm(signum, frame):
        print("handled", signal.getsignal(signal.SIGTERM) is on_sigterm, flush=True)
        sys.exit(3)


    signal.signal(signal.SIGTERM, on_sigterm)
    handle(1)
    print("ready", flush=True)
    time.sleep(60)
"""


def test_own_sigterm_handler_kept(tmp_path: Path, tracing_backend: str) -> None:
    """A SIGTERM handler that the program installs replaces typetrace's and runs as it
    does untraced."""
    write(tmp_path / "own_handler.py", OWN_HANDLER)
    db = tmp_path / "traces.sqlite3"
    env = backend_environment(tracing_backend)

    untraced, _ = run_until_sigterm(["own_handler.py"], tmp_path, env)
    traced, _ = run_until_sigterm(run_args(db, "own_handler.py"), tmp_path, env)

    assert traced.returncode == untraced.returncode == 3
    assert traced.stdout == untraced.stdout == "ready\nhandled True\n"
    assert untraced.stderr == ""
    if tracing_backend == "pure-python":
        # SIGTERM may arrive while the profile function runs. The handler's SystemExit
        # then leaves it, Python removes it, and typetrace logs that removal. It logs
        # it at stop when Python 3.11 ran the handler before the profile function's try.
        unexpected = [line for line in traced.stderr.splitlines() if "Python removed it" not in line]
        assert unexpected == [], traced.stderr
    else:
        assert traced.stderr == ""
    assert calls_of(stored(db), "own_handler:handle") == 1


ASYNCIO_HANDLER = """
    import asyncio
    import signal


    def handle(request):
        return request


    async def serve():
        stopping = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
        handle(1)
        print("ready", flush=True)
        await stopping.wait()
        print("stopping", flush=True)


    asyncio.run(serve())
"""


def test_asyncio_sigterm_handler_kept(tmp_path: Path, tracing_backend: str) -> None:
    """An asyncio loop's SIGTERM handler, which also takes the signal wakeup fd, runs as
    it does untraced."""
    write(tmp_path / "served.py", ASYNCIO_HANDLER)
    db = tmp_path / "traces.sqlite3"
    env = backend_environment(tracing_backend)

    untraced, _ = run_until_sigterm(["served.py"], tmp_path, env)
    traced, _ = run_until_sigterm(run_args(db, "served.py"), tmp_path, env)

    assert traced.returncode == untraced.returncode == 0
    assert traced.stdout == untraced.stdout == "ready\nstopping\n"
    assert traced.stderr == untraced.stderr == ""
    assert calls_of(stored(db), "served:handle") == 1


RESENDING_HANDLER = """
    import os
    import signal
    import time


    def handle(request):
        return request


    def on_sigterm(signum, frame):
        # As coverage.py does: clean up, then restore the previous handler and send
        # SIGTERM again.
        print("cleaned up", flush=True)
        signal.signal(signal.SIGTERM, previous)
        os.kill(os.getpid(), signal.SIGTERM)


    previous = signal.signal(signal.SIGTERM, on_sigterm)
    handle(1)
    print("ready", flush=True)
    time.sleep(60)
"""


def test_program_handler_resending_sigterm(tmp_path: Path, tracing_backend: str) -> None:
    """A program handler that restores typetrace's handler and sends SIGTERM again ends
    the process as SIG_DFL would, and the calls are written."""
    write(tmp_path / "resend.py", RESENDING_HANDLER)
    db = tmp_path / "traces.sqlite3"
    env = backend_environment(tracing_backend)

    untraced, _ = run_until_sigterm(["resend.py"], tmp_path, env)
    traced, _ = run_until_sigterm(run_args(db, "resend.py"), tmp_path, env)

    assert traced.returncode == untraced.returncode == -signal.SIGTERM
    assert traced.stdout == untraced.stdout == "ready\ncleaned up\n"
    assert traced.stderr == untraced.stderr == ""
    assert calls_of(stored(db), "resend:handle") == 1


FORK_THEN_SIGTERM = """
    import os
    import signal
    import time


    def in_parent(value):
        return value


    def in_child(value):
        return value


    in_parent(1)
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(reader)
        in_child("x")
        os.write(writer, b"ready")
        time.sleep(60)
        os._exit(0)
    os.close(writer)
    os.read(reader, 5)
    os.kill(pid, signal.SIGTERM)
    _, status = os.waitpid(pid, 0)
    print("child killed by", os.WTERMSIG(status) if os.WIFSIGNALED(status) else None)
    in_parent(2)
"""


def test_forked_child_sigterm_writes_own_calls(tmp_path: Path, tracing_backend: str) -> None:
    """A child of os.fork() inherits the SIGTERM handler. At SIGTERM it writes its own
    calls, not its parent's, and ends killed by SIGTERM."""
    write(tmp_path / "fork_term.py", FORK_THEN_SIGTERM)
    db = tmp_path / "traces.sqlite3"
    env = backend_environment(tracing_backend)

    untraced = run_python(["fork_term.py"], tmp_path, env)
    traced = run_python(run_args(db, "fork_term.py"), tmp_path, env)

    assert traced.returncode == untraced.returncode == 0, traced.stderr
    assert traced.stdout == untraced.stdout == f"child killed by {int(signal.SIGTERM)}\n"
    assert traced.stderr == untraced.stderr
    traces = stored(db)
    assert calls_of(traces, "fork_term:in_child") == 1
    assert calls_of(traces, "fork_term:in_parent") == 2


EXIT_SWEEP = """
    import os
    import signal
    import sys

    import typetrace
    from typetrace._writer import StoreWriter
    from typetrace.config import DefaultConfig, override_config
    from typetrace.db.sqlite import SQLiteStore

    CALLS = 20
    PARALLEL = 8
    MAX_LINES = 2000
    PACKAGE_DIR = os.path.dirname(typetrace.__file__)


    def work(marker):
        return marker


    def sigterm_at_line(number, report_fd):
        # A trace function that sends SIGTERM to this process at the number-th line
        # of typetrace's code that it runs, after writing that line's place to
        # report_fd.
        lines = 0

        def trace_lines(frame, event, arg):
            nonlocal lines
            if event != "line":
                return trace_lines
            lines += 1
            if lines < number:
                return trace_lines
            sys.settrace(None)
            place = f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno}"
            os.write(report_fd, place.encode())
            os.kill(os.getpid(), signal.SIGTERM)
            return None

        def trace_calls(frame, event, arg):
            if lines >= number or not frame.f_code.co_filename.startswith(PACKAGE_DIR):
                return None
            return trace_lines

        return trace_calls


    def start_child(number):
        reader, writer = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(reader)
            marker = type(f"Child{number}", (), {})()
            for _ in range(CALLS):
                work(marker)
            sys.settrace(sigterm_at_line(number, writer))
            os._exit(0)
        os.close(writer)
        return pid, reader


    def sweep():
        # Child N ends with os._exit(), as a forked multiprocessing worker does, and
        # gets SIGTERM at the N-th line of typetrace's code that its exit runs. The
        # sweep ends at the first child whose exit runs fewer lines, which prints "-".
        running = {}
        number = 0
        swept = False
        while running or not swept:
            while not swept and len(running) < PARALLEL and number < MAX_LINES:
                number += 1
                pid, reader = start_child(number)
                running[pid] = (number, reader)
            pid, _ = os.waitpid(-1, 0)
            child, reader = running.pop(pid)
            place = os.read(reader, 200).decode()
            os.close(reader)
            swept = swept or not place
            print(child, place or "-", flush=True)


    if len(sys.argv) > 1:
        # Through a StoreWriter that the program passes as the sink. It writes only
        # when closed and at SIGTERM, so that no periodic write makes up for a lost one.
        writer = StoreWriter(SQLiteStore.make_store(sys.argv[1]), flush_interval=3600)
        with typetrace.trace(override_config(DefaultConfig(), all_calls=True), sink=writer):
            sweep()
        writer.close()
    else:
        sweep()
"""


@pytest.mark.parametrize("writer", ["run", "sink"])
def test_sigterm_anywhere_in_exit_keeps_calls(
    tmp_path: Path, writer: str, tracing_backend: str
) -> None:
    """Forked children that end with os._exit() keep all their calls when SIGTERM
    arrives at any line of typetrace's code that their exit runs, as when
    Pool.terminate() ends a worker that is already exiting. With "sink", the
    children write through a StoreWriter passed to typetrace.trace()."""
    write(tmp_path / "exit_sweep.py", EXIT_SWEEP)
    db = tmp_path / "traces.sqlite3"
    env = backend_environment(tracing_backend)
    if writer == "run":
        args = run_args(db, "--all-calls", "exit_sweep.py")
    else:
        args = ["exit_sweep.py", str(db)]

    result = run_python(args, tmp_path, env)

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    places = dict(line.split(" ") for line in result.stdout.splitlines())
    assert "-" in places.values()
    # Fewer would mean that the trace function did not see typetrace's code.
    assert len([place for place in places.values() if place != "-"]) >= 50
    counts: dict[str, int] = {}
    for trace in stored(db):
        if trace.funcname == "exit_sweep:work":
            child = trace.arg_types["marker"].qualname.removeprefix("Child")
            counts[child] = counts.get(child, 0) + trace.call_count
    # Each child makes 20 calls of work().
    short = {
        f"child {child} at {place}": counts.get(child, 0)
        for child, place in places.items()
        if counts.get(child, 0) != 20
    }
    assert short == {}


INTERRUPTED = """
    import atexit
    import time


    def handle(request):
        return request


    atexit.register(print, "atexit ran", flush=True)
    for number in range(3):
        handle(number)
    print("ready", flush=True)
    time.sleep(60)
"""


@pytest.mark.parametrize("launcher", ["python-m", "console-script"])
def test_uncaught_ctrl_c_ends_by_sigint(tmp_path: Path, launcher: str) -> None:
    """A program that SIGINT interrupts, with no handler of its own, ends killed by
    SIGINT under typetrace run as it does untraced: after its atexit handlers and its
    traceback, and with the calls recorded before the signal written."""
    write(tmp_path / "interrupted.py", INTERRUPTED)
    db = tmp_path / "traces.sqlite3"
    if launcher == "python-m":
        command = [sys.executable, *run_args(db, "interrupted.py")]
    else:
        command = [str(Path(sys.executable).parent / "typetrace"), "run", "--db", str(db), "interrupted.py"]
    env = clean_environment()

    untraced, _ = run_until_signal([sys.executable, "interrupted.py"], tmp_path, env, signal.SIGINT)
    traced, _ = run_until_signal(command, tmp_path, env, signal.SIGINT)

    assert traced.returncode == untraced.returncode == -signal.SIGINT, traced.stderr
    assert traced.stdout == untraced.stdout == "ready\natexit ran\n"
    for result in (untraced, traced):
        lines = result.stderr.splitlines()
        assert lines[0] == "Traceback (most recent call last):", result.stderr
        assert lines[1].startswith(f'  File "{tmp_path / "interrupted.py"}", line '), result.stderr
        assert lines[-1] == "KeyboardInterrupt", result.stderr
        # One frame, the program's: its line and source, and on 3.13 a marker line.
        assert len(lines) in (4, 5), result.stderr
        assert "typetrace" not in result.stderr
    assert calls_of(stored(db), "interrupted:handle") == 3


ALARMS = """
    import signal
    import sys
    import time


    class Deadline(Exception):
        pass


    fired = 0


    def on_alarm(signum, frame):
        global fired
        fired += 1
        raise Deadline()


    def numbers(count):
        yield from range(count)


    def work(value):
        return [value, str(value), sum(numbers(3))]


    def step(value):
        return work(value)


    def main(rounds):
        signal.signal(signal.SIGALRM, on_alarm)
        caught = 0
        for round_number in range(rounds):
            try:
                signal.setitimer(signal.ITIMER_REAL, 0.0005)
                limit = time.monotonic() + 5.0
                value = 0
                while time.monotonic() < limit:
                    step(value)
                    value += 1
            except Deadline:
                caught += 1
            else:
                print(f"lost the alarm of round {round_number}")
                return 1
        print(f"fired={fired} caught={caught}")
        return 0


    sys.exit(main(int(sys.argv[1])))
"""

# Alarms per run. Before handler exceptions were passed on, 300 alarms lost one in
# each run tried, with every backend of Python 3.10 to 3.12.
ALARM_ROUNDS = 300


def check_alarms_reach_program(tmp_path: Path, env: dict[str, str]) -> None:
    """Run the alarm loop untraced and traced under *env*, and compare the results.
    The pure-Python profile function stops tracing at the first handler exception
    that it passes on, which can come before any call of step() returns."""
    write(tmp_path / "alarms.py", ALARMS)
    db = tmp_path / "traces.sqlite3"

    untraced = run_python(["alarms.py", str(ALARM_ROUNDS)], tmp_path, env)
    traced = run_python(run_args(db, "--all-calls", "alarms.py", str(ALARM_ROUNDS)), tmp_path, env)

    assert untraced.stdout == f"fired={ALARM_ROUNDS} caught={ALARM_ROUNDS}\n"
    assert traced.stdout == untraced.stdout, traced.stderr
    assert traced.returncode == untraced.returncode == 0
    assert untraced.stderr == ""
    # typetrace's own warnings, such as calls lost where the handler interrupted the
    # recording of a trace, are the only additions.
    for line in traced.stderr.splitlines():
        assert line.startswith("WARNING:typetrace"), traced.stderr
    traces = stored(db)
    assert any(trace.module == "alarms" for trace in traces)
    if env.get(PURE_PYTHON_VARIABLE) != "1":
        assert calls_of(traces, "alarms:step") > 0


@pytest.mark.skipif(
    sys.version_info[:2] == (3, 13),
    reason="untraced CPython 3.13.0 lets some of the handler's exceptions escape the try block of this program",
)
def test_alarm_exceptions_reach_program(tmp_path: Path, tracing_backend: str) -> None:
    """A SIGALRM handler's exception reaches the program every time, also when Python
    runs the handler inside the tracer's callbacks."""
    check_alarms_reach_program(tmp_path, backend_environment(tracing_backend))


@pytest.mark.skipif(sys.version_info[:2] != (3, 11), reason="3.11 alone has a second C backend")
def test_alarm_exceptions_reach_program_profile_hook(tmp_path: Path) -> None:
    """As test_alarm_exceptions_reach_program, with the C profile function that 3.11
    uses in place of the evaluation function."""
    check_alarms_reach_program(tmp_path, clean_environment(TYPETRACE_PROFILE_HOOK="1"))


RECURSES_THROUGH_C = """
    import functools
    import sys


    def through_reduce(depth):
        if depth == 0:
            return 0
        return functools.reduce(lambda total, item: through_reduce(item), [0, depth - 1]) + 1


    sys.setrecursionlimit(600)
    print(through_reduce(10_000))
"""


def test_uncaught_recursion_error_shows_program_traceback(tmp_path: Path) -> None:
    """A program that the recursion limit ends shows its own RecursionError, with no
    exception of the tracer chained to it, although the tracer's code fails too at
    that depth."""
    write(tmp_path / "deep.py", RECURSES_THROUGH_C)

    untraced = run_python(["deep.py"], tmp_path)
    traced = run_python(["-m", "typetrace", "run", "--all-calls", "--db", "traces.sqlite3", "deep.py"], tmp_path)

    assert traced.returncode == untraced.returncode == 1
    assert "RecursionError" in untraced.stderr
    assert "During handling of the above exception" not in traced.stderr
    # The last traceback, up to the writer's closing warning, is the program's.
    last_traceback = traced.stderr.split("Traceback (most recent call last):")[-1]
    last_traceback = last_traceback.split("\nWARNING")[0]
    assert "typetrace" not in last_traceback
