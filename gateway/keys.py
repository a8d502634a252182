"""The key ring: every secret the gateway uses, generated at setup, never in code.

One JSON file (mode 0600) holds symmetric keys and the receipt signing key
(Ed25519, or SM2 when the ring is made for the SM suite: contract.signing).
Its path is `<data-dir>/keys/keyring.json` unless `GOVGW_KEYRING_FILE` names
another file (e.g. one mounted from a secrets store).

The pool's keys (the data key that seals rows and the index key of the blind
index) carry a version and a cipher suite (gateway.crypto), so that rotation
can add a key without invalidating what the old one protects: rows name the
version that sealed them. A rotation (gateway.pool.rotate) adds a new active
version, demotes the old one to `decrypt_only` while the pool is re-encrypted,
then retires it: the key material is deleted from the file and only a note of
the retirement stays. The pseudonym and audit keys are not rotated with them:
callers hold pseudonyms and the audit trail holds subject hashes, and both
must stay linkable over time.

The receipt signing key follows the pool's suite: a rotation that moves the
pool to a suite of another signature algorithm (`govgw keys rotate --crypto
sm`) makes a new receipt key of that algorithm. The old key's private part is
deleted; its public part stays in `receipt_verify_only` and is still
published, so every receipt issued before still verifies.

Format 2 (written since key rotation landed) keeps the pool keys in a list;
format 1 files (one `keys.data` / `keys.index` pair) still load, as version
`version` of the AES suite, and are rewritten as format 2 on the first rotation.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from contract import signing
from contract.receipts import key_id_for
from gateway.crypto import DEFAULT_SUITE, Suite, get_suite
from gateway.files import private_dir

KEYRING_ENV = "GOVGW_KEYRING_FILE"
# Purposes of the symmetric keys. Separate keys so that, e.g., a leaked
# pseudonym key does not let anyone recompute blind indexes.
SYMMETRIC_PURPOSES = ("data", "index", "pseudonym", "audit")
# The keys that stay with the deployment across pool key rotations.
FIXED_PURPOSES = ("pseudonym", "audit")
FORMAT = 2
ACTIVE = "active"  # seals new rows; its index key finds rows
DECRYPT_ONLY = "decrypt_only"  # rows sealed by it are still being re-encrypted
POOL_KEY_STATES = (ACTIVE, DECRYPT_ONLY)


class KeyRingError(Exception):
    """The key file is missing, unreadable or malformed."""


@dataclass(frozen=True)
class ReceiptSigningKey:
    key_id: str
    private_key: signing.PrivateKey
    created_at: str

    @property
    def algorithm(self) -> str:
        return signing.algorithm_of(self.private_key)

    @property
    def public_key(self) -> signing.PublicKey:
        return self.private_key.public_key()

    def public_pem(self) -> str:
        return signing.public_pem(self.public_key)


@dataclass(frozen=True)
class PublishedKey:
    """A receipt key as ListReceiptKeys publishes it (a former one has no private part left)."""

    key_id: str
    algorithm: str
    public_pem: str
    created_at: str = ""


@dataclass(frozen=True)
class PoolKey:
    """One version of the pool's keys: the row AEAD key and the blind-index MAC key."""

    version: int
    suite: str
    data_key: bytes
    index_key: bytes
    state: str
    created_at: str = ""

    @property
    def cipher_suite(self) -> Suite:
        return get_suite(self.suite)


@dataclass(frozen=True)
class KeyRing:
    version: int  # the active pool key version
    data_key: bytes  # the active pool key's row key (AES-256 or SM4)
    index_key: bytes  # the active pool key's blind-index MAC key
    pseudonym_key: bytes  # HMAC for per-caller pseudonyms
    audit_key: bytes  # HMAC for subject hashes in audit records and receipts
    receipt_key: ReceiptSigningKey
    # Former receipt keys, public parts only: receipts they signed still verify.
    receipt_verify_only: tuple[PublishedKey, ...] = ()
    # The deployment's suite: its MAC keys pseudonyms and audit subject hashes.
    suite: str = DEFAULT_SUITE
    pool_keys: tuple[PoolKey, ...] = ()  # every pool key still held, active first
    path: Path | None = field(default=None, compare=False)  # where it was loaded from

    @property
    def mac_suite(self) -> Suite:
        return get_suite(self.suite)

    @property
    def active(self) -> PoolKey:
        return self.pool_keys[0]

    def subject_hash(self, subject_key: str) -> str:
        """Keyed hash of a subject key, used in audit records and receipts.

        Keyed, because an unkeyed hash of an 18-digit ID number is reversed
        by brute force in minutes. HMAC-SM3 in the national suite.
        """
        return self.mac_suite.mac(self.audit_key, subject_key.encode()).hex()


