"""The pending-corrections index (校核 pending, R8): published by the correction
store, read by every process on its next call, cheap when nothing is pending, and
never naming a field outside what the caller's plan let the call use."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stdnum.cn import ric

from gateway import keys
from gateway.access.corrections import CorrectionStore
from gateway.access.disputes import DisputedFields, disputed, filing_date, index_path, publish
from gateway.access.subject_tokens import SubjectIdentity
from gateway.callers import Caller
from gateway.catalog import Treatment, load
from gateway.errors import GovgwError
from gateway.plan import Plan
from gateway.predicates import _REGISTRY
from gateway.release import fields as _released_fields
from gateway.subjects import PERSON

NOW = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)
BODY = "51322119850315001"
PID = BODY + ric.calc_check_digit(BODY + "0")
OTHER = "51322119900101002" + ric.calc_check_digit("51322119900101002" + "0")
SUBJECT = SubjectIdentity(PID, PERSON, "sc-idp", "t1", NOW + timedelta(minutes=10))
POLICE = Caller(
    "agency-police", "agency", "汶川县公安局", "513221", provider_ids=("county.public-security",)
)
PB = "population.basic"


@pytest.fixture
def ring(tmp_path: Path) -> keys.KeyRing:
    return keys.generate(tmp_path / "keys" / "keyring.json")


@pytest.fixture
def store(tmp_path: Path, ring: keys.KeyRing) -> CorrectionStore:
    return CorrectionStore(tmp_path / "corrections.sqlite", load(), ring)


def _file(store: CorrectionStore, field: str, now: datetime = NOW) -> str:
    doc = store.file(SUBJECT, dataset=PB, field=field, statement="应为王建国", evidence_ref="",
                     now=now)  # fmt: skip
    return str(doc["id"])


def test_filed_corrections_are_seen_by_another_reader_at_once(
    store: CorrectionStore, ring: keys.KeyRing
) -> None:
    # Two readers, as two worker processes would hold them.
    a = DisputedFields(index_path(store.path), ring.subject_hash)
    b = DisputedFields(index_path(store.path), ring.subject_hash)
    assert a(PB, PID) == {} and b(PB, PID) == {}
    cid = _file(store, "name")
    assert a(PB, PID) == {"name": "2026-06-01"} and b(PB, PID) == {"name": "2026-06-01"}
    assert a(PB, OTHER) == {} and a("legal_entity.basic", PID) == {}
    _file(store, "household_address", NOW + timedelta(hours=20))  # 2 June in China
    assert b(PB, PID) == {"name": "2026-06-01", "household_address": "2026-06-02"}
    store.extend(POLICE, cid, "需调取档案", NOW)
    assert "name" in a(PB, PID)  # extended is still pending
    store.answer(POLICE, cid, corrected=False, note="与登记一致", legal_basis="第十七条", now=NOW)
    assert a(PB, PID) == {"household_address": "2026-06-02"}


def test_the_index_holds_hashes_and_dates_only(store: CorrectionStore) -> None:
    _file(store, "name")
    text = index_path(store.path).read_text(encoding="utf-8")
    assert PID not in text and "王建国" not in text
    (subjects,) = json.loads(text)["pending"].values()
    (fields,) = subjects.values()
    assert fields == {"name": "2026-06-01"}


def test_a_new_store_republishes_from_the_database(
    tmp_path: Path, store: CorrectionStore, ring: keys.KeyRing
) -> None:
    _file(store, "name")
    index_path(store.path).unlink()
    CorrectionStore(store.path, load(), ring)  # a server starting
    assert DisputedFields(index_path(store.path), ring.subject_hash)(PB, PID) == {
        "name": "2026-06-01"
    }


def test_nothing_pending_costs_no_subject_hash(tmp_path: Path, ring: keys.KeyRing) -> None:
    hashed: list[str] = []

    def counting_hash(key: str) -> str:
        hashed.append(key)
        return ring.subject_hash(key)

    path = tmp_path / "corrections.pending.json"
    reader = DisputedFields(path, counting_hash)
    assert reader(PB, PID) == {}  # no index at all
    publish(path, {"legal_entity.basic": {"h": {"name": "2026-06-01"}}})
    assert reader(PB, PID) == {}  # something pending, in another dataset
    assert hashed == []
    publish(path, {PB: {ring.subject_hash(PID): {"name": "2026-06-01"}}})
    assert reader(PB, PID) == {"name": "2026-06-01"} and hashed == [PID]


def test_a_broken_index_keeps_the_last_one_read(tmp_path: Path, ring: keys.KeyRing) -> None:
    path = tmp_path / "corrections.pending.json"
    publish(path, {PB: {ring.subject_hash(PID): {"name": "2026-06-01"}}})
    reader = DisputedFields(path, ring.subject_hash)
    assert reader(PB, PID) == {"name": "2026-06-01"}
    path.write_text("{not json", encoding="utf-8")
    assert reader(PB, PID) == {"name": "2026-06-01"}
    path.unlink()
    assert reader(PB, PID) == {}


def test_filing_date_is_the_china_date() -> None:
    assert filing_date("2026-06-01T15:59:59Z") == "2026-06-01"
    assert filing_date("2026-06-01T16:00:00Z") == "2026-06-02"


def test_every_predicate_names_fields_of_its_dataset() -> None:
    catalog = load()
    for p in _REGISTRY.values():
        ds = catalog.get(p.dataset)
        assert ds is not None and p.fields, p.name
        assert all(ds.field(f) is not None for f in p.fields), p.name


FIELDS = load().get(PB).field_names  # type: ignore[union-attr]
subsets = st.lists(st.sampled_from(FIELDS), unique=True)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(plan_fields=subsets, requested=subsets, pending=subsets)
def test_property_never_a_field_outside_the_plan(
    tmp_path: Path, ring: keys.KeyRing, plan_fields: list[str], requested: list[str],
    pending: list[str],
) -> None:  # fmt: skip
    """Whatever is pending and whatever is asked, the indication names only fields the
    caller's plan includes (and the call released), and every such pending one."""
    path = tmp_path / "corrections.pending.json"
    publish(path, {PB: {ring.subject_hash(PID): dict.fromkeys(pending, "2026-06-01")}})
    reader = DisputedFields(path, ring.subject_hash)
    plan = Plan(allow=True, fields={f: Treatment("keep", {}) for f in plan_fields})
    ds = load().get(PB)
    assert ds is not None
    try:
        released = _released_fields(ds, plan, requested)
    except GovgwError as e:  # a requested field outside the plan: refused, nothing indicated
        assert e.reason == "FIELD_NOT_ALLOWED"
        assert set(requested) - set(plan_fields)
        return
    named = [f for _, f, _ in disputed(reader, PB, PID, released)]
    assert set(named) <= set(plan_fields)
    assert set(named) == set(pending) & set(released)
    assert disputed(None, PB, PID, released) == []
