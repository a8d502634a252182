"""The access stores on the storage seam, one contract on both backends: applications,
corrections (with the pending index the hot path reads), withdrawals, emergencies,
opening suspensions, subject-token issuers and calendar years.

Two store objects stand for two nodes: on SQLite they share the data directory's files
(two processes on one host), on PostgreSQL each has its own opened storage (two nodes
on one database). Whatever one writes, the other sees within 1 s; what is sealed or
keyed-hashed in the files stays so in the database."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from stdnum.cn import ric, uscc

from gateway import keys
from gateway.access.applications import ApplicationInput, ApplicationStore
from gateway.access.corrections import CorrectionStore
from gateway.access.disputes import DisputedFields, index_path
from gateway.access.emergency import EmergencyInput, EmergencyStore
from gateway.access.holidays import ScheduleInvalid, Supplements, install_file
from gateway.access.opening import OpeningSuspensionStore
from gateway.access.subject_tokens import (
    IssuerError,
    IssuerRegistry,
    SubjectIdentity,
    new_issuer_key,
)
from gateway.access.withdrawals import WithdrawalStore
from gateway.callers import Caller
from gateway.catalog import load
from gateway.errors import GovgwError
from gateway.grants import GrantStore
from gateway.storage import Storage, StorageUnavailable, open_storage
from gateway.subjects import LEGAL_ENTITY, PERSON
from tests.gateway.access.test_holidays import SCHEDULE_2027  # shaped like a notice
from tests.storage.conftest import Nodes
from tests.support import holds_within

NOW = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)
BODY = "51322119850315001"
PID = BODY + ric.calc_check_digit(BODY + "0")
ENT = "91513221MA62X0000" + uscc.calc_check_digit("91513221MA62X0000")
PERSON_SUBJECT = SubjectIdentity(PID, PERSON, "sc-idp", "t1", NOW + timedelta(minutes=10))
ENTITY_SUBJECT = SubjectIdentity(ENT, LEGAL_ENTITY, "sc-idp", "t2", NOW + timedelta(minutes=10))
STATEMENT = "姓名应为王建国，见户口簿"
POLICE = Caller(
    "agency-police", "agency", "汶川县公安局", "513221", provider_ids=("county.public-security",)
)
AMR = Caller(
    "agency-amr", "agency", "汶川县市场监督管理局", "513221",
    provider_ids=("county.market-regulation",),
)  # fmt: skip
CIVIL = Caller(
    "agency-civil", "agency", "汶川县民政局", "513221", provider_ids=("county.civil-affairs",)
)
APPLICANT = Caller("agency-far", "agency", "松潘县公安局", "513224")
ROOT = Caller("root", "admin", "州大数据局", "513221")
RESCUE = Caller("agency-rescue", "agency", "汶川县应急管理局", "513221")
CALLERS = {c.id: c for c in (RESCUE, ROOT)}
SOCIAL = "social_assistance.recipient"


@pytest.fixture
def ring(tmp_path: Path) -> keys.KeyRing:
    return keys.generate(tmp_path / "keys" / "keyring.json")


def _refused(fn: Callable[[], Any]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(GovgwError) as e:
        fn()
    return e.value.code, e.value.reason


def _stored(storage: Storage, tmp_path: Path) -> str:
    """Everything the stores wrote: the database's rows, or the data directory's files."""
    if not storage.shared:
        return "".join(
            p.read_bytes().decode("utf-8", "replace") for p in tmp_path.rglob("*") if p.is_file()
        )
    with storage.transaction() as db:
        rows = [r[0] for r in db.execute("SELECT items::text FROM documents")]
        for table in ("applications", "corrections"):
            rows += [r[0] for r in db.execute(f"SELECT doc FROM {table}")]
    return "\n".join(rows)


# ----- applications ----------------------------------------------------------------------


def _applications(storage: Storage, tmp_path: Path) -> ApplicationStore:
    grants = GrantStore(tmp_path / "grants.json", refresh_interval=0, storage=storage)
    return ApplicationStore(tmp_path / "applications.db", grants, load(), storage=storage)


@pytest.mark.requirement("R3")
def test_an_application_filed_on_one_node_is_decided_on_another(
    storages: Nodes, tmp_path: Path
) -> None:
    node_a, node_b = _applications(storages(), tmp_path), _applications(storages(), tmp_path)
    purpose = dict(purpose="社会救助对象核查", scenario="办理救助资格复核时核对救助类型")
    asked = ApplicationInput(SOCIAL, ("name", "assistance_type"), duration_days=90, **purpose)
    app = node_a.apply(APPLICANT, asked, NOW)
    assert _refused(lambda: node_b.apply(APPLICANT, asked, NOW)) == (
        grpc.StatusCode.ALREADY_EXISTS, "APPLICATION_PENDING",
    )  # fmt: skip
    assert [a["id"] for a in node_b.list(CIVIL, NOW)] == [app["id"]]
    decided = node_b.decide(
        CIVIL, app["id"], approve=True, fields=["assistance_type"], reason="", legal_basis="",
        now=NOW + timedelta(days=1),
    )  # fmt: skip
    assert decided["status"] == "approved"
    assert _refused(
        lambda: node_a.decide(CIVIL, app["id"], approve=False, fields=[], reason="迟",
                              legal_basis="第一条", now=NOW)
    ) == (grpc.StatusCode.FAILED_PRECONDITION, "APPLICATION_DECIDED")  # fmt: skip
    # The grant the approval made is node A's too, within 1 s.
    assert holds_within(lambda: node_a.grants.get(decided["grant_id"]) is not None)
    node_a.change_grant(CIVIL, decided["grant_id"], "suspended", "疑似滥用", NOW)
    history = [h["event"] for h in node_b.visible(APPLICANT, app["id"], NOW)["history"]]
    assert history == ["applied", "approved", "grant_suspended"]
    assert holds_within(lambda: node_b.grants.get(decided["grant_id"])["status"] == "suspended")


@pytest.mark.requirement("R3")
def test_two_nodes_deciding_one_application_at_once_decide_it_once(
    storages: Nodes, tmp_path: Path
) -> None:
    import threading

    nodes = [_applications(storages(), tmp_path) for _ in range(2)]
    asked = ApplicationInput(
        SOCIAL, ("name",), purpose="社会救助对象核查", scenario="核对救助对象", duration_days=30
    )
    app = nodes[0].apply(APPLICANT, asked, NOW)
    outcomes: list[str] = []

    def decide(node: ApplicationStore) -> None:
        try:
            node.decide(CIVIL, app["id"], approve=True, fields=[], reason="", legal_basis="",
                        now=NOW)  # fmt: skip
            outcomes.append("approved")
        except GovgwError as e:
            outcomes.append(e.reason)

    threads = [threading.Thread(target=decide, args=(n,)) for n in nodes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["APPLICATION_DECIDED", "approved"]
    nodes[1].grants.reload()
    assert [g["application_id"] for g in nodes[1].grants.list()] == [app["id"]]  # one grant


# ----- corrections and the pending index ---------------------------------------------------


@pytest.mark.requirement("R8")
def test_a_correction_filed_on_one_node_is_indicated_on_another_and_sealed(
    storages: Nodes, tmp_path: Path, ring: keys.KeyRing
) -> None:
    storage_a, storage_b = storages(), storages()
    node_a = CorrectionStore(tmp_path / "corrections.sqlite", load(), ring, storage=storage_a)
    node_b = CorrectionStore(tmp_path / "corrections.sqlite", load(), ring, storage=storage_b)
    hot_b = DisputedFields(
        index_path(tmp_path / "corrections.sqlite"), ring.subject_hash, storage_b
    )
    assert hot_b("population.basic", PID) == {}
    filed = node_a.file(
        PERSON_SUBJECT, dataset="population.basic", field="name", statement=STATEMENT,
        evidence_ref="户口簿", now=NOW,
    )  # fmt: skip
    assert holds_within(lambda: hot_b("population.basic", PID) == {"name": "2026-06-01"})
    assert _refused(
        lambda: node_b.file(PERSON_SUBJECT, dataset="population.basic", field="name",
                            statement="再次", evidence_ref="", now=NOW)
    ) == (grpc.StatusCode.ALREADY_EXISTS, "CORRECTION_PENDING")  # fmt: skip
    assert [c["statement"] for c in node_b.mine(PERSON_SUBJECT, NOW)] == [STATEMENT]
    seen = node_b.for_provider(POLICE, NOW)
    assert [(c["id"], c["subject_key"]) for c in seen] == [(filed["id"], PID)]
    node_b.extend(POLICE, filed["id"], "需调取原始档案", NOW)
    node_b.answer(POLICE, filed["id"], corrected=True, note="已更正", legal_basis="", now=NOW)
    assert holds_within(lambda: hot_b("population.basic", PID) == {})  # answered: not indicated
    assert node_a.get(filed["id"])["status"] == "corrected"
    assert node_a.pending_deadlines() == []
    stored = _stored(storage_a, tmp_path)
    assert filed["id"] in stored and PID not in stored and STATEMENT not in stored


# ----- withdrawals -----------------------------------------------------------------------


@pytest.mark.requirement("R9")
def test_a_withdrawal_on_one_node_is_honoured_by_another_within_1s(
    storages: Nodes, tmp_path: Path, ring: keys.KeyRing
) -> None:
    storage_a = storages()
    node_a = WithdrawalStore(tmp_path / "withdrawals.json", load(), ring, storage_a)
    node_b = WithdrawalStore(tmp_path / "withdrawals.json", load(), ring, storages())
    assert not node_b.withdrawn("legal_entity.basic", ENT)
    w = node_a.request(ENTITY_SUBJECT, dataset="legal_entity.basic", reason="侵犯权益", now=NOW)
    assert node_a.withdrawn("legal_entity.basic", ENT)  # its own node: at once
    assert holds_within(lambda: node_b.withdrawn("legal_entity.basic", ENT))
    assert not node_b.withdrawn("credit.record", ENT)  # that dataset only
    assert _refused(
        lambda: node_b.request(ENTITY_SUBJECT, dataset="legal_entity.basic", reason="再",
                               now=NOW)
    ) == (grpc.StatusCode.ALREADY_EXISTS, "WITHDRAWAL_IN_FORCE")  # fmt: skip
    assert [d["subject_key"] for d in node_b.for_provider(AMR)] == [ENT]
    assert [d["reason"] for d in node_b.mine(ENTITY_SUBJECT)] == ["侵犯权益"]
    node_b.review(AMR, w["id"], "reinstate", "信息准确", NOW)
    assert holds_within(lambda: not node_a.withdrawn("legal_entity.basic", ENT))
    assert node_a.get(w["id"])["status"] == "reinstated"
    stored = _stored(storage_a, tmp_path)
    assert w["id"] in stored and ENT not in stored and "侵犯权益" not in stored


# ----- emergencies and opening suspensions ------------------------------------------------


def _emergencies(storage: Storage, tmp_path: Path) -> EmergencyStore:
    grants = GrantStore(tmp_path / "grants.json", refresh_interval=0, storage=storage)
    return EmergencyStore(
        tmp_path / "emergencies.json", grants, load(), CALLERS.get, refresh_interval=0,
        storage=storage,
    )  # fmt: skip


@pytest.mark.requirement("R11")
def test_an_emergency_declared_on_one_node_applies_on_another(
    storages: Nodes, tmp_path: Path
) -> None:
    node_a, node_b = _emergencies(storages(), tmp_path), _emergencies(storages(), tmp_path)
    declared = EmergencyInput(
        title="汶川县地震应急响应", legal_basis="《突发事件应对法》第四十五条",
        scope=((SOCIAL, ("name", "assistance_type")),), agencies=("agency-rescue",),
        purpose="地震受灾群众救助核查", ends_at=NOW + timedelta(days=7),
    )  # fmt: skip
    doc = node_a.declare(ROOT, declared, NOW)
    assert holds_within(lambda: [e["id"] for e in node_b.policy_view()[1]] == [doc["id"]])
    assert node_b.grants.get(doc["grant_ids"][0])["emergency_id"] == doc["id"]
    _, revoked = node_b.end(ROOT, doc["id"], "响应结束", NOW + timedelta(days=1))
    assert revoked == doc["grant_ids"]
    assert holds_within(lambda: node_a.policy_view()[1] == [])
    assert node_a.visible(ROOT, doc["id"])["status"] == "ended"


@pytest.mark.requirement("R9")
def test_an_opening_suspended_on_one_node_is_decided_with_on_another(
    storages: Nodes, tmp_path: Path
) -> None:
    path = tmp_path / "opening_suspensions.json"
    node_a = OpeningSuspensionStore(path, load(), storages())
    node_b = OpeningSuspensionStore(path, load(), storages())
    before = node_b.version
    s = node_a.suspend(AMR, "legal_entity.basic", "发现安全风险", NOW)
    assert holds_within(lambda: node_b.version > before)
    assert node_b.policy_view()[1] == {"legal_entity.basic": {"id": s["id"], "status": "suspended"}}
    node_b.reopen(AMR, s["id"], "已脱敏处理", NOW, reprocessed=True)
    assert holds_within(lambda: node_a.policy_view()[1] == {})


# ----- subject-token issuers and calendar years --------------------------------------------


def test_an_issuer_registered_through_one_node_is_trusted_by_another(
    storages: Nodes, tmp_path: Path
) -> None:
    node_a = IssuerRegistry(tmp_path / "subject_issuers.json", storages())
    node_b = IssuerRegistry(tmp_path / "subject_issuers.json", storages())
    _, public = new_issuer_key()
    node_a.add("sc-idp", public, description="四川省统一身份认证平台")
    with pytest.raises(IssuerError, match="already exists"):
        node_b.add("sc-idp", public)
    assert holds_within(lambda: node_b.key("sc-idp") is not None)
    assert [i["name"] for i in node_b.list()] == ["sc-idp"]
    node_b.remove("sc-idp")
    assert holds_within(lambda: node_a.key("sc-idp") is None)
    with pytest.raises(IssuerError, match="no issuer"):
        node_a.remove("sc-idp")


@pytest.fixture
def schedule_file(tmp_path: Path) -> Path:
    path = tmp_path / "notice-2027.json"
    path.write_text(json.dumps(SCHEDULE_2027, ensure_ascii=False), encoding="utf-8")
    return path


def test_a_calendar_year_installed_once_serves_every_node(
    storages: Nodes, tmp_path: Path, schedule_file: Path
) -> None:
    calendar_dir = tmp_path / "calendar"
    storage_a, storage_b = storages(), storages()
    node_b = Supplements()
    node_b.use(calendar_dir, storage_b)
    assert node_b.schedule(2027) is None
    installed = install_file(schedule_file, calendar_dir, storage=storage_a)
    assert holds_within(lambda: node_b.schedule(2027) == installed)
    with pytest.raises(ScheduleInvalid, match="--replace"):
        install_file(schedule_file, calendar_dir, storage=storage_a)
    install_file(schedule_file, calendar_dir, storage=storage_a, replace=True)
    assert [(s["file"], s["ok"]) for s in node_b.installed()] == [("2027.json", True)]
    assert node_b.schedule(2027).is_working_day(datetime(2027, 2, 20).date())  # make-up day
    assert (calendar_dir / "2027.json").exists() is (not storage_a.shared)


@pytest.mark.parametrize(
    "verb",
    [
        ("calendar", "status"),
        ("calendar", "add", "SCHEDULE"),
        ("subjects", "issuers", "list"),
        ("subjects", "issuers", "remove", "demo-idp"),
    ],
)
def test_a_bad_database_url_is_a_clear_error_of_the_access_verbs(
    verb: tuple[str, ...],
    tmp_path: Path,
    schedule_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from clients.cli import main
    from tests.support import free_port

    # main() exports the URL for the verbs it runs: restored after the test.
    monkeypatch.setenv("GOVGW_DATABASE_URL", "")
    url = f"postgresql://govgw:s3cret-pw@127.0.0.1:{free_port()}/govgw"
    argv = [str(schedule_file) if a == "SCHEDULE" else a for a in verb]
    code = main([*argv, "--data-dir", str(tmp_path), "--database-url", url, "--json"])
    out = capsys.readouterr()
    said = out.out + out.err
    assert code != 0 and "cannot connect to the database" in said
    assert "Traceback" not in said and "s3cret-pw" not in said
    assert not (tmp_path / "calendar").exists()  # nothing written beside the database


def test_a_database_that_gives_no_connection_fails_the_calls_closed(
    pg_url: str, tmp_path: Path, ring: keys.KeyRing
) -> None:
    """The storage's StorageUnavailable, which the pipeline answers UNAVAILABLE
    DATABASE_UNAVAILABLE (tests/storage/test_outage.py), never INTERNAL (the pool closed
    stands for an outage: no connection to be had)."""
    storage = open_storage(pg_url, tmp_path)
    try:
        withdrawals = WithdrawalStore(tmp_path / "withdrawals.json", load(), ring, storage)
        applications = _applications(storage, tmp_path)
        storage.pool.close()  # type: ignore[attr-defined]
        asked = ApplicationInput(
            SOCIAL, ("name",), purpose="社会救助对象核查", scenario="核对", duration_days=30
        )
        for call in (
            lambda: withdrawals.request(
                ENTITY_SUBJECT, dataset="legal_entity.basic", reason="侵犯权益", now=NOW
            ),
            lambda: applications.apply(APPLICANT, asked, NOW),
            lambda: applications.visible(APPLICANT, "app-0", NOW),
        ):
            with pytest.raises(StorageUnavailable):
                call()
        assert not withdrawals.withdrawn("legal_entity.basic", ENT)  # memory, as it was
    finally:
        storage.close()
