"""The pool's store: an embedded SQLite file whose records are encrypted at rest.

Each record is one JSON row sealed with AES-256-GCM under the key ring's data
key. Records are found through a blind index, HMAC-SHA256(index key, dataset
NUL subject key), so the file can be searched by whoever holds the keys and by
nobody else: a copy of the data directory yields no name, ID number or phone,
and because the dataset is inside the HMAC the same person's records in two
datasets cannot be linked from the copy either. The AAD binds each ciphertext
to its dataset, blind index and key version, so moving a ciphertext to another
subject's row makes it fail to decrypt instead of answering for the wrong
person.

The gateway reads from many gRPC worker threads at once: every thread gets its
own connection (sqlite3 connections must not be shared mid-statement), and
WAL mode lets those readers run while an import writes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from operator import itemgetter
from pathlib import Path

import grpc

from gateway.catalog import Catalog, Dataset
from gateway.crypto import DEFAULT_SUITE, Aead, InvalidTag, Suite
from gateway.errors import FieldViolation, GovgwError, invalid_many
from gateway.files import open_private, private_dir
from gateway.keys import KeyRing, KeyRingError, PoolKey
from gateway.keys import load as load_keyring
from gateway.pool.validate import SINGLE_ROW_DATASETS, validate_row

SCHEMA_VERSION = "1"
# A version change made by another process (a CLI import into a running
# server's data directory) must be visible within about a second.
VERSION_TTL_S = 0.5
# Likewise a key rotation: a new key version is noticed within this long
# (and at once by a read that finds nothing or meets an unknown version).
KEYS_TTL_S = 0.5
# Rows are padded to this many bytes before sealing so that a ciphertext's
# length does not reveal, e.g., whether a name has two characters or three.
PAD_TO = 32
NONCE_BYTES = 12
INSERT_CHUNK = 10_000
_BY_BIDX = itemgetter(1)
# json.dumps builds a new encoder per call when given options; build it once.
_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_DECODE = json.JSONDecoder().decode
log = logging.getLogger("govgw.pool")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS datasets (
    id      INTEGER PRIMARY KEY,
    name    TEXT NOT NULL UNIQUE,
    seq     INTEGER NOT NULL DEFAULT 0,
    version TEXT NOT NULL DEFAULT '',
    rows    INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS dataset_versions (
    dataset_id  INTEGER NOT NULL REFERENCES datasets(id),
    seq         INTEGER NOT NULL,
    version     TEXT NOT NULL,
    rows        INTEGER NOT NULL,
    batch_rows  INTEGER NOT NULL,
    replace_all INTEGER NOT NULL,
    imported_at TEXT NOT NULL,
    PRIMARY KEY (dataset_id, seq)
);
CREATE TABLE IF NOT EXISTS records (
    id          INTEGER PRIMARY KEY,
    dataset_id  INTEGER NOT NULL,
    bidx        BLOB NOT NULL,
    key_version INTEGER NOT NULL,
    nonce       BLOB NOT NULL,
    ct          BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS records_by_subject ON records (dataset_id, bidx);
"""

_SELECT_SUBJECT = (
    "SELECT key_version, nonce, ct FROM records WHERE dataset_id = ? AND bidx = ? ORDER BY id"
)
_DELETE_SUBJECT = "DELETE FROM records WHERE dataset_id = ? AND bidx = ?"
_INSERT = "INSERT INTO records (dataset_id, bidx, key_version, nonce, ct) VALUES (?, ?, ?, ?, ?)"


class PoolError(Exception):
    """The pool cannot be used: closed, or a key it needs is missing."""


class PoolIntegrityError(GovgwError):
    """A stored record failed authentication: tampered, swapped or corrupt.

    Raised rather than skipped, because silently dropping the row would turn
    tampering into a wrong "no record" answer.
    """

    def __init__(self, dataset: str) -> None:
        super().__init__(
            grpc.StatusCode.DATA_LOSS,
            "POOL_RECORD_INTEGRITY",
            f"a stored record of dataset {dataset} failed authentication",
        )


def normalize_key(subject_key: str) -> str:
    """The form of a subject key that the blind index is computed over.

    Cheap on purpose (it runs on every read); full validation is the job of
    gateway.subjects and validate_row. Separators follow python-stdnum's
    compact(): blanks and hyphens go, letters are upper-cased.
    """
    return subject_key.replace(" ", "").replace("-", "").strip().upper()


def _batched(items: Iterable[Mapping[str, str]], n: int) -> Iterator[list[Mapping[str, str]]]:
    it = iter(items)
    while chunk := list(islice(it, n)):
        yield chunk


