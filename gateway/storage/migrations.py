"""Versioned schema migrations: a numbered list of steps per backend.

Each backend's database holds a `schema_version` table, one row per applied step. At
start, `open_storage` applies the steps the database lacks, in order, inside one
transaction (on PostgreSQL under an advisory lock, so two nodes starting together do
not both apply them), so a start sees either the old schema or the new one. Applying
is idempotent: a database at the current version is left untouched. A database at a
NEWER version than this govgw knows is refused with both versions named (an older
node must not write a schema it does not understand).

Append only: a released step is never edited; a change is a new step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# A step: SQL statements, or a function of the open connection (for fix-ups that
# depend on what an older govgw left, e.g. columns added before migrations existed).
Step = tuple[str, ...] | Callable[[Any], None]


class SchemaTooNew(RuntimeError):
    """The database was written by a newer govgw."""


_CALLERS_SQL = (
    "CREATE TABLE IF NOT EXISTS callers (id TEXT PRIMARY KEY, kind TEXT NOT NULL,"
    " department TEXT NOT NULL, region TEXT NOT NULL, key_digest TEXT UNIQUE,"
    " status TEXT NOT NULL DEFAULT 'active', created_at TEXT NOT NULL,"
    " status_since {real} NOT NULL DEFAULT 0, provider_ids TEXT NOT NULL DEFAULT '')",
    # Operators are not registered (the hall's web server knows its clerks); a row
    # exists once the monitor suspended one, and stays to date its reinstatement.
    "CREATE TABLE IF NOT EXISTS operators (caller TEXT NOT NULL, operator TEXT NOT NULL,"
    " status TEXT NOT NULL, reason TEXT NOT NULL, since {real} NOT NULL,"
    " PRIMARY KEY (caller, operator))",
)


def _sqlite_legacy_columns(db: Any) -> None:
    """A registry made before migrations may lack columns added since (suspension,
    provider ids): add them, as the registry did at every open before."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(callers)")}
    if "status_since" not in columns:
        db.execute("ALTER TABLE callers ADD COLUMN status_since REAL NOT NULL DEFAULT 0")
    if "provider_ids" not in columns:  # no caller is bound to a provider yet
        db.execute("ALTER TABLE callers ADD COLUMN provider_ids TEXT NOT NULL DEFAULT ''")


_AUDIT_INDEX_SQL = (
    "CREATE TABLE IF NOT EXISTS audit_nodes (node TEXT PRIMARY KEY, host TEXT NOT NULL,"
    " audit_dir TEXT NOT NULL, seen_at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS audit_files (id BIGSERIAL PRIMARY KEY, node TEXT NOT NULL,"
    ' name TEXT NOT NULL, "offset" BIGINT NOT NULL DEFAULT 0,'
    " last_start BIGINT NOT NULL DEFAULT 0, seq BIGINT NOT NULL DEFAULT 0,"
    " hash TEXT NOT NULL, records BIGINT NOT NULL DEFAULT 0,"
    " broken TEXT NOT NULL DEFAULT '', reindexed INTEGER NOT NULL DEFAULT 0,"
    " lost TEXT NOT NULL DEFAULT '', UNIQUE (node, name))",
    "CREATE TABLE IF NOT EXISTS audit_records ("
    " file_id BIGINT NOT NULL REFERENCES audit_files (id) ON DELETE CASCADE,"
    ' seq BIGINT NOT NULL, "offset" BIGINT NOT NULL, ts_us BIGINT, ts_raw TEXT,'
    " request_id TEXT, caller TEXT NOT NULL, caller_kind TEXT NOT NULL,"
    " department TEXT NOT NULL, purpose TEXT NOT NULL, action TEXT NOT NULL,"
    " dataset TEXT NOT NULL, outcome TEXT NOT NULL, datasets TEXT[] NOT NULL,"
    " subject TEXT, emergencies TEXT[] NOT NULL, PRIMARY KEY (file_id, seq))",
    "CREATE INDEX IF NOT EXISTS audit_records_subject ON audit_records (subject, ts_us)"
    " WHERE subject IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS audit_records_datasets ON audit_records USING GIN (datasets)",
    "CREATE INDEX IF NOT EXISTS audit_records_emergencies ON audit_records USING GIN (emergencies)",
    "CREATE TABLE IF NOT EXISTS audit_grant_uses ("
    " file_id BIGINT NOT NULL REFERENCES audit_files (id) ON DELETE CASCADE,"
    " grant_id TEXT NOT NULL, ts_us BIGINT NOT NULL, PRIMARY KEY (file_id, grant_id))",
)

