"""The signed receipt format, shared by the gateway that issues and whoever verifies.

A receipt is the gateway's signature over canonical JSON claims (receipt
id, caller, action, outcome, dataset, subject commitment, policy version,
issue time, and `alg`, the signature algorithm). It proves that a check
happened and what it answered, without any personal data: the subject
appears only as a keyed hash.

Two algorithms (contract.signing): Ed25519, the default, and SM2 with SM3
(GB/T 32918) in deployments made with `govgw init --crypto sm`. One verifier
checks both: the key id names a published key, the key's algorithm decides
how its signature is checked, and the signed `alg` claim must name the same
algorithm (receipts issued before the claim existed are Ed25519).

The gateway (gateway.receipts) signs with it and the SDK and CLI
(clients.receipts) verify with it: the format lives here, between them, so
that neither side imports the other and both agree on the bytes. It depends
on nothing of the project but the generated protobuf messages.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from govgw.v1 import common_pb2

from contract.signing import (
    ALGORITHMS,
    ED25519,
    InvalidSignature,
    PublicKey,
    algorithm_of,
    load_public_pem,
    public_raw,
)

# The default algorithm; every algorithm a receipt may carry is in ALGORITHMS.
ALGORITHM = ED25519
# Receipts issued before the `alg` claim existed were all Ed25519.
LEGACY_ALGORITHM = ED25519
CLAIM_FIELDS = (
    "action",
    "caller",
    "dataset",
    "issued_at",
    "outcome",
    "policy_version",
    "receipt_id",
    "subject_commitment",
)
_PEM_BLOCK = re.compile(rb"-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----", re.DOTALL)


class ReceiptInvalid(Exception):
    """The receipt does not verify; the message says precisely why."""


class KeySetError(ValueError):
    """A public key file could not be read as a PEM key or a JSON keyset."""


def canonical_json(obj: Mapping[str, Any]) -> bytes:
    """UTF-8, sorted keys, separators (",", ":"), non-ASCII text as is."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def key_id_for(public_key: PublicKey) -> str:
    """ "rk-" + first 16 hex of SHA-256 of the raw key (Ed25519: 32 bytes; SM2: 04||X||Y)."""
    return "rk-" + hashlib.sha256(public_raw(public_key)).hexdigest()[:16]


