"""Two shapes of store on the storage seam, for the stores that were files before it.

- `read` / `change`: a store kept whole as one JSON value (a list or an object) in one
  row of the `documents` table (PostgreSQL only: on the embedded default such a store
  stays its file in the data directory). A change locks the row (SELECT … FOR UPDATE),
  replaces it and announces the store in the same transaction, so no update is lost
  between nodes and every node reloads within the listener's delay.
- `DocumentRows`: a store of JSON documents, one per row with a few indexed columns
  and the document's history inside it (applications, corrections): the data
  directory's SQLite file, or the store's table in PostgreSQL. The stores write one
  SQL dialect (`?` placeholders, plain types) that both run.
"""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gateway.files import private_dir, sqlite_transaction
from gateway.storage import Storage


def shared(storage: Storage | None) -> Storage | None:
    """The storage if other nodes share it (PostgreSQL), else None: the store's files."""
    return storage if storage is not None and storage.shared else None


def _reachable(storage: Storage) -> contextlib.AbstractContextManager[Any]:
    """A transaction of the shared database; one that cannot be reached raises
    StorageUnavailable (the storage's), which the pipeline turns, once for every
    store, into UNAVAILABLE DATABASE_UNAVAILABLE: fail closed, never INTERNAL."""
    return storage.transaction()


def read(storage: Storage, name: str, empty: Any) -> tuple[Hashable, int, Any]:
    """(stamp, version, value) of the store `name`; `empty` (copied) when never written.
    The stamp is taken before reading: a change after it bumps it again."""
    stamp = storage.stamp(name)
    with _reachable(storage) as db:
        row = db.execute(
            storage.sql("SELECT version, items FROM documents WHERE name = ?"), (name,)
        ).fetchone()
    if row is None:
        return stamp, 0, copy.deepcopy(empty)
    return stamp, int(row[0]), row[1]


@contextmanager
def change(storage: Storage, name: str, empty: Any) -> Iterator[Any]:
    """The store's value, locked, to change in place; written and announced on leaving
    (an exception in the body rolls everything back)."""
    with _reachable(storage) as db:
        db.execute(
            storage.sql(
                "INSERT INTO documents (name, version, items) VALUES (?, 0, ?::jsonb)"
                " ON CONFLICT (name) DO NOTHING"
            ),
            (name, json.dumps(empty)),
        )
        version, value = db.execute(
            storage.sql("SELECT version, items FROM documents WHERE name = ? FOR UPDATE"),
            (name,),
        ).fetchone()
        yield value
        db.execute(
            storage.sql("UPDATE documents SET version = ?, items = ?::jsonb WHERE name = ?"),
            (int(version) + 1, json.dumps(value, ensure_ascii=False, sort_keys=True), name),
        )
        storage.announce(db, name)


class Tx:
    """One transaction of a `DocumentRows` store: `execute` takes `?` placeholders on
    either backend; `announce` tells the other nodes (a no-op on the embedded default,
    where readers look at the files); `lock` serializes the writers of one thing."""

    def __init__(
        self,
        db: Any,
        sql: Callable[[str], str],
        announce: Callable[[], None],
        shared: bool = False,
    ) -> None:
        self.db = db
        self._sql = sql
        self.announce = announce
        self._shared = shared

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.db.execute(self._sql(sql), tuple(params))

    def lock(self, name: str) -> None:
        """Hold `name` (an application, a subject's corrections) until the transaction
        ends. SQLite's BEGIN IMMEDIATE already serializes every writer of the file; on
        PostgreSQL two nodes could otherwise both read "pending" and both decide."""
        if self._shared:
            self.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (name,))


class DocumentRows:
    """Where a store of JSON documents, one per row, lives: `path` (SQLite, created with
    `schema` here) or, on a shared storage, the table its migration made."""

    def __init__(
        self, path: Path, storage: Storage | None, store: str, schema: Sequence[str]
    ) -> None:
        self.path = Path(path)
        self.storage = shared(storage)
        self.store = store
        if self.storage is None:
            private_dir(self.path.parent)
            with self.transaction() as tx:
                for statement in schema:
                    tx.execute(statement)

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        storage = self.storage
        if storage is None:
            with sqlite_transaction(self.path) as db:
                yield Tx(db, lambda s: s, lambda: None)
            return
        with _reachable(storage) as db:
            yield Tx(db, storage.sql, lambda: storage.announce(db, self.store), shared=True)
