"""SubjectService end to end: who used my data, corrections (校核), withdrawals (撤回).

A real server on a fixed 2026 date (correction deadlines are working days on
the holiday calendar); subject tokens signed by the data directory's demo
identity provider, as `govgw subjects token` signs them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from stdnum.cn import uscc

from clients.sdk import GovgwClient, GovgwClientError
from clients.sdk.types import CorrectionStatus, WithdrawalStatus
from gateway import admin
from gateway.access.subject_tokens import encode, load_private_key, mint, new_issuer_key
from gateway.app import attach, build_parts
from gateway.config import ServeConfig
from gateway.plan import SUBJECT_USAGE
from gateway.server import GatewayServer
from tests.support import Harness, expect_error, make_data_dir, shifted_clock

TODAY = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)  # a Monday
UNAUTH = grpc.StatusCode.UNAUTHENTICATED
INVALID = grpc.StatusCode.INVALID_ARGUMENT
DENIED = grpc.StatusCode.PERMISSION_DENIED
FAILED = grpc.StatusCode.FAILED_PRECONDITION
ENTITY_DS = "legal_entity.basic"
STATEMENT = "户籍地址应为汶川县威州镇岷江路12号，户主王建国"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    data_dir = tmp_path_factory.mktemp("subjects")
    keys, demo = make_data_dir(data_dir, persons=30, entities=10)
    for cid, kind, dept, region, providers in (
        ("agency-amr", "agency", "汶川县市场监督管理局", "513221", ("county.market-regulation",)),
        ("agency-security", "agency", "阿坝州国家安全局", "513200", ()),
        ("agency-police", "agency", "汶川县公安局", "513221", ("county.public-security",)),
    ):
        keys[cid] = admin.callers_add(data_dir, cid, kind, dept, region, provider_ids=providers)[
            "api_key"
        ]
    # As `govgw serve` builds it (limits, oracle, replay protection), on a fixed date.
    cfg = ServeConfig(data_dir=data_dir, listen="127.0.0.1:0", grace_s=1, sweep_interval_s=0)
    parts = attach(build_parts(cfg), cfg)
    parts.clock = parts.audit.clock = shifted_clock(TODAY)
    server = GatewayServer(cfg, parts)
    server.start()
    h = Harness(data_dir, cfg, parts, server, keys, demo)
    yield h
    h.stop()


def token(h: Harness, subject: str, **kw) -> str:
    key = load_private_key((h.data_dir / "keys" / "demo-subject-issuer.pem").read_bytes())
    return mint(key, issuer=admin.DEMO_ISSUER, subject=subject, now=h.parts.clock(), **kw)


def absent_uscc() -> str:
    body = "91513221MA62X0000"
    return body + uscc.calc_check_digit(body)


def _uses(h: Harness, caller: str, subject: str, **kw) -> list:
    return h.client(caller).all_my_usage(token(h, subject), **kw)


# ----- who used my data -------------------------------------------------------------------


@pytest.mark.requirement("R8")
def test_subject_sees_exactly_the_uses_of_their_data_minus_those_hidden_by_law(
    gw: Harness,
) -> None:
    person = gw.demo["adult_resident"]
    other = gw.demo["minor"]["id_number"]
    pid = person["id_number"]
    gw.client("counter-wenchuan").verify_identity(person["name"], pid, purpose="户籍业务办理")
    gw.client("agency-civil").lookup("population.basic", pid, ["name"], purpose="资格审核")
    # Uses the law hides from the subject: investigations by public security and state security.
    for caller, purpose in (
        ("agency-police", "刑事案件侦查"),
        ("agency-security", "维护国家安全调查"),
    ):
        # Refused or not found, it is an audited use all the same, and hidden all the same.
        with contextlib.suppress(GovgwClientError):
            gw.client(caller).lookup("population.basic", pid, ["name"], purpose=purpose)
    # The police on ordinary duty are shown.
    gw.client("agency-police").lookup("population.basic", pid, ["name"], purpose="户籍迁移办理")
    # Somebody else's data: never in this subject's listing.
    gw.client("counter-wenchuan").verify_identity("某人", other, purpose="户籍业务办理")
    h = gw.parts.keyring.subject_hash(pid)
    audited = [r for r in gw.audit_records() if r.get("subject") == h]
    assert {r["caller"] for r in audited} >= {"agency-police", "agency-security"}

    uses = _uses(gw, "public-portal", pid)
    seen = sorted((u.caller, u.action, u.purpose, u.dataset) for u in uses)
    assert seen == sorted(
        [
            # purposes as stored: their registered codes
            ("counter-wenchuan", "verify.identity", "household_registration", "population.basic"),
            ("agency-civil", "lookup", "eligibility_review", "population.basic"),
            ("agency-police", "lookup", "household_registration", "population.basic"),
        ]
    )
    assert all(u.outcome == "OK" and u.department and u.at for u in uses)
    assert [u.at for u in uses] == sorted((u.at for u in uses), reverse=True)
    # The listing call itself is the subject's own: not listed, and its audit record
    # says how many were listed, never how many were hidden.
    again = _uses(gw, "counter-wenchuan", pid, page_size=1)
    assert [u.request_id for u in again] == [u.request_id for u in uses]
    own = [r for r in gw.audit_records() if r["action"] == SUBJECT_USAGE and r["subject"] == h]
    assert own and own[-1]["details"] == {"uses_listed": 1}
    assert "hidden" not in gw.audit_text().lower()
    # The period filter.
    soon = gw.parts.clock() + timedelta(seconds=5)
    later = gw.client("public-portal").my_usage(
        token(gw, pid), since=soon, until=soon + timedelta(days=1)
    )
    assert list(later.uses) == [] and later.next_page_token == ""
    # Another subject sees the use of their data only.
    theirs = _uses(gw, "public-portal", other)
    assert [(u.caller, u.action) for u in theirs] == [("counter-wenchuan", "verify.identity")]


def test_usage_paging_and_bad_inputs(gw: Harness) -> None:
    pid = gw.demo["assistance_recipient"]["id_number"]
    for purpose in ("资格审核", "救助复核", "低保年审"):
        gw.client("agency-civil").lookup("population.basic", pid, ["name"], purpose=purpose)
    c = gw.client("public-portal")
    first = c.my_usage(token(gw, pid), page_size=2)
    assert len(first.uses) == 2 and first.next_page_token
    second = c.my_usage(token(gw, pid), page_size=2, page_token=first.next_page_token)
    assert [u.purpose for u in second.uses] == [
        "eligibility_review"
    ] and second.next_page_token == ""
    t = token(gw, pid)
    expect_error(lambda: c.my_usage(t, page_size=500), INVALID, "PAGE_SIZE_INVALID", ["page_size"])
    expect_error(
        lambda: c.my_usage(t, page_token="not-a-token"),
        INVALID,
        "PAGE_TOKEN_INVALID",
        ["page_token"],
    )
    now = gw.parts.clock()
    expect_error(
        lambda: c.my_usage(t, since=now, until=now - timedelta(days=1)),
        INVALID,
        "PERIOD_INVALID",
        ["since"],
    )


# ----- subject tokens -----------------------------------------------------------------------


def test_every_bad_subject_token_is_refused_precisely(gw: Harness) -> None:
    pid = gw.demo["adult_resident"]["id_number"]
    c = gw.client("public-portal")
    now = gw.parts.clock()
    key = load_private_key((gw.data_dir / "keys" / "demo-subject-issuer.pem").read_bytes())
    stranger = load_private_key(new_issuer_key()[0].encode())
    good = {
        "iss": admin.DEMO_ISSUER,
        "sub": pid,
        "sub_type": "person",
        "aud": "govgw",
        "iat": int(now.timestamp()),
        "exp": int(now.timestamp()) + 600,
        "jti": "j1",
    }
    cases = [
        ("", "SUBJECT_TOKEN_MISSING"),
        ("garbage", "SUBJECT_TOKEN_INVALID"),
        ("a.b.c", "SUBJECT_TOKEN_INVALID"),
        ("!!!.???", "SUBJECT_TOKEN_INVALID"),
        (token(gw, pid).replace(".", ".A", 1), "SUBJECT_TOKEN_SIGNATURE"),
        ("eyJhIjoxfQ." + token(gw, pid).split(".")[1], "SUBJECT_TOKEN_INVALID"),  # {"a":1}
        ("WzFd." + token(gw, pid).split(".")[1], "SUBJECT_TOKEN_INVALID"),  # [1]
        (encode({**good, "iss": "other-idp"}, stranger), "SUBJECT_ISSUER_UNKNOWN"),
        (encode(good, stranger), "SUBJECT_TOKEN_SIGNATURE"),
        (encode({**good, "aud": "other"}, key), "SUBJECT_TOKEN_AUDIENCE"),
        (encode({**good, "exp": good["iat"] + 3600}, key), "SUBJECT_TOKEN_LIFETIME"),
        (
            mint(key, issuer=admin.DEMO_ISSUER, subject=pid, now=now - timedelta(hours=1)),
            "SUBJECT_TOKEN_EXPIRED",
        ),
        (
            mint(key, issuer=admin.DEMO_ISSUER, subject=pid, now=now + timedelta(hours=1)),
            "SUBJECT_TOKEN_NOT_YET_VALID",
        ),
        (token(gw, pid, azp="counter-wenchuan"), "SUBJECT_TOKEN_CALLER_MISMATCH"),
        (encode({**good, "sub": pid[:17] + ("1" if pid[17] != "1" else "2")}, key),
         "SUBJECT_KEY_INVALID"),
        (encode({**good, "sub_type": "robot"}, key), "SUBJECT_TOKEN_INVALID"),
        (encode({**good, "iat": "yesterday"}, key), "SUBJECT_TOKEN_INVALID"),
    ]  # fmt: skip
    for tok, reason in cases:
        e = expect_error(lambda tok=tok: c.my_corrections(tok), UNAUTH, reason)
        # Never the token or the subject key in what comes back.
        assert pid not in str(e.to_json()) and (not tok or tok not in str(e.to_json()))
    # Bound to the counter that carries it: accepted there.
    assert (
        gw.client("counter-wenchuan").my_corrections(token(gw, pid, azp="counter-wenchuan")).items
        == ()
    )
    # An agency cannot carry a subject's own calls, however valid the token.
    expect_error(
        lambda: gw.client("agency-civil").my_corrections(token(gw, pid)),
        DENIED,
        "SUBJECT_CHANNEL_REQUIRED",
    )
    assert pid not in gw.audit_text()


# ----- corrections --------------------------------------------------------------------------


@pytest.mark.requirement("R8")
def test_correction_reaches_the_provider_with_its_deadline_and_is_answered(gw: Harness) -> None:
    pid = gw.demo["minor"]["id_number"]
    counter = gw.client("counter-wenchuan")
    t = token(gw, pid, azp="counter-wenchuan")
    cor = counter.file_correction(
        t, dataset="population.basic", field="household_address", statement=STATEMENT,
        evidence_ref="户口簿 第3页",
    )  # fmt: skip
    # Filed Monday 1 June 2026: 5 working days -> Monday 8 June.
    assert (cor.status, cor.due_date, cor.working_days, cor.extended) == (
        CorrectionStatus.PENDING,
        "2026-06-08",
        5,
        False,
    )
    assert cor.provider == "县公安局" and cor.subject_key == ""
    expect_error(
        lambda: counter.file_correction(
            t, dataset="population.basic", field="household_address", statement="另一说法"
        ),
        grpc.StatusCode.ALREADY_EXISTS,
        "CORRECTION_PENDING",
    )
    # The provider (a 县公安局) sees it, with the subject key it needs to find the record.
    police = gw.client("agency-police")
    mine = [x for x in police.list_corrections() if x.id == cor.id]
    assert len(mine) == 1 and mine[0].subject_key == pid and mine[0].statement == STATEMENT
    assert not mine[0].overdue
    # Nobody else does.
    civil = gw.client("agency-civil")
    assert [x.id for x in civil.list_corrections()] == []
    expect_error(
        lambda: civil.answer_correction(cor.id, corrected=True, note="已更正"),
        grpc.StatusCode.NOT_FOUND,
        "CORRECTION_NOT_FOUND",
    )
    expect_error(lambda: gw.client("public-portal").list_corrections(), DENIED, "PROVIDER_REQUIRED")
    # One extension, to 10 working days (Monday 15 June); a second is refused.
    expect_error(
        lambda: police.extend_correction(cor.id, reason=""), INVALID, "REASON_MISSING", ["reason"]
    )
    ext = police.extend_correction(cor.id, reason="需调取原始户籍档案核实")
    assert (ext.due_date, ext.working_days, ext.extended) == ("2026-06-15", 10, True)
    expect_error(
        lambda: police.extend_correction(cor.id, reason="仍需核实"),
        FAILED,
        "DEADLINE_NOT_EXTENDABLE",
    )
    done = police.answer_correction(cor.id, corrected=True, note="已按户口簿更正户籍地址")
    assert done.status is CorrectionStatus.CORRECTED and done.answered_by == "汶川县公安局"
    expect_error(
        lambda: police.answer_correction(cor.id, corrected=False, note="x", legal_basis="y"),
        FAILED,
        "CORRECTION_ANSWERED",
    )
    # The subject sees the answer, the deadline and the extension's reason; not their key.
    (seen,) = counter.my_corrections(t)
    assert (seen.status, seen.answer_note, seen.due_date, seen.extension_reason) == (
        CorrectionStatus.CORRECTED,
        "已按户口簿更正户籍地址",
        "2026-06-15",
        "需调取原始户籍档案核实",
    )
    assert seen.subject_key == "" and seen.statement == STATEMENT
    # A rejection needs a reason and its legal basis.
    cor2 = counter.file_correction(
        t, dataset="population.basic", field="ethnicity", statement="应为藏族"
    )
    expect_error(
        lambda: police.answer_correction(cor2.id, corrected=False, note="与登记材料一致"),
        INVALID,
        "LEGAL_BASIS_MISSING",
        ["legal_basis"],
    )
    rej = police.answer_correction(
        cor2.id, corrected=False, note="与原始登记材料一致", legal_basis="《户口登记条例》第十七条"
    )
    assert rej.status is CorrectionStatus.REJECTED and rej.legal_basis == "《户口登记条例》第十七条"
    # The statement and the subject's key are nowhere in the audit trail; the transitions are.
    text = gw.audit_text()
    assert STATEMENT not in text and "户口簿 第3页" not in text and pid not in text
    transitions = [
        r["details"]["transition"]
        for r in gw.audit_records()
        if r.get("details", {}).get("correction_id") == cor.id
    ]
    assert transitions == ["filed", "extended", "corrected"]
    # The provider's handling is a use of the subject's data the subject sees.
    uses = counter.all_my_usage(t)
    assert ("agency-police", "subject.review") in {(u.caller, u.action) for u in uses}


def test_an_idempotency_key_replays_only_to_the_same_subject(gw: Harness) -> None:
    """One app carries many citizens: a key reused with another subject's token never
    returns the first subject's stored answer (with their statement)."""
    from govgw.v1 import subject_pb2 as pb

    c = gw.client("public-portal")
    req = pb.FileCorrectionRequest(dataset="population.basic", field="gender", statement=STATEMENT)
    key = (("idempotency-key", "correction-0000000000001"),)

    def file(subject: str):
        md = (*c._metadata, ("x-govgw-subject-token", token(gw, subject)), *key)
        return c.stub("subjects").FileCorrection(req, metadata=md, timeout=10).correction

    first = file(gw.demo["adult_resident"]["id_number"])
    assert file(gw.demo["adult_resident"]["id_number"]).id == first.id  # a retry: replayed
    with pytest.raises(grpc.RpcError) as e:
        file(gw.demo["assistance_recipient"]["id_number"])
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION  # IDEMPOTENCY_KEY_REUSED
    assert STATEMENT not in (e.value.details() or "")