MIGRATIONS: dict[str, list[Step]] = {
    # SQLite (the embedded default): the caller registry's file; grants and the other
    # stores stay files of the data directory.
    "sqlite": [
        # 1: the caller registry as govgw made it before migrations (a registry file of
        # an older govgw is adopted as version 1: CREATE IF NOT EXISTS, then fix-ups).
        tuple(s.format(real="REAL") for s in _CALLERS_SQL),
        _sqlite_legacy_columns,
    ],
    "postgresql": [
        # 1: the caller registry.
        tuple(s.format(real="DOUBLE PRECISION") for s in _CALLERS_SQL),
        # 2: list stores kept whole (grants): one row per store, its version and items,
        # read and replaced in one transaction as the JSON file was.
        (
            "CREATE TABLE IF NOT EXISTS documents (name TEXT PRIMARY KEY,"
            " version BIGINT NOT NULL, items JSONB NOT NULL)",
        ),
        # policy versions, the active pointer, its history and the trust
        # (gateway/policy/versions_pg.py): manifests and bundle files byte for byte.
        (
            "CREATE TABLE IF NOT EXISTS policy_versions (version TEXT PRIMARY KEY,"
            " manifest BYTEA NOT NULL)",
            "CREATE TABLE IF NOT EXISTS policy_files (version TEXT NOT NULL"
            " REFERENCES policy_versions (version), path TEXT NOT NULL,"
            " content BYTEA NOT NULL, PRIMARY KEY (version, path))",
            "CREATE TABLE IF NOT EXISTS policy_history (seq BIGINT PRIMARY KEY,"
            " entry TEXT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS policy_settings (name TEXT PRIMARY KEY,"
            " doc BYTEA NOT NULL)",
        ),
        # keyring_fingerprints (gateway/keycheck.py): the keyring the database was
        # written with — the deployment's (kind 'deployment', version 0) and each pool
        # key version's — as keyed fingerprints, never key material.
        (
            "CREATE TABLE IF NOT EXISTS keyring_fingerprints (kind TEXT NOT NULL,"
            " version INTEGER NOT NULL, fingerprint TEXT NOT NULL, recorded_at TEXT NOT NULL,"
            " PRIMARY KEY (kind, version))",
        ),
        # The access stores (applications, corrections): one JSON document per row with
        # its history, as their SQLite files; subjects by keyed hash only, sealed fields
        # sealed inside `doc`. (Withdrawals, emergencies, opening suspensions, subject-token
        # issuers and calendar years are kept whole in `documents`.)
        (
            "CREATE TABLE IF NOT EXISTS applications (id TEXT PRIMARY KEY,"
            " applicant TEXT NOT NULL, dataset TEXT NOT NULL, status TEXT NOT NULL,"
            " created_at TEXT NOT NULL, doc TEXT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS corrections (id TEXT PRIMARY KEY,"
            " subject_hash TEXT NOT NULL, dataset TEXT NOT NULL, field TEXT NOT NULL,"
            " status TEXT NOT NULL, filed_at TEXT NOT NULL, doc TEXT NOT NULL)",
            "CREATE INDEX IF NOT EXISTS corrections_subject ON corrections (subject_hash)",
            "CREATE INDEX IF NOT EXISTS corrections_status ON corrections (status)",
        ),
        # The shared audit index (gateway/audit/shared_index.py, nodes.py): where each
        # node's chains are, each chain's indexed head, and per record what the usage
        # readers query (keyed subject hashes only, as the chains carry them).
        _AUDIT_INDEX_SQL,
        # The pool (gateway.pool.pg_rows): datasets, their import history, and the
        # sealed rows, found by the keyed blind index; nothing readable.
        (
            "CREATE TABLE IF NOT EXISTS pool_datasets (id SERIAL PRIMARY KEY,"
            " name TEXT NOT NULL UNIQUE, seq INTEGER NOT NULL DEFAULT 0,"
            " version TEXT NOT NULL DEFAULT '', rows BIGINT NOT NULL DEFAULT 0)",
            "CREATE TABLE IF NOT EXISTS pool_dataset_versions ("
            " dataset_id INTEGER NOT NULL REFERENCES pool_datasets(id), seq INTEGER NOT NULL,"
            " version TEXT NOT NULL, rows BIGINT NOT NULL, batch_rows BIGINT NOT NULL,"
            " replace_all INTEGER NOT NULL, imported_at TEXT NOT NULL,"
            " PRIMARY KEY (dataset_id, seq))",
            "CREATE TABLE IF NOT EXISTS pool_records ("
            " id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
            " dataset_id INTEGER NOT NULL, bidx BYTEA NOT NULL, key_version INTEGER NOT NULL,"
            " nonce BYTEA NOT NULL, ct BYTEA NOT NULL)",
            "CREATE INDEX IF NOT EXISTS pool_records_by_subject ON pool_records (dataset_id, bidx)",
        ),
    ],
}

VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY,"
    " applied_at TEXT NOT NULL)"
)


def latest(kind: str) -> int:
    return len(MIGRATIONS[kind])


def apply(db: Any, kind: str, *, placeholder: str, now: str, target: int | None = None) -> int:
    """Bring the open transaction's database to `target` (default: the latest) version;
    returns the version it was at. The caller holds the transaction (and the lock)."""
    steps = MIGRATIONS[kind]
    target = len(steps) if target is None else target
    db.execute(VERSION_TABLE)
    row = db.execute("SELECT MAX(version) FROM schema_version").fetchone()
    current = int(row[0] or 0)
    if current > len(steps):
        raise SchemaTooNew(
            f"the database schema is version {current}, newer than this govgw knows"
            f" ({len(steps)}): upgrade govgw on this node before starting it"
        )
    for number in range(current + 1, target + 1):
        step = steps[number - 1]
        if callable(step):
            step(db)
        else:
            for statement in step:
                db.execute(statement)
        db.execute(
            f"INSERT INTO schema_version (version, applied_at) VALUES"
            f" ({placeholder}, {placeholder})",
            (number, now),
        )
    return current
