"""Verifying a whole batch's receipts at once: the tree rebuilt once, not each proof walked.

`verify_receipt` checks one receipt on its own: the batch signature (cached
per batch), then the receipt's inclusion proof, ~log2(n) hashes, then its
claims. A client holding every receipt of a batch (the SDK, after a
VerifyIdentityBatch call) can do better: rebuild the batch's tree from all
its leaves, 2n - 1 hashes for the n receipts instead of n log2(n), and
compare the root with the signed one. Equal roots prove every leaf at its
index (SHA-256 / SM3 are collision resistant); each receipt's own proof is
then compared with the rebuilt path, so a receipt that is handed on (the
`verify batch` output line) still verifies offline on its own. Anything
else (a receipt of another form, a batch of which some receipts are
missing, a mismatch anywhere) goes through `verify_receipt` one by one, so
the error is the one a single check would give.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

from contract import merkle
from contract.jose import JoseError
from contract.receipts import (
    HASH_OF,
    ReceiptInvalid,
    SignedReceipt,
    batch_signed,
    checked_claims,
    verify_receipt,
)
from contract.signing import PublicKey, algorithm_of


def verify_receipts(
    receipts: Sequence[SignedReceipt], keys: Mapping[str, PublicKey]
) -> list[dict[str, str]]:
    """The verified claims of each receipt, in order; ReceiptInvalid for the first
    that does not verify (as `verify_receipt` of that receipt would raise)."""
    claims: list[dict[str, str] | None] = [None] * len(receipts)
    batches: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, r in enumerate(receipts):
        if r.batch is not None:
            batches[(r.batch.signature, r.key_id)].append(i)
    for (token, kid), positions in batches.items():
        key = keys.get(kid)
        if key is not None and _whole_tree_holds(receipts, positions, token, kid, key, keys):
            for i in positions:
                claims[i] = checked_claims(receipts[i], key)
    return [
        c if c is not None else verify_receipt(r, keys)
        for c, r in zip(claims, receipts, strict=True)
    ]


def _whole_tree_holds(
    receipts: Sequence[SignedReceipt],
    positions: Sequence[int],
    token: str,
    kid: str,
    key: PublicKey,
    keys: Mapping[str, PublicKey],
) -> bool:
    """Do these receipts make up their whole batch, their leaves leading to the signed
    root and each proof being its leaf's path? False sends them one by one."""
    try:
        doc = batch_signed(token, kid, key, keys)
    except (JoseError, ReceiptInvalid):
        return False
    size = doc["size"]
    if len(positions) != size or doc["hash"] != HASH_OF[algorithm_of(key)]:
        return False
    leaves: list[bytes | None] = [None] * size
    for i in positions:
        proof = receipts[i].batch
        assert proof is not None  # grouped by their batch
        if not 0 <= proof.index < size or leaves[proof.index] is not None:
            return False
        leaves[proof.index] = receipts[i].payload
    root, paths = merkle.build(merkle.hasher(doc["hash"]), leaves)  # type: ignore[arg-type]
    if root.hex() != doc["root"]:
        return False
    return all(
        receipts[i].batch.path == tuple(paths[receipts[i].batch.index])  # type: ignore[union-attr]
        for i in positions
    )
