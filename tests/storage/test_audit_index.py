"""The audit index on both backends: one contract (it answers what a scan of the
chains answers; torn lines, breaks, truncated and vanished chains), and on PostgreSQL
what only a shared index does: several nodes' chains in one index, another node's
chain read from a shared directory, and `audit verify` of every node's chains."""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from gateway.access.emergency import sealing_list
from gateway.access.subject_usage import Disclosure, decode_cursor, uses_of
from gateway.access.sweep import last_uses
from gateway.access.usage import usage_report
from gateway.audit import AuditLog, read_records
from gateway.audit.index import AuditIndex, BaseAuditIndex
from gateway.audit.nodes import Node, node_id
from gateway.audit.shared_index import PeriodicIndexer, SharedAuditIndex
from gateway.audit.verify_nodes import NOT_REACHABLE, verify_nodes
from gateway.grants import GrantStore
from gateway.policy.bundle import load_bundle
from gateway.policy.decider import Decider
from gateway.policy.engine import RegorusEngine
from gateway.storage import Storage, StorageUnavailable, open_storage
from tests.gateway.audit.test_index import (
    BASE,
    DATASETS,
    EMERGENCIES,
    OWN,
    POLICIES,
    SUBJECTS,
    steps,
    write,
)

MakeIndex = Callable[[Path, Callable[[], list[Path]]], BaseAuditIndex]


@pytest.fixture(scope="module")
def disclosure(tmp_path_factory: pytest.TempPathFactory) -> Disclosure:
    engine = RegorusEngine(load_bundle(POLICIES))
    return Disclosure(Decider(engine, GrantStore(tmp_path_factory.mktemp("grants") / "g.json")))


@pytest.fixture(scope="module")
def pg_storage(pg_server: Any) -> Iterator[Storage]:
    """One database for the module's PostgreSQL cases; each case empties the index."""
    url = pg_server.create_database()
    storage = open_storage(url, Path(tempfile.mkdtemp()))
    try:
        yield storage
    finally:
        storage.close()
        pg_server.drop_database(url)


def _empty(storage: Storage) -> None:
    with storage.transaction() as db:
        db.execute("TRUNCATE audit_files, audit_nodes CASCADE")


@pytest.fixture(params=["sqlite", "postgresql"])
def make_index(request: pytest.FixtureRequest) -> MakeIndex:
    """An index of the chains `files()` lists in `root`/audit, on one backend."""
    if request.param == "sqlite":
        return lambda root, files: AuditIndex(root / "audit-index.sqlite", files)
    storage = request.getfixturevalue("pg_storage")
    _empty(storage)

    def shared(root: Path, files: Callable[[], list[Path]]) -> BaseAuditIndex:
        _empty(storage)  # a fresh index, as a fresh SQLite file is
        return SharedAuditIndex(storage, node_id(root), root / "audit", files)

    return shared


def assert_same(files: list[Path], index: BaseAuditIndex, disclosure: Disclosure) -> None:
    """Every cross-node reader answers the same through the index as by scanning."""
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
        args: dict[str, Any] = {
            "since": BASE, "until": BASE + timedelta(hours=2), "exclude_actions": OWN,
            "disclosure": disclosure, "now": BASE + timedelta(hours=3), "page_size": 2,
        }  # fmt: skip
        cursor_i = cursor_s = None
        while True:  # walk every page: pages and tokens are the same
            page_i, token_i = uses_of(index, subject, cursor=cursor_i, **args)
            page_s, token_s = uses_of(files, subject, cursor=cursor_s, **args)
            assert (page_i, token_i) == (page_s, token_s)
            if not token_i:
                break
            cursor_i = cursor_s = decode_cursor(token_i)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(plan=steps)
