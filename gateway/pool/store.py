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
import hmac
import json
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from itertools import islice
from operator import itemgetter
from pathlib import Path

import grpc
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.catalog import Catalog, Dataset
from gateway.errors import FieldViolation, GovgwError, invalid_many
from gateway.keys import KeyRing
from gateway.pool.validate import SINGLE_ROW_DATASETS, validate_row

SCHEMA_VERSION = "1"
# A version change made by another process (a CLI import into a running
# server's data directory) must be visible within about a second.
VERSION_TTL_S = 0.5
# Rows are padded to this many bytes before sealing so that a ciphertext's
# length does not reveal, e.g., whether a name has two characters or three.
PAD_TO = 32
NONCE_BYTES = 12
INSERT_CHUNK = 10_000
_BY_BIDX = itemgetter(1)
# json.dumps builds a new encoder per call when given options; build it once.
_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_DECODE = json.JSONDecoder().decode

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


class _Codec:
    """Blind index and sealing for one dataset, its constant parts computed once."""

    def __init__(self, dataset: str, keyring: KeyRing, ciphers: Mapping[int, AESGCM]) -> None:
        self.dataset = dataset
        self._index_key = keyring.index_key
        self._index_prefix = dataset.encode() + b"\0"
        self._aad_prefix = b"govgw.pool.v1\0" + dataset.encode() + b"\0"
        self._ciphers = ciphers
        self.key_version = keyring.version
        self._cipher = ciphers[keyring.version]

    def blind_index(self, subject_key: str) -> bytes:
        msg = self._index_prefix + normalize_key(subject_key).encode()
        return hmac.digest(self._index_key, msg, "sha256")

    def _aad(self, bidx: bytes, key_version: int) -> bytes:
        return self._aad_prefix + bidx + key_version.to_bytes(4, "big")

    def seal(self, bidx: bytes, row: Mapping[str, str]) -> tuple[int, bytes, bytes]:
        """(key version, nonce, ciphertext) of one row."""
        data = _ENCODE(row).encode()
        # JSON ignores trailing blanks, so padding needs no length prefix.
        data += b" " * (-len(data) % PAD_TO)
        nonce = os.urandom(NONCE_BYTES)
        ct = self._cipher.encrypt(nonce, data, self._aad(bidx, self.key_version))
        return self.key_version, nonce, ct

    def open(self, bidx: bytes, key_version: int, nonce: bytes, ct: bytes) -> dict[str, str]:
        cipher = self._ciphers.get(key_version)
        if cipher is None:
            raise PoolError(f"no data key of version {key_version} for dataset {self.dataset}")
        try:
            plain = cipher.decrypt(nonce, ct, self._aad(bidx, key_version))
        except InvalidTag as e:
            raise PoolIntegrityError(self.dataset) from e
        row: dict[str, str] = _DECODE(plain.decode())
        return row


class Pool:
    """The encrypted record store; safe to share between threads."""

    def __init__(self, path: Path, keyring: KeyRing, catalog: Catalog) -> None:
        self.path = Path(path)
        self.catalog = catalog
        # Older key versions join this map when rotation lands.
        self._ciphers = {keyring.version: AESGCM(keyring.data_key)}
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
            name: (ds, ids[name], _Codec(name, keyring, self._ciphers))
            for name, ds in catalog.datasets.items()
        }
        self._versions: dict[str, str] = {}
        self._versions_at = 0.0
        self._refresh_versions()

    # -- connections -------------------------------------------------------

    def _create_file(self) -> None:
        # Create the file ourselves so that it is private from the first byte;
        # SQLite gives the -wal and -shm files the same mode.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))

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
        return found

    def blind_index(self, dataset: str, subject_key: str) -> bytes:
        return self._dataset(dataset)[2].blind_index(subject_key)

    # -- reads -------------------------------------------------------------

    def read(self, dataset: str, subject_key: str) -> list[dict[str, str]]:
        """The decrypted rows of one subject, in the order they were written."""
        _, ds_id, codec = self._dataset(dataset)
        bidx = codec.blind_index(subject_key)
        found = self._conn().execute(_SELECT_SUBJECT, (ds_id, bidx)).fetchall()
        return [codec.open(bidx, kv, nonce, ct) for kv, nonce, ct in found]

    def iter_rows(self, dataset: str) -> Iterator[dict[str, str]]:
        """Every row of a dataset, decrypted, in no particular order.

        For maintenance (exports of open data, consistency checks, key
        rotation), never for serving a request: requests use read().
        """
        _, ds_id, codec = self._dataset(dataset)
        cur = self._conn().execute(
            "SELECT bidx, key_version, nonce, ct FROM records WHERE dataset_id = ?", (ds_id,)
        )
        for bidx, kv, nonce, ct in cur:
            yield codec.open(bidx, kv, nonce, ct)

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
                        bidx = codec.blind_index(row[subject_field])
                        if bidx not in seen:
                            seen.add(bidx)
                            fresh.append((ds_id, bidx))
                        sealed.append((ds_id, bidx, *codec.seal(bidx, row)))
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
