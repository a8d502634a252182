"""Issuing signed receipts for verification responses.

The counter keeps the receipt as proof of a check (a platform document has
the force of paper: Yingkou art. 24, Yichuan art. 28). The claims carry no
personal data: the subject is named only by a commitment H(tag || salt ||
subject key) with a fresh random salt per receipt, which goes to the caller
with the receipt and is kept nowhere here (not in the audit record, not in
any file): the caller can open the commitment to an inspector, nobody else
can link two receipts or reverse one. The audit trail names the subject by
its keyed hash (`KeyRing.subject_hash`), as before. The format and its
verification live in `contract.receipts` (docs/receipts.md).

A single receipt is a JWS of its own; `issue_batch` signs a whole batch
once, over the root of a Merkle tree of its receipts, and gives each
receipt its inclusion proof. Unary verifications take a third way
(`prepare`, then `sign_group`): the claims are made in the call, and the
receipts whose audit records became durable in one group commit are signed
together once that commit is done -- one signature per group (a lone call
gets a plain JWS receipt, with no waiting for others), each receipt with its
proof, the same format as a batch's. The signature is Ed25519 or SM2 (GB/T 32918),
whichever the key ring's receipt key is; the tree and commitment hash is
SHA-256 or SM3 to match.
"""

from __future__ import annotations

import itertools
import secrets
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from contract import merkle
from contract.jose import BATCH_TYP, RECEIPT_TYP, header_for, jcs, sign_compact, signing_input
from contract.receipts import (
    HASH_OF,
    SALT_BYTES,
    BatchProof,
    SignedReceipt,
    normalize_subject,
    subject_commitment,
)
from gateway.keys import PublishedKey, ReceiptSigningKey


def _rfc3339(moment: datetime) -> str:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("issued_at must be timezone-aware")
    # isoformat: the same text as strftime("%Y-%m-%dT%H:%M:%S.%f") at a fifth of the cost
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


@dataclass(slots=True)
class PendingReceipt:
    """A receipt's claims, made in the call; signed with its audit group (`sign_group`)."""

    receipt_id: str
    payload: bytes
    salt: bytes
    signed: SignedReceipt | None = None


@dataclass(frozen=True)
class ReceiptRequest:
    """What one receipt of a batch says; `subject` is the subject key ("" for none)."""

    caller: str
    action: str
    outcome: str
    dataset: str
    subject: str
    policy_version: str
    issued_at: datetime | None = None
    disputed_fields: str = ""


