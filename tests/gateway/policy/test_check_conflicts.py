"""The policy sanity check keeps the conflicts report (R16) for administrators."""

from __future__ import annotations

from pathlib import Path

from gateway.policy.check import check_bundle, plan_violations
from tests.gateway.policy.test_check import edit, policy_dir  # noqa: F401  (fixture)


def test_allowing_the_report_to_another_kind_is_a_violation() -> None:
    for kind in ("agency", "counter", "public"):
        inp = {"caller": {"kind": kind}, "action": "conflicts.read", "dataset": ""}
        assert plan_violations({"allow": True}, inp, {"datasets": {}}) == [
            f"grants conflicts.read to kind {kind!r}, not only to admin"
        ]
    inp = {"caller": {"kind": "admin"}, "action": "conflicts.read", "dataset": ""}
    assert plan_violations({"allow": True}, inp, {"datasets": {}}) == []


def test_a_bundle_opening_the_report_to_agencies_is_refused(policy_dir: Path) -> None:  # noqa: F811
    edit(policy_dir, "conflicts.rego", "\tdata.govgw.callers.admin\n", "\ttrue\n")
    problems = check_bundle(policy_dir)
    assert any(
        "grants conflicts.read to kind 'agency', not only to admin" in p.message for p in problems
    )
