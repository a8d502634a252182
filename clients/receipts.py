"""Signed receipts: offline verification for counters, SDK users and the CLI.

The format itself lives in `contract.receipts` (docs/receipts.md), which the
gateway signs with; this module keeps the names SDK users have always
imported from here.
"""

from contract.receipts import (
    ALGORITHM,
    ALGORITHMS,
    CLAIM_FIELDS,
    KeySetError,
    ReceiptInvalid,
    SignedReceipt,
    canonical_json,
    key_id_for,
    keyset_document,
    load_public_keys,
    open_commitment,
    public_keys_from_keyset,
    verify_receipt,
)

__all__ = [
    "ALGORITHM",
    "ALGORITHMS",
    "CLAIM_FIELDS",
    "KeySetError",
    "ReceiptInvalid",
    "SignedReceipt",
    "canonical_json",
    "key_id_for",
    "keyset_document",
    "load_public_keys",
    "open_commitment",
    "public_keys_from_keyset",
    "verify_receipt",
]
