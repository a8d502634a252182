"""The pool's store: records encrypted at rest, in SQLite or PostgreSQL.

Each record is one JSON row sealed with AES-256-GCM (or SM4-GCM) under the key
ring's data key and found through a blind index (gateway.pool.codec): whoever
keeps the rows — the data directory's `pool.sqlite` (the default) or, with a
database URL, PostgreSQL shared by every node (gateway.pool.pg_rows) — holds
ciphertext and keyed HMACs only. `Pool` is what the rest of the gateway uses;
it seals, opens and validates, follows key rotations, and leaves the statements
to its rows backend (gateway.pool.sqlite_rows or gateway.pool.pg_rows).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from itertools import islice
from operator import itemgetter
from pathlib import Path
from typing import Any

from gateway.catalog import Catalog, Dataset
from gateway.keys import KeyRing, KeyRingError
from gateway.keys import load as load_keyring
from gateway.pool.codec import (
    PAD_TO,
    Codec,
    KeyState,
    PoolError,
    PoolIntegrityError,
    UnknownKeyVersion,
    Version,
    file_stamp,
    keyring_stale,
    normalize_key,
)
from gateway.pool.many import read_many
from gateway.pool.sqlite_rows import SqliteRows
from gateway.pool.validate import validate_batch
from gateway.storage import Storage

# Names other modules and tests import from here.
_Codec, _Version, _KeyState, _UnknownKeyVersion = Codec, Version, KeyState, UnknownKeyVersion
__all__ = ["PAD_TO", "Pool", "PoolError", "PoolIntegrityError", "normalize_key"]

# A version change made by another process (a CLI import into a running
# server's data directory) must be visible within about a second. (On
# PostgreSQL the versions follow the import's announcement instead.)
VERSION_TTL_S = 0.5
# Likewise a key rotation: a new key version is noticed within this long
# (and at once by a read that finds nothing or meets an unknown version).
KEYS_TTL_S = 0.5
INSERT_CHUNK = 10_000
_BY_BIDX = itemgetter(1)
log = logging.getLogger("govgw.pool")


def _batched(items: Iterable[Mapping[str, str]], n: int) -> Iterator[list[Mapping[str, str]]]:
    it = iter(items)
    while chunk := list(islice(it, n)):
        yield chunk


def _rows_backend(path: Path, storage: Storage | None) -> Any:
    if storage is not None and storage.kind == "postgresql":
        from gateway.pool.pg_rows import PostgresRows  # psycopg only when asked for

        return PostgresRows(storage)
    return SqliteRows(path)


class Pool:
    """The encrypted record store; safe to share between threads.

    `storage` (gateway.storage) picks where the rows live: PostgreSQL when it
    is one, else the SQLite file at `path`. `remote` says whether a read is a
    network round trip (then the pipeline runs every handler in a thread).

    The key ring it was given may change on disk while it runs (a rotation by
    `govgw keys rotate` in another process): the pool re-reads the file when
    its stamp changes, at most every KEYS_TTL_S on the read path, at once
    when a read meets an unknown key version or finds nothing, and always
    before a write.
    """

    def __init__(
        self, path: Path, keyring: KeyRing, catalog: Catalog, storage: Storage | None = None
    ) -> None:
        self.path = Path(path)
        self.catalog = catalog
        self._keyring_path = keyring.path
        self._keys = KeyState(keyring, file_stamp(keyring.path))
        self._keys_checked = time.monotonic()
        self._keys_lock = threading.Lock()
        self._rows = _rows_backend(self.path, storage)
        self.remote: bool = self._rows.remote
        ids = self._rows.dataset_ids(list(catalog.datasets))
        self._handles = {
            name: (ds, ids[name], Codec(name)) for name, ds in catalog.datasets.items()
        }
        self._versions: dict[str, str] = {}
        self._versions_at = 0.0
        self._closed = False
        self._refresh_versions()
        if self.remote and storage is not None:
            # Another node's import announces `pool`: its new version is read in the
            # listener thread, so dataset_version() reads memory on the event loop.
            storage.subscribe("pool", self._on_announced)

    def close(self) -> None:
        self._closed = True
        self._rows.close()

    def _on_announced(self) -> None:
        # A storage has no unsubscribe: a command that closed this pool but still holds
        # the storage (import, seed, keys rotate) would otherwise warn at every later
        # announcement that a closed pool failed to reload.
        if not self._closed:
            self._refresh_versions()

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- keys --------------------------------------------------------------

    def _dataset(self, dataset: str) -> tuple[Dataset, int, Codec]:
        found = self._handles.get(dataset)
        if found is None:
            raise ValueError(f"unknown dataset {dataset!r}")
        # The dataset as the catalog has it now (a served catalog follows policy
        # activations); its name and fields are the ones the handle was built for.
        return self.catalog.get(dataset) or found[0], found[1], found[2]

    def key_state(self, *, force: bool = False) -> KeyState:
        """The key versions to use now, re-read from the key file if it changed.

        Without `force` the file is looked at (one stat) at most every
        KEYS_TTL_S; with it, at once.
        """
        keys = self._keys
        if self._keyring_path is None:
            return keys
        now = time.monotonic()
        if not force and now - self._keys_checked < KEYS_TTL_S:
            return keys
        self._keys_checked = now
        stamp = file_stamp(self._keyring_path)
        if stamp is None or stamp == keys.stamp:
            return keys
        with self._keys_lock:
            if self._keys.stamp != stamp:
                try:
                    ring = load_keyring(self._keyring_path)
                except KeyRingError:
                    # Caught mid-replace or damaged: keep serving with the
                    # keys held; the next check tries again.
                    log.warning("key ring could not be re-read; keeping the keys held")
                    return self._keys
                self._keys = KeyState(ring, stamp)
                log.info(
                    "pool keys reloaded: active version %d, readable %s",
                    self._keys.active.version,
                    [k.version for k in self._keys.readable],
                )
            return self._keys

    @property
    def active_key_version(self) -> int:
        return self.key_state().active.version

    def blind_index(self, dataset: str, subject_key: str) -> bytes:
        """The subject's blind index under the active key version."""
        return self._dataset(dataset)[2].blind_index(self.key_state().active, subject_key)

    # -- reads -------------------------------------------------------------

    def read(self, dataset: str, subject_key: str) -> list[dict[str, str]]:
        """The decrypted rows of one subject, in the order they were written."""
        _, ds_id, codec = self._dataset(dataset)
        keys = self.key_state()
        rows: list[dict[str, str]] | None
        try:
            rows = self._read(ds_id, codec, keys, subject_key)
        except UnknownKeyVersion:
            rows = None
        if not rows:
            # A rotation in another process may have moved this subject to a
            # key this process has not loaded yet: look again with fresh keys.
            fresh = self.key_state(force=True)
            if fresh is not keys:
                try:
                    rows = self._read(ds_id, codec, fresh, subject_key)
                except UnknownKeyVersion as e:
                    raise PoolError(
                        f"no pool key of version {e.version} for dataset {dataset}"
                    ) from None
            elif rows is None:
                raise PoolError(f"a row of dataset {dataset} names a pool key this gateway lacks")
            if not rows:
                self.check_keys_current(fresh)
        return rows

    def check_keys_current(self, keys: KeyState) -> None:
        """On a shared pool, fail closed (KEYRING_STALE) when the database was rotated to
        a key version this node's keyring lacks: "no record" could be a moved record.
        Asked on a miss only (one indexed query); a data directory's own pool never is."""
        if not self.remote:
            return
        held = max(keys.versions)
        newest = self._rows.newest_key_version()
        if newest > held:
            raise keyring_stale(newest, held)

    def _read(
        self, ds_id: int, codec: Codec, keys: KeyState, subject_key: str
    ) -> list[dict[str, str]]:
        if len(keys.readable) == 1:
            key = keys.active
            bidx = codec.blind_index(key, subject_key)
            found = self._rows.select(ds_id, (bidx,))
            return [codec.open(keys, bidx, kv, nonce, ct) for kv, nonce, ct in found]
        # Mid-rotation: the subject's rows are under the old index or the new.
        # (A rotation moves all rows of a subject in one transaction.)
        by_version = {k.version: codec.blind_index(k, subject_key) for k in keys.readable}
        rows = []
        for kv, nonce, ct in self._rows.select(ds_id, tuple(by_version.values())):
            bidx = by_version.get(kv)
            if bidx is None:
                raise UnknownKeyVersion(kv)
            rows.append(codec.open(keys, bidx, kv, nonce, ct))
        return rows

    def read_many(
        self, dataset: str, subject_keys: Sequence[str]
    ) -> dict[str, list[dict[str, str]]]:
        """`read` of several subjects in one query: subject key (as given) -> its
        decrypted rows in write order ([] for a subject not in the pool).

        For the batch path, which answers thousands of subjects per call: one
        round trip and one statement instead of one per subject. Each row is
        opened as `read` opens it (the AAD binds it to its subject's blind index
        and key version), and a subject found under no readable key is looked for
        again with fresh keys, as `read` does.
        """
        _, ds_id, codec = self._dataset(dataset)
        found = read_many(self._rows, ds_id, codec, self.key_state, dataset, subject_keys)
        if self.remote and not all(found.values()):
            self.check_keys_current(self.key_state())
        return found

    def iter_rows(self, dataset: str) -> Iterator[dict[str, str]]:
        """Every row of a dataset, decrypted, in no particular order.

        For maintenance (exports of open data, consistency checks, key
        rotation), never for serving a request: requests use read().
        """
        _, ds_id, codec = self._dataset(dataset)
        keys = self.key_state(force=True)
        for bidx, kv, nonce, ct in self._rows.iter_dataset(ds_id):
            try:
                yield codec.open(keys, bidx, kv, nonce, ct)
            except UnknownKeyVersion as e:
                raise PoolError(
                    f"no pool key of version {e.version} for dataset {dataset}"
                ) from None

    def scan_subjects(
        self, dataset: str, after: bytes = b"", *, inclusive: bool = False
    ) -> Iterator[tuple[bytes, list[dict[str, str]]]]:
        """(blind index, decrypted rows) of each subject, in blind-index order, after `after`.

        For maintenance walks that must not hold a dataset in memory (the
        conflicts report): one subject's rows at a time, resumable from the
        last blind index seen (`inclusive` starts at it). A subject is under
        one blind index at any moment (a rotation moves its rows together),
        so inside `snapshot()` every subject is met once.
        """
        _, ds_id, codec = self._dataset(dataset)
        keys = self.key_state(force=True)
        current: bytes | None = None
        rows: list[dict[str, str]] = []
        for bidx, kv, nonce, ct in self._rows.scan(ds_id, after, inclusive):
            if bidx != current:
                if current is not None:
                    yield current, rows
                current, rows = bidx, []
            try:
                rows.append(codec.open(keys, bidx, kv, nonce, ct))
            except UnknownKeyVersion as e:
                raise PoolError(
                    f"no pool key of version {e.version} for dataset {dataset}"
                ) from None
        if current is not None:
            yield current, rows

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """Reads in the block (on this thread) see one state of the pool.

        A read transaction (WAL on SQLite, REPEATABLE READ on PostgreSQL):
        imports go on meanwhile, unseen, so a walk comparing datasets never
        sees one half-imported.
        """
        with self._rows.snapshot():
            yield

    def dataset_version(self, dataset: str) -> str:
        """The version of the last import, "" if never imported; from memory (on SQLite
        re-read at most every VERSION_TTL_S, on PostgreSQL on every import's announcement)."""
        if not self.remote and time.monotonic() - self._versions_at > VERSION_TTL_S:
            self._refresh_versions()
        return self._versions.get(dataset, "")

    def _refresh_versions(self) -> None:
        # Replace the dict whole: readers on other threads see old or new, never half.
        self._versions = self._rows.versions()
        self._versions_at = time.monotonic()

    def count(self, dataset: str) -> int:
        return self._rows.count(self._dataset(dataset)[1])

    def versions(self, dataset: str) -> list[dict[str, str | int]]:
        """Import history, newest first: version, rows, batch_rows, replace_all, imported_at."""
        history: list[dict[str, str | int]] = self._rows.history(self._dataset(dataset)[1])
        return history

    # -- writes ------------------------------------------------------------

    def write_batch(
        self, dataset: str, rows: Sequence[Mapping[str, str]], *, replace_all: bool = False
    ) -> str:
        """Validate and write rows in one transaction; returns the new version.

        Every subject present in the batch loses its previous rows; with
        replace_all the whole dataset does. Any invalid row fails the whole
        batch with INVALID_ARGUMENT naming rows and fields, never values.
        """
        ds, _, _ = self._dataset(dataset)
        normalized = validate_batch(ds, rows)
        return self.write_normalized(dataset, normalized, replace_all=replace_all)

    def write_normalized(
        self,
        dataset: str,
        rows: Iterable[Mapping[str, str]],
        *,
        replace_all: bool = False,
    ) -> str:
        """Write rows that already passed validate_row, in one transaction.

        For ingestion and the seeder, which validate (and report) themselves;
        rows may be a generator, consumed in chunks so a large import does
        not hold every ciphertext in memory at once.
        """
        ds, ds_id, codec = self._dataset(dataset)
        subject_field = ds.subject_field
        seen: set[bytes] = set()
        batch_rows = deleted = 0
        # One writer at a time (a lock in this process, and BEGIN IMMEDIATE on
        # SQLite or an advisory lock on PostgreSQL across processes and nodes).
        with self._rows.write() as w:
            # Read the key file inside the write lock: a rotation that started
            # before it sealed with the new key, and one that retires keys holds
            # the same lock while it checks for rows sealed under the old one.
            keys = self.key_state(force=True)
            active = keys.active
            older = [k for k in keys.readable if k is not active]
            before, seq = w.header(ds_id)
            if replace_all:
                deleted = w.delete_dataset(ds_id)
            for chunk in _batched(rows, INSERT_CHUNK):
                sealed = []
                fresh = []
                for row in chunk:
                    bidx = codec.blind_index(active, row[subject_field])
                    if bidx not in seen:
                        seen.add(bidx)
                        fresh.append(bidx)
                        # Mid-rotation the subject's old rows may still sit
                        # under an older version's index.
                        fresh.extend(codec.blind_index(k, row[subject_field]) for k in older)
                    sealed.append((ds_id, bidx, *codec.seal(active, bidx, row)))
                # Sorted by blind index, the chunk walks the index B-tree in
                # order instead of touching a random page per row (the sort is
                # stable: a subject's rows keep their order).
                sealed.sort(key=_BY_BIDX)
                if not replace_all:
                    # Only the first sight of a subject deletes: later rows of
                    # the same subject in this batch must survive.
                    fresh.sort()
                    deleted += w.delete_subjects(ds_id, fresh)
                w.insert(sealed)
                batch_rows += len(sealed)
            seq += 1
            now = datetime.now(UTC)
            version = f"v{seq}-{now:%Y%m%dT%H%MZ}"
            total = before - deleted + batch_rows
            w.finish(
                ds_id, seq, version, total, batch_rows, replace_all, f"{now:%Y-%m-%dT%H:%M:%SZ}"
            )
        self._refresh_versions()
        return version

    # -- key rotation ------------------------------------------------------

    def reencrypt_step(self, dataset: str, after: bytes, subjects: int) -> tuple[bytes | None, int]:
        """Move up to `subjects` subjects after blind index `after` to the active key.

        One transaction: each subject's rows are re-indexed and re-sealed
        together, so a concurrent read finds all of them under the old index
        or all under the new, never half. Returns (cursor for the next step,
        or None when the dataset has been walked; rows moved). Rows moved
        get new blind indexes that may sort after the cursor: the walk meets
        them again and skips them (they are already on the active version).
        """
        ds, ds_id, codec = self._dataset(dataset)
        moved = 0
        with self._rows.write() as w:
            keys = self.key_state(force=True)
            active = keys.active
            bidxs = w.subjects_after(ds_id, after, subjects)
            for bidx in bidxs:
                updates = []
                for row_id, kv, nonce, ct in w.rows_off(ds_id, bidx, active.version):
                    try:
                        row = codec.open(keys, bidx, kv, nonce, ct)
                    except UnknownKeyVersion as e:
                        raise PoolError(
                            f"a row of dataset {dataset} is sealed under key version"
                            f" {e.version}, which the key ring no longer holds"
                        ) from None
                    subject = row[ds.subject_field]
                    if codec.blind_index(keys.versions[kv], subject) != bidx:
                        # The row authenticated, so this is a bug, not tampering;
                        # moving it would strand it under a wrong index.
                        raise PoolIntegrityError(dataset)
                    new_bidx = codec.blind_index(active, subject)
                    updates.append((new_bidx, *codec.seal(active, new_bidx, row), row_id))
                w.update(updates)
                moved += len(updates)
        if len(bidxs) < subjects:
            return None, moved
        return bidxs[-1], moved

    def rows_not_on(self, version: int) -> int:
        """How many rows are sealed under another key version than `version`."""
        return self._rows.rows_not_on(version)

    @contextlib.contextmanager
    def writes_held(self) -> Iterator[None]:
        """Hold the pool's write lock (this process's and the database's) for the block.

        For retiring keys: while it is held no import can seal a row, so a
        count of rows under old versions stays true until the key file changes.
        """
        with self._rows.write():
            yield
