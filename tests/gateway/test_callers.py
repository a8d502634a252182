"""The caller registry's provider bindings: by catalog provider id, agencies only."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from gateway import admin
from gateway.callers import Caller, CallerError, CallerRegistry
from gateway.catalog import load

CIVIL = "county.civil-affairs"


def test_provider_ids_are_stored_and_read_back(tmp_path: Path) -> None:
    registry = CallerRegistry(tmp_path / "callers.sqlite")
    caller, _ = registry.add("agency-mz", "agency", "汶川县民政局", "513221", [CIVIL, CIVIL])
    assert caller.provider_ids == (CIVIL,)
    again = CallerRegistry(tmp_path / "callers.sqlite").get("agency-mz")
    assert again is not None and again.provider_ids == (CIVIL,) and again.represents(CIVIL)
    assert again.to_json()["provider_ids"] == [CIVIL]
    plain, _ = registry.add("agency-x", "agency", "某县民政局", "513221")
    assert plain.provider_ids == () and not plain.represents(CIVIL)
    assert registry.set_provider_ids("agency-x", [CIVIL]).represents(CIVIL)
    assert registry.set_provider_ids("agency-x", []).provider_ids == ()


def test_only_agencies_represent_providers_and_ids_are_checked(tmp_path: Path) -> None:
    registry = CallerRegistry(tmp_path / "callers.sqlite")
    for kind in ("counter", "public", "admin"):
        with pytest.raises(CallerError, match="only an agency"):
            registry.add(f"{kind}-1", kind, "汶川县民政局", "513221", [CIVIL])
    for bad in ("县民政局", "Civil", "a", "civil affairs", "a,b"):
        with pytest.raises(CallerError, match="provider-id"):
            registry.add("agency-1", "agency", "汶川县民政局", "513221", [bad])
    assert registry.list() == []  # nothing half-registered
    # A Caller built by hand is no provider unless it is an agency bound by id.
    assert not Caller("c", "counter", "d", "513221", provider_ids=(CIVIL,)).represents(CIVIL)
    assert not Caller("a", "agency", "d", "513221", provider_ids=(CIVIL,)).represents("")


def test_a_registry_made_before_provider_ids_binds_nobody(tmp_path: Path) -> None:
    path = tmp_path / "callers.sqlite"
    with sqlite3.connect(path) as db:  # the table as it was before provider ids
        db.execute(
            "CREATE TABLE callers (id TEXT PRIMARY KEY, kind TEXT NOT NULL, department TEXT"
            " NOT NULL, region TEXT NOT NULL, key_digest TEXT UNIQUE, status TEXT NOT NULL"
            " DEFAULT 'active', created_at TEXT NOT NULL, status_since REAL NOT NULL DEFAULT 0)"
        )
        db.execute(
            "INSERT INTO callers VALUES ('agency-civil', 'agency', '汶川县民政局', '513221',"
            " 'd', 'active', '2026-01-01T00:00:00Z', 0)"
        )
    db.close()
    registry = CallerRegistry(path)
    old = registry.get("agency-civil")
    assert old is not None and old.provider_ids == ()
    assert registry.set_provider_ids("agency-civil", [CIVIL]).represents(CIVIL)


def test_admin_refuses_a_provider_id_the_catalog_does_not_name(tmp_path: Path) -> None:
    admin.init(tmp_path)
    assert CIVIL in load().provider_ids()
    with pytest.raises(CallerError, match=re.escape(CIVIL)):  # the known ones are listed
        admin.callers_add(tmp_path, "agency-1", "agency", "某局", "513221", provider_ids=["nope"])
    doc = admin.callers_add(tmp_path, "agency-1", "agency", "某局", "513221", provider_ids=[CIVIL])
    assert doc["caller"]["provider_ids"] == [CIVIL]
    with pytest.raises(CallerError, match="no caller"):
        admin.callers_bind(tmp_path, "agency-none", [CIVIL])
