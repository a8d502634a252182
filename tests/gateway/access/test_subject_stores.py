"""Correction and withdrawal stores on a real catalog and key ring: deadlines on the
holiday calendar, sealing at rest, who sees what, and withdrawals seen across processes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from stdnum.cn import ric, uscc

from gateway import keys
from gateway.access.corrections import CorrectionStore
from gateway.access.sealed import Sealer, SealError
from gateway.access.subject_tokens import SubjectIdentity
from gateway.access.withdrawals import WithdrawalStore
from gateway.callers import Caller
from gateway.catalog import load
from gateway.errors import GovgwError
from gateway.subjects import LEGAL_ENTITY, PERSON

NOW = datetime(2026, 2, 12, 2, 0, tzinfo=UTC)  # Thursday before Spring Festival
BODY = "51322119850315001"
PID = BODY + ric.calc_check_digit(BODY + "0")
ENT = "91513221MA62X0000" + uscc.calc_check_digit("91513221MA62X0000")
PERSON_SUBJECT = SubjectIdentity(PID, PERSON, "sc-idp", "t1", NOW + timedelta(minutes=10))
ENTITY_SUBJECT = SubjectIdentity(ENT, LEGAL_ENTITY, "sc-idp", "t2", NOW + timedelta(minutes=10))
POLICE = Caller(
    "agency-police", "agency", "汶川县公安局", "513221", provider_ids=("county.public-security",)
)
CIVIL = Caller(
    "agency-civil", "agency", "汶川县民政局", "513221", provider_ids=("county.civil-affairs",)
)
AMR = Caller(
    "agency-amr",
    "agency",
    "汶川县市场监督管理局",
    "513221",
    provider_ids=("county.market-regulation",),
)
STATEMENT = "姓名应为王建国，身份证号见户口簿"


@pytest.fixture
def ring(tmp_path: Path) -> keys.KeyRing:
    return keys.generate(tmp_path / "keys" / "keyring.json")


@pytest.fixture
def corrections(tmp_path: Path, ring: keys.KeyRing) -> CorrectionStore:
    return CorrectionStore(tmp_path / "corrections.sqlite", load(), ring)


def _code(fn) -> tuple[grpc.StatusCode, str, list[str]]:
    with pytest.raises(GovgwError) as e:
        fn()
    return e.value.code, e.value.reason, [v.field for v in e.value.violations]


@pytest.mark.requirement("R8")
def test_correction_deadline_over_spring_festival_and_one_extension(
    corrections: CorrectionStore,
) -> None:
    doc = corrections.file(
        PERSON_SUBJECT, dataset="population.basic", field="name", statement=STATEMENT,
        evidence_ref="", now=NOW,
    )  # fmt: skip
    # Fri 13 Feb, make-up Saturday 14 Feb, then the holiday to 23 Feb: 24, 25, 26.
    assert (doc["due"], doc["working_days"], doc["overdue"]) == ("2026-02-26", 5, False)
    ext = corrections.extend(POLICE, doc["id"], "需调取原始档案", NOW + timedelta(days=1))
    assert (ext["due"], ext["working_days"], ext["extended"]) == ("2026-03-04", 10, True)
    assert _code(lambda: corrections.extend(POLICE, doc["id"], "再延", NOW))[:2] == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "DEADLINE_NOT_EXTENDABLE",
    )
    # National Day: filed Tue 29 Sep, due Mon 12 Oct.
    later = corrections.file(
        PERSON_SUBJECT, dataset="population.basic", field="ethnicity", statement="藏族",
        evidence_ref="", now=datetime(2026, 9, 29, 2, 0, tzinfo=UTC),
    )  # fmt: skip
    assert later["due"] == "2026-10-12"


@pytest.mark.requirement("R8")
def test_overdue_is_flagged_and_stays_flagged_when_answered_late(
    corrections: CorrectionStore,
) -> None:
    doc = corrections.file(
        PERSON_SUBJECT, dataset="population.basic", field="name", statement=STATEMENT,
        evidence_ref="", now=NOW,
    )  # fmt: skip
    before, after = NOW + timedelta(days=13), NOW + timedelta(days=15)  # 25 Feb, 27 Feb
    assert corrections.for_provider(POLICE, before, overdue_only=True) == []
    (late,) = corrections.for_provider(POLICE, after, overdue_only=True)
    assert late["id"] == doc["id"] and late["subject_key"] == PID
    answered = corrections.answer(
        POLICE, doc["id"], corrected=True, note="已更正", legal_basis="", now=after
    )
    assert answered["overdue"] is True
    (mine,) = corrections.mine(PERSON_SUBJECT, after + timedelta(days=30))
    assert mine["overdue"] is True and mine["status"] == "corrected" and mine["subject_key"] == ""


def test_statement_and_subject_are_sealed_and_only_the_provider_sees_them(
    corrections: CorrectionStore, tmp_path: Path, ring: keys.KeyRing
) -> None:
    doc = corrections.file(
        PERSON_SUBJECT, dataset="population.basic", field="name", statement=STATEMENT,
        evidence_ref="户口簿第3页", now=NOW,
    )  # fmt: skip
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("corrections.sqlite*"))
    for secret in (STATEMENT, "户口簿第3页", PID):
        assert secret.encode() not in raw
    assert ring.subject_hash(PID).encode() in raw  # indexed by keyed hash
    assert corrections.for_provider(CIVIL, NOW) == []
    assert _code(lambda: corrections.answer(CIVIL, doc["id"], corrected=True, note="x",
                                            legal_basis="", now=NOW))[:2] == (
        grpc.StatusCode.NOT_FOUND, "CORRECTION_NOT_FOUND",
    )  # fmt: skip
    # A sealed value opens only in its own record and field.
    sealer = Sealer(ring)
    stored = corrections.get(doc["id"])
    assert stored is not None
    assert sealer.open(stored["statement_sealed"], doc["id"], "statement") == STATEMENT
    with pytest.raises(SealError):
        sealer.open(stored["statement_sealed"], doc["id"], "evidence_ref")
    with pytest.raises(SealError):
        sealer.open(stored["statement_sealed"], "cor-other", "statement")


def test_sm_suite_seals_too(tmp_path: Path) -> None:
    ring = keys.generate(tmp_path / "keyring.json", suite="sm4-gcm/hmac-sm3")
    sealer = Sealer(ring)
    assert sealer.open(sealer.seal(STATEMENT, "r", "f"), "r", "f") == STATEMENT


def test_bad_filings_and_answers(corrections: CorrectionStore) -> None:
    def file(**kw):
        args = dict(dataset="population.basic", field="name", statement="x", evidence_ref="")
        return lambda: corrections.file(PERSON_SUBJECT, now=NOW, **{**args, **kw})

    inv = grpc.StatusCode.INVALID_ARGUMENT
    assert _code(file(dataset="")) == (inv, "DATASET_MISSING", ["dataset"])
    assert _code(file(field="")) == (inv, "FIELD_MISSING", ["field"])
    assert _code(file(statement="  ")) == (inv, "STATEMENT_MISSING", ["statement"])
    assert _code(file(statement="a\x00b")) == (inv, "STATEMENT_MALFORMED", ["statement"])
    assert _code(file(evidence_ref="x" * 121)) == (inv, "EVIDENCE_REF_TOO_LONG", ["evidence_ref"])
    assert _code(file(dataset="credit.record", field="status")) == (
        inv,
        "DATASET_SUBJECT_KIND",
        ["dataset"],
    )
    doc = file()()
    assert _code(file()) [:2] == (grpc.StatusCode.ALREADY_EXISTS, "CORRECTION_PENDING")  # fmt: skip
    answer = corrections.answer
    assert _code(lambda: answer(POLICE, doc["id"], corrected=True, note="", legal_basis="",
                                now=NOW)) == (inv, "NOTE_MISSING", ["note"])  # fmt: skip
    assert _code(lambda: answer(POLICE, "", corrected=True, note="x", legal_basis="",
                                now=NOW)) == (inv, "CORRECTION_ID_MISSING", ["correction_id"])  # fmt: skip
    assert _code(lambda: answer(POLICE, doc["id"], corrected=False, note="x",
                                legal_basis="110101199003077777", now=NOW))[1] == (
        "LEGAL_BASIS_CONTAINS_PERSONAL_DATA"
    )  # fmt: skip


# ----- withdrawals ----------------------------------------------------------------------


@pytest.mark.requirement("R9")
def test_a_withdrawal_is_honoured_by_every_process_on_its_next_check(
    tmp_path: Path, ring: keys.KeyRing
) -> None:
    path = tmp_path / "withdrawals.json"
    cli_side, worker_1, worker_2 = (WithdrawalStore(path, load(), ring) for _ in range(3))
    assert not worker_1.withdrawn("legal_entity.basic", ENT)  # before: no file at all
    w = cli_side.request(ENTITY_SUBJECT, dataset="legal_entity.basic", reason="侵犯权益", now=NOW)
    # No sleep, no interval: the next check in another instance sees it.
    assert worker_1.withdrawn("legal_entity.basic", ENT)
    assert worker_2.withdrawn("legal_entity.basic", ENT)
    assert not worker_1.withdrawn("credit.record", ENT)  # that dataset only
    raw = path.read_text()
    assert ENT not in raw and "侵犯权益" not in raw
    worker_2.review(AMR, w["id"], "reinstate", "信息准确", NOW)
    assert not worker_1.withdrawn("legal_entity.basic", ENT)
    # A broken file (hand-edited) does not reopen records: the last state read stands.
    w2 = cli_side.request(ENTITY_SUBJECT, dataset="legal_entity.basic", reason="再次", now=NOW)
    assert worker_1.withdrawn("legal_entity.basic", ENT)
    path.write_text("{ not json")
    assert worker_1.withdrawn("legal_entity.basic", ENT)
    # Writers refuse to overwrite it.
    assert _code(lambda: cli_side.review(AMR, w2["id"], "reinstate", "x", NOW))[:2] == (
        grpc.StatusCode.UNAVAILABLE,
        "WITHDRAWAL_STORE_UNREADABLE",
    )
    assert path.read_text() == "{ not json"


def test_withdrawal_rules(tmp_path: Path, ring: keys.KeyRing) -> None:
    store = WithdrawalStore(tmp_path / "withdrawals.json", load(), ring)
    failed, inv = grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.INVALID_ARGUMENT
    assert _code(
        lambda: store.request(PERSON_SUBJECT, dataset="population.basic", reason="x", now=NOW)
    )[:2] == (failed, "DATASET_NOT_OPEN")
    assert _code(lambda: store.request(ENTITY_SUBJECT, dataset="", reason="", now=NOW)) == (
        inv, "DATASET_MISSING", ["dataset", "reason"],
    )  # fmt: skip
    w = store.request(ENTITY_SUBJECT, dataset="credit.record", reason="处罚已撤销", now=NOW)
    assert w["provider"] == "县发展和改革局"
    assert store.for_provider(AMR) == []  # not its dataset
    assert _code(lambda: store.review(AMR, w["id"], "uphold", "x", NOW))[:2] == (
        grpc.StatusCode.NOT_FOUND, "WITHDRAWAL_NOT_FOUND",
    )  # fmt: skip
    ndrc = Caller(
        "agency-ndrc",
        "agency",
        "汶川县发展和改革局",
        "513221",
        provider_ids=("county.development-reform",),
    )
    assert _code(lambda: store.review(ndrc, w["id"], "delete", "", NOW)) == (
        inv, "REVIEW_INVALID", ["review", "reason"],
    )  # fmt: skip
    done = store.review(ndrc, w["id"], "uphold", "处罚决定已撤销，不再公示", NOW)
    assert done["status"] == "withdrawn" and store.withdrawn("credit.record", ENT)
    (mine,) = store.mine(ENTITY_SUBJECT)
    assert mine["review"]["reason"] == "处罚决定已撤销,不再公示" and mine["subject_key"] == ""
    assert [d["history"][-1]["event"] for d in json.loads(
        (tmp_path / "withdrawals.json").read_text())["withdrawals"]] == ["withdrawn"]  # fmt: skip
