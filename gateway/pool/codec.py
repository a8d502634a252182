"""The pool's sealing: blind index, AES-GCM / SM4-GCM rows, and the key versions held.

Whatever backend keeps the rows (the embedded SQLite file or PostgreSQL), it sees
only what this module makes: a blind index, HMAC(index key, dataset NUL subject
key), and a sealed row. The dataset is inside the HMAC, so the same person's
records in two datasets cannot be linked from a copy (or a `pg_dump`); the AAD
binds each ciphertext to its dataset, blind index and key version, so moving a
ciphertext to another subject's row makes it fail to decrypt instead of answering
for the wrong person.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc

from gateway.crypto import DEFAULT_SUITE, Aead, InvalidTag, Suite
from gateway.errors import GovgwError
from gateway.keys import KeyRing, PoolKey

# Rows are padded to this many bytes before sealing so that a ciphertext's
# length does not reveal, e.g., whether a name has two characters or three.
PAD_TO = 32
NONCE_BYTES = 12
# json.dumps builds a new encoder per call when given options; build it once.
_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_DECODE = json.JSONDecoder().decode


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


def keyring_stale(newest: int, held: int) -> GovgwError:
    """A node on a shared pool whose keyring lacks the pool key version the database
    was rotated to: a subject it cannot find may have been moved under the new key, so
    it fails closed instead of answering "no record"."""
    return GovgwError(
        grpc.StatusCode.UNAVAILABLE,
        "KEYRING_STALE",
        f"this gateway's keyring holds pool key versions up to {held}, the shared pool uses"
        f" version {newest}: install the rotated keyring (GOVGW_KEYRING_FILE) on this node",
    )


class UnknownKeyVersion(Exception):
    """A row names a key version this process does not hold (yet, or any more)."""

    def __init__(self, version: int) -> None:
        super().__init__(version)
        self.version = version


def normalize_key(subject_key: str) -> str:
    """The form of a subject key that the blind index is computed over.

    Cheap on purpose (it runs on every read); full validation is the job of
    gateway.subjects and validate_row. Separators follow python-stdnum's
    compact(): blanks and hyphens go, letters are upper-cased.
    """
    return subject_key.replace(" ", "").replace("-", "").strip().upper()


@dataclass(frozen=True)
class Version:
    """One pool key version, ready to use: its AEAD and its blind-index MAC."""

    version: int
    suite: Suite
    aead: Aead
    index_key: bytes


class KeyState:
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
            k.version: Version(
                k.version, k.cipher_suite, k.cipher_suite.aead(k.data_key), k.index_key
            )
            for k in pool_keys
        }
        self.active = self.versions[pool_keys[0].version]
        self.readable = tuple(self.versions[k.version] for k in pool_keys)
        self.stamp = stamp  # the key file's (inode, mtime_ns, size) when it was read


def file_stamp(path: Path | None) -> tuple[int, int, int] | None:
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class Codec:
    """Blind index and sealing for one dataset, its constant parts computed once."""

    def __init__(self, dataset: str) -> None:
        self.dataset = dataset
        self._index_prefix = dataset.encode() + b"\0"
        self._aad_prefix = b"govgw.pool.v1\0" + dataset.encode() + b"\0"

    def blind_index(self, key: Version, subject_key: str) -> bytes:
        msg = self._index_prefix + normalize_key(subject_key).encode()
        return key.suite.mac(key.index_key, msg)

    def _aad(self, bidx: bytes, key_version: int) -> bytes:
        return self._aad_prefix + bidx + key_version.to_bytes(4, "big")

    def seal(self, key: Version, bidx: bytes, row: Mapping[str, str]) -> tuple[int, bytes, bytes]:
        """(key version, nonce, ciphertext) of one row."""
        data = _ENCODE(row).encode()
        # JSON ignores trailing blanks, so padding needs no length prefix.
        data += b" " * (-len(data) % PAD_TO)
        nonce = os.urandom(NONCE_BYTES)
        ct = key.aead.encrypt(nonce, data, self._aad(bidx, key.version))
        return key.version, nonce, ct

    def open(
        self, keys: KeyState, bidx: bytes, key_version: int, nonce: bytes, ct: bytes
    ) -> dict[str, str]:
        key = keys.versions.get(key_version)
        if key is None:
            raise UnknownKeyVersion(key_version)
        try:
            plain = key.aead.decrypt(nonce, ct, self._aad(bidx, key_version))
        except InvalidTag as e:
            raise PoolIntegrityError(self.dataset) from e
        row: dict[str, str] = _DECODE(plain.decode())
        return row


# The names bench/masking.py and older code import.
_Codec, _Version, _KeyState = Codec, Version, KeyState
