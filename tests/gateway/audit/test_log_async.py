"""AuditLog.append_many_async, the pipeline's path: calls of one loop iteration are
queued together, every record is durable before its call returns, and every way it
cannot be (closed, timed out) fails the call closed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway.audit import AuditLog, AuditUnavailable, read_records, verify_chain

from .test_log import event


@pytest.mark.requirement("R12")
def test_appends_of_one_loop_iteration_share_one_commit(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"

    async def main(log: AuditLog) -> list[int]:
        refs = await asyncio.gather(
            *(log.append_many_async([event(i)], timeout=10.0) for i in range(20))
        )
        return [r[0].seq for r in refs]

    with AuditLog(path) as log:
        seqs = asyncio.run(main(log))
        stats = log.stats
    # Queued together under one lock: the writer can only have taken them all at once.
    assert (stats.records, stats.batches) == (20, 1)
    assert sorted(seqs) == list(range(1, 21))
    records = list(read_records(path))
    assert [r["request_id"] for r in records] == [event(i)["request_id"] for i in range(20)]
    assert verify_chain(path).ok


@pytest.mark.requirement("R12")
def test_each_call_gets_its_own_records_in_order(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"

    async def main(log: AuditLog) -> tuple[list[int], list[int]]:
        a, b = await asyncio.gather(
            log.append_many_async([event(1), event(2), event(3)], timeout=10.0),
            log.append_many_async([event(4), event(5)], timeout=10.0),
        )
        return [r.seq for r in a], [r.seq for r in b]

    with AuditLog(path) as log:
        assert asyncio.run(main(log)) == ([1, 2, 3], [4, 5])
    assert verify_chain(path).ok


@pytest.mark.requirement("R12")
def test_closed_before_queued_fails_closed(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)

    async def main() -> None:
        call = asyncio.ensure_future(log.append_many_async([event(1)], timeout=10.0))
        await asyncio.sleep(0)  # the call is staged; its queueing callback runs after us
        log.close()
        with pytest.raises(AuditUnavailable):
            await call

    asyncio.run(main())
    assert list(read_records(path)) == []


@pytest.mark.requirement("R12")
def test_append_to_closed_log_fails_at_once(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    log.close()
    with pytest.raises(AuditUnavailable):
        asyncio.run(log.append_many_async([event(1)], timeout=10.0))


@pytest.mark.requirement("R12")
def test_no_time_left_fails_closed(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"

    async def main(log: AuditLog) -> None:
        # Its timer fires in the iteration that queues it, before the writer can answer.
        with pytest.raises(AuditUnavailable, match="not durable"):
            await log.append_many_async([event(1)], timeout=0.0)
        # The log stays usable for the next call.
        (ref,) = await log.append_many_async([event(2)], timeout=10.0)
        assert ref.seq >= 1

    with AuditLog(path) as log:
        asyncio.run(main(log))
    assert verify_chain(path).ok
