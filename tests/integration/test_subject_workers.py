"""A withdrawal (撤回) made through one worker holds in every worker from the next call."""

from __future__ import annotations

import grpc
import pytest

from clients.sdk import GovgwClientError
from gateway import admin
from gateway.access.subject_tokens import load_private_key, mint
from tests.integration.test_workers import clients, records, workers  # noqa: F401 (fixture)

DS = "legal_entity.basic"
PURPOSE = "核实交易对象"


def _found(c, key: str) -> bool:
    try:
        return bool(c.lookup(DS, key, ["name"], purpose=PURPOSE).records)
    except GovgwClientError as e:
        assert (e.code, e.reason) == (grpc.StatusCode.NOT_FOUND, "SUBJECT_NOT_FOUND"), e
        return False


@pytest.mark.requirement("R9")
def test_withdrawal_and_reinstatement_reach_every_worker(workers) -> None:  # noqa: F811
    data, ent = workers["data"], workers["demo"]["active_entity"]["uscc"]
    workers["keys"]["agency-amr"] = admin.callers_add(
        data,
        "agency-amr",
        "agency",
        "汶川县市场监督管理局",
        "513221",
        provider_ids=("county.market-regulation",),
    )["api_key"]
    key = load_private_key((data / "keys" / "demo-subject-issuer.pem").read_bytes())
    token = mint(key, issuer=admin.DEMO_ISSUER, subject=ent)
    public, agencies = clients(workers, "public-portal"), clients(workers, "agency-civil")
    assert all(_found(c, ent) for c in public)
    w = public[0].request_withdrawal(token, dataset=DS, reason="法定代表人信息侵犯权益")
    before = {name: len(recs) for name, recs in records(data).items()}
    # The very next call on every connection, whichever worker holds it.
    assert not any(_found(c, ent) for c in public)
    assert all(_found(c, ent) for c in agencies)  # share access unaffected
    answered = {
        name: [
            r
            for r in recs[before.get(name, 0) :]
            if r["action"] == "lookup" and r["caller"] == "public-portal"
        ]
        for name, recs in records(data).items()
        if name in ("audit-0.log", "audit-1.log")
    }
    assert all(answered.values()) and len(answered) == 2, "both workers answered"
    amr = clients(workers, "agency-amr")[0]
    amr.review_withdrawal(w.id, "reinstate", reason="登记信息准确")
    assert all(_found(c, ent) for c in public)
    for c in public + agencies + [amr]:
        c.close()