class _Connection(sqlite3.Connection):
    """A connection that can be weakly referenced (the base class cannot)."""


@dataclass(frozen=True)
class _Version:
    """One pool key version, ready to use: its AEAD and its blind-index MAC."""

    version: int
    suite: Suite
    aead: Aead
    index_key: bytes


class _KeyState:
    """The pool key versions a Pool holds at one moment; replaced whole, never mutated.

    `readable` lists the active version first: a subject's rows are looked up
    under each readable version's blind index, because during a rotation a
    row is either still under its old version or already under the new one.
    """

    def __init__(self, keyring: KeyRing, stamp: tuple[int, int, int] | None) -> None:
        # The ring's top-level fields are the active key (pool_keys[0] when
        # loaded from a file); the other versions are only for reading.
        suite = keyring.pool_keys[0].suite if keyring.pool_keys else DEFAULT_SUITE
        active = PoolKey(keyring.version, suite, keyring.data_key, keyring.index_key, "active")
        pool_keys = (active, *keyring.pool_keys[1:])
        self.versions = {
            k.version: _Version(
                k.version, k.cipher_suite, k.cipher_suite.aead(k.data_key), k.index_key
            )
            for k in pool_keys
        }
        self.active = self.versions[pool_keys[0].version]
        self.readable = tuple(self.versions[k.version] for k in pool_keys)
        self.stamp = stamp  # the key file's (inode, mtime_ns, size) when it was read


def _file_stamp(path: Path | None) -> tuple[int, int, int] | None:
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class _Codec:
    """Blind index and sealing for one dataset, its constant parts computed once."""

    def __init__(self, dataset: str) -> None:
        self.dataset = dataset
        self._index_prefix = dataset.encode() + b"\0"
        self._aad_prefix = b"govgw.pool.v1\0" + dataset.encode() + b"\0"

    def blind_index(self, key: _Version, subject_key: str) -> bytes:
        msg = self._index_prefix + normalize_key(subject_key).encode()
        return key.suite.mac(key.index_key, msg)

    def _aad(self, bidx: bytes, key_version: int) -> bytes:
        return self._aad_prefix + bidx + key_version.to_bytes(4, "big")

    def seal(self, key: _Version, bidx: bytes, row: Mapping[str, str]) -> tuple[int, bytes, bytes]:
        """(key version, nonce, ciphertext) of one row."""
        data = _ENCODE(row).encode()
        # JSON ignores trailing blanks, so padding needs no length prefix.
        data += b" " * (-len(data) % PAD_TO)
        nonce = os.urandom(NONCE_BYTES)
        ct = key.aead.encrypt(nonce, data, self._aad(bidx, key.version))
        return key.version, nonce, ct

    def open(
        self, keys: _KeyState, bidx: bytes, key_version: int, nonce: bytes, ct: bytes
    ) -> dict[str, str]:
        key = keys.versions.get(key_version)
        if key is None:
            raise _UnknownKeyVersion(key_version)
        try:
            plain = key.aead.decrypt(nonce, ct, self._aad(bidx, key_version))
        except InvalidTag as e:
            raise PoolIntegrityError(self.dataset) from e
        row: dict[str, str] = _DECODE(plain.decode())
        return row


class _UnknownKeyVersion(Exception):
    """A row names a key version this process does not hold (yet, or any more)."""

    def __init__(self, version: int) -> None:
        super().__init__(version)
        self.version = version


