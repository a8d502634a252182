"""Faults: redis-server stopped mid-load, then started again.

Calls that need the shared state fail closed (UNAVAILABLE STATE_UNAVAILABLE,
never INTERNAL, never an answer without its audit record), nothing crashes,
and service resumes by itself within 5 s of Redis coming back.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from clients.sdk import GovgwClientError
from gateway.limits import LimitsConfig, SubjectLimits, Tier
from gateway.oracle import OracleConfig
from tests.gateway.state.harness import start_guarded
from tests.gateway.state.redis_server import RedisServer
from tests.support import Harness, make_data_dir

PURPOSE = "户籍业务办理"
RESUME_BOUND_S = 5.0


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Harness, RedisServer]]:
    redis_server = RedisServer(tmp_path / "redis").start()
    keys, demo = make_data_dir(tmp_path / "data", persons=40, entities=10)
    h = start_guarded(
        tmp_path / "data",
        keys,
        demo,
        redis_url=redis_server.url,
        limits=LimitsConfig(
            tiers={"counter": Tier(100_000), "agency": Tier(100_000), "public": Tier(100)},
            subject=SubjectLimits(calls=100_000, callers=100),
        ),
        oracle=OracleConfig(min_answers=100_000),
    )
    yield h, redis_server
    h.stop()
    redis_server.stop()


class Load:
    """Several client threads verifying in a loop; every outcome is tallied."""

    def __init__(self, h: Harness, threads: int = 4) -> None:
        self.h = h
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.log: list[tuple[float, str, str]] = []  # (time, outcome, request id)
        self.threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def _run(self) -> None:
        adult = self.h.demo["adult_resident"]
        gw = self.h.client("counter-wenchuan", timeout_s=5)
        while not self.stop.is_set():
            try:
                r = gw.verify_identity(adult["name"], adult["id_number"], purpose=PURPOSE)
                outcome, rid = ("MATCH" if r.matched else "NO_MATCH"), r.request_id
            except GovgwClientError as e:
                outcome, rid = f"{e.code.name} {e.reason}", e.request_id
            with self.lock:
                self.log.append((time.monotonic(), outcome, rid))
            time.sleep(0.005)

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(10)

    def since(self, t0: float) -> list[tuple[float, str, str]]:
        with self.lock:
            return [e for e in self.log if e[0] >= t0]


def test_redis_stopped_mid_load_fails_closed_and_recovers(setup) -> None:
    h, redis_server = setup
    with Load(h) as load:
        time.sleep(0.5)
        assert any(o == "MATCH" for _, o, _ in load.since(0))
        redis_server.stop()  # mid-load
        down_at = time.monotonic()
        time.sleep(1.5)
        during = Counter(o for t, o, _ in load.since(down_at + 0.2))
        assert during, "no call finished while Redis was down"
        assert set(during) == {"UNAVAILABLE STATE_UNAVAILABLE"}, during
        assert h.server._thread.is_alive()  # nothing crashed
        redis_server.start()
        up_at = time.monotonic()
        deadline = up_at + RESUME_BOUND_S
        while time.monotonic() < deadline:
            if any(o == "MATCH" for _, o, _ in load.since(up_at)):
                break
            time.sleep(0.05)
        resumed = [t for t, o, _ in load.since(up_at) if o == "MATCH"]
        assert resumed, f"not resumed within {RESUME_BOUND_S} s of Redis coming back"
        resumed_after = resumed[0] - up_at
        print(f"fail-closed calls while down: {sum(during.values())}; "
              f"resumed {resumed_after:.2f} s after Redis came back")  # fmt: skip
        time.sleep(0.3)
    outcomes = Counter(o for _, o, _ in load.log)
    # Never INTERNAL, never anything but an answer or the fail-closed refusal.
    assert set(outcomes) <= {"MATCH", "UNAVAILABLE STATE_UNAVAILABLE"}, outcomes
    assert resumed_after < RESUME_BOUND_S
    # Every call, answered or refused, has exactly one audit record with its outcome.
    records = {r["request_id"]: r for r in h.audit_records() if r["action"] == "verify.identity"}
    for _, outcome, rid in load.log:
        rec = records[rid]
        if outcome == "MATCH":
            assert rec["outcome"] == "OK" and rec["answer"] == "MATCH"
        else:
            assert rec["outcome"] == "UNAVAILABLE" and rec["reason"] == "STATE_UNAVAILABLE"
            assert "answer" not in rec  # refused before the answer, or the answer withheld
    assert len(records) == len(load.log)


def test_refused_with_retry_info_while_down_and_answered_after(setup) -> None:
    """A client told UNAVAILABLE with RetryInfo that retries is answered once Redis is back."""
    h, redis_server = setup
    adult = h.demo["adult_resident"]
    gw = h.client("agency-civil", timeout_s=5)
    redis_server.stop()
    for _ in range(5):
        try:
            gw.verify_identity(adult["name"], adult["id_number"], purpose=PURPOSE)
            raise AssertionError("answered without shared state")
        except GovgwClientError as e:
            assert e.code == grpc.StatusCode.UNAVAILABLE and e.reason == "STATE_UNAVAILABLE"
            assert e.retry_after_s and e.retry_after_s > 0
    redis_server.start()

    def answered() -> None:
        assert gw.verify_identity(adult["name"], adult["id_number"], purpose=PURPOSE).matched

    from tests.support import eventually

    eventually(answered, within_s=RESUME_BOUND_S)
