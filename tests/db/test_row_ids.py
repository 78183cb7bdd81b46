"""Row ids cached by a store: pruned traces, ids given to other traces, damaged counts rows."""

from __future__ import annotations

import threading
import time
from typing import Optional

import pytest

from conftest import mysql_admin_connection
from raw_sql import run_sql
from typetrace.db import _writes, store_from_url
from typetrace.exceptions import StoreError
from typetrace.tracing import CallTrace
from typetrace.typemodel import TypeRef

INT = TypeRef("builtins", "int")
TRACE = CallTrace("pkg.mod", "f", {"x": INT}, INT)
OTHER = CallTrace("pkg.mod", "g", {"x": INT}, INT)


def counts(url: str) -> dict[str, int]:
    store = store_from_url(url)
    try:
        return {stored.row.qualname: stored.row.call_count for stored in store.iter_rows()}
    finally:
        store.close()


def id_of(url: str, qualname: str) -> int:
    rows = run_sql(url, "SELECT id FROM typetrace_traces WHERE qualname = ?", (qualname,))
    assert len(rows) == 1
    return int(rows[0][0])


def test_pruned_cached_trace_is_written_again(sql_url: str) -> None:
    """A store that cached a trace's id writes it again after another store pruned it."""
    writer = store_from_url(sql_url)
    pruner = store_from_url(sql_url)
    try:
        writer.add([TRACE, OTHER])
        assert pruner.prune(last_seen_before=time.time() + 3600) == 2

        writer.add([TRACE, TRACE])
    finally:
        writer.close()
        pruner.close()

    assert counts(sql_url) == {"f": 2}


def test_reused_id_is_not_counted(sql_url: str) -> None:
    """A cached id that now belongs to another trace does not count calls for it."""
    writer = store_from_url(sql_url)
    pruner = store_from_url(sql_url)
    try:
        writer.add([TRACE])
        reused_id = id_of(sql_url, "f")
        pruner.prune(last_seen_before=time.time() + 3600)
        signature = "ab" * 32
        run_sql(
            sql_url,
            "INSERT INTO typetrace_traces (id, signature, module, qualname, arg_types, "
            "return_type, yield_type, format_version) VALUES (?, ?, 'pkg.mod', 'newcomer', "
            "'{}', NULL, NULL, 1)",
            (reused_id, signature),
        )
        run_sql(
            sql_url,
            "INSERT INTO typetrace_counts (id, check_key, call_count, first_seen, last_seen) "
            "VALUES (?, ?, 5, 1.0, 1.0)",
            (reused_id, _writes.check_key_of(signature)),
        )

        writer.add([TRACE])
    finally:
        writer.close()
        pruner.close()

    assert counts(sql_url) == {"newcomer": 5, "f": 1}


def test_damaged_check_key_raises_and_keeps_other_counts(sql_url: str) -> None:
    store = store_from_url(sql_url)
    try:
        store.add([TRACE, OTHER])
        run_sql(
            sql_url,
            "UPDATE typetrace_counts SET check_key = check_key + 1 WHERE id = ?",
            (id_of(sql_url, "f"),),
        )

        with pytest.raises(StoreError, match="is damaged; export its traces"):
            store.add([TRACE, OTHER])
    finally:
        store.close()

    assert counts(sql_url) == {"f": 1, "g": 1}


def test_new_traces_get_distinct_ids(sql_url: str) -> None:
    store = store_from_url(sql_url)
    try:
        store.add([CallTrace("pkg.mod", f"f{number}", {"x": INT}, INT) for number in range(30)])
        store.add([CallTrace("pkg.mod", f"f{number}", {"x": INT}, INT) for number in range(20, 50)])
    finally:
        store.close()

    ids = run_sql(
        sql_url, "SELECT t.id FROM typetrace_traces t JOIN typetrace_counts c ON c.id = t.id"
    )
    assert len(set(ids)) == 50
    assert counts(sql_url) == {f"f{number}": 2 if 20 <= number < 30 else 1 for number in range(50)}


