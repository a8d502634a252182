"""The OPA sidecar adapter (ours) against a test double of OPA's REST API (tests/.../opa_double.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.grants import GrantStore
from gateway.policy.bundle import load_bundle
from gateway.policy.check import sanity_grants, sanity_inputs
from gateway.policy.decider import Decider
from gateway.policy.engine import RegorusEngine
from gateway.policy.opa import OpaEngine, OpaError, client_for, run_suite_on_opa, upload_modules
from gateway.policy.serving import serving_decider
from tests.gateway.policy.opa_double import OpaDouble

POLICIES = Path(__file__).resolve().parents[3] / "policies"
NOW = datetime(2026, 11, 21, 23, 30, tzinfo=UTC)
AGENCY = {"id": "sanity-caller", "kind": "agency", "department": "d", "region": "513221"}


@pytest.fixture
def opa():
    with OpaDouble() as double:
        yield double


def test_every_plan_is_the_same_on_both_backends(opa: OpaDouble) -> None:
    bundle = load_bundle(POLICIES)
    ours, theirs = RegorusEngine(bundle), OpaEngine(bundle, client_for(opa.url))
    theirs.prepare()
    catalog = bundle.data["catalog"]
    for grants in ([], sanity_grants(catalog)):
        for inp in sanity_inputs(catalog):
            assert theirs.evaluate(inp, {"grants": grants}) == ours.evaluate(
                inp, {"grants": grants}
            ), inp
    # data is sent again only when the grants change: one root PUT per grant set
    puts = [p for m, p in opa.requests if m == "PUT" and p.startswith("/v1/data")]
    assert puts == ["/v1/data/", "/v1/data/"]


def test_modules_are_uploaded_verbatim_never_rewritten(opa: OpaDouble) -> None:
    client = client_for(opa.url)
    v0 = "package govgw.old\n\nallow {\n  true\n}\n"  # Rego v0: OPA 1.x refuses it
    from opa_client.errors import RegoParseError

    with pytest.raises(RegoParseError):
        upload_modules(client, {"old.rego": v0}, "govgw/")
    # one attempt, no retry with a rewritten module (rego_compat=False)
    assert [r for r in opa.requests if r[0] == "PUT"] == [("PUT", "/v1/policies/govgw/old.rego")]
    assert opa.policies == {}


def test_a_server_copy_that_differs_is_refused(opa: OpaDouble, monkeypatch) -> None:
    client = client_for(opa.url)
    real = opa._policies

    def rewriting(method, pid, body):  # an OPA (or proxy) that reformats what it stores
        status, doc = real(method, pid, body)
        if method == "GET" and pid and status == 200:
            doc["result"]["raw"] += "\n# reformatted\n"
        return status, doc

    monkeypatch.setattr(opa, "_policies", rewriting)
    with pytest.raises(OpaError, match="other than it was uploaded"):
        upload_modules(client, {"a.rego": "package govgw.a\n"}, "govgw/")


def test_a_failing_opa_denies(opa: OpaDouble, tmp_path: Path) -> None:
    engine = OpaEngine(load_bundle(POLICIES), client_for(opa.url))
    engine.prepare()
    d = Decider(engine, GrantStore(tmp_path / "grants.json"))
    ask = dict(caller=AGENCY, action="lookup", dataset="population.basic", purpose="p", now=NOW)
    assert d.decide(**ask).allow
    opa.fail_queries = True
    plan = d.decide(**{**ask, "purpose": "other"})
    assert not plan.allow and plan.reason == "POLICY_ERROR"
    assert "OPA" not in plan.message and "500" not in plan.message


def test_serving_on_opa_is_chosen_by_config(opa: OpaDouble, tmp_path: Path) -> None:
    d = serving_decider(
        POLICIES,
        tmp_path,
        GrantStore(tmp_path / "grants.json"),
        {"policy_backend": "opa", "opa_url": opa.url},
    )
    assert isinstance(d.engine, OpaEngine) and set(opa.policies) == {
        f"govgw/{p}" for p in load_bundle(POLICIES).modules
    }
    plan = d.decide(
        caller=AGENCY, action="lookup", dataset="population.basic", purpose="p", now=NOW
    )
    assert plan.allow and ("POST", "/v1/data/govgw/decision/plan") in opa.requests
    with pytest.raises(ValueError, match="policy backend"):
        serving_decider(
            POLICIES, tmp_path, GrantStore(tmp_path / "g.json"), {"policy_backend": "x"}
        )


def test_the_suite_refuses_an_opa_that_serves_a_gateway(opa: OpaDouble) -> None:
    OpaEngine(load_bundle(POLICIES), client_for(opa.url)).prepare()
    with pytest.raises(OpaError, match="scratch"):
        run_suite_on_opa(load_bundle(POLICIES, include_tests=True), client_for(opa.url))
