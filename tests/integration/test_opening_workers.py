"""A dataset's opening suspended (撤回, R9) through one worker is denied in every worker
from the next call; share access stays; reopening reaches every worker as fast."""

from __future__ import annotations

import grpc
import pytest

from clients.sdk import GovgwClientError
from gateway import admin
from tests.integration.test_workers import clients, records, workers  # noqa: F401 (fixture)

DS = "legal_entity.basic"
PURPOSE = "核实交易对象"


def _answer(c, key: str) -> str:
    try:
        c.lookup(DS, key, ["name"], purpose=PURPOSE)
    except GovgwClientError as e:
        assert e.code == grpc.StatusCode.PERMISSION_DENIED, e
        return e.reason
    return "OK"


@pytest.mark.requirement("R9")
def test_suspension_and_reopening_reach_every_worker(workers) -> None:  # noqa: F811
    data, ent = workers["data"], workers["demo"]["active_entity"]["uscc"]
    if "agency-amr" not in workers["keys"]:
        workers["keys"]["agency-amr"] = admin.callers_add(
            data,
            "agency-amr",
            "agency",
            "汶川县市场监督管理局",
            "513221",
            provider_ids=("county.market-regulation",),
        )["api_key"]
    public, agencies = clients(workers, "public-portal"), clients(workers, "agency-civil")
    amr = clients(workers, "agency-amr")[0]
    assert {_answer(c, ent) for c in public} == {"OK"}
    s = amr.suspend_opening(DS, reason="发现批量爬取风险")
    before = {name: len(recs) for name, recs in records(data).items()}
    # The very next call on every connection, whichever worker holds it.
    assert {_answer(c, ent) for c in public} == {"OPENING_SUSPENDED"}
    assert {_answer(c, ent) for c in agencies} == {"OK"}
    answered = {
        name
        for name, recs in records(data).items()
        for r in recs[before.get(name, 0) :]
        if r["action"] == "lookup" and r["reason"] == "OPENING_SUSPENDED"
    }
    assert {"audit-0.log", "audit-1.log"} <= answered, "both workers refused"
    amr.reopen_opening(s.id, reason="风险排除")
    assert {_answer(c, ent) for c in public} == {"OK"}
    for c in [*public, *agencies, amr]:
        c.close()
