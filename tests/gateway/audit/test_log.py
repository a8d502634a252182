"""AuditLog: chain, durability ordering, group commit, fail-closed on real faults."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import json
import logging
import os
import re
import select
import tempfile
import threading
import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum.cn import ric

from gateway.audit import (
    AuditEventRejected,
    AuditLog,
    AuditUnavailable,
    read_records,
    verify_chain,
)
from gateway.audit.log import GENESIS, personal_data_kind, record_hash

TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def event(i: int = 0, **extra: Any) -> dict[str, Any]:
    """Shaped like the pipeline's events: names and keyed hashes, no values."""
    return {
        "request_id": f"req-{i:06d}",
        "caller": "counter-wenchuan",
        "department": "汶川县政务服务中心",
        "action": "VerifyIdentity",
        "dataset": "population",
        "purpose": "counter_check",
        "subject": hashlib.sha256(f"subject-{i}".encode()).hexdigest(),
        "decision": "allow",
        "reason": "",
        "policy_version": "v7",
        "plan_hash": hashlib.sha256(b"plan").hexdigest(),
        "outcome": "OK",
        "latency_ms": 1.25,
        "input": {"fields": ["name"], "predicates": ["name_matches"], "violations": []},
        **extra,
    }


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "audit" / "audit.jsonl"


@pytest.fixture
def audit(log_path: Path):
    log_path.parent.mkdir()
    a = AuditLog(log_path)
    yield a
    a.close()


# -- records and chain --------------------------------------------------------


def test_first_record_carries_chain_fields(audit: AuditLog, log_path: Path) -> None:
    ref = audit.append(event(1))
    assert ref.seq == 1
    assert audit.head == ref
    (rec,) = list(read_records(log_path))
    assert rec["seq"] == 1
    assert rec["prev"] == GENESIS
    assert TS.match(rec["ts"])
    assert rec["hash"] == ref.hash == record_hash(rec)
    body = {k: v for k, v in rec.items() if k != "hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert rec["hash"] == hashlib.sha256(canonical.encode()).hexdigest()
    assert {k: rec[k] for k in event(1)} == event(1)


def test_records_link_and_continue_after_reopen(log_path: Path) -> None:
    log_path.parent.mkdir()
    with AuditLog(log_path) as a:
        first = [a.append(event(i)) for i in range(3)]
    with AuditLog(log_path) as a:
        assert a.head == first[-1]
        more = a.append_many([event(i) for i in range(3, 6)])
    recs = list(read_records(log_path))
    assert [r["seq"] for r in recs] == [1, 2, 3, 4, 5, 6]
    assert [r.seq for r in first + more] == [1, 2, 3, 4, 5, 6]
    for before, after in itertools.pairwise(recs):
        assert after["prev"] == before["hash"]
    assert verify_chain(log_path).ok


def test_concurrent_appends_form_one_contiguous_chain(audit: AuditLog, log_path: Path) -> None:
    threads, per = 8, 60
    got: list[list[int]] = [[] for _ in range(threads)]
    start = threading.Barrier(threads)

    def worker(t: int) -> None:
        start.wait()
        for i in range(per):
            got[t].append(audit.append(event(t * per + i)).seq)

    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    seqs = sorted(s for g in got for s in g)
    assert seqs == list(range(1, threads * per + 1))
    for g in got:  # each thread's own records are in its call order
        assert g == sorted(g)
    report = verify_chain(log_path)
    assert report.ok and report.records == threads * per
    assert {r["request_id"] for r in read_records(log_path)} == {
        event(i)["request_id"] for i in range(threads * per)
    }


@pytest.fixture(scope="module")
def shared_log(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("shared") / "audit.jsonl"
    a = AuditLog(path)
    yield a, path
    a.close()


# Text without digits (so no chance phone numbers) and without lone surrogates.
plain_text = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="0123456789"), max_size=12
)


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(
        # Keys around the log's own fields test the sorted splice of prev/seq/ts.
        st.one_of(
            st.sampled_from(
                ["a", "pre", "prev0", "prevz", "s", "se", "seq0", "sz", "t", "tz", "u"]
            ),
            plain_text,
        ).filter(lambda k: k not in {"prev", "seq", "ts", "hash"}),
        st.recursive(
            st.none()
            | st.booleans()
            | st.integers(-(10**6), 10**6)
            | st.floats(allow_nan=False, allow_infinity=False)
            | plain_text,
            lambda inner: (
                st.lists(inner, max_size=3) | st.dictionaries(plain_text, inner, max_size=3)
            ),
            max_leaves=8,
        ),
        max_size=8,
    )
)
def test_any_plain_json_event_round_trips_with_a_valid_hash(shared_log, ev: dict[str, Any]) -> None:
    a, path = shared_log
    ref = a.append(ev)
    last = json.loads(lines_of(path)[ref.seq - 1])
    assert last["hash"] == ref.hash == record_hash(last)
    assert {k: v for k, v in last.items() if k not in {"seq", "ts", "prev", "hash"}} == ev
    assert verify_chain(path).ok


