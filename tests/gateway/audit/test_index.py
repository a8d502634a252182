"""The audit index answers exactly what a scan of the chains answers.

Real chains (written by AuditLog), the real policy for the subject listing's
disclosure rule, real SQLite. Equivalence is checked on random trails across
two chain files, refreshed at random points; the failure cases (torn line,
replaced, truncated, edited or vanished chain, concurrent refreshers) each
have a test of their own.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.access.emergency import sealing_list
from gateway.access.subject_usage import Disclosure, decode_cursor, uses_of
from gateway.access.sweep import last_uses
from gateway.access.usage import usage_report
from gateway.audit import AuditLog, read_records
from gateway.audit.index import AuditIndex, IndexStale
from gateway.grants import GrantStore
from gateway.policy.bundle import load_bundle
from gateway.policy.decider import Decider
from gateway.policy.engine import RegorusEngine

POLICIES = Path(__file__).resolve().parents[3] / "policies"
BASE = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)
# Keyed hashes (64 hex digits, stored as bytes) and one that is not (stored as text).
SUBJECTS = ("a" * 64, "0f" * 32, "C" * 64)
DATASETS = ("population.basic", "housing.registry")
EMERGENCIES = ("em-1", "em-2")
GRANTS = ("g-1", "g-2", "g-3")
OWN = frozenset(
    {"subject.usage", "subject.correct", "subject.withdraw", "subject.read", "subject.records"}
)
CALLERS = (
    ("police", "agency", "汶川县公安局", "刑事案件侦查"),  # hidden from the subject by law
    ("police", "agency", "汶川县公安局", "户籍迁移办理"),
    ("civil", "agency", "汶川县民政局", "资格审核"),
    ("counter-1", "counter", "汶川县政务服务中心", "户籍业务办理"),
    ("portal", "public", "公众", "数据主体权利"),
    ("system:sweep", "system", "", "数据申请授权"),
)


@pytest.fixture(scope="module")
def disclosure(tmp_path_factory: pytest.TempPathFactory) -> Disclosure:
    engine = RegorusEngine(load_bundle(POLICIES))
    grants = GrantStore(tmp_path_factory.mktemp("grants") / "grants.json")
    return Disclosure(Decider(engine, grants))


# ----- random trails ------------------------------------------------------------------------

events = st.builds(
    lambda who, action, datasets, outcome, subject, rid, grants, ems: {
        **({"request_id": rid} if rid else {}),
        "caller": who[0],
        "caller_kind": who[1],
        "department": who[2],
        "purpose": who[3],
        "action": action,
        "dataset": ",".join(datasets),
        "outcome": outcome,
        "subject": subject,
        **({"grants": list(grants)} if grants else {}),
        **({"emergencies": list(ems)} if ems else {}),
    },
    st.sampled_from(CALLERS),
    st.sampled_from(("lookup", "verify", "subject.usage")),
    st.lists(st.sampled_from(DATASETS), min_size=1, max_size=2, unique=True),
    st.sampled_from(("OK", "OK", "PERMISSION_DENIED")),
    st.sampled_from(("", *SUBJECTS)),
    # Few request ids: one call about several subjects shares one, and ids
    # repeat across the two chains.
    st.sampled_from(("", "req-1", "req-2", "req-3", "req-4")),
    st.lists(st.sampled_from(GRANTS), max_size=2, unique=True),
    st.lists(st.sampled_from(EMERGENCIES), max_size=1),
)
# (chain 0 or 1, minutes after BASE for the batch's ts (not monotonic), events),
# or ("refresh",), or ("torn", chain): a writer caught mid-append.
steps = st.lists(
    st.one_of(
        st.tuples(
            st.integers(0, 1),
            # Often right on a period's bounds: [since, until) must be kept exactly.
            st.one_of(st.sampled_from((0, 30, 60, 90, 120)), st.integers(0, 180)),
            st.lists(events, min_size=1, max_size=4),
        ),
        st.just(("refresh",)),
        st.tuples(st.just("torn"), st.integers(0, 1)),
    ),
    min_size=1,
    max_size=12,
)


def assert_same(files: list[Path], index: AuditIndex, disclosure: Disclosure) -> None:
    """Every reader answers the same through the index as by scanning."""
    for dataset in DATASETS:
        for since, until in ((BASE, BASE + timedelta(hours=2)), (BASE + timedelta(minutes=30),
                             BASE + timedelta(minutes=90))):  # fmt: skip
            assert usage_report(index, dataset, since, until) == usage_report(
                files, dataset, since, until
            )
    assert last_uses(index) == last_uses(files)
    for em in EMERGENCIES:
        assert sealing_list(index, em) == sealing_list(files, em)
    for subject in SUBJECTS:
        for since in (BASE, BASE + timedelta(minutes=60)):
            args: dict[str, Any] = {
                "since": since,
                "until": BASE + timedelta(hours=2),
                "exclude_actions": OWN,
                "disclosure": disclosure,
                "now": BASE + timedelta(hours=3),
                "page_size": 2,
            }
            cursor_i = cursor_s = None
            while True:  # walk every page: pages and tokens are the same
                page_i, token_i = uses_of(index, subject, cursor=cursor_i, **args)
                page_s, token_s = uses_of(files, subject, cursor=cursor_s, **args)
                assert (page_i, token_i) == (page_s, token_s)
                if not token_i:
                    break
                cursor_i = cursor_s = decode_cursor(token_i)
    for since in (BASE, BASE + timedelta(minutes=45)):
        index.refresh()
        scanned = [
            r for p in files for r in read_records(p) if _at(r["ts"]) >= since
        ]  # what the impact replay kept of a full scan, in the same order
        assert list(index.records_since(since)) == scanned


def _at(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps)
def test_index_answers_what_the_scan_answers(disclosure: Disclosure, plan: list[tuple]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = [root / "audit" / "audit-0.log", root / "audit" / "audit-1.log"]
        files[0].parent.mkdir()
        index = AuditIndex(root / "audit-index.sqlite", lambda: [f for f in files if f.exists()])
        clock: list[datetime] = [BASE]
        logs = [AuditLog(f, clock=lambda: clock[0]) for f in files]
        try:
            for step in plan:
                if step[0] == "refresh":
                    index.refresh()
                    assert_same(files, index, disclosure)
                elif step[0] == "torn":
                    path = files[step[1]]
                    size = path.stat().st_size
                    with open(path, "ab") as f:
                        f.write(b'{"request_id":"req-9","subject":"' + SUBJECTS[0].encode())
                    assert_same(files, index, disclosure)  # the torn piece is no record yet
                    os.truncate(path, size)  # the writer finishes (here: takes it back)
                else:
                    chain, minutes, batch = step
                    clock[0] = BASE + timedelta(minutes=minutes)
                    logs[chain].append_many(batch)
            assert_same(files, index, disclosure)
        finally:
            for log_ in logs:
                log_.close()


# ----- the index's own behaviour -------------------------------------------------------------


def event(i: int, **kw: Any) -> dict[str, Any]:
    return {
        "request_id": f"req-{i}",
        "caller": "civil",
        "caller_kind": "agency",
        "department": "汶川县民政局",
        "purpose": "资格审核",
        "action": "lookup",
        "dataset": DATASETS[0],
        "outcome": "OK",
        "subject": SUBJECTS[i % 3],
        "grants": [GRANTS[i % 3]],
        **kw,
    }


def write(path: Path, n: int, start: int = 0, at: datetime = BASE) -> None:
    with AuditLog(path, clock=lambda: at) as log:
        log.append_many([event(i) for i in range(start, start + n)])


@pytest.fixture
def chain(tmp_path: Path) -> tuple[Path, AuditIndex]:
    path = tmp_path / "audit" / "audit.log"
    path.parent.mkdir()
    return path, AuditIndex(tmp_path / "audit-index.sqlite", lambda: [path])


def test_refresh_reads_only_what_was_appended(chain: tuple[Path, AuditIndex]) -> None:
    path, index = chain
    write(path, 5)
    assert index.refresh().records == 5
    assert index.refresh().records == 0
    write(path, 3, start=5)
    assert index.refresh().records == 3
    [status] = index.status()
    assert (status.records, status.seq, status.pending_bytes, status.broken) == (8, 8, 0, "")
    assert [r["seq"] for r in index.records_since(None)] == list(range(1, 9))


def test_a_torn_last_line_waits_for_the_next_refresh(chain: tuple[Path, AuditIndex]) -> None:
    path, index = chain
    write(path, 2)
    with open(path, "ab") as f:
        f.write(b'{"request_id":"req-2","caller":"civ')  # a writer mid-append (or a crash)
    assert index.refresh().records == 2
    assert index.status()[0].pending_bytes > 0
    # The writer reopening truncates the torn piece (keeping it aside) and goes on.
    write(path, 2, start=2)
    assert index.refresh().records == 2
    assert [r["request_id"] for r in index.records_since(None)] == [f"req-{i}" for i in range(4)]
    assert list(index.records_since(None)) == list(read_records(path))


@pytest.mark.parametrize("change", ["replaced", "truncated", "rewritten at the anchor"])
def test_a_chain_changed_below_the_indexed_point_is_indexed_afresh(
    chain: tuple[Path, AuditIndex], change: str, caplog: pytest.LogCaptureFixture
) -> None:
    path, index = chain
    write(path, 4)
    index.refresh()
    if change == "replaced":  # another chain, longer than the indexed part
        path.unlink()
        with AuditLog(path, clock=lambda: BASE) as log:
            log.append_many([event(i, caller="other") for i in range(6)])
    elif change == "truncated":
        lines = path.read_bytes().splitlines(keepends=True)
        path.write_bytes(b"".join(lines[:2]))
    else:  # the last indexed record edited in place, same length
        lines = path.read_bytes().splitlines(keepends=True)
        lines[-1] = lines[-1].replace(b'"civil"', b'"CIVIL"')
        path.write_bytes(b"".join(lines))
    with caplog.at_level(logging.WARNING, logger="govgw.audit.index"):
        stats = index.refresh()
    assert stats.reindexed == ("audit.log",)
    assert "indexing it from scratch" in caplog.text
    scanned = list(read_records(path))
    if change == "rewritten at the anchor":  # the edit breaks the chain: served up to it
        assert list(index.records_since(None)) == scanned[:3]
        assert index.status()[0].broken.startswith("seq 4: hash mismatch")
    else:
        assert list(index.records_since(None)) == scanned
        assert last_uses(index) == last_uses([path])
    assert index.status()[0].reindexed == 1


def test_a_break_in_new_records_stops_indexing_there(
    chain: tuple[Path, AuditIndex], caplog: pytest.LogCaptureFixture
) -> None:
    path, index = chain
    write(path, 3)
    index.refresh()
    write(path, 3, start=3)
    lines = path.read_bytes().splitlines(keepends=True)
    lines[4] = lines[4].replace(b'"req-4"', b'"req-X"')  # seq 5 edited after the fact
    path.write_bytes(b"".join(lines))
    with caplog.at_level(logging.WARNING, logger="govgw.audit.index"):
        assert index.refresh().records == 1  # seq 4; 5 fails its hash, 6 cannot be trusted
    assert "breaks at seq 5" in caplog.text
    status = index.status()[0]
    assert (status.seq, status.broken) == (4, "seq 5: hash mismatch: the record was edited")
    assert [r["seq"] for r in index.records_since(None)] == [1, 2, 3, 4]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="govgw.audit.index"):
        assert index.refresh().records == 0
    assert caplog.text == ""  # said once, not on every refresh


def test_a_vanished_chain_leaves_no_rows(tmp_path: Path) -> None:
    files = [tmp_path / "audit" / "audit-0.log", tmp_path / "audit" / "audit-1.log"]
    files[0].parent.mkdir()
    write(files[0], 2)
    write(files[1], 3)
    index = AuditIndex(tmp_path / "audit-index.sqlite", lambda: [f for f in files if f.exists()])
    index.refresh()
    files[1].unlink()
    index.refresh()
    assert [s.records for s in index.status()] == [2]
    assert last_uses(index) == last_uses(files[:1])
    with sqlite3.connect(index.path) as db:
        assert db.execute("SELECT count(*) FROM records").fetchone() == (2,)


def test_rebuild_and_a_corrupt_index(chain: tuple[Path, AuditIndex]) -> None:
    path, index = chain
    write(path, 5)
    index.refresh()
    assert index.rebuild().records == 5
    assert len(list(index.records_since(None))) == 5
    # Deleted while in use (derived data): the same object builds it again.
    for suffix in ("", "-wal", "-shm"):
        Path(f"{index.path}{suffix}").unlink(missing_ok=True)
    write(path, 1, start=5)
    assert index.refresh().records == 6
    assert last_uses(index) == last_uses([path])
    assert sealing_list(index, "em-1") == []
    index.path.write_bytes(b"not a database at all" * 100)
    for suffix in ("-wal", "-shm"):
        Path(f"{index.path}{suffix}").unlink(missing_ok=True)
    fresh = AuditIndex(index.path, index.audit_files)
    assert fresh.refresh().records == 6
    assert Path(f"{index.path}.corrupt").exists()


def test_records_since_notices_a_chain_changed_after_the_refresh(
    chain: tuple[Path, AuditIndex],
) -> None:
    path, index = chain
    write(path, 3)
    index.refresh()
    path.unlink()
    write(path, 3, at=BASE + timedelta(days=1))  # another chain; ts differ, lengths too
    lines = path.read_bytes()
    path.write_bytes(b"\n" * 40 + lines)  # nothing where the index points
    with pytest.raises(IndexStale):
        list(index.records_since(None))


def test_what_the_index_holds_is_what_the_audit_holds(chain: tuple[Path, AuditIndex]) -> None:
    path, index = chain
    write(path, 3)
    index.refresh()
    with sqlite3.connect(index.path) as db:
        texts = {
            v
            for table in ("records", "shapes", "record_emergencies", "grant_uses")
            for row in db.execute(f"SELECT * FROM {table}")
            for v in row
            if isinstance(v, str)
        }
    audit_texts: set[str] = set()
    for rec in read_records(path):
        audit_texts |= set(_strings(rec))
        audit_texts |= set(rec["dataset"].split(","))
    assert texts and texts <= audit_texts


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


# ----- several processes refreshing at once --------------------------------------------------


def _refresher(index_path: str, files: list[str], rounds: int) -> None:
    index = AuditIndex(Path(index_path), lambda: [Path(f) for f in files])
    for _ in range(rounds):
        index.refresh()


def test_concurrent_refreshers_never_index_a_record_twice(tmp_path: Path) -> None:
    files = [tmp_path / "audit" / f"audit-{i}.log" for i in range(2)]
    files[0].parent.mkdir()
    index_path = tmp_path / "audit-index.sqlite"
    ctx = multiprocessing.get_context("spawn")
    logs = [AuditLog(f, clock=lambda: BASE) for f in files]
    procs = [
        ctx.Process(target=_refresher, args=(str(index_path), [str(f) for f in files], 40))
        for _ in range(3)
    ]
    try:
        for p in procs:
            p.start()
        for i in range(60):  # the writers go on while the refreshers run
            logs[i % 2].append_many([event(i), event(i, subject="")])
        for p in procs:
            p.join(60)
            assert p.exitcode == 0
    finally:
        for log_ in logs:
            log_.close()
    index = AuditIndex(index_path, lambda: files)
    index.refresh()
    with sqlite3.connect(index_path) as db:
        assert db.execute("SELECT count(*) FROM records").fetchone() == (120,)
        assert db.execute(
            "SELECT count(*) FROM (SELECT DISTINCT file_id, seq FROM records)"
        ).fetchone() == (120,)
    assert list(index.records_since(None)) == [r for f in files for r in read_records(f)]
    assert last_uses(index) == last_uses(files)


def test_the_queries_use_their_indexes(
    chain: tuple[Path, AuditIndex], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No reader walks the whole trail: each query is a search on the index meant for it."""
    path, index = chain
    write(path, 30)
    index.refresh()
    seen: list[str] = []
    connect = index._connect

    def traced(retry: bool = True) -> sqlite3.Connection:
        db = connect(retry)
        db.set_trace_callback(seen.append)
        return db

    monkeypatch.setattr(index, "_connect", traced)
    until = BASE + timedelta(days=1)
    list(index.records_of_subject(SUBJECTS[0], BASE, until))
    list(index.records_of_emergency("em-1"))
    index.usage_counts(DATASETS[0], BASE, until)
    index.last_uses()
    list(index.records_since(BASE))
    plans = {}
    with sqlite3.connect(index.path) as db:
        for sql in seen:
            if sql.startswith("SELECT") and "records r" in sql:
                plan = " | ".join(row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql))
                plans[sql.split("WHERE")[1][:25]] = plan
    assert len(plans) == 3, plans
    for where, plan in plans.items():
        assert "SCAN r" not in plan, plan
        if "r.subject" in where:
            assert (
                "SEARCH r USING INDEX records_subject (subject=? AND ts_us>? AND ts_us<?)" in plan
            )
        elif "e.emergency_id" in where:
            assert "SEARCH e USING PRIMARY KEY (emergency_id=?)" in plan
        else:
            assert "SEARCH r USING INDEX records_shape (shape=? AND ts_us>? AND ts_us<?)" in plan