class Pool:
    """The encrypted record store; safe to share between threads.

    The key ring it was given may change on disk while it runs (a rotation by
    `govgw keys rotate` in another process): the pool re-reads the file when
    its stamp changes, at most every KEYS_TTL_S on the read path, at once
    when a read meets an unknown key version or finds nothing, and always
    before a write.
    """

    def __init__(self, path: Path, keyring: KeyRing, catalog: Catalog) -> None:
        self.path = Path(path)
        self.catalog = catalog
        self._keyring_path = keyring.path
        self._keys = _KeyState(keyring, _file_stamp(keyring.path))
        self._keys_checked = time.monotonic()
        self._keys_lock = threading.Lock()
        self._local = threading.local()
        # Weak, so that a finished thread's connection closes with its
        # thread-local storage; close() closes whatever is still alive.
        self._conns: weakref.WeakSet[_Connection] = weakref.WeakSet()
        self._conns_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._closed = False
        self._create_file()
        ids = self._init_schema()
        self._handles = {
            name: (ds, ids[name], _Codec(name)) for name, ds in catalog.datasets.items()
        }
        self._versions: dict[str, str] = {}
        self._versions_at = 0.0
        self._refresh_versions()

    # -- connections -------------------------------------------------------

    def _create_file(self) -> None:
        # Create the file ourselves so that it is private from the first byte;
        # SQLite gives the -wal and -shm files the same mode. A pool made by an
        # older govgw is tightened here (gateway.files).
        private_dir(self.path.parent)
        os.close(open_private(self.path, os.O_RDONLY))

    def _connect(self) -> _Connection:
        conn = sqlite3.connect(
            self.path,
            isolation_level=None,
            check_same_thread=False,
            timeout=30.0,
            factory=_Connection,
        )
        # An import that returned is on disk, power cut or not.
        conn.execute("PRAGMA synchronous=FULL")
        # A million-row import leaves a WAL as big as the pool; once it is
        # checkpointed, give the space back. (mmap was measured: no faster
        # for lookups, and it bloats the server's resident size.)
        conn.execute("PRAGMA journal_size_limit=67108864")
        conn.execute("PRAGMA cache_size=-8192")
        conn.execute("PRAGMA temp_store=MEMORY")
        return conn

    def _conn(self) -> _Connection:
        if self._closed:
            raise PoolError("the pool is closed")
        conn: _Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            with self._conns_lock:
                if self._closed:
                    conn.close()
                    raise PoolError("the pool is closed")
                self._conns.add(conn)
            self._local.conn = conn
        return conn

    def _init_schema(self) -> dict[str, int]:
        conn = self._conn()
        conn.execute("PRAGMA journal_mode=WAL")
        # Every statement is IF NOT EXISTS, so two processes racing here is harmless.
        conn.executescript(_SCHEMA)
        conn.execute("BEGIN IMMEDIATE")
        try:
            found = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if found is None:
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (SCHEMA_VERSION,)
                )
            elif found[0] != SCHEMA_VERSION:
                raise PoolError(
                    f"pool file has schema version {found[0]}, this gateway needs {SCHEMA_VERSION}"
                )
            conn.executemany(
                "INSERT OR IGNORE INTO datasets (name) VALUES (?)",
                [(name,) for name in self.catalog.datasets],
            )
            ids = dict(conn.execute("SELECT name, id FROM datasets").fetchall())
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return ids

    def close(self) -> None:
        with self._conns_lock:
            self._closed = True
            conns = list(self._conns)
            self._conns.clear()
        for conn in conns:
            conn.close()

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- keys --------------------------------------------------------------

    def _dataset(self, dataset: str) -> tuple[Dataset, int, _Codec]:
        found = self._handles.get(dataset)
        if found is None:
            raise ValueError(f"unknown dataset {dataset!r}")
        # The dataset as the catalog has it now (a served catalog follows policy
        # activations); its name and fields are the ones the handle was built for.
        return self.catalog.get(dataset) or found[0], found[1], found[2]

    def key_state(self, *, force: bool = False) -> _KeyState:
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
        stamp = _file_stamp(self._keyring_path)
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
                self._keys = _KeyState(ring, stamp)
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
        try:
            rows = self._read(ds_id, codec, keys, subject_key)
        except _UnknownKeyVersion:
            rows = None
        if not rows:
            # A rotation in another process may have moved this subject to a
            # key this process has not loaded yet: look again with fresh keys.
            fresh = self.key_state(force=True)
            if fresh is not keys:
                try:
                    rows = self._read(ds_id, codec, fresh, subject_key)
                except _UnknownKeyVersion as e:
                    raise PoolError(
                        f"no pool key of version {e.version} for dataset {dataset}"
                    ) from None
            elif rows is None:
                raise PoolError(f"a row of dataset {dataset} names a pool key this gateway lacks")
        return rows

    def _read(
        self, ds_id: int, codec: _Codec, keys: _KeyState, subject_key: str
    ) -> list[dict[str, str]]:
        if len(keys.readable) == 1:
            key = keys.active
            bidx = codec.blind_index(key, subject_key)
            found = self._conn().execute(_SELECT_SUBJECT, (ds_id, bidx)).fetchall()
            return [codec.open(keys, bidx, kv, nonce, ct) for kv, nonce, ct in found]
        # Mid-rotation: the subject's rows are under the old index or the new.
        # (A rotation moves all rows of a subject in one transaction.)
        by_version = {k.version: codec.blind_index(k, subject_key) for k in keys.readable}
        marks = ",".join("?" * len(by_version))
        found = (
            self._conn()
            .execute(
                "SELECT key_version, nonce, ct FROM records WHERE dataset_id = ?"
                f" AND bidx IN ({marks}) ORDER BY id",
                (ds_id, *by_version.values()),
            )
            .fetchall()
        )
        rows = []
        for kv, nonce, ct in found:
            bidx = by_version.get(kv)
            if bidx is None:
                raise _UnknownKeyVersion(kv)
            rows.append(codec.open(keys, bidx, kv, nonce, ct))
        return rows

    def iter_rows(self, dataset: str) -> Iterator[dict[str, str]]:
        """Every row of a dataset, decrypted, in no particular order.

        For maintenance (exports of open data, consistency checks, key
        rotation), never for serving a request: requests use read().
        """
        _, ds_id, codec = self._dataset(dataset)
        keys = self.key_state(force=True)
        cur = self._conn().execute(
            "SELECT bidx, key_version, nonce, ct FROM records WHERE dataset_id = ?", (ds_id,)
        )
        for bidx, kv, nonce, ct in cur:
            try:
                yield codec.open(keys, bidx, kv, nonce, ct)
            except _UnknownKeyVersion as e:
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
        op = ">=" if inclusive else ">"
        cur = self._conn().execute(
            "SELECT bidx, key_version, nonce, ct FROM records"
            f" WHERE dataset_id = ? AND bidx {op} ? ORDER BY bidx, id",
            (ds_id, after),
        )
        current: bytes | None = None
        rows: list[dict[str, str]] = []
        try:
            for bidx, kv, nonce, ct in cur:
                if bidx != current:
                    if current is not None:
                        yield current, rows
                    current, rows = bidx, []
                try:
                    rows.append(codec.open(keys, bidx, kv, nonce, ct))
                except _UnknownKeyVersion as e:
                    raise PoolError(
                        f"no pool key of version {e.version} for dataset {dataset}"
                    ) from None
            if current is not None:
                yield current, rows
        finally:
            cur.close()

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """Reads in the block (on this thread) see one state of the pool.

        A read transaction in WAL mode: imports go on meanwhile, unseen, so
        a walk comparing datasets never sees one half-imported.
        """
        conn = self._conn()
        if conn.in_transaction:  # already inside one: it is the snapshot
            yield
            return
        conn.execute("BEGIN")
        try:
            yield
        finally:
            conn.execute("COMMIT")

    def dataset_version(self, dataset: str) -> str:
        """The version of the last import, "" if never imported; cached briefly."""
        if time.monotonic() - self._versions_at > VERSION_TTL_S:
            self._refresh_versions()
        return self._versions.get(dataset, "")

    def _refresh_versions(self) -> None:
        found = self._conn().execute("SELECT name, version FROM datasets").fetchall()
        # Replace the dict whole: readers on other threads see old or new, never half.
        self._versions = dict(found)
        self._versions_at = time.monotonic()

    def count(self, dataset: str) -> int:
        _, ds_id, _ = self._dataset(dataset)
        found = self._conn().execute("SELECT rows FROM datasets WHERE id = ?", (ds_id,)).fetchone()
        return int(found[0])

    def versions(self, dataset: str) -> list[dict[str, str | int]]:
        """Import history, newest first: version, rows, batch_rows, replace_all, imported_at."""
        _, ds_id, _ = self._dataset(dataset)
        cur = self._conn().execute(
            "SELECT version, rows, batch_rows, replace_all, imported_at FROM dataset_versions"
            " WHERE dataset_id = ? ORDER BY seq DESC",
            (ds_id,),
        )
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]

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
        normalized: list[dict[str, str]] = []
        violations: list[FieldViolation] = []
        first_line: dict[str, int] = {}
        for i, row in enumerate(rows):
            norm, problems = validate_row(ds, row)
            violations.extend(
                FieldViolation(f"rows[{i}].{p.field}", p.description, p.reason) for p in problems
            )
            if problems:
                continue
            key = norm[ds.subject_field]
            if dataset in SINGLE_ROW_DATASETS and key in first_line:
                violations.append(
                    FieldViolation(
                        f"rows[{i}].{ds.subject_field}",
                        f"same subject as rows[{first_line[key]}]; the dataset has one row per"
                        " subject",
                        "DUPLICATE_SUBJECT",
                    )
                )
                continue
            first_line.setdefault(key, i)
            normalized.append(norm)
        if violations:
            raise invalid_many(violations)
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
        conn = self._conn()
        seen: set[bytes] = set()
        batch_rows = deleted = 0
        # One writer per process at a time; BEGIN IMMEDIATE orders processes.
        with self._write_lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                # Read the key file inside the write lock: a rotation that
                # started before it sealed with the new key, and one that
                # retires keys holds the same lock while it checks for rows
                # sealed under the old one.
                keys = self.key_state(force=True)
                active = keys.active
                older = [k for k in keys.readable if k is not active]
                before, seq = conn.execute(
                    "SELECT rows, seq FROM datasets WHERE id = ?", (ds_id,)
                ).fetchone()
                if replace_all:
                    deleted = conn.execute(
                        "DELETE FROM records WHERE dataset_id = ?", (ds_id,)
                    ).rowcount
                for chunk in _batched(rows, INSERT_CHUNK):
                    sealed = []
                    fresh = []
                    for row in chunk:
                        bidx = codec.blind_index(active, row[subject_field])
                        if bidx not in seen:
                            seen.add(bidx)
                            fresh.append((ds_id, bidx))
                            # Mid-rotation the subject's old rows may still
                            # sit under an older version's index.
                            fresh.extend(
                                (ds_id, codec.blind_index(k, row[subject_field])) for k in older
                            )
                        sealed.append((ds_id, bidx, *codec.seal(active, bidx, row)))
                    # Sorted by blind index, the chunk walks the index B-tree
                    # in order instead of touching a random page per row (the
                    # sort is stable: a subject's rows keep their order).
                    sealed.sort(key=_BY_BIDX)
                    if not replace_all:
                        # Only the first sight of a subject deletes: later rows
                        # of the same subject in this batch must survive.
                        fresh.sort(key=_BY_BIDX)
                        deleted += conn.executemany(_DELETE_SUBJECT, fresh).rowcount
                    conn.executemany(_INSERT, sealed)
                    batch_rows += len(sealed)
                seq += 1
                now = datetime.now(UTC)
                version = f"v{seq}-{now:%Y%m%dT%H%MZ}"
                total = before - deleted + batch_rows
                conn.execute(
                    "UPDATE datasets SET seq = ?, version = ?, rows = ? WHERE id = ?",
                    (seq, version, total, ds_id),
                )
                conn.execute(
                    "INSERT INTO dataset_versions"
                    " (dataset_id, seq, version, rows, batch_rows, replace_all, imported_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        ds_id,
                        seq,
                        version,
                        total,
                        batch_rows,
                        int(replace_all),
                        now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    ),
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            if batch_rows > INSERT_CHUNK:
                # Copy the big WAL into the pool now and shrink it, rather
                # than leave a second copy of the pool on disk. Best effort:
                # a busy reader only defers this to the next checkpoint.
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
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
        conn = self._conn()
        moved = 0
        with self._write_lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                keys = self.key_state(force=True)
                active = keys.active
                bidxs = [
                    b
                    for (b,) in conn.execute(
                        "SELECT DISTINCT bidx FROM records WHERE dataset_id = ? AND bidx > ?"
                        " ORDER BY bidx LIMIT ?",
                        (ds_id, after, subjects),
                    )
                ]
                for bidx in bidxs:
                    found = conn.execute(
                        "SELECT id, key_version, nonce, ct FROM records"
                        " WHERE dataset_id = ? AND bidx = ? AND key_version != ? ORDER BY id",
                        (ds_id, bidx, active.version),
                    ).fetchall()
                    updates = []
                    for row_id, kv, nonce, ct in found:
                        try:
                            row = codec.open(keys, bidx, kv, nonce, ct)
                        except _UnknownKeyVersion as e:
                            raise PoolError(
                                f"a row of dataset {dataset} is sealed under key version"
                                f" {e.version}, which the key ring no longer holds"
                            ) from None
                        old_key = keys.versions[kv]
                        subject = row[ds.subject_field]
                        if codec.blind_index(old_key, subject) != bidx:
                            # The row authenticated, so this is a bug, not tampering;
                            # moving it would strand it under a wrong index.
                            raise PoolIntegrityError(dataset)
                        new_bidx = codec.blind_index(active, subject)
                        updates.append((new_bidx, *codec.seal(active, new_bidx, row), row_id))
                    conn.executemany(
                        "UPDATE records SET bidx = ?, key_version = ?, nonce = ?, ct = ?"
                        " WHERE id = ?",
                        updates,
                    )
                    moved += len(updates)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        if len(bidxs) < subjects:
            return None, moved
        return bidxs[-1], moved

    def rows_not_on(self, version: int) -> int:
        """How many rows are sealed under another key version than `version`."""
        found = (
            self._conn()
            .execute("SELECT count(*) FROM records WHERE key_version != ?", (version,))
            .fetchone()
        )
        return int(found[0])

    @contextlib.contextmanager
    def writes_held(self) -> Iterator[sqlite3.Connection]:
        """Hold the pool's write lock (this process's and SQLite's) for the block.

        For retiring keys: while it is held no import can seal a row, so a
        count of rows under old versions stays true until the key file changes.
        """
        conn = self._conn()
        with self._write_lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
