"""One catalog (R1): what CatalogService publishes, what validation, access and the
conflicts report read, is the catalog of the policy version served, swapped with
its engine; in this process at once, in another `govgw serve` on the same data
directory within a second, at start-up, and in the offline commands."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from govgw.v1 import catalog_pb2, catalog_pb2_grpc

from clients.sdk import GovgwClient, PolicyAdminClient
from clients.sdk.types import OpenClass
from gateway import admin
from tests.support import Harness, expect_error, free_port, make_data_dir, serve_subprocess, start

POLICIES = Path(__file__).resolve().parents[2] / "policies"
PURPOSE = "社会保障待遇资格认证"
ENTITIES = "legal_entity.basic"
PERSONS = "population.basic"
PHONE_MASK = '"share": {"operator": "mask", "params": {"keep_first": 3, "keep_last": 4}}'
NAME_REPORT = {"operator": "mask", "params": {"keep_first": 0, "keep_last": 0}}


def candidate(root: Path) -> Path:
    """The shipped policy with three catalog changes: legal entities open only on
    application, agencies get phones raw, the conflicts report hides names whole."""
    d = root / "open-conditional"
    shutil.copytree(POLICIES, d)
    path = d / "data" / "catalog.json"
    text = path.read_text(encoding="utf-8")
    assert PHONE_MASK in text
    doc = json.loads(text.replace(PHONE_MASK, '"share": {"operator": "keep"}', 1))
    ds = doc["datasets"][ENTITIES]
    ds["open_class"] = "conditional"
    ds["class_reason"] = "法定代表人信息依申请开放（测试）"
    doc["conflicts"]["attributes"]["person.name"]["report"] = NAME_REPORT
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")
    shutil.rmtree(d / "tests")  # the shipped tests pin the classes and masks changed here
    (d / "tests").mkdir()
    (d / "tests" / "smoke_test.rego").write_text(
        "package govgw.smoke_test\nimport rego.v1\ntest_known if data.govgw.callers.kinds\n"
    )
    return d


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    data_dir = tmp_path_factory.mktemp("catalog-versions") / "data"
    keys, demo = make_data_dir(data_dir, persons=30, entities=10)
    keys["admin"] = admin.callers_add(data_dir, "policy-admin", "admin", "大数据局", "513200")[
        "api_key"
    ]
    # Worker 0's audit chain, so that a `govgw serve` on the same directory has its own.
    h = start(data_dir, keys, demo, worker=0)
    yield h
    h.stop()


@pytest.fixture(scope="module")
def cand(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return candidate(tmp_path_factory.mktemp("candidates"))


def admin_client(h: Harness) -> PolicyAdminClient:
    c = PolicyAdminClient(h.target, api_key=h.keys["admin"], timeout_s=60)
    h.clients.append(c)
    return c


def baseline(h: Harness) -> str:
    """The shipped policy, active."""
    a = admin_client(h)
    shipped = a.validate_policy(POLICIES).version
    if a.list_policy_versions().active_version not in ("", shipped):
        a.rollback_policy(version=shipped, reason="回到基线")
    return shipped


def view(c: GovgwClient) -> tuple[str, OpenClass, str, str]:
    """(policy version, open class of legal entities, phone's share masking, its version)."""
    ents = c.get_dataset(ENTITIES)
    phone = next(f for f in c.get_dataset(PERSONS).fields if f.name == "phone")
    return ents.policy_version, ents.open_class, phone.share_masking.operator, ents.version


def phone_lookup(c: GovgwClient, h: Harness) -> tuple[str, str, str]:
    r = c.lookup(PERSONS, h.demo["adult_resident"]["id_number"], ["phone"], purpose=PURPOSE)
    return r.policy_version, r.records[0]["phone"].treatment, r.records[0]["phone"].value


def test_an_activation_changes_the_next_catalog_read_and_lookup(gw: Harness, cand: Path) -> None:
    shipped = baseline(gw)
    agency, public = gw.client("agency-civil"), gw.client("public-portal")
    phone = gw.demo["adult_resident"]["phone"]
    uscc = gw.demo["active_entity"]["uscc"]
    assert view(agency)[:3] == (shipped, OpenClass.UNCONDITIONAL, "mask")
    assert phone_lookup(agency, gw)[:2] == (shipped, "mask")
    assert phone_lookup(agency, gw)[2] != phone
    assert public.lookup(ENTITIES, uscc, purpose="企业信息查询").records
    expect_error(
        lambda: public.apply(ENTITIES, ["name"], **OPEN_APPLICATION),
        grpc.StatusCode.FAILED_PRECONDITION,
        "APPLICATION_NOT_NEEDED",
    )

    new = admin_client(gw).activate_policy(candidate=cand, reason="法人信息依申请开放").version
    # No waiting: the call after Activate returns reads the new catalog.
    version, open_class, phone_masking, _ = view(agency)
    assert (version, open_class, phone_masking) == (
        new.version,
        OpenClass.CONDITIONAL,
        "keep",
    )
    ents = agency.get_dataset(ENTITIES)
    assert ents.class_reason == "法定代表人信息依申请开放（测试）"
    listed = agency.list_datasets()
    assert {d.policy_version for d in listed} == {new.version} and len(listed) == 5
    assert phone_lookup(agency, gw) == (new.version, "keep", phone)
    # What reads the catalog besides the catalog RPCs follows too: the policy now
    # wants a grant for the public, and the application store takes the application.
    expect_error(
        lambda: public.lookup(ENTITIES, uscc, purpose="企业信息查询"),
        grpc.StatusCode.PERMISSION_DENIED,
        "GRANT_REQUIRED",
    )
    assert public.apply(ENTITIES, ["name"], **OPEN_APPLICATION).id

    admin_client(gw).rollback_policy(reason="回到基线")
    assert view(agency)[:3] == (shipped, OpenClass.UNCONDITIONAL, "mask")
    assert phone_lookup(agency, gw)[:2] == (shipped, "mask")
    assert public.lookup(ENTITIES, uscc, purpose="企业信息查询").records


OPEN_APPLICATION = {
    "purpose": "企业信用研究",
    "scenario": "统计本县在营企业",
    "duration_days": 30,
    "use": "research",
    "public_interest": True,
    "security_commitment_accepted": True,
    "use_agreement_accepted": True,
}


def test_the_responses_name_the_policy_version_of_their_catalog(gw: Harness) -> None:
    shipped = baseline(gw)
    stub = catalog_pb2_grpc.CatalogServiceStub(gw.channel())
    md = (("authorization", f"Bearer {gw.keys['agency-civil']}"),)
    page = stub.ListDatasets(catalog_pb2.ListDatasetsRequest(page_size=2), metadata=md)
    assert page.policy_version == shipped and page.next_page_token
    assert {d.policy_version for d in page.datasets} == {shipped}
    got = stub.GetDataset(catalog_pb2.GetDatasetRequest(name=PERSONS), metadata=md)
    assert got.policy_version == shipped == got.dataset.policy_version
    fields = {f.name: f for f in got.dataset.fields}
    # The attribute annotation of the conflicts report (R16) is published.
    assert (fields["name"].attribute, fields["birth_date"].attribute) == (
        "person.name",
        "person.birth_date",
    )
    assert fields["birth_date"].derived_from_subject and not fields["name"].derived_from_subject
    assert fields["gender"].attribute == ""
    assert fields["phone"].share_masking.operator == "mask"
    assert dict(fields["phone"].share_masking.params) == {"keep_first": 3, "keep_last": 4}
    assert fields["id_number"].open_masking.operator == "redact"


def test_another_gateway_process_follows_within_a_second(gw: Harness, cand: Path) -> None:
    """`govgw serve` on the same data directory: its catalog follows activation and
    rollback made through this process."""
    shipped = baseline(gw)
    port = free_port()
    proc = serve_subprocess(gw.data_dir, port)
    try:
        other = GovgwClient(f"127.0.0.1:{port}", api_key=gw.keys["agency-civil"])
        assert view(other)[:3] == (shipped, OpenClass.UNCONDITIONAL, "mask")
        new = admin_client(gw).activate_policy(candidate=cand, reason="多进程目录").version
        waited = _until(lambda: view(other)[0] == new.version)
        assert view(other)[:3] == (new.version, OpenClass.CONDITIONAL, "keep")
        assert phone_lookup(other, gw)[:2] == (new.version, "keep")
        admin_client(gw).rollback_policy(reason="回到基线")
        back = _until(lambda: view(other)[0] == shipped)
        assert view(other)[:3] == (shipped, OpenClass.UNCONDITIONAL, "mask")
        other.close()
        print(f"other process: catalog switched in {waited * 1000:.0f} ms, back in "
              f"{back * 1000:.0f} ms")  # fmt: skip
    finally:
        proc.terminate()
        proc.wait(10)


def _until(fn, within_s: float = 1.0) -> float:
    started = time.monotonic()
    while not fn():
        assert time.monotonic() - started < within_s, "the other process did not follow in 1 s"
        time.sleep(0.02)
    return time.monotonic() - started


def test_a_gateway_started_while_a_version_is_active_serves_its_catalog(
    gw: Harness, cand: Path
) -> None:
    baseline(gw)
    new = admin_client(gw).activate_policy(candidate=cand, reason="启动时的目录").version
    try:
        h = start(gw.data_dir, gw.keys, gw.demo, worker=1)
        try:
            c = h.client("agency-civil")
            assert view(c)[:3] == (new.version, OpenClass.CONDITIONAL, "keep")
            assert h.parts.catalog.get(ENTITIES).open_class == "conditional"
        finally:
            h.stop()
    finally:
        admin_client(gw).rollback_policy(reason="回到基线")


def name_values(report: list[dict]) -> list[str]:
    return [
        v["masked_value"] for c in report if c["attribute"] == "person.name" for v in c["values"]
    ]


def test_offline_commands_read_the_active_version_s_catalog(gw: Harness, cand: Path) -> None:
    shipped = baseline(gw)
    assert admin.data_dir_catalog(gw.data_dir).policy_version == shipped
    before = name_values(admin.conflicts_report(gw.data_dir, "person.name"))
    assert before and all(not set(v) <= {"*"} for v in before)  # the surname shows
    new = admin_client(gw).activate_policy(candidate=cand, reason="冲突报告隐去姓名").version
    try:
        served = admin.data_dir_catalog(gw.data_dir)
        assert served.policy_version == new.version
        assert served.get(ENTITIES).open_class == "conditional"
        out = subprocess.run(
            [sys.executable, "-m", "clients.cli", "conflicts", "report", "--json",
             "--attribute", "person.name", "--data-dir", str(gw.data_dir)],
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        after = name_values(json.loads(out.stdout)["conflicts"])
        assert len(after) == len(before) and all(set(v) == {"*"} for v in after)
        # The running gateway's report follows as well.
        online = admin_client(gw).conflicts_report(attribute="person.name")
        assert all(set(v.masked_value) == {"*"} for c in online for v in c.values)
    finally:
        admin_client(gw).rollback_policy(reason="回到基线")
    assert name_values(admin.conflicts_report(gw.data_dir, "person.name")) == before
