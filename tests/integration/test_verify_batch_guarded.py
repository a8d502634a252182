"""VerifyIdentityBatch under the guards `govgw serve` attaches: every item counts
against the per-subject limits and is watched by the enumeration monitor, as a
VerifyIdentity call for it would be (issue 13 part 4) -- with the in-process
state and with Redis, where a chunk of items is one round trip."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from stdnum.cn import ric

from gateway.limits import LimitsConfig, SubjectLimits, Tier
from gateway.oracle import OracleConfig
from tests.gateway.state.harness import start_guarded
from tests.gateway.state.redis_server import RedisServer
from tests.support import Harness, make_data_dir

PURPOSE = "户籍业务办理"
SUBJECT_CALLS, MIN_ANSWERS = 3, 10


def absent_id_numbers(n: int) -> list[str]:
    """ID numbers with a right check digit that the demo pool does not hold."""
    out = []
    for i in range(n):
        body = f"51322119800101{i:03d}"
        out.append(body + ric.calc_check_digit(body + "0"))
    return out


@pytest.fixture(params=["memory", "redis"])
def guarded(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Harness]:
    redis_url = ""
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        server.flush()
        redis_url = server.url
    keys, demo = make_data_dir(tmp_path / "data")
    h = start_guarded(
        tmp_path / "data",
        keys,
        demo,
        redis_url=redis_url,
        limits=LimitsConfig(
            tiers={"counter": Tier(10_000), "agency": Tier(10_000), "public": Tier(100)},
            subject=SubjectLimits(calls=SUBJECT_CALLS, callers=3),
        ),
        oracle=OracleConfig(min_answers=MIN_ANSWERS, max_no_match_ratio=0.5),
    )
    yield h
    h.stop()


@pytest.mark.requirement("R10")
def test_each_item_counts_against_its_subjects_limit(guarded: Harness) -> None:
    adult = guarded.demo["adult_resident"]
    minor = guarded.demo["minor"]
    items = [(adult["name"], adult["id_number"])] * 5 + [(minor["name"], minor["id_number"])]
    with guarded.client("agency-civil") as gw:
        results = list(gw.verify_identity_batch(items, purpose=PURPOSE))
        # The subject's window is spent: a unary call for it is refused too.
        after = list(gw.verify_identity_batch(items[:1], purpose=PURPOSE))
    assert [r.result.name for r in results[:3]] == ["MATCH"] * 3
    assert [r.refusal.reason if r.refusal else "" for r in results[3:5]] == [
        "SUBJECT_RATE_LIMITED"
    ] * 2
    assert results[3].refusal is not None and results[3].refusal.code == "RESOURCE_EXHAUSTED"
    assert results[5].result.name == "MATCH"  # another subject has its own window
    assert after[0].refusal is not None and after[0].refusal.reason == "SUBJECT_RATE_LIMITED"
    records = [x for x in guarded.audit_records() if x["request_id"] == results[0].request_id]
    assert [x["outcome"] for x in records] == ["OK"] * 3 + ["RESOURCE_EXHAUSTED"] * 2 + ["OK"]


@pytest.mark.requirement("R10")
def test_the_enumeration_monitor_counts_each_item_and_stops_the_batch(guarded: Harness) -> None:
    guesses = [("王伟", i) for i in absent_id_numbers(40)]
    # Receipts unchecked: a suspended caller cannot fetch the keys to check them with.
    with guarded.client("agency-civil", verify_receipts=False) as gw:
        results = list(gw.verify_identity_batch(guesses, purpose=PURPOSE))
    answered = [r for r in results if r.refusal is None]
    refused = [r for r in results if r.refusal is not None]
    # Judged from the MIN_ANSWERS-th answer on: that item trips the monitor (its own
    # answer stands), every later one is refused as the caller's next call would be.
    assert len(answered) == MIN_ANSWERS
    assert all(r.result.name == "NO_MATCH" for r in answered)
    assert {r.refusal.reason for r in refused if r.refusal} == {"CALLER_SUSPENDED"}
    assert [r.index for r in results] == list(range(40))
    request_id = results[0].request_id
    events = [x for x in guarded.audit_records() if x["request_id"] == request_id]
    suspensions = [x for x in events if x["action"] == "caller.suspend"]
    assert [s["reason"] for s in suspensions] == ["NO_MATCH_RATIO"]
    assert sum(1 for x in events if x["action"] == "verify.identity") == 40


def test_items_hold_one_in_flight_slot_at_a_time(tmp_path: Path) -> None:
    """A batch longer than the caller's in-flight cap is answered whole: each chunk of
    items holds one slot and gives it back before the next takes it."""
    keys, demo = make_data_dir(tmp_path / "data")
    h = start_guarded(
        tmp_path / "data",
        keys,
        demo,
        limits=LimitsConfig(
            tiers={"agency": Tier(10_000, max_in_flight=4)},
            subject=SubjectLimits(calls=1_000, callers=3),
        ),
        oracle=OracleConfig(min_answers=1_000),
    )
    try:
        people = [demo[k] for k in ("adult_resident", "minor", "assistance_recipient")]
        items = [(p["name"], p["id_number"]) for p in people] * 40
        with h.client("agency-civil") as gw:
            results = list(gw.verify_identity_batch(items, purpose=PURPOSE))
            again = gw.verify_identity(people[0]["name"], people[0]["id_number"], purpose=PURPOSE)
    finally:
        h.stop()
    assert [r.result.name for r in results] == ["MATCH"] * 120
    assert again.matched  # no slot was left held
