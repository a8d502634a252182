"""What a policy version is, apart from where it is kept: its manifest (VersionInfo),
the history entries of the active pointer, administrators' signatures and the trust
that says which keys may sign (gateway.policy.versions keeps them in the data
directory or on PostgreSQL).

Signatures (Ed25519 or SM2 with SM3, GB/T 32918: contract.signing; by an
administrator key listed in the trust) cover the bundle's full digest and its file
list. OPA once accepted a bundle whose signature file had been stripped while
verification was configured: here, when signing is required, a version without a
signature, with an empty one, by an unknown key or over other content is refused,
and a signature that is present but wrong is refused even when signing is not
required.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from contract import signing
from gateway.policy.bundle import canonical_json, files_digest, version_of

SIGNATURE_TYPE = "govgw.policy.v1"
BASELINE_AUTHOR = "govgw"
_VERSION_RE = re.compile(r"^pv-[0-9a-f]{12}$")
KEY_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class VersionError(Exception):
    """A version operation was refused; `reason` is an UPPER_SNAKE code for the caller."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def is_version_id(text: str) -> bool:
    return bool(_VERSION_RE.match(text))


# ----- signatures ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Signature:
    key_id: str
    value: str  # base64 of the signature: 64 bytes (Ed25519) or DER (r, s) (SM2)

    def to_json(self) -> dict[str, str]:
        return {"key_id": self.key_id, "value": self.value}


def file_hashes(files: Mapping[str, bytes]) -> dict[str, str]:
    return {p: hashlib.sha256(b).hexdigest() for p, b in sorted(files.items())}


def signing_payload(version: str, digest: str, hashes: Mapping[str, str], key_id: str) -> bytes:
    """The bytes an administrator signs: the content, never its metadata (author, reason)."""
    return canonical_json(
        {
            "type": SIGNATURE_TYPE,
            "version": version,
            "digest": digest,
            "files": dict(sorted(hashes.items())),
            "key_id": key_id,
        }
    )


def sign_files(files: Mapping[str, bytes], key: signing.PrivateKey, key_id: str) -> Signature:
    digest = files_digest(files)
    payload = signing_payload(version_of(digest), digest, file_hashes(files), key_id)
    return Signature(key_id, base64.b64encode(key.sign(payload)).decode())


def generate_key(
    directory: Path, key_id: str, algorithm: str = signing.ED25519
) -> tuple[Path, Path]:
    """A new administrator key pair: <id>.key (PKCS#8 PEM, mode 0600) and <id>.pub."""
    if not KEY_ID_RE.match(key_id):
        raise VersionError("KEY_ID_INVALID", "key id: 1-64 characters of A-Z, a-z, 0-9, . _ -")
    if algorithm not in signing.ALGORITHMS:
        raise VersionError(
            "KEY_ALGORITHM_INVALID", f"algorithm: one of {', '.join(signing.ALGORITHMS)}"
        )
    directory.mkdir(parents=True, exist_ok=True)
    key = signing.generate(algorithm)
    priv, pub = directory / f"{key_id}.key", directory / f"{key_id}.pub"
    if priv.exists():
        raise VersionError("KEY_EXISTS", f"{priv} exists; not overwriting a key")
    fd = os.open(priv, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(signing.private_pem(key))
    pub.write_text(signing.public_pem(key.public_key()))
    return priv, pub


def load_private_key(path: Path) -> signing.PrivateKey:
    try:
        return signing.load_private_pem(Path(path).read_bytes())
    except ValueError as e:
        raise VersionError("KEY_INVALID", f"{path} is not an Ed25519 or SM2 private key") from e


def public_key(pem: str) -> signing.PublicKey:
    return signing.load_public_pem(pem.encode())


@dataclass(frozen=True)
class Trust:
    """Which administrator keys may sign, and whether an unsigned version may be activated."""

    require_signature: bool = False
    keys: dict[str, str] = field(default_factory=dict)  # key id -> public key PEM

    def check(
        self, signature: Signature | None, version: str, files: Mapping[str, bytes]
    ) -> tuple[str, str] | None:
        """(reason, message) why `files` may not be activated under this signature, or None.

        A missing signature fails only when signing is required; a signature that
        is present must verify whatever the setting (it is never just ignored).
        """
        if signature is None or not signature.key_id or not signature.value:
            if self.require_signature:
                return "SIGNATURE_REQUIRED", "signing is required and the version is not signed"
            return None
        pem = self.keys.get(signature.key_id)
        if pem is None:
            return (
                "SIGNATURE_KEY_UNTRUSTED",
                f"signed by {signature.key_id}, which is not a trusted administrator key",
            )
        digest = files_digest(files)
        if version_of(digest) != version:
            return "SIGNATURE_INVALID", f"the files are version {version_of(digest)}, not {version}"
        payload = signing_payload(version, digest, file_hashes(files), signature.key_id)
        try:
            raw = base64.b64decode(signature.value, validate=True)
            public_key(pem).verify(raw, payload)
        except (signing.InvalidSignature, ValueError):
            return (
                "SIGNATURE_INVALID",
                f"the signature by {signature.key_id} does not match the version's content",
            )
        return None


# ----- records ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class VersionInfo:
    version: str
    digest: str
    files: dict[str, str]  # path -> sha256 hex
    author: str
    created_at: str
    reason: str
    parent: str = ""
    signature: Signature | None = None

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["signature"] = self.signature.to_json() if self.signature else None
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> VersionInfo:
        sig = doc.get("signature")
        return cls(
            version=str(doc["version"]),
            digest=str(doc["digest"]),
            files={str(k): str(v) for k, v in dict(doc["files"]).items()},
            author=str(doc.get("author", "")),
            created_at=str(doc.get("created_at", "")),
            reason=str(doc.get("reason", "")),
            parent=str(doc.get("parent") or ""),
            signature=Signature(str(sig.get("key_id", "")), str(sig.get("value", "")))
            if isinstance(sig, dict)
            else None,
        )


@dataclass(frozen=True)
class HistoryEntry:
    seq: int
    at: str
    actor: str
    action: str  # baseline | activate | rollback
    version: str
    previous: str
    reason: str
    request_id: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