def test_bad_corrections_get_precise_errors(gw: Harness) -> None:
    pid = gw.demo["adult_resident"]["id_number"]
    c, t = gw.client("public-portal"), token(gw, pid)
    expect_error(
        lambda: c.file_correction(t, dataset="no.such", field="name", statement="x"),
        INVALID,
        "UNKNOWN_DATASET",
        ["dataset"],
    )
    expect_error(
        lambda: c.file_correction(t, dataset="population.basic", field="shoe_size", statement=""),
        INVALID,
        "UNKNOWN_FIELD",
        ["field", "statement"],
    )
    expect_error(
        lambda: c.file_correction(t, dataset=ENTITY_DS, field="name", statement="正确名称"),
        INVALID,
        "DATASET_SUBJECT_KIND",
        ["dataset"],
    )
    expect_error(
        lambda: c.file_correction(
            t, dataset="population.basic", field="name", statement="长" * 501
        ),
        INVALID,
        "STATEMENT_TOO_LONG",
        ["statement"],
    )
    # A dataset name that is an ID number is refused, not audited.
    expect_error(
        lambda: c.file_correction(t, dataset=pid, field="name", statement="x"),
        INVALID,
        "UNKNOWN_DATASET",
        ["dataset"],
    )
    assert pid not in gw.audit_text()


