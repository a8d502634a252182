"""One hall, many clerks: the operator in the audit trail and in the enumeration monitor.

A service hall is one counter caller; its web server sends the signed-in
clerk's username with every call (contract.metadata.OPERATOR_HEADER). Every
audit record of the call names that operator; one clerk's guessing suspends
that clerk (OPERATOR_SUSPENDED, saying whom to ask), not the hall, while a
hall-wide bound (`hall_scale` times the operator's) still suspends the caller;
an administrator lifts an operator's suspension with `callers reinstate --operator`.
Both state backends, as the monitor's other tests.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from clients.sdk import GovgwClientError
from contract.metadata import OPERATOR_HEADER
from gateway.audit import verify_chain
from gateway.limits import LimitsConfig, SubjectLimits, Tier
from gateway.oracle import OracleConfig
from gateway.state import open_state
from tests.gateway.state.harness import start_guarded
from tests.gateway.state.redis_server import RedisServer
from tests.integration.test_oracle_abuse import guessed_id_numbers
from tests.support import Harness, eventually, expect_error, make_data_dir

PURPOSE = "户籍业务办理"
HALL = "counter-songpan"
MIN_ANSWERS, HALL_SCALE = 10, 3


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = RedisServer(Path(tmp_path_factory.mktemp("redis-operators"))).start()
    yield server.url
    server.stop()


async def _flush(url: str) -> None:
    s = open_state(url)
    await s._r.flushall()  # type: ignore[attr-defined]
    await s.aclose()


@pytest.fixture(params=["memory", "redis"])
def hall(request, tmp_path: Path, redis_url: str) -> Iterator[Harness]:
    keys, demo = make_data_dir(tmp_path / "data", persons=20, entities=5)
    url = redis_url if request.param == "redis" else ""
    if url:
        asyncio.run(_flush(url))
    h = start_guarded(
        tmp_path / "data",
        keys,
        demo,
        redis_url=url,
        limits=LimitsConfig(
            tiers={"counter": Tier(10_000), "public": Tier(1_000)},
            subject=SubjectLimits(calls=1_000, callers=100),
        ),
        oracle=OracleConfig(min_answers=MIN_ANSWERS, max_no_match_ratio=0.5, hall_scale=HALL_SCALE),
    )
    yield h
    h.stop()


def _guess(h: Harness, operator: str, id_numbers: list[str]) -> list[str]:
    outcomes = []
    with h.client(HALL, operator=operator) as gw:
        for n in id_numbers:
            try:
                gw.verify_identity("王伟", n, purpose=PURPOSE)
                outcomes.append("answered")
            except GovgwClientError as e:
                assert e.code == grpc.StatusCode.PERMISSION_DENIED, e
                outcomes.append(e.reason)
    return outcomes


def _true_pair(h: Harness, operator: str) -> bool:
    adult = h.demo["adult_resident"]
    with h.client(HALL, operator=operator) as gw:
        return gw.verify_identity(adult["name"], adult["id_number"], purpose=PURPOSE).matched


def govgw(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "clients.cli", *args], capture_output=True,
                          text=True, timeout=60, check=True)  # fmt: skip


@pytest.mark.requirement("R10")
def test_one_clerks_guessing_suspends_that_clerk_not_the_hall(hall: Harness) -> None:
    outcomes = _guess(hall, "clerk-a", guessed_id_numbers(15))
    assert outcomes == ["answered"] * MIN_ANSWERS + ["OPERATOR_SUSPENDED"] * 5
    with hall.client(HALL, operator="clerk-a") as gw:
        e = expect_error(lambda: gw.verify_identity("王伟", guessed_id_numbers(1)[0],
                                                    purpose=PURPOSE),
                         grpc.StatusCode.PERMISSION_DENIED, "OPERATOR_SUSPENDED")  # fmt: skip
        assert e.metadata["contact"] == "松潘县政务服务中心" and "reinstate" in e.message
    assert _true_pair(hall, "clerk-b")  # the hall works on
    assert _true_pair(hall, "")  # and so does a call naming no operator

    # Every record of the call names its operator; the suspension is audited.
    records = hall.audit_records()
    by_a = [r for r in records if r.get("operator") == "clerk-a"]
    assert len(by_a) >= 15 and all(r["caller"] == HALL for r in by_a)
    assert any(r.get("operator") == "clerk-b" and r["outcome"] == "OK" for r in records)
    suspended = [r for r in records if r["action"] == "caller.suspend"]
    assert [(r["caller"], r.get("operator"), r["reason"]) for r in suspended] == [
        (HALL, "clerk-a", "NO_MATCH_RATIO")
    ]

    # Listed for administrators, and lifted by one from the command line.
    d = str(hall.data_dir)
    state = ["--redis-url", hall.config.redis_url] if hall.config.redis_url else []
    listed = json.loads(govgw("callers", "list", "--suspended", "--json", "--data-dir", d,
                              *state).stdout)  # fmt: skip
    assert [(c["id"], c["status"], [o["operator"] for o in c["suspended_operators"]])
            for c in listed] == [(HALL, "active", ["clerk-a"])]  # fmt: skip
    assert "operator clerk-a" in govgw("callers", "list", "--data-dir", d, *state).stdout
    govgw("callers", "reinstate", HALL, "--operator", "clerk-a", "--reason", "复核后恢复",
          "--data-dir", d, *state)  # fmt: skip
    eventually(lambda: _true_pair(hall, "clerk-a"))
    admin_path = hall.data_dir / "audit" / "audit-admin.log"
    admin_log = admin_path.read_text(encoding="utf-8")
    assert verify_chain(admin_path).ok and verify_chain(hall.config.layout.audit).ok
    reinstated = [json.loads(line) for line in admin_log.splitlines()]
    assert [(r["action"], r.get("operator")) for r in reinstated] == [
        ("caller.reinstate", "clerk-a")
    ]


@pytest.mark.requirement("R10")
def test_the_hall_wide_bound_still_holds(hall: Harness) -> None:
    """Many clerks, each below their own bound, together past the hall's: the caller is
    suspended (HALL_SCALE * MIN_ANSWERS answers), every clerk with it."""
    guesses = iter(guessed_id_numbers(60))
    outcomes: list[str] = []
    for i in range(6):  # 6 clerks x 6 misses: none reaches MIN_ANSWERS on their own
        outcomes += _guess(hall, f"clerk-{i}", [next(guesses) for _ in range(6)])
    hall_answers = HALL_SCALE * MIN_ANSWERS
    assert outcomes == ["answered"] * hall_answers + ["CALLER_SUSPENDED"] * (36 - hall_answers)
    with hall.client(HALL, operator="clerk-new") as gw:
        expect_error(lambda: gw.verify_identity("王伟", next(guesses), purpose=PURPOSE),
                     grpc.StatusCode.PERMISSION_DENIED, "CALLER_SUSPENDED")  # fmt: skip
    suspended = [r for r in hall.audit_records() if r["action"] == "caller.suspend"]
    assert [(r["caller"], r.get("operator")) for r in suspended] == [(HALL, None)]


@pytest.mark.parametrize(
    ("caller", "operator", "reason"),
    [
        (HALL, "clerk 01", "OPERATOR_MALFORMED"),
        (HALL, "x" * 65, "OPERATOR_MALFORMED"),
        (HALL, "hall/clerk", "OPERATOR_MALFORMED"),
        ("public-portal", "clerk-01", "OPERATOR_NOT_ALLOWED"),
    ],
)
def test_a_bad_operator_is_refused_with_the_metadata_field(
    hall: Harness, caller: str, operator: str, reason: str
) -> None:
    adult = hall.demo["adult_resident"]
    md = (("authorization", f"Bearer {hall.keys[caller]}"), (OPERATOR_HEADER, operator))
    with hall.client(caller) as gw:
        gw._metadata = md  # the header exactly as sent, bypassing the SDK's own check
        expect_error(
            lambda: gw.verify_identity(adult["name"], adult["id_number"], purpose=PURPOSE),
            grpc.StatusCode.INVALID_ARGUMENT,
            reason,
            [f"metadata.{OPERATOR_HEADER}"],
        )
