"""Group commit with siblings (`commit_delay_s`, `govgw serve --audit-commit-delay-ms`):
while other calls are in flight, a loop holds its staged records for them, at most
the delay, so one fsync covers calls that finish apart; a lone call is never held;
a held record is still durable before its call returns, and one whose call times
out while held is never written."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway.audit import AuditLog, AuditUnavailable, read_records, verify_chain

from .test_log import event

pytestmark = pytest.mark.requirement("R12")


def log_with(path: Path, delay_s: float, in_flight: int) -> AuditLog:
    log = AuditLog(path, commit_delay_s=delay_s)
    log.calls_in_flight = lambda: in_flight
    return log


async def apart(log: AuditLog, n: int, gap_s: float) -> list[int]:
    """n calls that each append one record, `gap_s` after the one before."""

    async def call(i: int) -> int:
        await asyncio.sleep(i * gap_s)
        refs = await log.append_many_async([event(i)], timeout=10.0)
        return refs[0].seq

    return await asyncio.gather(*(call(i) for i in range(n)))


def test_calls_in_flight_share_one_commit_though_they_finish_apart(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with log_with(path, delay_s=0.5, in_flight=3) as log:
        seqs = asyncio.run(apart(log, 3, gap_s=0.05))
        stats = log.stats
    assert (stats.records, stats.batches) == (3, 1)
    assert sorted(seqs) == [1, 2, 3]
    assert verify_chain(path).ok


def test_without_a_delay_calls_that_finish_apart_commit_apart(tmp_path: Path) -> None:
    """The control: the same calls, each its own fsync."""
    path = tmp_path / "audit.jsonl"
    with log_with(path, delay_s=0.0, in_flight=3) as log:
        asyncio.run(apart(log, 3, gap_s=0.05))
        stats = log.stats
    assert (stats.records, stats.batches) == (3, 3)


def test_a_lone_call_is_not_held(tmp_path: Path) -> None:
    """No sibling in flight: nothing to wait for, whatever the delay."""
    path = tmp_path / "audit.jsonl"

    async def main(log: AuditLog) -> None:
        # Held, it would take the delay (60 s): far beyond this bound.
        await asyncio.wait_for(log.append_many_async([event(1)], timeout=90.0), 10.0)

    with log_with(path, delay_s=60.0, in_flight=1) as log:
        asyncio.run(main(log))
    assert [r["request_id"] for r in read_records(path)] == [event(1)["request_id"]]


def test_a_held_record_is_durable_when_its_call_returns(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"

    async def main(log: AuditLog) -> list[str]:
        await log.append_many_async([event(7)], timeout=10.0)
        return [r["request_id"] for r in read_records(path)]  # read at once

    with log_with(path, delay_s=0.2, in_flight=2) as log:
        assert asyncio.run(main(log)) == [event(7)["request_id"]]


def test_a_call_that_times_out_while_held_fails_closed_and_is_not_written(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.jsonl"

    async def main(log: AuditLog) -> None:
        with pytest.raises(AuditUnavailable, match="not durable within"):
            await log.append_many_async([event(1)], timeout=0.05)
        await asyncio.sleep(0.6)  # the hold ends: the cancelled record is skipped
        await log.append_many_async([event(2)], timeout=10.0)

    with log_with(path, delay_s=0.3, in_flight=2) as log:
        asyncio.run(main(log))
    assert [r["request_id"] for r in read_records(path)] == [event(2)["request_id"]]
    assert verify_chain(path).ok


def test_the_serve_flag_sets_the_delay_and_refuses_one_out_of_range(tmp_path: Path) -> None:
    from clients.cli import _serve_config, build_parser
    from gateway.config import ConfigError

    parser = build_parser()
    args = parser.parse_args(["serve", "--data-dir", str(tmp_path)])
    assert _serve_config(args).audit_commit_delay_s == pytest.approx(0.004)
    args = parser.parse_args(["serve", "--data-dir", str(tmp_path), "--audit-commit-delay-ms", "0"])
    assert _serve_config(args).audit_commit_delay_s == 0
    args = parser.parse_args(
        ["serve", "--data-dir", str(tmp_path), "--audit-commit-delay-ms", "250"]
    )
    with pytest.raises(ConfigError, match="audit-commit-delay-ms: 250 is not between 0 and 100"):
        _serve_config(args).validate()