# ----- withdrawals --------------------------------------------------------------------------


def _absent_answer(c: GovgwClient, key: str) -> tuple:
    try:
        c.lookup(ENTITY_DS, key, purpose="核实交易对象")
    except GovgwClientError as e:
        meta = {k: v for k, v in e.metadata.items() if k != "request_id"}
        return (e.code, e.reason, str(e).replace(e.request_id, ""), meta, [*e.violations])
    return ("FOUND",)


@pytest.mark.requirement("R9")
def test_withdrawal_hides_the_record_from_the_public_at_once_until_reinstated(
    gw: Harness,
) -> None:
    ent = gw.demo["active_entity"]["uscc"]
    public, agency, amr = (
        gw.client("public-portal"),
        gw.client("agency-civil"),
        gw.client("agency-amr"),
    )
    absent = _absent_answer(public, absent_uscc())
    assert absent[:2] == (grpc.StatusCode.NOT_FOUND, "SUBJECT_NOT_FOUND")
    assert _absent_answer(public, ent) == ("FOUND",)
    before = public.verify_attributes(ent, [("entity_active", [])], purpose="核实交易对象")
    assert before.results == {"entity_active": True}

    t = token(gw, ent)
    w = public.request_withdrawal(
        t, dataset=ENTITY_DS, reason="公示的法定代表人信息已变更，侵犯本企业权益"
    )
    assert (w.status, w.provider, w.subject_key) == (
        WithdrawalStatus.SUSPENDED,
        "县市场监督管理局",
        "",
    )
    # The very next public call: exactly what an absent subject gets.
    assert _absent_answer(public, ent) == absent
    after = public.verify_attributes(ent, [("entity_active", [])], purpose="核实交易对象")
    ghost = public.verify_attributes(absent_uscc(), [("entity_active", [])], purpose="核实交易对象")
    assert after.results == ghost.results == {"entity_active": False}
    # Agencies' share access is unaffected.
    assert agency.lookup(ENTITY_DS, ent, ["name"], purpose="资格审核").records
    expect_error(
        lambda: public.request_withdrawal(t, dataset=ENTITY_DS, reason="再次申请"),
        grpc.StatusCode.ALREADY_EXISTS,
        "WITHDRAWAL_IN_FORCE",
    )
    # The provider reviews; others do not see it.
    assert len(gw.client("agency-police").list_withdrawals()) == 0
    (pending,) = amr.list_withdrawals(status="suspended")
    assert pending.subject_key == ent and pending.reason.startswith("公示的法定代表人")
    expect_error(
        lambda: amr.review_withdrawal(w.id, "", reason="核实"),
        INVALID,
        "REVIEW_INVALID",
        ["review"],
    )
    r = amr.review_withdrawal(w.id, "reinstate", reason="经核实登记信息准确并依法公示")
    assert r.status is WithdrawalStatus.REINSTATED
    assert _absent_answer(public, ent) == ("FOUND",)
    (mine,) = public.my_withdrawals(t)
    assert (mine.status, mine.review_reason, mine.subject_key) == (
        WithdrawalStatus.REINSTATED,
        "经核实登记信息准确并依法公示",
        "",
    )
    expect_error(
        lambda: amr.review_withdrawal(w.id, "uphold", reason="x"), FAILED, "WITHDRAWAL_REVIEWED"
    )
    # Asked again and upheld: stays withdrawn.
    w2 = public.request_withdrawal(t, dataset=ENTITY_DS, reason="仍认为侵犯权益")
    assert (
        amr.review_withdrawal(w2.id, "uphold", reason="确有不当公示内容").status
        is WithdrawalStatus.WITHDRAWN
    )
    assert _absent_answer(public, ent) == absent
    assert [x.status for x in public.my_withdrawals(t)] == [
        WithdrawalStatus.REINSTATED,
        WithdrawalStatus.WITHDRAWN,
    ]
    # Reinstatement after reprocessing restores the opening too.
    w3_doc = gw.client("agency-amr").list_withdrawals(status="withdrawn")
    assert [x.id for x in w3_doc] == [w2.id]
    transitions = [
        r["details"]["transition"]
        for r in gw.audit_records()
        if r.get("details", {}).get("withdrawal_id") in (w.id, w2.id)
    ]
    assert transitions == ["suspended", "reinstated", "suspended", "withdrawn"]
    assert ent not in gw.audit_text()


