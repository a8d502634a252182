"""The signed receipt format, shared by the gateway that issues and whoever verifies.

A receipt is the gateway's signature over JSON claims (receipt id, caller,
action, outcome, dataset, subject commitment, policy version, issue time,
and `alg`, the signature algorithm). It proves that a check happened and
what it answered, without any personal data. Three forms (docs/receipts.md):

- JWS: a JWS compact serialization (RFC 7515) whose payload is the claims
  in RFC 8785 canonical form, signed alone (contract.jose);
- batch: the claims are a leaf of a Merkle tree (contract.merkle) over one
  batch; one JWS signs the root, and each receipt carries its inclusion
  proof and that JWS, so it verifies on its own, offline;
- legacy: the signature over sorted-key JSON of receipts issued before the
  JWS form; still verified, so that kept receipts keep their force.

The subject commitment of JWS and batch receipts is H(tag || salt ||
subject key) with a random per-receipt salt only the caller gets: the
caller can open it to an inspector (`open_commitment`), nobody else can
link or reverse it. Legacy receipts committed by a keyed hash instead.

Two algorithms (contract.signing): Ed25519, the default, and SM2 with SM3
(GB/T 32918) in deployments made with `govgw init --crypto sm`. One verifier
checks both: the key id names a published key, the key's algorithm decides
how its signature is checked, and the signed `alg` claim must name the same
algorithm (receipts issued before the claim existed are Ed25519).

The gateway (gateway.receipts) signs with it and the SDK and CLI
(clients.receipts) verify with it: the format lives here, between them, so
that neither side imports the other and both agree on the bytes. It depends
on nothing of the project outside `contract` but the generated protobuf messages.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from govgw.v1 import common_pb2

from contract import merkle
from contract.jose import (
    BATCH_TYP,
    RECEIPT_TYP,
    JoseError,
    b64url,
    b64url_decode,
    jcs,
    split_compact,
    verify_signature,
)

# Re-exported: callers have always found the keyset functions here.
from contract.keysets import KeySetError as KeySetError
from contract.keysets import key_id_for as key_id_for
from contract.keysets import keyset_document as keyset_document
from contract.keysets import load_public_keys as load_public_keys
from contract.keysets import pem_keyset_document as pem_keyset_document
from contract.keysets import public_keys_from_keyset as public_keys_from_keyset
from contract.signing import ALGORITHMS as ALGORITHMS
from contract.signing import (
    ED25519,
    SM2,
    InvalidSignature,
    PublicKey,
    algorithm_of,
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
# The hash of Merkle trees and subject commitments follows the signature's suite.
HASH_OF = {ED25519: merkle.SHA256, SM2: merkle.SM3}
COMMITMENT_TAG = b"govgw/subject-commitment/v1\x00"
SALT_BYTES = 16


class ReceiptInvalid(Exception):
    """The receipt does not verify; the message says precisely why."""


def canonical_json(obj: Mapping[str, Any]) -> bytes:
    """UTF-8, sorted keys, separators (",", ":"), non-ASCII text as is."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def _b64decode(value: Any, name: str) -> bytes:
    if not isinstance(value, str):
        raise ReceiptInvalid(f"receipt file: {name} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as e:
        raise ReceiptInvalid(f"receipt file: {name} is not valid base64") from e


@dataclass(frozen=True)
class BatchProof:
    """Where a batch receipt's claims sit in its batch's tree, and the batch's signature."""

    index: int
    path: tuple[bytes, ...]
    signature: str  # JWS compact over {"batch_time", "hash", "root", "size"} (JCS)


def normalize_subject(subject_key: str) -> str:
    """The subject key as committed: surrounding blanks dropped, letters upper case
    (the check character X of an ID number, the letters of a USCC)."""
    return subject_key.strip().upper()


def subject_commitment(algorithm: str, salt: bytes, subject_key: str) -> str:
    """H(tag || salt || normalized key) in hex; H is SHA-256, or SM3 with SM2."""
    h = merkle.hasher(HASH_OF[algorithm])
    return h(COMMITMENT_TAG + salt + normalize_subject(subject_key).encode()).hex()


def _salt_bytes(salt: bytes | str) -> bytes:
    if isinstance(salt, bytes):
        return salt
    try:
        return bytes.fromhex(salt)
    except ValueError as e:
        raise ReceiptInvalid("salt must be hex") from e


@dataclass(frozen=True)
class SignedReceipt:
    receipt_id: str
    key_id: str
    payload: bytes  # the claims (JCS for JWS and batch receipts)
    signature: bytes  # empty for batch receipts: the batch's JWS signs
    protected: bytes = b""  # JWS receipts: the protected header's bytes
    batch: BatchProof | None = None
    # The commitment's opening, the caller's alone: never in to_proto's audit or store.
    salt: bytes = field(default=b"", compare=False)

    @property
    def form(self) -> str:
        if self.batch is not None:
            return "batch"
        return "jws" if self.protected else "legacy"

    def jws(self) -> str:
        """The JWS compact serialization of a JWS receipt."""
        if self.form != "jws":
            raise ReceiptInvalid(f"a {self.form} receipt has no compact JWS of its own")
        return ".".join(b64url(p) for p in (self.protected, self.payload, self.signature))

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

    def to_json(self) -> dict[str, Any]:
        """The receipt file format the CLI reads and writes (docs/receipts.md)."""
        doc: dict[str, Any] = {"receipt_id": self.receipt_id, "key_id": self.key_id}
        if self.form == "jws":
            doc["jws"] = self.jws()
        elif self.batch is not None:
            doc["payload"] = b64url(self.payload)
            doc["batch"] = {
                "index": self.batch.index,
                "path": [p.hex() for p in self.batch.path],
                "signature": self.batch.signature,
            }
        else:
            doc["payload"] = base64.b64encode(self.payload).decode()
            doc["signature"] = base64.b64encode(self.signature).decode()
        if self.salt:
            doc["commitment_salt"] = self.salt.hex()
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> SignedReceipt:
        if not isinstance(doc, Mapping):
            raise ReceiptInvalid("receipt file: not a JSON object")
        for name in ("receipt_id", "key_id"):
            if not isinstance(doc.get(name), str):
                raise ReceiptInvalid(f"receipt file: {name} must be a string")
        salt = doc.get("commitment_salt", "")
        if not isinstance(salt, str):
            raise ReceiptInvalid("receipt file: commitment_salt must be hex")
        base = {"receipt_id": doc["receipt_id"], "key_id": doc["key_id"], "salt": _salt_bytes(salt)}
        try:
            if "jws" in doc:
                protected, payload, signature = split_compact(doc["jws"])
                return cls(payload=payload, signature=signature, protected=protected, **base)
            if "batch" in doc:
                return cls(
                    payload=b64url_decode(doc.get("payload"), "payload"),
                    signature=b"",
                    batch=_batch_from_json(doc["batch"]),
                    **base,
                )
        except JoseError as e:
            raise ReceiptInvalid(f"receipt file: {e}") from e
        return cls(
            payload=_b64decode(doc.get("payload"), "payload"),
            signature=_b64decode(doc.get("signature"), "signature"),
            **base,
        )

    @classmethod
    def from_proto(cls, msg: common_pb2.Receipt) -> SignedReceipt:
        batch = None
        if msg.HasField("batch"):
            b = msg.batch
            batch = BatchProof(b.index, tuple(bytes(p) for p in b.path), b.signature)
        return cls(
            receipt_id=msg.receipt_id,
            key_id=msg.key_id,
            payload=bytes(msg.payload),
            signature=bytes(msg.signature),
            protected=bytes(msg.protected_header),
            batch=batch,
            salt=bytes(msg.commitment_salt),
        )

    def to_proto(self) -> common_pb2.Receipt:
        msg = common_pb2.Receipt()
        self.fill_proto(msg)
        return msg

    def fill_proto(self, msg: common_pb2.Receipt) -> None:
        """Write the receipt into an empty message in place (a batch's results: no copy)."""
        msg.receipt_id = self.receipt_id
        msg.key_id = self.key_id
        msg.payload = self.payload
        msg.signature = self.signature
        msg.protected_header = self.protected
        msg.commitment_salt = self.salt
        if self.batch is not None:
            msg.batch.index = self.batch.index
            msg.batch.path.extend(self.batch.path)
            msg.batch.signature = self.batch.signature


def _batch_from_json(doc: Any) -> BatchProof:
    if not isinstance(doc, Mapping):
        raise ReceiptInvalid("receipt file: batch must be an object")
    index, path, signature = doc.get("index"), doc.get("path"), doc.get("signature")
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise ReceiptInvalid("receipt file: batch.index must be a non-negative integer")
    if not isinstance(path, list) or not all(isinstance(p, str) for p in path):
        raise ReceiptInvalid("receipt file: batch.path must be a list of hex hashes")
    if not isinstance(signature, str):
        raise ReceiptInvalid("receipt file: batch.signature must be a JWS")
    try:
        hashes = tuple(bytes.fromhex(p) for p in path)
    except ValueError as e:
        raise ReceiptInvalid("receipt file: batch.path must be a list of hex hashes") from e
    return BatchProof(index, hashes, signature)


def verify_receipt(receipt: SignedReceipt, keys: Mapping[str, PublicKey]) -> dict[str, str]:
    """The verified claims, or ReceiptInvalid saying what is wrong.

    The signature (of the receipt, or of its batch's root and the proof that
    leads there) is checked first, with the named key's algorithm, so nothing
    unauthenticated is interpreted; then the payload must be canonical and
    complete, name the same receipt id as the envelope and the same
    algorithm as the key.
    """
    key = keys.get(receipt.key_id)
    if key is None:
        raise ReceiptInvalid(f"unknown key id {receipt.key_id!r}")
    try:
        if receipt.form == "jws":
            kid = verify_signature(
                receipt.protected, receipt.payload, receipt.signature, keys, RECEIPT_TYP
            )
            if kid != receipt.key_id:
                raise ReceiptInvalid("kid in the JWS header differs from the envelope")
        elif receipt.batch is not None:
            _verify_batch(receipt, receipt.batch, key, keys)
        else:
            _verify_legacy(receipt, key)
    except JoseError as e:
        raise ReceiptInvalid(str(e)) from e
    return checked_claims(receipt, key)


def checked_claims(receipt: SignedReceipt, key: PublicKey) -> dict[str, str]:
    """The claims of a receipt whose signature (or batch proof) is verified: canonical,
    complete, naming the envelope's receipt id and the key's algorithm."""
    claims = receipt.claims()
    canonical = canonical_json(claims) if receipt.form == "legacy" else jcs(claims)
    if canonical != receipt.payload:
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


def _verify_legacy(receipt: SignedReceipt, key: PublicKey) -> None:
    if not receipt.signature:
        raise ReceiptInvalid("bad signature: the receipt is not signed")
    try:
        key.verify(receipt.signature, receipt.payload)
    except InvalidSignature as e:
        raise ReceiptInvalid(f"bad signature: does not verify under key {receipt.key_id}") from e


def _verify_batch(
    receipt: SignedReceipt, proof: BatchProof, key: PublicKey, keys: Mapping[str, PublicKey]
) -> None:
    doc = batch_signed(proof.signature, receipt.key_id, key, keys)
    if doc["hash"] != HASH_OF[algorithm_of(key)]:
        raise ReceiptInvalid(f"batch hash {doc['hash']!r} does not fit key {receipt.key_id}")
    h = merkle.hasher(doc["hash"])
    root = merkle.root_from_path(h, receipt.payload, proof.index, doc["size"], proof.path)
    if root is None or root.hex() != doc["root"]:
        raise ReceiptInvalid("batch proof does not lead to the signed root")


# Batch signatures already verified: (token, kid) -> (the key it verified with, its
# document). Every receipt of a batch carries the same token, so checking a batch's
# receipts one by one verifies its signature once, not once per receipt. A hit needs
# the very key object it verified with: another key set checks afresh.
_VERIFIED: dict[tuple[str, str], tuple[PublicKey, dict[str, Any]]] = {}
_VERIFIED_MAX = 64


def batch_signed(
    token: str, kid: str, key: PublicKey, keys: Mapping[str, PublicKey]
) -> dict[str, Any]:
    hit = _VERIFIED.get((token, kid))
    if hit is not None and hit[0] is key:
        return hit[1]
    protected, body, signature = split_compact(token)
    if verify_signature(protected, body, signature, keys, BATCH_TYP) != kid:
        raise ReceiptInvalid("kid of the batch signature differs from the envelope")
    doc = batch_document(body)
    if len(_VERIFIED) >= _VERIFIED_MAX:
        _VERIFIED.clear()  # a bound, not a policy: batches are checked in runs
    _VERIFIED[(token, kid)] = (key, doc)
    return doc


def batch_document(body: bytes) -> dict[str, Any]:
    """The signed batch document {batch_time, hash, root, size}, its form checked."""
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ReceiptInvalid("batch signature payload is not UTF-8 JSON") from e
    if not isinstance(doc, dict) or set(doc) != {"batch_time", "hash", "root", "size"}:
        raise ReceiptInvalid("batch signature payload must be {batch_time, hash, root, size}")
    size = doc["size"]
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ReceiptInvalid("batch size must be a positive integer")
    if doc["hash"] not in merkle.HASHES or not isinstance(doc["root"], str):
        raise ReceiptInvalid("batch hash or root malformed")
    if jcs(doc) != body:
        raise ReceiptInvalid("batch signature payload is not canonical JSON")
    return doc


def open_commitment(receipt: SignedReceipt, id_number: str, salt: bytes | str) -> bool:
    """Whether (id_number, salt) opens the receipt's subject commitment.

    Checks the opening only, not the signature (verify_receipt does that).
    Legacy receipts committed by a keyed hash: they never open.
    """
    claims = receipt.claims()
    alg = claims.get("alg", LEGACY_ALGORITHM)
    raw = _salt_bytes(salt)
    if receipt.form == "legacy" or alg not in HASH_OF or len(raw) < SALT_BYTES:
        return False
    expected = subject_commitment(alg, raw, id_number)
    return hmac.compare_digest(expected, claims["subject_commitment"])