def test_index_answers_what_the_scan_answers(
    make_index: MakeIndex, disclosure: Disclosure, plan: list[tuple]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = [root / "audit" / "audit-0.log", root / "audit" / "audit-1.log"]
        files[0].parent.mkdir()
        index = make_index(root, lambda: [f for f in files if f.exists()])
        clock = [BASE]
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
                    index.refresh()
                    assert_same(files, index, disclosure)  # the torn piece is no record yet
                    os.truncate(path, size)
                else:
                    chain, minutes, batch = step
                    clock[0] = BASE + timedelta(minutes=minutes)
                    logs[chain].append_many(batch)
            index.refresh()
            assert_same(files, index, disclosure)
        finally:
            for log_ in logs:
                log_.close()


@pytest.fixture
def chain(make_index: MakeIndex, tmp_path: Path) -> tuple[Path, Any]:
    path = tmp_path / "audit" / "audit.log"
    path.parent.mkdir()
    return path, make_index(tmp_path, lambda: [path] if path.exists() else [])


def test_refresh_reads_only_what_was_appended_and_a_torn_line_waits(chain) -> None:
    path, index = chain
    write(path, 5)
    assert index.refresh().records == 5
    assert index.refresh().records == 0
    with open(path, "ab") as f:
        f.write(b'{"request_id":"req-5","caller":"civ')  # a writer mid-append (or a crash)
    assert index.refresh().records == 0
    write(path, 3, start=5)  # the writer reopening truncates the torn piece
    assert index.refresh().records == 3
    [status] = index.status()
    assert (status.records, status.seq, status.pending_bytes, status.broken) == (8, 8, 0, "")
    assert last_uses(index) == last_uses([path])


def test_a_break_stops_indexing_and_a_truncated_chain_is_indexed_afresh(
    chain, caplog: pytest.LogCaptureFixture
) -> None:
    path, index = chain
    write(path, 6)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:4]) + lines[4].replace(b'"req-4"', b'"req-X"') + lines[5])
    with caplog.at_level(logging.WARNING, logger="govgw.audit.index"):
        assert index.refresh().records == 4  # seq 5 fails its hash, 6 cannot be trusted
    assert "breaks at seq 5" in caplog.text
    assert index.status()[0].broken == "seq 5: hash mismatch: the record was edited"
    path.write_bytes(b"".join(lines[:2]))  # cut below the indexed point
    with caplog.at_level(logging.WARNING, logger="govgw.audit.index"):
        assert index.refresh().reindexed == ("audit.log",)
    assert "indexing it from scratch" in caplog.text
    status = index.status()[0]
    assert (status.records, status.seq, status.broken, status.reindexed) == (2, 2, "", 1)
    assert usage_report(index, DATASETS[0], BASE, BASE + timedelta(days=1)).calls == 2


def test_a_vanished_chain_leaves_no_rows(chain) -> None:
    path, index = chain
    write(path, 3)
    index.refresh()
    assert last_uses(index)
    path.unlink()
    index.refresh()
    assert last_uses(index) == {}
    assert usage_report(index, DATASETS[0], BASE, BASE + timedelta(days=1)).calls == 0


# ----- PostgreSQL: the nodes of one deployment ----------------------------------------------


def _node(storage: Storage, root: Path) -> SharedAuditIndex:
    audit = root / "audit"
    audit.mkdir(parents=True, exist_ok=True)
    index = SharedAuditIndex(
        storage, node_id(root), audit, lambda: sorted(audit.glob("audit*.log"))
    )
    index.register()
    return index


@pytest.mark.requirement("R5", "R8", "R17")
def test_every_node_reads_every_nodes_calls(
    pg_storage: Storage, disclosure: Disclosure, tmp_path: Path
) -> None:
    _empty(pg_storage)
    a, b = _node(pg_storage, tmp_path / "a"), _node(pg_storage, tmp_path / "b")
    # Both nodes' chains are named alike: keyed by node, they stay apart.
    write(a.audit_dir / "audit.log", 2)
    write(b.audit_dir / "audit.log", 3, start=2)
    b.refresh()
    files = [a.audit_dir / "audit.log", b.audit_dir / "audit.log"]
    a.refresh()
    until = BASE + timedelta(days=1)
    assert usage_report(a, DATASETS[0], BASE, until) == usage_report(
        files, DATASETS[0], BASE, until
    )
    uses, _ = uses_of(
        a, SUBJECTS[2], since=BASE, until=until, exclude_actions=OWN, disclosure=disclosure,
        now=until,
    )  # fmt: skip
    assert sorted(u.request_id for u in uses) == ["req-2"]  # written by node b
    assert last_uses(a) == last_uses(files) == last_uses(b)
    chains = {name for name, _ in a.records_of_subject(SUBJECTS[2], BASE, until)}
    assert chains == {f"{b.node}/audit.log"}


def test_a_reachable_nodes_chain_is_indexed_by_any_reader(
    pg_storage: Storage, tmp_path: Path
) -> None:
    _empty(pg_storage)
    a, b = _node(pg_storage, tmp_path / "a"), _node(pg_storage, tmp_path / "b")
    write(b.audit_dir / "audit.log", 4)  # b acknowledged these and went down before indexing
    a.refresh()
    assert usage_report(a, DATASETS[0], BASE, BASE + timedelta(days=1)).calls == 4
    # A directory at b's path that is not b's (another host's, a copy) is never read as b's.
    (tmp_path / "b" / "node-id").write_text("node-000000000000\n")
    write(b.audit_dir / "audit.log", 2, start=4)
    a.refresh()
    assert usage_report(a, DATASETS[0], BASE, BASE + timedelta(days=1)).calls == 4


