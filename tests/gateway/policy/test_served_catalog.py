"""The served catalog (R1): the policy version's data/catalog.json, swapped with its
engine, pinned for a whole request, never one whose datasets or fields differ."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from gateway.catalog import CatalogMismatch, ServedCatalog, from_bundle_data, load
from gateway.grants import GrantStore
from gateway.policy.bundle import bundle_from_files, read_policy_files
from gateway.policy.decider import Decider
from gateway.policy.engine import RegorusEngine
from gateway.policy.runtime import PolicyRuntime
from gateway.policy.serving import PolicyRejected, data_dir_catalog, load_served
from gateway.policy.versions import VersionStore
from tests.gateway.policy.test_runtime import POLICIES, activate, decide, wait_for

ENTITIES = "legal_entity.basic"


def with_catalog(tag: str, change) -> object:
    """The shipped bundle with its catalog changed by `change(doc)`."""
    files = dict(read_policy_files(POLICIES))
    doc = json.loads(files["data/catalog.json"])
    change(doc)
    files["data/catalog.json"] = json.dumps(doc, ensure_ascii=False).encode()
    files[f"tests/{tag}_test.rego"] = f"package govgw.{tag}_test\n".encode()
    return bundle_from_files(files)


def open_conditional(doc: dict) -> None:
    doc["datasets"][ENTITIES].update(open_class="conditional", class_reason="依申请开放")


def retitled(doc: dict) -> None:
    # A change no shipped policy test pins, for the paths that run them (start-up).
    doc["datasets"][ENTITIES]["usage_requirements"] = "注明数据来源及取得日期"


def extra_field(doc: dict) -> None:
    doc["datasets"][ENTITIES]["fields"].append(
        {"name": "tax_no", "title": "税号", "type": "string", "sensitivity": "internal"}
    )


def served_decider(tmp_path: Path) -> tuple[Decider, ServedCatalog]:
    base = with_catalog("base", lambda doc: None)
    catalog = ServedCatalog(from_bundle_data(base.data), base.version)
    decider = Decider(RegorusEngine(base), GrantStore(tmp_path / "grants.json"), catalog=catalog)
    return decider, catalog


def test_a_swap_moves_engine_and_catalog_together_and_a_pinned_request_keeps_both(
    tmp_path: Path,
) -> None:
    decider, catalog = served_decider(tmp_path)
    old = decider.engine
    new = with_catalog("new", open_conditional)

    async def request() -> tuple[str, str, str, str]:
        with decider.pinned():
            first = (catalog.policy_version, catalog.get(ENTITIES).open_class)
            await asyncio.sleep(0)  # an await (limits, audit) during which the swap lands
            decider.swap(RegorusEngine(new))
            plan = decide(decider)
            return (*first, catalog.get(ENTITIES).open_class, plan.policy_version)

    assert asyncio.run(request()) == (old.version, "unconditional", "unconditional", old.version)
    # Outside the request, and for the next one: the new version, both parts of it.
    assert (catalog.policy_version, catalog.get(ENTITIES).open_class) == (
        new.version,
        "conditional",
    )
    assert decider.engine.version == new.version == decide(decider).policy_version
    assert catalog.snapshot().get(ENTITIES).class_reason == "依申请开放"


def test_an_engine_whose_catalog_changes_the_pool_is_not_swapped_in(tmp_path: Path) -> None:
    decider, catalog = served_decider(tmp_path)
    before = decider.engine.version
    with pytest.raises(CatalogMismatch, match=r"field tax_no of legal_entity\.basic"):
        decider.swap(RegorusEngine(with_catalog("wider", extra_field)))
    assert decider.engine.version == before == catalog.policy_version


def test_the_runtime_keeps_the_last_good_version_when_a_catalog_differs(tmp_path: Path) -> None:
    """A pointer moved past Activate's checks to a version with another field: refused."""
    store = VersionStore(tmp_path / "policy")
    decider, catalog = served_decider(tmp_path)
    runtime = PolicyRuntime(decider, store, RegorusEngine, poll_s=0.05)
    runtime.start()
    try:
        good = with_catalog("good", open_conditional)
        activate(store, good)
        wait_for(lambda: catalog.policy_version == good.version)
        assert catalog.get(ENTITIES).open_class == "conditional"
        activate(store, with_catalog("wider", extra_field))
        wait_for(lambda: runtime.status().last_error != "")
        assert "tax_no" in runtime.status().last_error
        assert decider.engine.version == catalog.policy_version == good.version
        assert decide(decider).allow
    finally:
        runtime.stop()


def test_start_up_serves_the_active_version_s_catalog_and_skips_a_mismatched_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = VersionStore(tmp_path / "policy")
    structure = load().structure()
    served = load_served(POLICIES, store, RegorusEngine, structure)
    assert served.catalog.get(ENTITIES).usage_requirements == "注明数据来源"
    good = with_catalog("good", retitled)
    activate(store, good)
    served = load_served(POLICIES, store, RegorusEngine, structure)
    assert served.engine.version == good.version and not served.note
    assert served.catalog.get(ENTITIES).usage_requirements == "注明数据来源及取得日期"
    wider = with_catalog("wider", extra_field)
    activate(store, wider)
    time.sleep(0.01)
    served = load_served(POLICIES, store, RegorusEngine, structure)
    assert served.engine.version == good.version and wider.version in served.note
    assert "field tax_no of legal_entity.basic differs from the pool's fields" in caplog.text


def test_offline_readers_take_the_active_version_s_catalog(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    store = VersionStore(data_dir / "policy")
    shipped = data_dir_catalog(data_dir)
    assert shipped.get(ENTITIES).open_class == "unconditional"
    assert shipped.policy_version == bundle_from_files(read_policy_files(POLICIES)).version
    good = with_catalog("good", open_conditional)
    activate(store, good)
    served = data_dir_catalog(data_dir)
    assert (served.policy_version, served.get(ENTITIES).open_class) == (good.version, "conditional")
    # a version whose files no longer match their manifest: the last good one is read
    bad = with_catalog("bad", lambda doc: None)
    info = store.create(bad, author="t", reason="r")
    store.set_active(info.version, actor="t", action="activate", reason="r")
    (store.bundle_dir(info.version) / "data" / "catalog.json").write_text("{}")
    assert data_dir_catalog(data_dir).policy_version == good.version
    (store.bundle_dir(good.version) / "data" / "catalog.json").write_text("{}")
    with pytest.raises(PolicyRejected, match="no stored policy version"):
        data_dir_catalog(data_dir)