def test_trace_committed_after_snapshot_found(mysql_url: str) -> None:
    """A trace that another writer committed after this transaction's snapshot gets its id.

    The transaction runs in REPEATABLE READ, so its plain reads use a snapshot from
    before the other writer's commit and only a locking read finds the trace.
    """
    store = store_from_url(mysql_url)
    other = store_from_url(mysql_url)
    connection = store.open_connection()  # type: ignore[attr-defined]
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cursor.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
            other.add([TRACE])
            now = time.time()
            entries = [(encoded, count, now, now) for encoded, count in _writes.merge_traces([TRACE])]
            resolved = _writes.write_counts(
                cursor,
                store.statements,  # type: ignore[attr-defined]
                store.update_counts,  # type: ignore[attr-defined]
                entries,
                {},
            )
        connection.commit()
    finally:
        connection.close()
        other.close()
        store.close()

    assert resolved == {entries[0][0].signature: id_of(mysql_url, "f")}
    assert counts(mysql_url) == {"f": 2}


def wait_for_lock_wait(thread_id: int, timeout: float = 30.0) -> None:
    """Return once the MySQL session *thread_id* waits for a row lock."""
    admin = mysql_admin_connection()
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with admin.cursor() as cursor:
                cursor.execute(
                    "SELECT COUNT(*) FROM information_schema.INNODB_TRX "
                    "WHERE trx_mysql_thread_id = %s AND trx_state = 'LOCK WAIT'",
                    (thread_id,),
                )
                if cursor.fetchone()[0]:
                    return
            time.sleep(0.01)
    finally:
        admin.close()
    raise AssertionError(
        f"Timed out after {timeout} s waiting for session {thread_id} to wait for a lock"
    )


def test_new_trace_kept_after_duplicate_with_higher_id(mysql_url: str) -> None:
    """A batch whose new trace follows a trace that another writer stored meanwhile keeps both.

    The batch inserts three traces in one statement, which reserves three ids and
    then waits for a lock on the first trace. Another writer then stores the second
    trace and one more trace under the next two ids, and the lock is released. An
    insert that assigns the AUTO_INCREMENT column on a duplicate gives the third
    trace the id after the second one's, which the other writer's trace has, so
    MariaDB 10.11.19 updates that row and does not insert the third trace.
    """
    traces = sorted(
        (CallTrace("pkg.mod", f"h{number}", {"x": INT}, INT) for number in range(4)),
        key=lambda trace: _writes.merge_traces([trace])[0][0].signature,
    )
    # The batch sorts its traces by signature, so it inserts them in this order.
    locked, shared, new, other = traces
    store = store_from_url(mysql_url)
    writer = store_from_url(mysql_url)
    blocker = store.open_connection()  # type: ignore[attr-defined]
    errors: list[BaseException] = []

    def add_batch() -> None:
        try:
            store.add([locked, shared, new])
        except BaseException as error:
            errors.append(error)

    adder: Optional[threading.Thread] = None
    try:
        # A transaction that inserts the first trace and is then rolled back. It
        # writes no counts row, so the other writer's update of counts rows does
        # not wait for it.
        with blocker.cursor() as cursor:
            encoded = _writes.merge_traces([locked])[0][0]
            cursor.execute(
                store.statements.insert_trace,  # type: ignore[attr-defined]
                _writes._trace_params(encoded),
            )
        adder = threading.Thread(target=add_batch)
        adder.start()
        wait_for_lock_wait(store._connection.thread_id())  # type: ignore[attr-defined]
        writer.add([shared, other])
        blocker.rollback()
        adder.join(timeout=60)
        assert not adder.is_alive()
    finally:
        blocker.close()
        if adder is not None:
            adder.join(timeout=60)
        writer.close()
        store.close()

    assert errors == []
    assert counts(mysql_url) == {
        locked.qualname: 1,
        shared.qualname: 2,
        new.qualname: 1,
        other.qualname: 1,
    }
