"""Every SDK method returns a typed result through a real gateway on loopback: frozen
dataclasses, enums as Python enums, the call's request id; never a protobuf message.
The asyncio client answers the same from the same table."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import inspect
import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message
from stdnum.cn import ric

from clients.sdk import (
    AsyncGovgwClient,
    GovgwClient,
    GovgwClientError,
    IdentityResult,
    Listing,
    LookupResult,
    to_json,
)
from clients.sdk import types as t
from gateway import admin
from gateway.access.subject_tokens import load_private_key, mint
from gateway.config import DEFAULT_POLICY_DIR
from tests.support import Harness, expect_error, make_data_dir, shifted_clock, start

TODAY = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)  # a Monday
PB, SA, LE = "population.basic", "social_assistance.recipient", "legal_entity.basic"
PURPOSE = "社会保障待遇资格认证"
ABSENT = "51322119000101999" + ric.calc_check_digit("513221190001019990")  # valid, not held
EXTRA = (
    ("root", "admin", "州大数据局", ()),
    ("agency-amr", "agency", "汶川县市场监督管理局", ("county.market-regulation",)),
    ("agency-police", "agency", "汶川县公安局", ("county.public-security",)),
)
PUBLIC_METHODS = sorted(
    n for n, v in vars(GovgwClient).items() if callable(v) and not n.startswith("_")
)


def serve(data_dir: Path) -> Harness:
    keys, demo = make_data_dir(data_dir, persons=30, entities=10)
    for cid, kind, dept, providers in EXTRA:
        keys[cid] = admin.callers_add(data_dir, cid, kind, dept, "513221", provider_ids=providers)[
            "api_key"
        ]
    return start(data_dir, keys, demo, clock=shifted_clock(TODAY), sweep_interval_s=0)


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    h = serve(tmp_path_factory.mktemp("sdk-results") / "data")
    yield h
    h.stop()


@pytest.fixture(params=["sync", "asyncio"])
def fresh(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Harness, str]]:
    """A gateway of its own for the full tour (it changes state), once per client."""
    h = serve(tmp_path / "data")
    yield h, request.param
    h.stop()


class Recorded:
    """A client whose method names are noted as they are called (to prove every one ran)."""

    def __init__(self, client: GovgwClient, seen: set[str]) -> None:
        self._client, self._seen = client, seen

    def __getattr__(self, name: str) -> Any:
        self._seen.add(name)
        return getattr(self._client, name)


class OnLoop(Recorded):
    """The asyncio client, each call awaited on one event loop (an async iterator
    collected into a list), so the one tour below runs through either client."""

    def __init__(self, h: Harness, caller: str, seen: set[str], loop: asyncio.AbstractEventLoop):
        async def make() -> AsyncGovgwClient:  # grpc.aio channels belong to a running loop
            return AsyncGovgwClient(h.target, api_key=h.keys[caller], timeout_s=60)

        self._loop = loop
        super().__init__(loop.run_until_complete(make()), seen)  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> Any:
        method = super().__getattr__(name)

        async def collect(items: Any) -> list[Any]:
            return [item async for item in items]

        def call(*args: Any, **kw: Any) -> Any:
            out = method(*args, **kw)
            return self._loop.run_until_complete(collect(out) if inspect.isasyncgen(out) else out)

        return call

    def close(self) -> None:
        self._loop.run_until_complete(self._client.close())


def typed(result: Any, *, request_id: bool = True) -> Any:
    """Assert the result is a typed one all the way down, its JSON form serializable."""

    def walk(value: Any) -> None:
        assert not isinstance(value, Message), f"a raw protobuf message: {type(value)}"
        if dataclasses.is_dataclass(value):
            assert type(value).__dataclass_params__.frozen, type(value)  # type: ignore[attr-defined]
            for f in dataclasses.fields(value):
                walk(getattr(value, f.name))
        elif isinstance(value, list | tuple):
            for v in value:
                walk(v)
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)

    walk(result)
    json.dumps(to_json(result), ensure_ascii=False)
    if request_id:
        assert result.request_id.startswith("req_"), result
    return result


def token(h: Harness, subject: str) -> str:
    key = load_private_key((h.data_dir / "keys" / "demo-subject-issuer.pem").read_bytes())
    return mint(key, issuer=admin.DEMO_ISSUER, subject=subject, now=h.parts.clock())


def test_every_method_returns_a_typed_result(fresh: tuple[Harness, str], tmp_path: Path) -> None:
    gw, kind = fresh
    seen: set[str] = set()
    loop = asyncio.new_event_loop()
    opened: list[OnLoop] = []

    def as_(caller: str) -> Any:
        if kind == "sync":
            return Recorded(gw.client(caller, timeout_s=60), seen)
        opened.append(OnLoop(gw, caller, seen, loop))
        return opened[-1]

    try:
        tour(gw, as_, tmp_path)
    finally:
        for c in opened:
            c.close()
        loop.close()
    assert sorted(seen) == PUBLIC_METHODS  # every method of the SDK, each typed


def tour(gw: Harness, as_: Any, tmp_path: Path) -> None:
    """Every method once, as the callers who may make each call."""

    counter, civil, far = as_("counter-wenchuan"), as_("agency-civil"), as_("agency-far")
    root, amr, public = as_("root"), as_("agency-amr"), as_("public-portal")
    adult, entity = gw.demo["adult_resident"], gw.demo["active_entity"]["uscc"]
    pid = adult["id_number"]

    # -- verification, lookup, catalog, receipts --------------------------------------
    ident = typed(counter.verify_identity(adult["name"], pid, purpose="户籍业务办理"))
    assert isinstance(ident, IdentityResult) and ident.result is t.VerificationResult.MATCH
    assert ident.receipt is not None and ident.receipt.verified
    assert ident.receipt.claims.outcome == "MATCH" and ident.policy_version
    assert to_json(ident)["receipt"] == ident.receipt.signed.to_json()  # `receipt verify` reads
    attrs = typed(counter.verify_attributes(pid, [("age_at_least", ["18"])], purpose="居住证办理"))
    assert attrs.results == {"age_at_least(18)": True} and attrs.receipt.verified
    rec = typed(counter.lookup(PB, pid, ["name", "gender"], purpose=PURPOSE))
    assert isinstance(rec, LookupResult) and set(rec.records[0]) == {"name", "gender"}
    absent = ABSENT
    batch = [typed(r) for r in counter.batch_lookup(PB, [pid, absent], purpose=PURPOSE)]
    assert [r.found for r in batch] == [True, False]
    datasets = typed(civil.list_datasets())
    assert PB in {d.name for d in datasets} and datasets.policy_version
    ds = typed(civil.get_dataset(PB))
    assert isinstance(ds, t.Dataset) and isinstance(ds.share_class, t.ShareClass)
    assert all(isinstance(f.sensitivity, t.Sensitivity) for f in ds.fields)
    keys = typed(counter.receipt_keys())
    assert ident.receipt.key_id in {k.key_id for k in keys}
    assert counter.keyset() == keys.document()

    # -- applications, grants, usage ----------------------------------------------------
    app = typed(far.apply(SA, ["name"], purpose=PURPOSE, scenario="复核", duration_days=30))
    assert isinstance(app, t.Application) and app.status == "pending"
    assert app.id in {a.id for a in typed(civil.list_applications(status="pending"))}
    assert typed(far.get_application(app.id)).history[0].at is not None
    decided = typed(civil.decide_application(app.id, approve=True))
    assert decided.grant is not None and decided.grant.status is t.GrantStatus.ACTIVE
    grant = typed(civil.change_grant(decided.grant.id, "suspended", reason="疑似超范围使用"))
    assert grant.status is t.GrantStatus.SUSPENDED
    assert isinstance(typed(root.sweep_unused_grants()), Listing)
    report = typed(civil.usage_report(SA))
    assert isinstance(report, t.GetUsageReportResponse) and isinstance(report.since, datetime)

    # -- emergencies -------------------------------------------------------------------
    em = typed(
        root.declare_emergency(
            title="汶川县地震应急响应", legal_basis="《突发事件应对法》第四十五条",
            scope={SA: ["name"]}, agencies=["agency-far"], purpose="地震受灾群众救助核查",
            ends_at=gw.parts.clock() + timedelta(days=7),
        )
    )  # fmt: skip
    assert em.status is t.EmergencyStatus.ACTIVE
    assert [e.id for e in typed(far.list_emergencies(status="active"))] == [em.id]
    assert typed(root.get_emergency(em.id)).id == em.id
    ended = typed(root.end_emergency(em.id, reason="应急响应终止"))
    assert ended.emergency.status is t.EmergencyStatus.ENDED
    assert typed(root.sealing_list(em.id)).emergency.id == em.id
    assert typed(root.seal_emergency(em.id)).sealed_by == "root"

    # -- conflicts, deadlines ----------------------------------------------------------
    page = typed(root.list_conflicts(page_size=1))
    every = typed(root.conflicts_report())
    assert all(isinstance(c, t.Conflict) for c in every) and len(every) >= len(page.conflicts)
    due = typed(root.deadlines())
    assert all(isinstance(i.kind, t.DeadlineItemKind) for i in due.items)

    # -- the data subject and the provider ------------------------------------------------
    tok = token(gw, pid)
    usage = typed(counter.my_usage(tok))
    assert usage.uses and all(isinstance(u.at, datetime) for u in usage.uses)
    assert [u.request_id for u in typed(counter.all_my_usage(tok, page_size=1))] == [
        u.request_id for u in usage.uses
    ]
    cor = typed(
        counter.file_correction(tok, dataset=PB, field="household_address", statement="已迁居")
    )
    assert cor.status is t.CorrectionStatus.PENDING
    assert [c.id for c in typed(counter.my_corrections(tok))] == [cor.id]
    police = as_("agency-police")
    assert cor.id in {c.id for c in typed(police.list_corrections(status="pending"))}
    assert typed(police.extend_correction(cor.id, reason="需调取档案")).extended
    answered = typed(police.answer_correction(cor.id, corrected=True, note="已更正"))
    assert answered.status is t.CorrectionStatus.CORRECTED
    records = typed(counter.my_records(token(gw, pid)))
    assert records.datasets[0].dataset == PB
    etok = token(gw, entity)
    wd = typed(public.request_withdrawal(etok, dataset=LE, reason="法定代表人信息侵权"))
    assert wd.status is t.WithdrawalStatus.SUSPENDED
    assert [w.id for w in typed(public.my_withdrawals(etok))] == [wd.id]
    assert [w.id for w in typed(amr.list_withdrawals(status="suspended"))] == [wd.id]
    reviewed = typed(amr.review_withdrawal(wd.id, t.WithdrawalReview.REINSTATE, reason="准确"))
    assert reviewed.status is t.WithdrawalStatus.REINSTATED

    # -- a dataset's opening -------------------------------------------------------------
    sus = typed(amr.suspend_opening(LE, reason="发现批量爬取风险"))
    assert sus.status is t.OpeningSuspensionStatus.SUSPENDED
    assert [s.id for s in typed(amr.list_opening_suspensions(status="suspended"))] == [sus.id]
    assert typed(amr.withdraw_opening(sus.id, reason="待处理")).status.name == "WITHDRAWN"
    back = typed(amr.reopen_opening(sus.id, reason="已处理", reprocessed=True))
    assert back.status is t.OpeningSuspensionStatus.REOPENED and back.reprocessed

    # -- policy administration -----------------------------------------------------------
    cand = tmp_path / "candidate"
    shutil.copytree(DEFAULT_POLICY_DIR, cand)
    (cand / "callers.rego").write_text((cand / "callers.rego").read_text() + "\n# candidate\n")
    valid = typed(root.validate_policy(cand))
    assert valid.valid and valid.version
    assert typed(root.test_policy(cand)).passed
    assert typed(root.policy_impact(cand, window_s=3600)).candidate_version == valid.version
    act = typed(root.activate_policy(candidate=cand, reason="测试类型化结果"))
    assert act.version.version == valid.version and isinstance(act.entry.at, datetime)
    back_to = typed(root.rollback_policy(reason="撤回测试"))
    assert back_to.version.version != valid.version
    assert typed(root.list_policy_versions()).active_version == back_to.version.version


def test_errors_carry_code_reason_violations_and_request_id(gw: Harness) -> None:
    counter = gw.client("counter-wenchuan")
    e = expect_error(
        lambda: counter.verify_identity("张三", "513221199001011230", purpose="户籍业务办理"),
        grpc.StatusCode.INVALID_ARGUMENT,
        "ID_NUMBER_CHECK_DIGIT",
        ["id_number"],
    )
    assert e.code_name == "INVALID_ARGUMENT" and e.violations[0].reason
    text = str(e)
    assert text.startswith("INVALID_ARGUMENT ID_NUMBER_CHECK_DIGIT id_number: ")
    assert text.endswith(f"(request {e.request_id})") and "513221199001011230" not in text
    assert to_json(e)["request_id"] == e.request_id
    # A bad argument the SDK can tell is bad is refused before any call.
    with pytest.raises(ValueError, match="status: one of active, suspended, revoked"):
        gw.client("agency-civil").change_grant("g", "paused", reason="x")


def test_the_async_client_has_the_same_methods_and_answers(gw: Harness) -> None:
    sync_methods = {n: inspect.signature(getattr(GovgwClient, n)) for n in PUBLIC_METHODS}
    async_methods = {
        n: inspect.signature(getattr(AsyncGovgwClient, n))
        for n, v in vars(AsyncGovgwClient).items()
        if callable(v) and not n.startswith("_")
    }
    assert async_methods == sync_methods
    assert "purpose" in sync_methods["lookup"].parameters  # the builder's own arguments
    adult = gw.demo["adult_resident"]
    pid = adult["id_number"]
    asks = (["name"], ["gender"], ["name", "gender"])
    counter = gw.client("counter-wenchuan")

    async def agency_batch() -> tuple[Any, ...]:
        async with AsyncGovgwClient(gw.target, api_key=gw.keys["counter-wenchuan"]) as a:
            looked = await asyncio.gather(
                *(a.lookup(PB, pid, fields, purpose=PURPOSE) for fields in asks)
            )
            ident = await a.verify_identity(adult["name"], pid, purpose="户籍业务办理")
            streamed = [r async for r in a.batch_lookup(PB, [pid, ABSENT], purpose=PURPOSE)]
            datasets = await a.list_datasets()
            clerk = await a.as_operator("clerk-7").verify_identity(
                adult["name"], pid, purpose="户籍业务办理"
            )
            try:
                await a.verify_identity("张三", "513221199001011230", purpose="户籍业务办理")
            except GovgwClientError as e:
                refused = e
            return looked, ident, streamed, datasets, refused, clerk

    looked, ident, streamed, datasets, refused, clerk = asyncio.run(agency_batch())
    # The clerk's call went over the same channel, named in its audit record.
    (record,) = [r for r in gw.audit_records() if r["request_id"] == clerk.request_id]
    assert record.get("operator") == "clerk-7"
    for r in (*looked, ident, *streamed, datasets):
        typed(r)
    assert [r.records for r in looked] == [
        counter.lookup(PB, pid, fields, purpose=PURPOSE).records for fields in asks
    ]
    assert ident.result is t.VerificationResult.MATCH and ident.receipt.verified
    assert [(r.index, r.found) for r in streamed] == [(0, True), (1, False)]
    assert datasets.items == counter.list_datasets().items
    assert (refused.code, refused.reason) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "ID_NUMBER_CHECK_DIGIT",
    )
    assert [v.field for v in refused.violations] == ["id_number"]
    assert refused.request_id.startswith("req_") and refused.request_id in str(refused)


def test_enums_are_python_enums_named_without_their_prefix() -> None:
    assert [m.name for m in t.GrantStatus] == ["UNSPECIFIED", "ACTIVE", "SUSPENDED", "REVOKED"]
    assert issubclass(t.DeadlineItemKind, enum.Enum)
    assert to_json(t.GrantResult(status=t.GrantStatus.REVOKED, request_id="r"))["status"] == (
        "REVOKED"
    )


def test_the_generated_types_match_the_protos() -> None:
    from clients.sdk.gen_types import main

    assert main(["--check"]) == 0, "run: python -m clients.sdk.gen_types"


def test_a_newer_gateways_answers_still_convert() -> None:
    """Fields and enum values this SDK does not know yet are left out or read as
    unspecified: an older SDK keeps working against a gateway that has grown."""
    from govgw.v1 import access_pb2

    from clients.sdk.convert import from_proto

    @dataclasses.dataclass(frozen=True)
    class OlderGrant:  # a Grant as an SDK generated before `caller` existed would have it
        PROTO = "govgw.v1.Grant"
        id: str = ""
        status: t.GrantStatus = t.GrantStatus.UNSPECIFIED

    grant = access_pb2.Grant(id="g1", caller="agency-far", status=access_pb2.GRANT_STATUS_REVOKED)
    assert from_proto(grant, OlderGrant) == OlderGrant("g1", t.GrantStatus.REVOKED)
    unknown = from_proto(access_pb2.Grant(id="g2", status=99))  # proto3 enums are open
    assert unknown.status is t.GrantStatus.UNSPECIFIED
