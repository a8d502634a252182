"""Playing the attacker against the verification oracle (R10, design §5).

A counter credential guesses names for one ID number, or ID numbers for one
name. The tests count how many guesses get an answer and assert the
configured bound, then check the suspension: refused at once, audited,
listed for administrators, lifted only by `govgw callers reinstate`.
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
from stdnum.cn import ric

from clients.sdk import GovgwClientError
from gateway.limits import LimitsConfig, SubjectLimits, Tier
from gateway.oracle import OracleConfig
from gateway.state import open_state
from tests.gateway.state.harness import start_guarded
from tests.gateway.state.redis_server import RedisServer
from tests.support import Harness, expect_error, make_data_dir

PURPOSE = "户籍业务办理"
SUBJECT_CALLS, SUBJECT_CALLERS, MIN_ANSWERS = 6, 3, 10
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = ["伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军"]


def guessed_names(n: int) -> list[str]:
    return [s + g for s in SURNAMES for g in GIVEN][:n]


def guessed_id_numbers(n: int) -> list[str]:
    out = []
    for i in range(n):
        body = f"51322119800101{i:03d}"
        out.append(body + ric.calc_check_digit(body + "0"))
    return out


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = RedisServer(Path(tmp_path_factory.mktemp("redis-oracle"))).start()
    yield server.url
    server.stop()


@pytest.fixture(scope="module")
def own_dir(tmp_path_factory: pytest.TempPathFactory):
    data_dir = tmp_path_factory.mktemp("govgw-oracle")
    keys, demo = make_data_dir(data_dir, persons=40, entities=10)
    return data_dir, keys, demo


async def _flush(url: str) -> None:
    s = open_state(url)
    await s._r.flushall()  # type: ignore[attr-defined]
    await s.aclose()


@pytest.fixture(params=["memory", "redis"])
def guarded(request, own_dir, redis_url) -> Iterator[Harness]:
    data_dir, keys, demo = own_dir
    url = redis_url if request.param == "redis" else ""
    if url:
        asyncio.run(_flush(url))
    h = start_guarded(
        data_dir,
        keys,
        demo,
        redis_url=url,
        limits=LimitsConfig(
            tiers={"counter": Tier(10_000), "agency": Tier(10_000), "public": Tier(100)},
            subject=SubjectLimits(calls=SUBJECT_CALLS, callers=SUBJECT_CALLERS),
        ),
        oracle=OracleConfig(min_answers=MIN_ANSWERS, max_no_match_ratio=0.5),
    )
    yield h
    h.stop()


def govgw(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clients.cli", *args],
        capture_output=True,
        text=True,
        check=check,
        timeout=60,
    )


def test_guessing_names_for_one_id_number_is_bounded_per_subject(guarded: Harness) -> None:
    victim = guarded.demo["adult_resident"]["id_number"]
    answered, refusals = 0, set()
    with guarded.client("counter-wenchuan") as gw:
        for name in guessed_names(40):
            try:
                gw.verify_identity(name, victim, purpose=PURPOSE)
                answered += 1
            except GovgwClientError as e:
                assert e.code == grpc.StatusCode.RESOURCE_EXHAUSTED, e
                assert e.retry_after_s and e.retry_after_s > 0
                refusals.add(e.reason)
    assert answered == SUBJECT_CALLS  # the configured bound, exactly
    assert refusals == {"SUBJECT_RATE_LIMITED"}
    # Other credentials cannot share out the guessing: the subject is spent for all.
    with guarded.client("agency-civil") as gw:
        expect_error(
            lambda: gw.verify_identity("王伟", victim, purpose=PURPOSE),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "SUBJECT_RATE_LIMITED",
        )
    assert victim not in guarded.audit_text()


def test_distinct_callers_per_subject_are_bounded(guarded: Harness) -> None:
    victim = guarded.demo["adult_resident"]["id_number"]
    outcomes = []
    for caller in ("counter-wenchuan", "counter-songpan", "agency-civil", "agency-far"):
        with guarded.client(caller) as gw:
            try:
                gw.verify_identity("王伟", victim, purpose=PURPOSE)
                outcomes.append("answered")
            except GovgwClientError as e:
                outcomes.append(e.reason)
    assert outcomes[:SUBJECT_CALLERS] == ["answered"] * SUBJECT_CALLERS
    assert outcomes[SUBJECT_CALLERS:] == ["SUBJECT_CALLERS_LIMITED"]


@pytest.mark.requirement("R10", "R12")
def test_guessing_id_numbers_for_one_name_suspends_the_caller(guarded: Harness) -> None:
    data_dir = str(guarded.data_dir)
    url = guarded.config.redis_url
    state_args = ["--redis-url", url] if url else []
    before = len(guarded.audit_records())  # the data dir is shared by both backends' runs
    answered = 0
    with guarded.client("counter-songpan") as gw:
        for id_number in guessed_id_numbers(40):
            try:
                gw.verify_identity("张伟", id_number, purpose=PURPOSE)
                answered += 1
            except GovgwClientError as e:
                assert e.code == grpc.StatusCode.PERMISSION_DENIED, e
                assert e.reason == "CALLER_SUSPENDED"
                break
        # The bound: no more than the monitor's sample, then nothing at all.
        assert answered == MIN_ANSWERS
        adult = guarded.demo["adult_resident"]
        expect_error(
            lambda: gw.verify_identity(adult["name"], adult["id_number"], purpose=PURPOSE),
            grpc.StatusCode.PERMISSION_DENIED,
            "CALLER_SUSPENDED",
        )
    # Audited, with the reason, and listed for administrators.
    events = [r for r in guarded.audit_records()[before:] if r["action"] == "caller.suspend"]
    assert [(e["caller"], e["reason"], e["by"]) for e in events] == [
        ("counter-songpan", "NO_MATCH_RATIO", "enumeration-monitor")
    ]
    listed = json.loads(
        govgw(
            "callers", "list", "--suspended", "--json", "--data-dir", data_dir, *state_args
        ).stdout
    )
    assert [c["id"] for c in listed] == ["counter-songpan"]
    # Only an administrator reinstates; the transition is audited in its own chain.
    govgw("callers", "reinstate", "counter-songpan", "--reason", "复核后恢复",
          "--data-dir", data_dir, *state_args)  # fmt: skip
    with guarded.client("counter-songpan") as gw:
        adult = guarded.demo["adult_resident"]

        def matched() -> None:
            assert gw.verify_identity(adult["name"], adult["id_number"], purpose=PURPOSE).matched

        from tests.support import eventually

        eventually(matched)
    admin_log = (guarded.data_dir / "audit" / "audit-admin.log").read_text()
    assert '"action":"caller.reinstate"' in admin_log and "counter-songpan" in admin_log
    report = json.loads(govgw("audit", "verify", "--data-dir", data_dir, "--json").stdout)
    assert report["ok"] and {f["file"] for f in report["files"]} >= {"audit-admin.log"}