class ReceiptSigner:
    def __init__(self, key: ReceiptSigningKey, verify_only: Iterable[PublishedKey] = ()) -> None:
        self._key = key
        # Former keys, published so that the receipts they signed still verify.
        self._verify_only = tuple(verify_only)
        # Unique, not secret (the signature is what protects a receipt): a
        # random per-signer prefix and a counter, no system call per receipt.
        self._id_prefix = uuid.uuid4().hex[:20]
        self._ids = itertools.count(1)
        self._protected = header_for(key.key_id, key.algorithm, RECEIPT_TYP)

    @property
    def key_id(self) -> str:
        return self._key.key_id

    @property
    def algorithm(self) -> str:
        return self._key.algorithm

    def _common(self, r: ReceiptRequest) -> dict[str, str]:
        """The claims a receipt shares with the others of its batch (same caller,
        action, outcome, dataset, policy version and time): checked and made once."""
        named = {
            "caller": r.caller,
            "action": r.action,
            "outcome": r.outcome,
            "dataset": r.dataset,
            "policy_version": r.policy_version,
        }
        empty = [k for k, v in named.items() if not isinstance(v, str) or not v]
        if empty:
            raise ValueError(f"receipt fields must be non-empty strings: {', '.join(empty)}")
        named["issued_at"] = _rfc3339(r.issued_at or datetime.now(UTC))
        named["alg"] = self._key.algorithm
        return named

    def _claims(
        self, r: ReceiptRequest, salt: bytes, common: dict[str, str] | None = None
    ) -> tuple[str, bytes]:
        if not isinstance(r.subject, str):
            raise ValueError("subject must be a string")
        receipt_id = f"rcpt_{self._id_prefix}{next(self._ids):012x}"
        subject = normalize_subject(r.subject)
        claims: dict[str, str] = {
            **(common or self._common(r)),
            "receipt_id": receipt_id,
            "subject_commitment": (
                subject_commitment(self._key.algorithm, salt, subject) if subject else ""
            ),
        }
        # "dataset:field:filed_on,..." of fields under correction (R8); the claim is
        # absent when there are none, so other receipts are unchanged.
        if r.disputed_fields:
            claims["disputed_fields"] = r.disputed_fields
        return receipt_id, jcs(claims)

    def issue(self, **claims: Any) -> SignedReceipt:
        """One receipt, a JWS of its own: `prepare`'s claims (same keywords), signed now."""
        pending = self.prepare(**claims)
        return SignedReceipt(
            receipt_id=pending.receipt_id,
            key_id=self._key.key_id,
            payload=pending.payload,
            signature=self._key.private_key.sign(signing_input(self._protected, pending.payload)),
            protected=self._protected,
            salt=pending.salt,
        )

    def prepare(
        self,
        *,
        caller: str,
        action: str,
        outcome: str,
        dataset: str,
        subject: str,
        policy_version: str,
        issued_at: datetime | None = None,
        disputed_fields: str = "",
    ) -> PendingReceipt:
        """A receipt's claims (as `issue`'s), unsigned until `sign_group`."""
        r = ReceiptRequest(
            caller, action, outcome, dataset, subject, policy_version, issued_at, disputed_fields
        )
        salt = secrets.token_bytes(SALT_BYTES) if subject else b""
        receipt_id, payload = self._claims(r, salt)
        return PendingReceipt(receipt_id, payload, salt)

    def sign_group(self, group: Sequence[PendingReceipt]) -> None:
        """Sign the receipts of one audit group commit (their records are durable):
        one alone as a JWS of its own, several under ONE signature over their
        Merkle root, each with its inclusion proof. Sets each one's `signed`."""
        if len(group) == 1:
            (p,) = group
            signature = self._key.private_key.sign(signing_input(self._protected, p.payload))
            p.signed = SignedReceipt(
                p.receipt_id, self._key.key_id, p.payload, signature, self._protected, salt=p.salt
            )
            return
        hash_name = HASH_OF[self._key.algorithm]
        root, paths = merkle.build(merkle.hasher(hash_name), [p.payload for p in group])
        batch_doc = {
            "batch_time": _rfc3339(datetime.now(UTC)),
            "hash": hash_name,
            "root": root.hex(),
            "size": len(group),
        }
        token = sign_compact(self._key.private_key, self._key.key_id, BATCH_TYP, jcs(batch_doc))
        key_id = self._key.key_id
        for i, p in enumerate(group):
            batch = BatchProof(i, tuple(paths[i]), token)
            p.signed = SignedReceipt(p.receipt_id, key_id, p.payload, b"", batch=batch, salt=p.salt)

    def issue_batch(
        self, requests: Sequence[ReceiptRequest], batch_time: datetime | None = None
    ) -> list[SignedReceipt]:
        """Receipts for a batch, in order, under ONE signature over their tree's root.

        Hashing only besides that signature: 2n - 1 hashes for n receipts.
        """
        if not requests:
            raise ValueError("a batch needs at least one receipt")
        salts = secrets.token_bytes(SALT_BYTES * len(requests))
        shared: dict[tuple[object, ...], dict[str, str]] = {}
        issued = []
        for i, r in enumerate(requests):
            key = (r.caller, r.action, r.outcome, r.dataset, r.policy_version, r.issued_at)
            common = shared.get(key) if r.issued_at is not None else None
            if common is None:
                common = shared[key] = self._common(r)
            salt = salts[i * SALT_BYTES : (i + 1) * SALT_BYTES] if r.subject else b""
            issued.append(self._claims(r, salt, common))
        hash_name = HASH_OF[self._key.algorithm]
        root, paths = merkle.build(merkle.hasher(hash_name), [payload for _, payload in issued])
        batch_doc = {
            "batch_time": _rfc3339(batch_time or datetime.now(UTC)),
            "hash": hash_name,
            "root": root.hex(),
            "size": len(requests),
        }
        token = sign_compact(self._key.private_key, self._key.key_id, BATCH_TYP, jcs(batch_doc))
        return [
            SignedReceipt(
                receipt_id=receipt_id,
                key_id=self._key.key_id,
                payload=payload,
                signature=b"",
                batch=BatchProof(i, tuple(paths[i]), token),
                salt=salts[i * SALT_BYTES : (i + 1) * SALT_BYTES] if r.subject else b"",
            )
            for i, ((receipt_id, payload), r) in enumerate(zip(issued, requests, strict=True))
        ]

    def published(self) -> list[PublishedKey]:
        """Every key a receipt of this deployment may name: the signing key first."""
        current = PublishedKey(
            self._key.key_id, self._key.algorithm, self._key.public_pem(), self._key.created_at
        )
        return [current, *self._verify_only]

    def public_keys(self) -> list[tuple[str, str, str]]:
        """(key_id, algorithm, SubjectPublicKeyInfo PEM) for ListReceiptKeys and the keyset."""
        return [(k.key_id, k.algorithm, k.public_pem) for k in self.published()]
