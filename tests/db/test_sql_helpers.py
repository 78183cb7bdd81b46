"""Helpers shared by the SQL stores: password masking, signatures, check keys, merging, retries."""

from __future__ import annotations

import logging

import pytest

from raw_sql import v2_signature
from typetrace.db import _sql, _writes
from typetrace.encoding import CallTraceRow
from typetrace.exceptions import StoreError
from typetrace.tracing import CallTrace
from typetrace.typemodel import TypeRef

INT = TypeRef("builtins", "int")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "postgresql://user:secret@db.example:5432/traces",
            "postgresql://user:***@db.example:5432/traces",
        ),
        ("mysql://root:p%40ss@127.0.0.1:3306/test", "mysql://root:***@127.0.0.1:3306/test"),
        ("postgresql://user:pa:ss@host/db", "postgresql://user:***@host/db"),
        ("postgresql://:secret@host/db", "postgresql://:***@host/db"),
        ("postgresql://user:se@cret@host/db", "postgresql://user:***@host/db"),
        (
            "postgresql://user@host/db?password=secret&sslmode=require",
            "postgresql://user@host/db?password=***&sslmode=require",
        ),
        ("postgresql://host/db?PASSWORD=secret", "postgresql://host/db?password=***"),
        ("mysql://root@127.0.0.1:3306/test", "mysql://root@127.0.0.1:3306/test"),
        ("/var/lib/traces.sqlite3", "/var/lib/traces.sqlite3"),
        (":memory:", ":memory:"),
    ],
)
def test_mask_password(url: str, expected: str) -> None:
    assert _sql.mask_password(url) == expected


def test_redact_replaces_every_occurrence() -> None:
    assert _sql.redact("secret and secret", "secret") == "*** and ***"
    assert _sql.redact("no secret here", None) == "no secret here"
    assert _sql.redact("nothing", "") == "nothing"


class TestSignature:
    def test_ignores_call_count(self) -> None:
        row = CallTraceRow("m", "f", "{}", None, None)

        assert _sql.trace_signature(row) == _sql.trace_signature(
            CallTraceRow("m", "f", "{}", None, None, call_count=9)
        )

    @pytest.mark.parametrize(
        "other",
        [
            CallTraceRow("m2", "f", "{}", None, None),
            CallTraceRow("m", "g", "{}", None, None),
            CallTraceRow("m", "f", '{"x":1}', None, None),
            CallTraceRow("m", "f", "{}", "null", None),
            CallTraceRow("m", "f", "{}", None, "null"),
            CallTraceRow("m", "f", "{}", None, None, format_version=2),
            CallTraceRow("m", "f", "{}", None, None, send_type="null"),
            # The same characters split differently between module and qualname.
            CallTraceRow("m.f", "", "{}", None, None),
        ],
    )
    def test_differs_for_each_field(self, other: CallTraceRow) -> None:
        row = CallTraceRow("m", "f", "{}", None, None)

        assert _sql.trace_signature(row) != _sql.trace_signature(other)

    def test_without_send_type_keeps_old_digest(self) -> None:
        """Rows without a send type keep the signature of schema version 2."""
        row = CallTraceRow(
            "pkg.mod",
            "f",
            '{"x":{"module":"builtins","qualname":"int"}}',
            None,
            '{"module":"builtins","qualname":"str"}',
        )

        signature = _sql.trace_signature(row)

        assert signature == v2_signature(row)
        # Computed by the release before send_type was stored.
        assert signature == "3996008cda8ea6980581bc8049110ade3f08ded4f1ff6df3aaf15a83867a2ff9"

    def test_is_a_sha256_hex_digest(self) -> None:
        signature = _sql.trace_signature(CallTraceRow("m", "f", "{}", None, None))

        assert len(signature) == 64
        assert set(signature) <= set("0123456789abcdef")


class TestMergeTraces:
    def test_sums_call_counts(self) -> None:
        trace = CallTrace("m", "f", {"x": INT}, INT)
        traces = [
            trace,
            trace,
            CallTrace("m", "f", {"x": INT}, INT, call_count=5),
            CallTrace("m", "g", {}, None),
        ]

        merged = _writes.merge_traces(traces)

        assert sorted(count for _, count in merged) == [1, 7]

    def test_skips_and_logs_unencodable_traces(self, caplog: pytest.LogCaptureFixture) -> None:
        broken = CallTrace("m", "broken", {"x": TypeRef("builtins", object())}, None)  # type: ignore[arg-type]
        good = CallTrace("m", "good", {}, None)

        with caplog.at_level(logging.ERROR):
            merged = _writes.merge_traces([broken, good])

        assert [encoded.row.qualname for encoded, _ in merged] == ["good"]
        assert "Failed to serialize trace" in caplog.text


class TestCheckKey:
    def test_takes_63_signature_bits(self) -> None:
        assert _writes.check_key_of("ff" * 8 + "00" * 24) == (1 << 63) - 1
        assert _writes.check_key_of("00" * 7 + "02" + "ff" * 24) == 1

    def test_fits_a_signed_bigint(self) -> None:
        signature = _sql.trace_signature(CallTraceRow("m", "f", "{}", None, None))

        check_key = _writes.check_key_of(signature)

        assert 0 <= check_key < 1 << 63

    @pytest.mark.parametrize("signature", ["", "not hex at all", "abc", "zz" * 32])
    def test_other_text_is_hashed(self, signature: str) -> None:
        check_key = _writes.check_key_of(signature)

        assert check_key == _writes.check_key_of(signature)
        assert 0 <= check_key < 1 << 63
        assert check_key != _writes.check_key_of(signature + "x")


def test_qualname_prefix_params() -> None:
    assert _sql.qualname_prefix_params("Cls") == ("Cls", 4, "Cls.")
    assert _sql.qualname_prefix_params("Ünï") == ("Ünï", 4, "Ünï.")


class TestCheckSchemaVersion:
    def test_accepts_current_and_older(self) -> None:
        _sql.check_schema_version(str(_sql.SCHEMA_VERSION), "here")
        _sql.check_schema_version("0", "here")

    def test_rejects_newer(self) -> None:
        with pytest.raises(StoreError, match="Upgrade typetrace"):
            _sql.check_schema_version(str(_sql.SCHEMA_VERSION + 1), "here")

    def test_rejects_non_numbers(self) -> None:
        with pytest.raises(StoreError, match="invalid schema version 'x'"):
            _sql.check_schema_version("x", "here")


def test_utc_clock_strictly_increases() -> None:
    clock = _sql.UtcClock()

    values = [clock.now() for _ in range(10_000)]

    assert all(later > earlier for earlier, later in zip(values, values[1:]))


class TestRetryTransient:
    def test_retries_until_success(self) -> None:
        attempts = []

        def operation() -> str:
            attempts.append(1)
            if len(attempts) < 4:
                raise OSError("busy")
            return "done"

        assert _sql.retry_transient(operation, lambda error: True, "test") == "done"
        assert len(attempts) == 4

    def test_other_errors_are_raised_at_once(self) -> None:
        attempts = []

        def operation() -> None:
            attempts.append(1)
            raise ValueError("broken")

        with pytest.raises(ValueError, match="broken"):
            _sql.retry_transient(operation, lambda error: isinstance(error, OSError), "test")
        assert len(attempts) == 1

    def test_gives_up_after_the_deadline(self) -> None:
        def operation() -> None:
            raise OSError("still busy")

        with pytest.raises(OSError, match="still busy"):
            _sql.retry_transient(operation, lambda error: True, "test", deadline_seconds=0.2)
