"""Policy versions on PostgreSQL: one deployment's versions shared by every node.

The records of the file store (gateway.policy.versions), in the `govgw` schema
(tables made by the migrations, gateway.storage.migrations):

    policy_versions (version, manifest)     the manifest, byte for byte as manifest.json
    policy_files (version, path, content)   the bundle's files, byte for byte
    policy_history (seq, entry)             one row per activation or rollback
    policy_settings (name, doc)             'active': the pointer; 'trust': the trust

Reads check a version exactly as the file store does: every file against the
manifest, the manifest's digest against the files and the version id, so a row
changed, added or removed behind govgw's back makes the version unreadable.

Every change is one transaction under an advisory lock (the file store's flock):
an activation or rollback writes its history row and the pointer together, and
announces `policy` in that transaction (LISTEN/NOTIFY, gateway.storage.postgres),
so each node's PolicyRuntime wakes, loads and checks the new version off the event
loop and serves it. A version is announced when it is stored, too, so a node checks
it in a child process before the pointer names it.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Hashable, Iterator, Mapping
from pathlib import Path
from typing import Any

from gateway.policy.versions import HistoryEntry, VersionStore, materialized
from gateway.storage import Storage

STORE = "policy"  # the announcement's name, and the storage's stamp of this store
_LOCK = 0x706F6C69  # "poli": the advisory lock every writer of the versions takes


class PostgresVersionStore(VersionStore):
    shared = True

    def __init__(self, storage: Storage, root: Path | None = None) -> None:
        # `root` is unused here but for messages: the data directory's policy folder
        # holds nothing on a shared database.
        super().__init__(root or Path("policy"))
        self.storage = storage
        self._local = threading.local()  # the transaction of _locked, in its thread

    @contextlib.contextmanager
    def _db(self) -> Iterator[Any]:
        """The writer's transaction when this thread holds the lock, else a short one."""
        held = getattr(self._local, "db", None)
        if held is not None:
            yield held
            return
        with self.storage.transaction() as db:
            yield db

    def _one(self, sql: str, *args: Any) -> Any:
        with self._db() as db:
            row = db.execute(sql, args).fetchone()
        return None if row is None else row[0]

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self.storage.transaction() as db:
            db.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
            self._local.db = db
            try:
                yield  # an exception rolls back every write made inside
                self.storage.announce(db, STORE)  # delivered when the transaction commits
            finally:
                self._local.db = None

    def _read_trust(self) -> bytes | None:
        return _bytes(self._one("SELECT doc FROM policy_settings WHERE name = 'trust'"))

    def _write_trust(self, blob: bytes) -> None:
        self._put_setting("trust", blob)

    def _put_setting(self, name: str, blob: bytes) -> None:
        with self._db() as db:
            db.execute(
                "INSERT INTO policy_settings (name, doc) VALUES (%s, %s)"
                " ON CONFLICT (name) DO UPDATE SET doc = EXCLUDED.doc",
                (name, blob),
            )

    def _read_manifest(self, version: str) -> bytes | None:
        return _bytes(self._one("SELECT manifest FROM policy_versions WHERE version = %s", version))

    def _replace_manifest(self, version: str, blob: bytes) -> None:
        with self._db() as db:
            db.execute(
                "UPDATE policy_versions SET manifest = %s WHERE version = %s", (blob, version)
            )

    def _write_version(self, version: str, manifest: bytes, files: Mapping[str, bytes]) -> None:
        with self._db() as db:
            db.execute(
                "INSERT INTO policy_versions (version, manifest) VALUES (%s, %s)",
                (version, manifest),
            )
            with db.cursor() as cur:
                cur.executemany(
                    "INSERT INTO policy_files (version, path, content) VALUES (%s, %s, %s)",
                    [(version, path, blob) for path, blob in sorted(files.items())],
                )

    def _read_bundle(self, version: str) -> dict[str, bytes]:
        with self._db() as db:
            rows = db.execute(
                "SELECT path, content FROM policy_files WHERE version = %s", (version,)
            ).fetchall()
        return {str(path): bytes(content) for path, content in rows}

    def _manifests(self) -> list[tuple[str, bytes]]:
        with self._db() as db:
            rows = db.execute(
                "SELECT version, manifest FROM policy_versions ORDER BY version"
            ).fetchall()
        return [(str(v), bytes(m)) for v, m in rows]

    def version_ids(self) -> list[str]:
        with self._db() as db:  # the ids alone: the runtime asks after every change
            rows = db.execute("SELECT version FROM policy_versions ORDER BY version").fetchall()
        return [str(r[0]) for r in rows]

    def _read_pointer(self) -> bytes | None:
        return _bytes(self._one("SELECT doc FROM policy_settings WHERE name = 'active'"))

    def _history_lines(self) -> list[str]:
        with self._db() as db:
            rows = db.execute("SELECT entry FROM policy_history ORDER BY seq").fetchall()
        return [str(r[0]) for r in rows]

    def _switch(self, entry: HistoryEntry, pointer: bytes) -> None:
        with self._db() as db:  # inside _locked: the history row and the pointer commit together
            db.execute(
                "INSERT INTO policy_history (seq, entry) VALUES (%s, %s)",
                (entry.seq, json.dumps(entry.to_json(), ensure_ascii=False)),
            )
        self._put_setting("active", pointer)

    def stamp(self) -> Hashable:
        return self.storage.stamp(STORE)

    def subscribe(self, wake: Callable[[], None]) -> None:
        self.storage.subscribe(STORE, wake)

    @contextlib.contextmanager
    def checkable(self, version: str) -> Iterator[Path]:
        _, files = self.read_files(version)  # intact, or VersionError
        with materialized(files) as root:
            yield root


def _bytes(value: Any) -> bytes | None:
    return None if value is None else bytes(value)