def keyring_path(data_dir: Path) -> Path:
    env = os.environ.get(KEYRING_ENV)
    return Path(env) if env else Path(data_dir) / "keys" / "keyring.json"


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_pool_key_doc(version: int, suite: str) -> dict[str, Any]:
    s = get_suite(suite)
    return {
        "version": version,
        "suite": s.name,
        "state": ACTIVE,
        "created_at": _now(),
        "data": _b64(secrets.token_bytes(s.data_key_bytes)),
        "index": _b64(secrets.token_bytes(s.mac_key_bytes)),
    }


def new_receipt_key_doc(algorithm: str) -> dict[str, Any]:
    key = signing.generate(algorithm)
    return {
        # Derived as every verifier derives it from the public key alone.
        "key_id": key_id_for(key.public_key()),
        "algorithm": algorithm,
        "created_at": _now(),
        "private_pem": signing.private_pem(key),
    }


def generate(path: Path, suite: str = DEFAULT_SUITE) -> KeyRing:
    """Create a new key ring file; refuses to overwrite an existing one."""
    receipt_algorithm = get_suite(suite).signature  # fail before anything is written
    # keys/ is made 0700; a GOVGW_KEYRING_FILE's existing directory is the operator's.
    private_dir(path.parent, tighten=False)
    now = _now()
    doc = {
        "format": FORMAT,
        "suite": suite,
        "version": 1,
        "created_at": now,
        "keys": {p: _b64(secrets.token_bytes(32)) for p in FIXED_PURPOSES},
        "pool_keys": [new_pool_key_doc(1, suite)],
        "retired": [],
        "receipt_signing": new_receipt_key_doc(receipt_algorithm),
        "receipt_verify_only": [],
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    return load(path)


def _pool_keys(doc: dict[str, Any], fixed: dict[str, Any]) -> list[PoolKey]:
    if "pool_keys" not in doc:
        # Format 1: one AES pool key, in "keys" next to the fixed ones.
        entries = [
            {
                "version": doc.get("version", 1),
                "suite": DEFAULT_SUITE,
                "state": ACTIVE,
                "created_at": doc.get("created_at", ""),
                "data": fixed["data"],
                "index": fixed["index"],
            }
        ]
    else:
        entries = doc["pool_keys"]
    found = []
    for e in entries:
        suite = get_suite(e["suite"])
        key = PoolKey(
            version=int(e["version"]),
            suite=suite.name,
            data_key=base64.b64decode(e["data"], validate=True),
            index_key=base64.b64decode(e["index"], validate=True),
            state=str(e["state"]),
            created_at=str(e.get("created_at", "")),
        )
        if key.state not in POOL_KEY_STATES:
            raise ValueError(f"pool key {key.version}: unknown state {key.state!r}")
        if len(key.data_key) != suite.data_key_bytes:
            raise ValueError(
                f"pool key {key.version}: data key must be {suite.data_key_bytes} bytes"
            )
        if len(key.index_key) != suite.mac_key_bytes:
            raise ValueError(
                f"pool key {key.version}: index key must be {suite.mac_key_bytes} bytes"
            )
        found.append(key)
    active = [k for k in found if k.state == ACTIVE]
    if len(active) != 1:
        raise ValueError("exactly one pool key must be active")
    if len({k.version for k in found}) != len(found):
        raise ValueError("pool key versions must be distinct")
    # Active first, then the others newest first: the order reads try them in.
    return active + sorted((k for k in found if k.state != ACTIVE), key=lambda k: -k.version)


def load(path: Path) -> KeyRing:
    try:
        doc = json.loads(Path(path).read_text())
        fixed_doc = doc["keys"]
        fixed = {p: base64.b64decode(fixed_doc[p], validate=True) for p in FIXED_PURPOSES}
        pool_keys = _pool_keys(doc, fixed_doc)
        suite = get_suite(doc.get("suite", DEFAULT_SUITE)).name
        rs = doc["receipt_signing"]
        private = signing.load_private_pem(rs["private_pem"].encode())
        # Files written before SM2 name no algorithm: their keys are Ed25519.
        if rs.get("algorithm", signing.ED25519) != signing.algorithm_of(private):
            raise ValueError("receipt_signing: algorithm differs from the key")
        verify_only = tuple(_published(e) for e in doc.get("receipt_verify_only", []))
    except FileNotFoundError as e:
        raise KeyRingError(f"key ring not found at {path}; run `govgw init`") from e
    except (KeyError, ValueError, TypeError) as e:
        raise KeyRingError(f"key ring at {path} is malformed: {e}") from e
    for p, k in fixed.items():
        if len(k) != 32:
            raise KeyRingError(f"{p} key must be 32 bytes")
    active = pool_keys[0]
    return KeyRing(
        version=active.version,
        data_key=active.data_key,
        index_key=active.index_key,
        pseudonym_key=fixed["pseudonym"],
        audit_key=fixed["audit"],
        receipt_key=ReceiptSigningKey(rs["key_id"], private, rs.get("created_at", "")),
        receipt_verify_only=verify_only,
        suite=suite,
        pool_keys=tuple(pool_keys),
        path=Path(path),
    )


def _published(entry: dict[str, Any]) -> PublishedKey:
    key = signing.load_public_pem(entry["public_pem"].encode())
    if entry["algorithm"] != signing.algorithm_of(key):
        raise ValueError(f"receipt_verify_only {entry['key_id']}: algorithm differs from the key")
    return PublishedKey(
        entry["key_id"], entry["algorithm"], signing.public_pem(key), entry.get("created_at", "")
    )


def load_or_generate(data_dir: Path, suite: str = DEFAULT_SUITE) -> KeyRing:
    path = keyring_path(data_dir)
    return load(path) if path.exists() else generate(path, suite)


# -- rotation ---------------------------------------------------------------
@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold the key ring's lock file: one rotation step at a time, across processes."""
    lock_path = Path(str(path) + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _read_doc(path: Path) -> dict[str, Any]:
    load(path)  # validates; a malformed file is never rewritten
    doc: dict[str, Any] = json.loads(Path(path).read_text())
    if "pool_keys" not in doc:  # format 1 -> 2
        keys_doc = doc["keys"]
        doc["pool_keys"] = [
            {
                "version": int(doc.get("version", 1)),
                "suite": DEFAULT_SUITE,
                "state": ACTIVE,
                "created_at": doc.get("created_at", ""),
                "data": keys_doc.pop("data"),
                "index": keys_doc.pop("index"),
            }
        ]
        doc.setdefault("suite", DEFAULT_SUITE)
        doc.setdefault("retired", [])
        doc["format"] = FORMAT
    return doc


def _write_doc(path: Path, doc: dict[str, Any]) -> None:
    """Replace the file atomically: readers see the old ring or the new, never half."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def add_pool_key(path: Path, suite: str | None = None) -> KeyRing:
    """Make a new pool key version active; the previous active one becomes decrypt_only.

    `suite` defaults to the active key's suite; naming the other suite moves
    the pool to it at this rotation. Call under exclusive(path).
    """
    doc = _read_doc(path)
    entries = doc["pool_keys"]
    current = next(e for e in entries if e["state"] == ACTIVE)
    retired = [int(r["version"]) for r in doc.get("retired", [])]
    version = max([int(e["version"]) for e in entries] + retired) + 1
    for e in entries:
        e["state"] = DECRYPT_ONLY
    new_suite = get_suite(suite or current["suite"])
    entries.append(new_pool_key_doc(version, new_suite.name))
    doc["version"] = version
    _follow_suite_signature(doc, new_suite.signature)
    _write_doc(path, doc)
    return load(path)


def _follow_suite_signature(doc: dict[str, Any], algorithm: str) -> None:
    """A new receipt key when the pool moves to a suite that signs with another algorithm."""
    rs = doc["receipt_signing"]
    old = signing.load_private_pem(rs["private_pem"].encode())
    if signing.algorithm_of(old) == algorithm:
        return
    doc.setdefault("receipt_verify_only", []).append(
        {
            "key_id": rs["key_id"],
            "algorithm": signing.algorithm_of(old),
            "created_at": rs.get("created_at", ""),
            "retired_at": _now(),
            "public_pem": signing.public_pem(old.public_key()),
        }
    )
    doc["receipt_signing"] = new_receipt_key_doc(algorithm)


def retire_pool_keys(path: Path, keep_version: int) -> list[int]:
    """Delete every pool key but `keep_version` (which must be active); returns those retired."""
    doc = _read_doc(path)
    entries = doc["pool_keys"]
    keep = [e for e in entries if int(e["version"]) == keep_version]
    if not keep or keep[0]["state"] != ACTIVE:
        raise KeyRingError(f"pool key {keep_version} is not the active key; not retiring others")
    gone = [int(e["version"]) for e in entries if int(e["version"]) != keep_version]
    now = _now()
    doc.setdefault("retired", []).extend({"version": v, "retired_at": now} for v in gone)
    doc["pool_keys"] = keep
    _write_doc(path, doc)
    return gone
