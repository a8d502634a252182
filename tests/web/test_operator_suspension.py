"""One clerk's guessing suspends that clerk, and the page says so and whom to ask.

The counter page talks to a guarded gateway (the enumeration monitor on) through
its one SDK module; the clerk is the operator of every call.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.limits import LimitsConfig, SubjectLimits, Tier
from gateway.oracle import OracleConfig
from tests.gateway.state.harness import start_guarded
from tests.integration.test_oracle_abuse import guessed_id_numbers
from tests.support import Harness, make_data_dir
from web.gateway_client import CallFailed, GatewayClient

HALL = "counter-wenchuan"
PURPOSE = "户籍业务办理"
MIN_ANSWERS = 5


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[Harness]:
    keys, demo = make_data_dir(tmp_path / "data", persons=20, entities=5)
    h = start_guarded(
        tmp_path / "data", keys, demo,
        limits=LimitsConfig(tiers={"counter": Tier(10_000)},
                            subject=SubjectLimits(calls=1_000, callers=100)),
        oracle=OracleConfig(min_answers=MIN_ANSWERS, max_no_match_ratio=0.5),
    )  # fmt: skip
    yield h
    h.stop()


@pytest.mark.requirement("R10")
def test_the_page_names_a_suspended_clerk_and_whom_to_ask(guarded: Harness, tmp_path: Path) -> None:
    page = GatewayClient(guarded.target, guarded.keys[HALL], tmp_path / "keys.json")
    try:
        refusals = []
        for id_number in guessed_id_numbers(MIN_ANSWERS + 2):
            try:
                page.verify_identity("clerk-zhao", "王伟", id_number, PURPOSE)
            except CallFailed as failed:
                refusals.append(failed)
        assert [f.reason for f in refusals] == ["OPERATOR_SUSPENDED"] * 2
        assert "您的核验权限已被暂停" in refusals[0].message
        assert "汶川县政务服务中心" in refusals[0].message  # whom to ask: the hall's department
        adult = guarded.demo["adult_resident"]
        other = page.verify_identity("clerk-qian", adult["name"], adult["id_number"], PURPOSE)
        assert other.matched  # the hall's other clerks work on
    finally:
        page.close()
