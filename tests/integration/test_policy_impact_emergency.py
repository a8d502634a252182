"""Impact preview against emergency traffic (R11): calls made under an emergency are
replayed with the emergency and its grants as they were at the call's time, through a
real server, before and after the emergency ends."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from clients.sdk import PolicyAdminClient
from gateway import admin
from tests.support import Harness, make_data_dir, start

POLICIES = Path(__file__).resolve().parents[2] / "policies"
DS = "social_assistance.recipient"
PURPOSE = "地震受灾群众救助核查"
WIDENING = "in_force(g) if emergency_of(g)\n"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    data_dir = tmp_path_factory.mktemp("impact-emergency") / "data"
    keys, demo = make_data_dir(data_dir, persons=20, entities=5)
    for cid, kind, dept in (("agency-rescue", "agency", "汶川县应急管理局"),
                            ("root", "admin", "州大数据局")):  # fmt: skip
        keys[cid] = admin.callers_add(data_dir, cid, kind, dept, "513221")["api_key"]
    h = start(data_dir, keys, demo)
    yield h
    h.stop()


@pytest.fixture(scope="module")
def no_widening(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped policy, except that an emergency grant is never in force."""
    d = tmp_path_factory.mktemp("candidates") / "no-widening"
    shutil.copytree(POLICIES, d)
    rego = d / "grants.rego"
    assert WIDENING in rego.read_text()
    rego.write_text(rego.read_text().replace(WIDENING, ""))
    shutil.rmtree(d / "tests")  # the shipped tests pin the emergency widening
    (d / "tests").mkdir()
    (d / "tests" / "smoke_test.rego").write_text(
        "package govgw.smoke_test\nimport rego.v1\ntest_known if data.govgw.callers.kinds\n"
    )
    return d


def root(h: Harness) -> PolicyAdminClient:
    c = PolicyAdminClient(h.target, api_key=h.keys["root"], timeout_s=60)
    h.clients.append(c)
    return c


def test_a_candidate_without_the_emergency_widening_shows_its_calls_allow_to_deny(
    gw: Harness, no_widening: Path
) -> None:
    em = root(gw).declare_emergency(
        title="地震应急响应",
        legal_basis="《突发事件应对法》第四十五条",
        scope={DS: ["name", "assistance_type"]},
        agencies=["agency-rescue"],
        purpose=PURPOSE,
        ends_at=datetime.now(UTC) + timedelta(days=1),
    )
    rescue = gw.client("agency-rescue")
    subject = gw.demo["assistance_recipient"]["id_number"]
    for _ in range(3):
        assert rescue.lookup(DS, subject, purpose=PURPOSE).records
    calls = {r["request_id"] for r in gw.audit_records() if em.id in r.get("emergencies", ())}
    assert len(calls) == 3

    def preview(candidate: Path):
        return root(gw).policy_impact(candidate, window_s=3600, max_examples=5)

    def check(r) -> None:
        assert r.totals["allow_to_deny"] == 3 and r.recorded_differs == 0
        [group] = [g for g in r.groups if g.change == "allow_to_deny"]
        assert (group.dataset, group.caller, group.count) == (DS, "agency-rescue", 3)
        assert {e.request_id for e in group.examples} == calls
        ex = group.examples[0]
        assert ex.before.allow and set(ex.before.fields) == {"name", "assistance_type"}
        assert not ex.after.allow and ex.after.reason == "GRANT_REQUIRED"

    check(preview(no_widening))  # while the emergency lasts
    root(gw).end_emergency(em.id, reason="应急响应终止")
    # Its grants are revoked now, but the calls are replayed as they were decided.
    check(preview(no_widening))
    same = preview(POLICIES)
    assert same.decisions_changed == 0 and same.recorded_differs == 0
