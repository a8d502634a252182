"""The key ring: every secret the gateway uses, generated at setup, never in code.

One JSON file (mode 0600) holds symmetric keys and the receipt signing key.
Its path is `<data-dir>/keys/keyring.json` unless `GOVGW_KEYRING_FILE` names
another file (e.g. one mounted from a secrets store). Keys carry a version so
that rotation can add a key without invalidating what the old one protects.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

KEYRING_ENV = "GOVGW_KEYRING_FILE"
# Purposes of the symmetric keys. Separate keys so that, e.g., a leaked
# pseudonym key does not let anyone recompute blind indexes.
SYMMETRIC_PURPOSES = ("data", "index", "pseudonym", "audit")


class KeyRingError(Exception):
    """The key file is missing, unreadable or malformed."""


@dataclass(frozen=True)
class ReceiptSigningKey:
    key_id: str
    private_key: Ed25519PrivateKey
    created_at: str

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    def public_pem(self) -> str:
        return self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()


@dataclass(frozen=True)
class KeyRing:
    version: int
    data_key: bytes  # AES-256-GCM for records at rest
    index_key: bytes  # HMAC-SHA256 blind index of subject keys
    pseudonym_key: bytes  # HMAC for per-caller pseudonyms
    audit_key: bytes  # HMAC for subject hashes in audit records and receipts
    receipt_key: ReceiptSigningKey

    def subject_hash(self, subject_key: str) -> str:
        """Keyed hash of a subject key, used in audit records and receipts.

        Keyed, because an unkeyed hash of an 18-digit ID number is reversed
        by brute force in minutes.
        """
        return hmac.new(self.audit_key, subject_key.encode(), hashlib.sha256).hexdigest()


def keyring_path(data_dir: Path) -> Path:
    env = os.environ.get(KEYRING_ENV)
    return Path(env) if env else Path(data_dir) / "keys" / "keyring.json"


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def generate(path: Path) -> KeyRing:
    """Create a new key ring file; refuses to overwrite an existing one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    signing = Ed25519PrivateKey.generate()
    pem = signing.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    pub_raw = signing.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    doc = {
        "version": 1,
        "created_at": now,
        "keys": {p: _b64(secrets.token_bytes(32)) for p in SYMMETRIC_PURPOSES},
        "receipt_signing": {
            "key_id": "rk-" + hashlib.sha256(pub_raw).hexdigest()[:16],
            "created_at": now,
            "private_pem": pem,
        },
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    return load(path)


def load(path: Path) -> KeyRing:
    try:
        doc = json.loads(Path(path).read_text())
        keys = {p: base64.b64decode(doc["keys"][p], validate=True) for p in SYMMETRIC_PURPOSES}
        rs = doc["receipt_signing"]
        private = serialization.load_pem_private_key(rs["private_pem"].encode(), password=None)
    except FileNotFoundError as e:
        raise KeyRingError(f"key ring not found at {path}; run `govgw init`") from e
    except (KeyError, ValueError, TypeError) as e:
        raise KeyRingError(f"key ring at {path} is malformed: {e}") from e
    if not isinstance(private, Ed25519PrivateKey):
        raise KeyRingError("receipt signing key must be Ed25519")
    for p, k in keys.items():
        if len(k) != 32:
            raise KeyRingError(f"{p} key must be 32 bytes")
    return KeyRing(
        version=int(doc.get("version", 1)),
        data_key=keys["data"],
        index_key=keys["index"],
        pseudonym_key=keys["pseudonym"],
        audit_key=keys["audit"],
        receipt_key=ReceiptSigningKey(rs["key_id"], private, rs.get("created_at", "")),
    )


def load_or_generate(data_dir: Path) -> KeyRing:
    path = keyring_path(data_dir)
    return load(path) if path.exists() else generate(path)
