"""Sweeps through every answer kind are bounded (R10, design §5).

Measured before the route table: a counter swept 8,000 ID numbers through
VerifyAttributes and an agency 6,000 through Lookup, unstopped; with the
distinct-subject budget at 50 both still answered 300 of 300. Now every
route that takes subject keys reports each subject's answer to the
enumeration monitor, and the per-kind budget bounds it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from stdnum.cn import ric

from clients.sdk import GovgwClientError
from gateway import admin
from gateway.config import LimitsConfig, OracleConfig, SubjectLimits, Tier
from tests.gateway.state.harness import start_guarded
from tests.support import Harness, make_data_dir

BUDGET = 50
SWEEP = 300
PURPOSE = "户籍业务办理"


def sweep_ids(n: int, county: str = "513221") -> list[str]:
    out = []
    for i in range(n):
        body = f"{county}1985{(i % 12) + 1:02d}{(i % 28) + 1:02d}{i % 1000:03d}"
        out.append(body + ric.calc_check_digit(body + "0"))
    return out


@pytest.fixture()
def budgeted(tmp_path: Path) -> Iterator[Harness]:
    keys, demo = make_data_dir(tmp_path / "data", persons=40, entities=10)
    for cid in ("counter-a", "agency-a", "agency-b"):
        kind = cid.split("-")[0]
        keys[cid] = admin.callers_add(tmp_path / "data", cid, kind, "测试", "513221")["api_key"]
    h = start_guarded(
        tmp_path / "data",
        keys,
        demo,
        limits=LimitsConfig(
            tiers={k: Tier(100_000) for k in ("agency", "counter", "public", "admin")},
            subject=SubjectLimits(calls=1000, callers=100),
        ),
        # The ratio alarm out of the way: this is the distinct-subject budget alone.
        oracle=OracleConfig(min_answers=10**6, max_subjects=BUDGET),
    )
    yield h
    h.stop()


def _count_until_suspended(call, keys: list[str]) -> int:
    answered = 0
    for key in keys:
        try:
            call(key)
            answered += 1
        except GovgwClientError as e:
            if e.reason == "CALLER_SUSPENDED":
                return answered
            assert e.reason == "SUBJECT_NOT_FOUND", e  # a miss is an answer too
            answered += 1
    return answered


@pytest.mark.requirement("R10")
def test_attribute_sweep_is_stopped_at_the_budget(budgeted: Harness) -> None:
    with budgeted.client("counter-a") as gw:
        n = _count_until_suspended(
            lambda k: gw.verify_attributes(k, [("resident_in", ["5132"])], purpose=PURPOSE),
            sweep_ids(SWEEP),
        )
    assert n == BUDGET  # the call that would cross the budget is refused, not answered
    events = [r for r in budgeted.audit_records() if r["action"] == "caller.suspend"]
    assert [(e["caller"], e["reason"]) for e in events] == [("counter-a", "SUBJECT_SPREAD")]


@pytest.mark.requirement("R10")
def test_lookup_sweep_is_stopped_at_the_budget(budgeted: Harness) -> None:
    with budgeted.client("agency-a") as gw:
        n = _count_until_suspended(
            lambda k: gw.lookup("population.basic", k, ["gender"], purpose=PURPOSE),
            sweep_ids(SWEEP),
        )
    assert n == BUDGET


@pytest.mark.requirement("R10")
def test_a_batch_counts_every_subject(budgeted: Harness) -> None:
    """A BatchLookup's subjects count one by one, before anything is read: 40 of the
    budget's 50 pass; a batch of 20 more would cross it and is refused whole (nothing
    of it read or answered), and the caller is suspended."""
    ids = sweep_ids(60)
    with budgeted.client("agency-b") as gw:
        items = list(gw.batch_lookup("population.basic", ids[:40], ["gender"], purpose=PURPOSE))
        assert len(items) == 40
        for call in (
            lambda: list(
                gw.batch_lookup("population.basic", ids[40:], ["gender"], purpose=PURPOSE)
            ),
            lambda: gw.lookup("population.basic", ids[0], ["gender"], purpose=PURPOSE),
        ):
            with pytest.raises(GovgwClientError) as e:
                call()
            assert e.value.code == grpc.StatusCode.PERMISSION_DENIED
            assert e.value.reason == "CALLER_SUSPENDED"
    events = [r for r in budgeted.audit_records() if r["action"] == "caller.suspend"]
    assert [(e["caller"], e["reason"]) for e in events] == [("agency-b", "SUBJECT_SPREAD")]


@pytest.mark.requirement("R10")
def test_concurrent_batches_cannot_harvest_past_the_budget(budgeted: Harness) -> None:
    """Eight batches of 30 at once (240 subjects, budget 50): the budget is reserved
    atomically at admission, so at most 50 subjects are ever read."""
    import concurrent.futures

    ids = sweep_ids(240)
    chunks = [ids[i : i + 30] for i in range(0, 240, 30)]

    def one(chunk: list[str]) -> int:
        with budgeted.client("agency-a") as gw:
            try:
                return len(
                    list(gw.batch_lookup("population.basic", chunk, ["gender"], purpose=PURPOSE))
                )
            except GovgwClientError as e:
                assert e.reason == "CALLER_SUSPENDED", e
                return 0

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answered = sum(pool.map(one, chunks))
    assert 0 < answered <= BUDGET


def test_oracle_thresholds_per_caller_kind(tmp_path: Path) -> None:
    from gateway.config import load_guard_config

    f = tmp_path / "limits.toml"
    f.write_text(
        "[oracle]\nmax_subjects = 5000\n[oracle.counter]\nmax_subjects = 300\n"
        "[streams]\nper_caller = 2\n",
        encoding="utf-8",
    )
    limits, oracle = load_guard_config(f)
    assert oracle.for_kind("counter").max_subjects == 300
    assert oracle.for_kind("agency").max_subjects == 5000
    assert limits.streams.per_caller == 2
    f.write_text("[oracle.robot]\nmax_subjects = 1\n", encoding="utf-8")
    with pytest.raises(Exception, match="names no caller kind"):
        load_guard_config(f)
    f.write_text("[oracle.counter]\nwindow_s = 1\n", encoding="utf-8")
    with pytest.raises(Exception, match="unknown keys"):
        load_guard_config(f)