@pytest.mark.requirement("R12")
def test_verify_checks_every_nodes_chain_and_names_node_file_and_seq(
    pg_storage: Storage, tmp_path: Path
) -> None:
    _empty(pg_storage)
    a, b = _node(pg_storage, tmp_path / "a"), _node(pg_storage, tmp_path / "b")
    c = _node(pg_storage, tmp_path / "c")
    for i, index in enumerate((a, b, c)):
        write(index.audit_dir / "audit.log", 5, start=10 * i)
        index.refresh()
    this = Node(a.node, "", str(a.audit_dir), "")
    (tmp_path / "c" / "node-id").unlink()  # c's directory is not reachable from here
    report = verify_nodes(pg_storage, this)
    assert report["ok"], report
    by_node = {f["node"]: f for f in report["files"]}
    assert by_node[b.node]["reachable"] and by_node[b.node]["head_seq"] == 5
    assert not by_node[c.node]["reachable"] and by_node[c.node]["problem"] == NOT_REACHABLE
    # b's chain cut short: it verifies by itself, not against the head the index recorded.
    lines = (b.audit_dir / "audit.log").read_bytes().splitlines(keepends=True)
    (b.audit_dir / "audit.log").write_bytes(b"".join(lines[:3]))
    report = verify_nodes(pg_storage, this)
    assert not report["ok"] and report["first_broken_seq"] == 4
    assert report["problem"].startswith(f"{b.node} audit.log: the index recorded head seq 5")
    b.refresh()  # b re-indexes its shorter chain; the head it lost stays the witness
    report = verify_nodes(pg_storage, this)
    assert not report["ok"] and "the index lost its head: seq 5" in report["problem"]
    b.rebuild()  # the operator's `govgw audit reindex` on b, once the cut is accounted for
    assert verify_nodes(pg_storage, this)["ok"]
    # b's chain edited: named by node, file and seq.
    lines = (b.audit_dir / "audit.log").read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b'"civil"', b'"CIVIL"')
    (b.audit_dir / "audit.log").write_bytes(b"".join(lines))
    report = verify_nodes(pg_storage, this)
    assert not report["ok"] and report["first_broken_seq"] == 2
    assert report["problem"] == f"{b.node} audit.log: hash mismatch: the record was edited"
    assert [r["seq"] for r in read_records(a.audit_dir / "audit.log")] == [1, 2, 3, 4, 5]


def test_a_data_directory_keeps_one_node_id(tmp_path: Path) -> None:
    assert node_id(tmp_path, create=False) == ""
    made = node_id(tmp_path)
    assert made.startswith("node-") and node_id(tmp_path) == made  # stable
    assert oct((tmp_path / "node-id").stat().st_mode & 0o777) == "0o600"
    (tmp_path / "node-id").write_text("../../etc\n")
    with pytest.raises(ValueError, match="not a node id"):
        node_id(tmp_path)


def test_verify_names_a_chain_whose_file_is_gone(pg_storage: Storage, tmp_path: Path) -> None:
    _empty(pg_storage)
    a, b = _node(pg_storage, tmp_path / "a"), _node(pg_storage, tmp_path / "b")
    write(b.audit_dir / "audit-1.log", 3)
    b.refresh()
    (b.audit_dir / "audit-1.log").unlink()  # b's directory is reachable; its chain is not there
    report = verify_nodes(pg_storage, Node(a.node, "", str(a.audit_dir), ""))
    assert not report["ok"] and report["first_broken_seq"] == 4
    assert report["problem"] == (
        f"{b.node} audit-1.log: the chain file is gone, yet the index holds it up to seq 3"
    )
    b.refresh()  # b's rows are dropped (never served), the head it lost is kept
    assert usage_report(b, DATASETS[0], BASE, BASE + timedelta(days=1)).calls == 0
    for _ in range(2):  # and stays, refresh after refresh
        report = verify_nodes(pg_storage, Node(a.node, "", str(a.audit_dir), ""))
        assert report["problem"].startswith(f"{b.node} audit-1.log: the index lost its head: seq 3")
        b.refresh()
    b.rebuild()  # `govgw audit reindex` on b: accounted for
    assert verify_nodes(pg_storage, Node(a.node, "", str(a.audit_dir), ""))["ok"]


def test_a_lost_database_is_unavailable_not_internal(pg_server: Any, tmp_path: Path) -> None:
    url = pg_server.create_database()
    storage = open_storage(url, tmp_path)
    try:
        index = _node(storage, tmp_path / "a")
        write(index.audit_dir / "audit.log", 2)
        storage.pool.close()  # the database is gone for this process
        # The storage's error, which the pipeline answers UNAVAILABLE DATABASE_UNAVAILABLE
        # and a command prints as its error (an OSError), never a traceback.
        with pytest.raises(StorageUnavailable) as caught:
            usage_report(index, DATASETS[0], BASE, BASE + timedelta(days=1))
        assert isinstance(caught.value, OSError)
    finally:
        storage.close()
        pg_server.drop_database(url)


def test_a_serving_node_keeps_its_chains_indexed(pg_storage: Storage, tmp_path: Path) -> None:
    """No reader on the node: its periodic indexing alone brings its calls to the others."""
    _empty(pg_storage)
    b = _node(pg_storage, tmp_path / "b")
    write(b.audit_dir / "audit.log", 3)
    indexer = PeriodicIndexer(b, interval_s=0.05).start()
    try:
        deadline = time.monotonic() + 30  # a bound for a loaded machine, not the requirement
        while b.status()[0].records < 3:
            assert time.monotonic() < deadline, b.status()
            time.sleep(0.05)
    finally:
        indexer.stop()
    assert b.status()[0].records == 3
