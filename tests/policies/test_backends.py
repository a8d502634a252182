"""The shipped policy tests give the same answers on both backends (embedded regorus, OPA)."""

from __future__ import annotations

from pathlib import Path

from gateway.policy.bundle import load_bundle
from gateway.policy.check import run_rego_suite
from gateway.policy.opa import client_for, run_suite_on_opa
from tests.gateway.policy.opa_double import OpaDouble

POLICIES = Path(__file__).resolve().parents[2] / "policies"


def test_same_answers_on_regorus_and_on_an_opa_server() -> None:
    embedded = {r.name: r.passed for r in run_rego_suite(POLICIES).results}
    with OpaDouble() as opa:
        on_opa = run_suite_on_opa(load_bundle(POLICIES, include_tests=True), client_for(opa.url))
        assert opa.policies == {}  # the suite cleans up after itself
    assert {r.name: r.passed for r in on_opa.results} == embedded
    assert len(embedded) >= 60 and all(embedded.values())


def test_shipped_policies_reach_ninety_percent_rule_coverage() -> None:
    assert run_rego_suite(POLICIES, coverage=True).coverage_percent >= 90
