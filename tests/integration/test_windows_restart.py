"""A restart is not a reset (R10): a caller's per-subject budget and rate window
spent before the gateway stops are still spent after it starts again on the same
data directory — in-process state (kept in state.sqlite) and Redis (append-only
file, Redis restarted too)."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from clients.sdk import GovgwClientError
from gateway.limits import LimitsConfig, SubjectLimits, Tier
from gateway.oracle import OracleConfig
from tests.gateway.state.harness import start_guarded
from tests.gateway.state.redis_server import RedisServer
from tests.support import Harness, expect_error, make_data_dir

pytestmark = pytest.mark.requirement("R10")

PURPOSE = "户籍业务办理"
SUBJECT_CALLS = 3
LIMITS = LimitsConfig(
    tiers={"counter": Tier(10_000), "agency": Tier(10_000), "public": Tier(2)},
    subject=SubjectLimits(calls=SUBJECT_CALLS, callers=10),
)


@pytest.fixture(params=["memory", "redis"])
def backend(request, tmp_path: Path) -> Iterator[RedisServer | None]:
    if request.param == "memory":
        yield None
        return
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


def test_a_spent_subject_budget_stays_spent_across_a_restart(
    tmp_path: Path, backend: RedisServer | None
) -> None:
    data_dir = tmp_path / "data"
    keys, demo = make_data_dir(data_dir, persons=20, entities=5)
    url = backend.url if backend else ""
    victim = demo["adult_resident"]

    def start(keep_state: bool) -> Harness:
        return start_guarded(data_dir, keys, demo, keep_state=keep_state, redis_url=url,
                             limits=LIMITS, oracle=OracleConfig(min_answers=1000))  # fmt: skip

    h = start(keep_state=False)
    try:
        with h.client("counter-wenchuan") as gw:
            for _ in range(SUBJECT_CALLS):
                gw.verify_identity(victim["name"], victim["id_number"], purpose=PURPOSE)
            expect_error(
                lambda: gw.verify_identity(victim["name"], victim["id_number"], purpose=PURPOSE),
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                "SUBJECT_RATE_LIMITED",
            )
    finally:
        h.stop()
    if backend is not None:
        backend.restart()
    else:
        state = data_dir / "state.sqlite"
        assert stat.S_IMODE(state.stat().st_mode) == 0o600

    h = start(keep_state=True)
    try:
        with h.client("agency-civil") as gw:  # another caller: the subject is spent for all
            e = expect_error(
                lambda: gw.verify_identity(victim["name"], victim["id_number"], purpose=PURPOSE),
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                "SUBJECT_RATE_LIMITED",
            )
            assert e.retry_after_s and e.retry_after_s > 60  # the hour's window, not a fresh one
            other = demo["assistance_recipient"]  # a subject not asked about: answered
            assert gw.verify_identity(other["name"], other["id_number"], purpose=PURPOSE).matched
    finally:
        h.stop()


def test_a_spent_rate_window_stays_spent_across_a_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    keys, demo = make_data_dir(data_dir, persons=20, entities=5)
    victim = demo["adult_resident"]
    h = start_guarded(data_dir, keys, demo, limits=LIMITS)
    try:
        with h.client("public-portal") as gw:
            outcomes = []
            for _ in range(3):
                try:
                    gw.verify_identity(victim["name"], victim["id_number"], purpose=PURPOSE)
                    outcomes.append("answered")
                except GovgwClientError as e:
                    outcomes.append(e.reason)
    finally:
        h.stop()
    h = start_guarded(data_dir, keys, demo, keep_state=True, limits=LIMITS)
    try:
        with h.client("public-portal") as gw:
            expect_error(
                lambda: gw.verify_identity(victim["name"], victim["id_number"], purpose=PURPOSE),
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                outcomes[-1],
            )
    finally:
        h.stop()