# -- durability and group commit ----------------------------------------------


def test_append_returns_only_after_the_record_is_on_file(audit: AuditLog, log_path: Path) -> None:
    def worker(t: int) -> None:
        for i in range(15):
            ref = audit.append(event(t * 100 + i))
            # Everything up to and including this record is in the file now.
            lines = lines_of(log_path)
            assert len(lines) >= ref.seq
            assert json.loads(lines[ref.seq - 1])["hash"] == ref.hash
            assert audit.stats.batches >= 1

    pool = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    assert os.stat(log_path).st_size == sum(len(x) for x in lines_of(log_path))
    assert audit.stats.records == 60


def test_append_many_is_one_fsync(audit: AuditLog) -> None:
    refs = audit.append_many([event(i) for i in range(100)])
    assert [r.seq for r in refs] == list(range(1, 101))
    s = audit.stats
    assert (s.records, s.batches, s.largest_batch) == (100, 1, 100)


def test_batches_respect_max_batch(log_path: Path) -> None:
    log_path.parent.mkdir()
    with AuditLog(log_path, max_batch=16) as a:
        a.append_many([event(i) for i in range(100)])
        s = a.stats
    assert (s.records, s.batches, s.largest_batch) == (100, 7, 16)
    assert verify_chain(log_path).records == 100


def test_concurrent_appends_share_fsyncs(audit: AuditLog) -> None:
    threads, per = 16, 40
    start = threading.Barrier(threads)

    def worker() -> None:
        start.wait()
        for i in range(per):
            audit.append(event(i))

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    s = audit.stats
    assert s.records == threads * per
    assert s.batches < s.records  # group commit: several records per fsync
    assert s.largest_batch > 1


# -- what goes in -------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ({"seq": 5}, "chain field"),
        ({1: "a"}, "not plain JSON"),
        ({"hash": "x"}, "chain field"),
        ({"when": date(2024, 1, 1)}, "not plain JSON"),
        ({"x": float("nan")}, "not plain JSON"),
        ({"x": "\ud800"}, "not plain JSON"),
        ({"input": {1: "a"}}, "keys must be strings"),
        ({"input": [{"a": {2: "b"}}]}, "keys must be strings"),
    ],
)
def test_unfit_events_are_rejected_without_harming_the_log(
    audit: AuditLog, log_path: Path, bad: dict[str, Any], why: str
) -> None:
    audit.append(event(1))
    with pytest.raises(AuditEventRejected, match=why) as info:
        audit.append({**event(2), **bad})
    assert isinstance(info.value, AuditUnavailable)  # the pipeline fails the call closed
    assert audit.append(event(3)).seq == 2  # no gap, log still healthy
    assert verify_chain(log_path).ok


