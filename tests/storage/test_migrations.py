"""The storage seam: opening either backend, its migrations, and the errors at start."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest

from gateway.storage import SQLITE_FILE, StorageError, migrations, open_storage
from tests.pg_server import PostgresServer
from tests.support import free_port


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue("pg_url") if request.param == "postgresql" else ""


def _tables(storage) -> set[str]:
    with storage.transaction() as db:
        if storage.kind == "sqlite":
            rows = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        else:
            rows = db.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'govgw'"
            ).fetchall()
    return {r[0] for r in rows}


def test_from_empty_to_the_latest_version_and_again_idempotent(url: str, tmp_path: Path) -> None:
    storage = open_storage(url, tmp_path)
    try:
        kind = storage.kind
        assert storage.schema_version() == migrations.latest(kind)
        assert {"schema_version", "callers", "operators"} <= _tables(storage)
    finally:
        storage.close()
    again = open_storage(url, tmp_path)  # a second start applies nothing
    try:
        assert again.schema_version() == migrations.latest(kind)
        with again.transaction() as db:
            applied = db.execute("SELECT COUNT(*) FROM schema_version").fetchone()
        assert applied[0] == migrations.latest(kind)
    finally:
        again.close()


def test_from_the_previous_version(url: str, tmp_path: Path) -> None:
    kind = "postgresql" if url else "sqlite"
    previous = migrations.latest(kind) - 1
    old = open_storage(url, tmp_path, target=previous)
    try:
        assert old.schema_version() == previous
    finally:
        old.close()
    storage = open_storage(url, tmp_path)
    try:
        assert storage.schema_version() == migrations.latest(kind)
        if kind == "postgresql":
            assert "documents" in _tables(storage)  # what step 2 adds
    finally:
        storage.close()


def test_a_registry_file_of_a_govgw_before_migrations_is_adopted(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / SQLITE_FILE)
    with db:  # as govgw made it before status_since and provider ids existed
        db.execute(
            "CREATE TABLE callers (id TEXT PRIMARY KEY, kind TEXT NOT NULL, department TEXT"
            " NOT NULL, region TEXT NOT NULL, key_digest TEXT UNIQUE, status TEXT NOT NULL"
            " DEFAULT 'active', created_at TEXT NOT NULL)"
        )
    db.close()
    storage = open_storage("", tmp_path)
    assert storage.schema_version() == migrations.latest("sqlite")
    with storage.transaction() as db:
        columns = {row[1] for row in db.execute("PRAGMA table_info(callers)")}
    assert {"status_since", "provider_ids"} <= columns


def test_a_newer_schema_is_refused_naming_both_versions(url: str, tmp_path: Path) -> None:
    storage = open_storage(url, tmp_path)
    kind = storage.kind
    newer = migrations.latest(kind) + 3
    with storage.transaction() as db:
        db.execute(
            storage.sql("INSERT INTO schema_version VALUES (?, '2099-01-01T00:00:00Z')"), (newer,)
        )
    storage.close()
    with pytest.raises(StorageError) as e:
        open_storage(url, tmp_path)
    assert f"version {newer}" in str(e.value)
    assert f"({migrations.latest(kind)})" in str(e.value)


def test_an_unreachable_database_is_a_clear_error_at_start(tmp_path: Path) -> None:
    url = f"postgresql://govgw:s3cret-pw@127.0.0.1:{free_port()}/govgw"
    with pytest.raises(StorageError) as e:
        open_storage(url, tmp_path)
    assert "cannot connect to the database" in str(e.value)
    assert "s3cret-pw" not in str(e.value)  # the password is never repeated


def test_a_missing_database_and_a_wrong_scheme_are_clear_errors(
    pg_server: PostgresServer, tmp_path: Path
) -> None:
    with pytest.raises(StorageError, match='database "nope" does not exist'):
        open_storage(pg_server.url("nope"), tmp_path)
    with pytest.raises(StorageError, match="must start with postgresql://"):
        open_storage("mysql://127.0.0.1/govgw", tmp_path)


def test_postgres_tables_live_in_the_govgw_schema(pg_url: str, tmp_path: Path) -> None:
    open_storage(pg_url, tmp_path).close()
    with psycopg.connect(pg_url) as conn:
        public = conn.execute(
            "SELECT COUNT(*) FROM pg_tables WHERE schemaname = 'public'"
        ).fetchone()
    assert public == (0,)
