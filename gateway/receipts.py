"""Issuing signed receipts for verification responses.

The counter keeps the receipt as proof of a check (a platform document has
the force of paper: Yingkou art. 24, Yichuan art. 28). The claims carry no
personal data: the subject is named only by its commitment, the keyed hash
`KeyRing.subject_hash` gives. The format and its verification live in
`contract.receipts`, which the SDK and CLI verify with.

The signature is Ed25519 or SM2 (GB/T 32918), whichever the key ring's
receipt key is (contract.signing); the signed `alg` claim names it.
"""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

from contract.receipts import SignedReceipt, canonical_json
from gateway.keys import PublishedKey, ReceiptSigningKey

# A commitment is a keyed SHA-256 hex digest, or empty for calls about no
# subject. Anything else is refused: it could be a raw key passed by mistake.
_COMMITMENT = re.compile(r"(?:[0-9a-f]{64})?")


def _rfc3339(moment: datetime) -> str:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("issued_at must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class ReceiptSigner:
    def __init__(self, key: ReceiptSigningKey, verify_only: Iterable[PublishedKey] = ()) -> None:
        self._key = key
        # Former keys, published so that the receipts they signed still verify.
        self._verify_only = tuple(verify_only)
        # Unique, not secret (the signature is what protects a receipt): a
        # random per-signer prefix and a counter, no system call per receipt.
        self._id_prefix = uuid.uuid4().hex[:20]
        self._ids = itertools.count(1)

    @property
    def key_id(self) -> str:
        return self._key.key_id

    @property
    def algorithm(self) -> str:
        return self._key.algorithm

    def issue(
        self,
        *,
        caller: str,
        action: str,
        outcome: str,
        dataset: str,
        subject_commitment: str,
        policy_version: str,
        issued_at: datetime | None = None,
        disputed_fields: str = "",
    ) -> SignedReceipt:
        if not _COMMITMENT.fullmatch(subject_commitment):
            raise ValueError("subject_commitment must be a keyed hash (64 lowercase hex) or empty")
        named = {
            "caller": caller,
            "action": action,
            "outcome": outcome,
            "dataset": dataset,
            "policy_version": policy_version,
        }
        empty = [k for k, v in named.items() if not isinstance(v, str) or not v]
        if empty:
            raise ValueError(f"receipt fields must be non-empty strings: {', '.join(empty)}")
        receipt_id = f"rcpt_{self._id_prefix}{next(self._ids):012x}"
        payload = canonical_json(
            {
                **named,
                "receipt_id": receipt_id,
                "subject_commitment": subject_commitment,
                "issued_at": _rfc3339(issued_at or datetime.now(UTC)),
                "alg": self._key.algorithm,
                # "dataset:field:filed_on,..." of fields under correction (R8); the
                # claim is absent when there are none, so other receipts are unchanged.
                **({"disputed_fields": disputed_fields} if disputed_fields else {}),
            }
        )
        return SignedReceipt(
            receipt_id=receipt_id,
            key_id=self._key.key_id,
            payload=payload,
            signature=self._key.private_key.sign(payload),
        )

    def published(self) -> list[PublishedKey]:
        """Every key a receipt of this deployment may name: the signing key first."""
        current = PublishedKey(
            self._key.key_id, self._key.algorithm, self._key.public_pem(), self._key.created_at
        )
        return [current, *self._verify_only]

    def public_keys(self) -> list[tuple[str, str, str]]:
        """(key_id, algorithm, SubjectPublicKeyInfo PEM) for ListReceiptKeys and the keyset."""
        return [(k.key_id, k.algorithm, k.public_pem) for k in self.published()]