@pytest.mark.requirement("R9")
def test_reprocess_reinstates_and_bad_withdrawals_are_refused(gw: Harness) -> None:
    ent = gw.demo["deregistered_entity"]["uscc"]
    public, amr = gw.client("public-portal"), gw.client("agency-amr")
    t = token(gw, ent)
    w = public.request_withdrawal(t, dataset=ENTITY_DS, reason="注销企业信息不应继续公开")
    assert _absent_answer(public, ent)[0] == grpc.StatusCode.NOT_FOUND
    assert (
        amr.review_withdrawal(w.id, "reprocess", reason="已删除法定代表人字段后重新开放").status
        is WithdrawalStatus.REPROCESSED
    )
    assert _absent_answer(public, ent) == ("FOUND",)
    pid = gw.demo["adult_resident"]["id_number"]
    expect_error(
        lambda: public.request_withdrawal(token(gw, pid), dataset="population.basic", reason="x"),
        FAILED,
        "DATASET_NOT_OPEN",
    )
    expect_error(
        lambda: public.request_withdrawal(t, dataset="no.such", reason=""),
        INVALID,
        "UNKNOWN_DATASET",
        ["dataset", "reason"],
    )
    expect_error(
        lambda: public.request_withdrawal(token(gw, pid), dataset=ENTITY_DS, reason="x"),
        INVALID,
        "DATASET_SUBJECT_KIND",
        ["dataset"],
    )
    expect_error(
        lambda: amr.review_withdrawal("wd-0000", "uphold", reason="x"),
        grpc.StatusCode.NOT_FOUND,
        "WITHDRAWAL_NOT_FOUND",
    )
    expect_error(
        lambda: public.review_withdrawal(w.id, "uphold", reason="x"), DENIED, "PROVIDER_REQUIRED"
    )


def test_cli_token_file_round_trip(gw: Harness, tmp_path: Path) -> None:
    """The demo issuer key lives in the data directory only, readable by its owner only."""
    pem = gw.data_dir / "keys" / "demo-subject-issuer.pem"
    assert pem.stat().st_mode & 0o077 == 0