def _b64decode(value: Any, name: str) -> bytes:
    if not isinstance(value, str):
        raise ReceiptInvalid(f"receipt file: {name} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as e:
        raise ReceiptInvalid(f"receipt file: {name} is not valid base64") from e


@dataclass(frozen=True)
class SignedReceipt:
    receipt_id: str
    key_id: str
    payload: bytes
    signature: bytes

    def claims(self) -> dict[str, str]:
        """The payload's claims, without checking the signature."""
        try:
            doc = json.loads(self.payload.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise ReceiptInvalid("payload is not UTF-8 JSON") from e
        if not isinstance(doc, dict):
            raise ReceiptInvalid("payload is not a JSON object")
        missing = [f for f in CLAIM_FIELDS if f not in doc]
        if missing:
            raise ReceiptInvalid(f"payload fields missing: {', '.join(missing)}")
        wrong = sorted(k for k, v in doc.items() if not isinstance(v, str))
        if wrong:
            raise ReceiptInvalid(f"payload fields must be strings: {', '.join(wrong)}")
        return doc

    def to_json(self) -> dict[str, str]:
        """The receipt file format the CLI reads and writes."""
        return {
            "receipt_id": self.receipt_id,
            "key_id": self.key_id,
            "payload": base64.b64encode(self.payload).decode(),
            "signature": base64.b64encode(self.signature).decode(),
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> SignedReceipt:
        if not isinstance(doc, Mapping):
            raise ReceiptInvalid("receipt file: not a JSON object")
        for name in ("receipt_id", "key_id"):
            if not isinstance(doc.get(name), str):
                raise ReceiptInvalid(f"receipt file: {name} must be a string")
        return cls(
            receipt_id=doc["receipt_id"],
            key_id=doc["key_id"],
            payload=_b64decode(doc.get("payload"), "payload"),
            signature=_b64decode(doc.get("signature"), "signature"),
        )

    @classmethod
    def from_proto(cls, msg: common_pb2.Receipt) -> SignedReceipt:
        return cls(
            receipt_id=msg.receipt_id,
            key_id=msg.key_id,
            payload=bytes(msg.payload),
            signature=bytes(msg.signature),
        )

    def to_proto(self) -> common_pb2.Receipt:
        return common_pb2.Receipt(
            receipt_id=self.receipt_id,
            key_id=self.key_id,
            payload=self.payload,
            signature=self.signature,
        )


def verify_receipt(receipt: SignedReceipt, keys: Mapping[str, PublicKey]) -> dict[str, str]:
    """The verified claims, or ReceiptInvalid saying what is wrong.

    The signature is checked first, over the exact payload bytes, with the
    named key's algorithm, so nothing unauthenticated is interpreted; then the
    payload must be canonical and complete, name the same receipt id as the
    envelope and the same algorithm as the key.
    """
    key = keys.get(receipt.key_id)
    if key is None:
        raise ReceiptInvalid(f"unknown key id {receipt.key_id!r}")
    if not receipt.signature:
        raise ReceiptInvalid("bad signature: the receipt is not signed")
    try:
        key.verify(receipt.signature, receipt.payload)
    except InvalidSignature as e:
        raise ReceiptInvalid(f"bad signature: does not verify under key {receipt.key_id}") from e
    claims = receipt.claims()
    if canonical_json(claims) != receipt.payload:
        raise ReceiptInvalid("payload is not canonical JSON")
    if claims["receipt_id"] != receipt.receipt_id:
        raise ReceiptInvalid("receipt_id in payload differs from the envelope")
    alg = claims.get("alg", LEGACY_ALGORITHM)
    if alg != algorithm_of(key):
        raise ReceiptInvalid(
            f"alg {alg!r} in payload differs from key {receipt.key_id}'s algorithm"
        )
    try:
        issued = datetime.fromisoformat(claims["issued_at"])
    except ValueError as e:
        raise ReceiptInvalid("issued_at is not an RFC 3339 time") from e
    if issued.utcoffset() is None:
        raise ReceiptInvalid("issued_at has no time zone")
    return claims


def keyset_document(entries: Iterable[tuple[str, str, str]]) -> dict[str, Any]:
    """The JSON keyset (`govgw receipt keys --json`) for (key_id, algorithm, pem) entries."""
    return {
        "keys": [
            {"key_id": kid, "algorithm": alg, "public_key_pem": pem} for kid, alg, pem in entries
        ]
    }


def _load_pem(block: bytes, where: str) -> PublicKey:
    try:
        return load_public_pem(block)
    except ValueError as e:
        raise KeySetError(f"{where}: {e}") from e


def _add(keys: dict[str, PublicKey], key_id: str, key: PublicKey) -> None:
    old = keys.get(key_id)
    if old is not None and key_id_for(old) != key_id_for(key):
        raise KeySetError(f"key id {key_id} names two different keys")
    keys[key_id] = key


def load_public_keys(path: Path) -> dict[str, PublicKey]:
    """Receipt verification keys by key id.

    Accepts PEM public keys (one or more blocks; key ids derived as the
    gateway derives them) or a JSON keyset {"keys": [{key_id, algorithm,
    public_key_pem}]}.
    """
    data = Path(path).read_bytes()
    keys: dict[str, PublicKey] = {}
    if data.lstrip().startswith(b"-----BEGIN"):
        blocks = _PEM_BLOCK.findall(data)
        if not blocks:
            raise KeySetError(f"{path}: no PEM public key block")
        for block in blocks:
            key = _load_pem(block, str(path))
            _add(keys, key_id_for(key), key)
        return keys
    try:
        doc = json.loads(data)
    except ValueError as e:
        raise KeySetError(f"{path}: neither a PEM public key nor a JSON keyset") from e
    return public_keys_from_keyset(doc, str(path))


def public_keys_from_keyset(doc: Any, where: str = "keyset") -> dict[str, PublicKey]:
    """Keys by key id from a keyset document (what ListReceiptKeys returns)."""
    entries = doc.get("keys") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise KeySetError(f"{where}: neither a PEM public key nor a JSON keyset")
    keys: dict[str, PublicKey] = {}
    for i, entry in enumerate(entries):
        at = f"{where}: keys[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("key_id"), str):
            raise KeySetError(f"{at}: key_id missing")
        algorithm = entry.get("algorithm")
        if algorithm not in ALGORITHMS:
            raise KeySetError(f"{at}: algorithm must be one of {', '.join(ALGORITHMS)}")
        pem = entry.get("public_key_pem")
        if not isinstance(pem, str):
            raise KeySetError(f"{at}: public_key_pem missing")
        key = _load_pem(pem.encode(), at)
        if algorithm_of(key) != algorithm:
            raise KeySetError(f"{at}: algorithm {algorithm!r} but the key is {algorithm_of(key)}")
        _add(keys, entry["key_id"], key)
    return keys