region_codes = st.sampled_from(["513221", "513224", "110101", "440305", "510104"])
birth_dates = st.dates(min_value=date(1930, 1, 1), max_value=date(2020, 12, 31))


@st.composite
def id_numbers(draw: st.DrawFn) -> str:
    body = (
        draw(region_codes)
        + draw(birth_dates).strftime("%Y%m%d")
        + draw(st.from_regex(r"\A[0-9]{3}\Z"))
    )
    return body + ric.calc_check_digit(body + "0")


mobiles = st.from_regex(r"\A1[3-9][0-9]{9}\Z")


@settings(max_examples=50, deadline=None)
@given(key=st.one_of(id_numbers(), mobiles), pre=st.sampled_from(["", " ", "姓名 ", "k=", "/"]))
def test_raw_id_numbers_and_phones_never_enter_the_trail(key: str, pre: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "a.jsonl"
        with AuditLog(path) as a:
            with pytest.raises(AuditEventRejected) as info:
                a.append(event(1, input={"fields": [pre + key]}))
            assert key not in str(info.value)  # name the field, not the value
            assert "input" in str(info.value)
            with pytest.raises(AuditEventRejected) as info:
                a.append(event(1, input={pre + key: "name"}))  # as a key, too
            assert key not in str(info.value)
        assert path.read_bytes() == b""


@settings(max_examples=200)
@given(st.binary(min_size=32, max_size=32))
def test_keyed_hashes_and_request_ids_are_not_mistaken_for_personal_data(raw: bytes) -> None:
    text = json.dumps({"subject": raw.hex(), "request_id": raw[:16].hex(), "n": 12}).encode()
    assert personal_data_kind(text) is None


def test_numbers_are_metrics_not_phone_numbers(audit: AuditLog) -> None:
    # Only text is scanned: a large count or duration is not personal data.
    assert audit.append(event(1, bytes_read=13800000000, latency_ms=13000000000.0)).seq == 1


def test_an_event_is_snapshotted_at_append(audit: AuditLog, log_path: Path) -> None:
    ev = event(1)
    audit.append(ev)
    ev["input"]["fields"].append("later")  # mutating afterwards changes nothing recorded
    assert next(read_records(log_path))["input"]["fields"] == ["name"]


# -- crash leftovers on open --------------------------------------------------


def test_torn_last_line_is_truncated_on_open_and_kept_aside(
    log_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log_path.parent.mkdir()
    with AuditLog(log_path) as a:
        a.append_many([event(i) for i in range(3)])
    good = log_path.read_bytes()
    torn = b'{"action":"VerifyIdentity","caller":"counter-w'
    log_path.write_bytes(good + torn)
    assert verify_chain(log_path).torn_tail
    with caplog.at_level(logging.WARNING, logger="govgw.audit"), AuditLog(log_path) as a:
        assert log_path.read_bytes() == good
        assert a.append(event(9)).seq == 4
    assert any("torn" in r.getMessage() for r in caplog.records)
    (aside,) = log_path.parent.glob("audit.jsonl.torn-*")
    assert aside.read_bytes() == torn
    report = verify_chain(log_path)
    assert report.ok and report.records == 4 and not report.torn_tail


def test_unparsable_last_line_is_truncated_on_open(log_path: Path) -> None:
    log_path.parent.mkdir()
    with AuditLog(log_path) as a:
        a.append_many([event(i) for i in range(2)])
    good = log_path.read_bytes()
    log_path.write_bytes(good + b"\0" * 300 + b"\n")  # zero-filled block after power loss
    with AuditLog(log_path) as a:
        assert log_path.read_bytes() == good
        assert a.append(event(5)).seq == 3
    assert verify_chain(log_path).ok


def test_torn_only_line_leaves_an_empty_log(log_path: Path) -> None:
    log_path.parent.mkdir()
    log_path.write_bytes(b'{"seq":1,"pr')
    with AuditLog(log_path) as a:
        assert a.head is None
        assert a.append(event()).seq == 1


def test_open_refuses_to_continue_from_an_altered_last_record(log_path: Path) -> None:
    log_path.parent.mkdir()
    with AuditLog(log_path) as a:
        a.append_many([event(i) for i in range(3)])
    log_path.write_bytes(
        log_path.read_bytes().replace(b'"decision":"allow"', b'"decision":"deny!"')
    )
    with pytest.raises(AuditUnavailable, match="seq 3"):
        AuditLog(log_path)


def test_one_writer_per_file(audit: AuditLog, log_path: Path) -> None:
    with pytest.raises(AuditUnavailable, match="another process"):
        AuditLog(log_path)


# -- failing closed on real faults ---------------------------------------------


def test_full_disk_fails_the_append_and_every_later_one(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.symlink_to("/dev/full")  # writes fail with ENOSPC
    a = AuditLog(path)
    try:
        with pytest.raises(AuditUnavailable, match=errno.errorcode[errno.ENOSPC]):
            a.append(event(1))
        started = time.monotonic()
        with pytest.raises(AuditUnavailable, match="failed earlier"):
            a.append(event(2))
        assert time.monotonic() - started < 0.5  # at once, not after a wait
        assert a.head is None
        assert a.stats.failed and a.stats.records == 0
    finally:
        a.close()


def test_closed_log_refuses_appends(log_path: Path) -> None:
    log_path.parent.mkdir()
    a = AuditLog(log_path)
    a.append(event())
    a.close()
    a.close()  # idempotent
    with pytest.raises(AuditUnavailable, match="closed"):
        a.append(event())


def test_stalled_storage_times_out_and_withdraws_queued_records(tmp_path: Path) -> None:
    # A FIFO nobody reads: the writer's write blocks once the pipe buffer is
    # full, as on a hung network disk.
    path = tmp_path / "audit.fifo"
    os.mkfifo(path)
    a = AuditLog(path)
    try:
        big = event(1, input={"fields": ["x" * 200_000]})
        with pytest.raises(AuditUnavailable, match="not durable within"):
            a.append(big, timeout=1.0)
        with pytest.raises(AuditUnavailable, match="not durable within"):
            a.append(event(2), timeout=0.2)  # queued behind the stalled write
        # Drain the pipe: the stalled write completes, then fsync on a FIFO fails.
        reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        data = b""
        deadline = time.monotonic() + 10
        while not data.endswith(b"\n") and time.monotonic() < deadline:
            select.select([reader], [], [], 0.1)
            with contextlib.suppress(BlockingIOError):
                data += os.read(reader, 1 << 16)
        os.close(reader)
        rec = json.loads(data)
        assert rec["seq"] == 1  # only the record already taken; the queued one was withdrawn
        with pytest.raises(AuditUnavailable):
            a.append(event(3), timeout=5)
    finally:
        a.close()


def test_read_records_stops_at_torn_tail_and_names_bad_lines(log_path: Path) -> None:
    log_path.parent.mkdir()
    with AuditLog(log_path) as a:
        a.append_many([event(i) for i in range(3)])
    lines = lines_of(log_path)
    log_path.write_bytes(b"".join(lines) + b'{"torn')
    assert [r["seq"] for r in read_records(log_path)] == [1, 2, 3]
    log_path.write_bytes(lines[0] + b"garbage\n" + lines[2])
    with pytest.raises(ValueError, match="line 2"):
        list(read_records(log_path))


def test_guard_judges_values_that_make_stdnum_raise() -> None:
    from tests.gateway.test_subjects import ID_440909, USCC_440909

    # Neither crashes the guard. Both pass an ID number's check digit and date (the
    # USCC's reads 0002-06-05): the guard does not consult the region table, and a raw
    # USCC has no place in an audit record either.
    assert personal_data_kind(json.dumps({"x": ID_440909}).encode()) == "an ID number"
    assert personal_data_kind(json.dumps({"x": USCC_440909}).encode()) == "an ID number"
