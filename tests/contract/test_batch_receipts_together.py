"""A whole batch's receipts verified together (`contract.batch_receipts.verify_receipts`):
the tree rebuilt once must accept exactly what checking each proof alone accepts,
and refuse, with the single check's error, whatever that refuses."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable

import pytest

from contract.batch_receipts import verify_receipts
from contract.receipts import ReceiptInvalid, SignedReceipt, verify_receipt
from contract.signing import ED25519, SM2
from gateway.receipts import ReceiptSigner
from tests.contract.test_batch_receipts import keys_of, request, resigned, signer_for

pytestmark = pytest.mark.requirement("R12")


@pytest.fixture(scope="module", params=[ED25519, SM2])
def signer(request: pytest.FixtureRequest) -> ReceiptSigner:
    return signer_for(request.param)


@pytest.fixture(scope="module")
def batch(signer: ReceiptSigner) -> list[SignedReceipt]:
    return signer.issue_batch([request(i) for i in range(37)])


def test_a_whole_batch_verifies_together_as_each_receipt_alone(
    signer: ReceiptSigner, batch: list[SignedReceipt]
) -> None:
    keys = keys_of(signer)
    assert verify_receipts(batch, keys) == [verify_receipt(r, keys) for r in batch]


def test_order_and_company_do_not_matter(signer: ReceiptSigner, batch: list[SignedReceipt]) -> None:
    """Shuffled, mixed with another batch and single receipts: same claims per receipt."""
    keys = keys_of(signer)
    other = signer.issue_batch([request(i) for i in range(5)])
    single = signer.issue(
        **{f.name: getattr(request(1), f.name) for f in dataclasses.fields(request(1))}
    )
    mixed = [*batch, *other, single]
    random.Random(7).shuffle(mixed)
    assert verify_receipts(mixed, keys) == [verify_receipt(r, keys) for r in mixed]


def test_part_of_a_batch_is_checked_proof_by_proof(
    signer: ReceiptSigner, batch: list[SignedReceipt]
) -> None:
    keys = keys_of(signer)
    part = batch[3:20]
    assert verify_receipts(part, keys) == [verify_receipt(r, keys) for r in part]


def changed_leaf(r: SignedReceipt) -> SignedReceipt:
    return dataclasses.replace(r, payload=r.payload.replace(b'"MATCH"', b'"NO_MATCH"'))


def changed_sibling(r: SignedReceipt) -> SignedReceipt:
    assert r.batch is not None
    path = list(r.batch.path)
    path[1] = bytes([path[1][0] ^ 1]) + path[1][1:]
    return dataclasses.replace(r, batch=dataclasses.replace(r.batch, path=tuple(path)))


def swapped_index(r: SignedReceipt) -> SignedReceipt:
    assert r.batch is not None
    return dataclasses.replace(r, batch=dataclasses.replace(r.batch, index=r.batch.index ^ 1))


@pytest.mark.parametrize("change", [changed_leaf, changed_sibling, swapped_index])
def test_one_bad_receipt_fails_as_it_fails_alone(
    signer: ReceiptSigner,
    batch: list[SignedReceipt],
    change: Callable[[SignedReceipt], SignedReceipt],
) -> None:
    """The rest of the batch still rebuilds its tree; the changed receipt fails with
    the single check's message, whether the tree check or its own proof caught it."""
    keys = keys_of(signer)
    bad = change(batch[10])
    with pytest.raises(ReceiptInvalid) as alone:
        verify_receipt(bad, keys)
    with pytest.raises(ReceiptInvalid) as together:
        verify_receipts([*batch[:10], bad, *batch[11:]], keys)
    assert str(together.value) == str(alone.value) == "batch proof does not lead to the signed root"


def test_a_root_signed_by_another_key_fails_together(
    signer: ReceiptSigner, batch: list[SignedReceipt]
) -> None:
    other = signer_for(signer.algorithm)
    forged = [resigned(other, r) for r in batch]
    with pytest.raises(ReceiptInvalid, match="unknown key id"):
        verify_receipts(forged, keys_of(signer))
    # Its kid relabelled as the gateway's: the batch signature fails under the gateway's key.
    relabelled = [dataclasses.replace(r, key_id=signer.key_id) for r in forged]
    with pytest.raises(ReceiptInvalid, match="kid of the batch signature differs"):
        verify_receipts(relabelled, keys_of(signer, other))


def test_a_changed_root_fails_together(signer: ReceiptSigner, batch: list[SignedReceipt]) -> None:
    keys = keys_of(signer)
    forged = [resigned(signer, r, root="00" * 32) for r in batch]
    with pytest.raises(ReceiptInvalid, match="does not lead to the signed root"):
        verify_receipts(forged, keys)
