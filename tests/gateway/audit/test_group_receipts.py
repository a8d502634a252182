"""Receipts signed per audit group commit (issue 13): the unary calls whose audit
records one group commit made durable share one signature, each receipt carries its
inclusion proof, a lone call gets a JWS receipt of its own, and nothing is signed
for a record that is not durable."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from contract.keysets import key_id_for, keyset_document, public_keys_from_keyset
from contract.receipts import ReceiptInvalid, SignedReceipt, verify_receipt
from contract.signing import ED25519, SM2, generate
from gateway.audit import AuditLog, AuditUnavailable, read_records
from gateway.keys import ReceiptSigningKey
from gateway.receipts import PendingReceipt, ReceiptSigner

from .test_log import event

pytestmark = pytest.mark.requirement("R12")

ID_NUMBER = "51322119900101123X"


def signer_for(algorithm: str) -> ReceiptSigner:
    key = generate(algorithm)
    return ReceiptSigner(ReceiptSigningKey(key_id_for(key.public_key()), key, ""))


def keys_of(signer: ReceiptSigner) -> dict[str, Any]:
    """The keys as a verifier gets them: through the published JWK Set."""
    return public_keys_from_keyset(json.loads(json.dumps(keyset_document(signer.public_keys()))))


def pending(signer: ReceiptSigner, i: int) -> PendingReceipt:
    return signer.prepare(
        caller="agency-a",
        action="verify.identity",
        outcome="MATCH" if i % 2 else "NO_MATCH",
        dataset="population.basic",
        subject=ID_NUMBER,
        policy_version="v1",
    )


def from_wire(r: SignedReceipt) -> SignedReceipt:
    msg = r.to_proto()
    return SignedReceipt.from_proto(type(msg).FromString(msg.SerializeToString()))


class Recording:
    """The group hook, recording what each group held and what was durable then."""

    def __init__(self, log: AuditLog, signer: ReceiptSigner) -> None:
        self.log, self.signer = log, signer
        self.groups: list[list[PendingReceipt]] = []
        self.durable_seq: list[int] = []

    def __call__(self, group: list[PendingReceipt]) -> None:
        self.groups.append(list(group))
        head = self.log.head
        self.durable_seq.append(head.seq if head else 0)
        self.signer.sign_group(group)


@pytest.mark.parametrize("algorithm", [ED25519, SM2])
def test_calls_of_one_group_commit_share_one_signature(tmp_path: Path, algorithm: str) -> None:
    signer = signer_for(algorithm)
    receipts = [pending(signer, i) for i in range(7)]

    async def main(log: AuditLog) -> list[int]:
        refs = await asyncio.gather(
            *(
                log.append_many_async([event(i)], timeout=10.0, attachment=r)
                for i, r in enumerate(receipts)
            )
        )
        return [ref[0].seq for ref in refs]

    with AuditLog(tmp_path / "audit.jsonl") as log:
        hook = log.on_durable = Recording(log, signer)
        seqs = asyncio.run(main(log))
        assert (log.stats.records, log.stats.batches) == (7, 1)  # one group commit
    # One group, signed once, when all of its records were already durable.
    assert [len(g) for g in hook.groups] == [7]
    assert hook.durable_seq == [max(seqs)]
    keys = keys_of(signer)
    signatures = set()
    for r in receipts:
        assert r.signed is not None and r.signed.form == "batch"
        signatures.add(r.signed.batch.signature)  # type: ignore[union-attr]
        claims = verify_receipt(from_wire(r.signed), keys)
        assert claims["receipt_id"] == r.receipt_id
    assert len(signatures) == 1
    # A proof does not carry over to another receipt of the group.
    a, b = receipts[0].signed, receipts[1].signed
    assert a is not None and b is not None
    moved = SignedReceipt(a.receipt_id, a.key_id, b.payload, b"", batch=a.batch)
    with pytest.raises(ReceiptInvalid):
        verify_receipt(moved, keys)


def test_a_lone_call_gets_a_jws_receipt_without_waiting_for_others(tmp_path: Path) -> None:
    signer = signer_for(ED25519)
    r = pending(signer, 1)

    async def main(log: AuditLog) -> None:
        await log.append_many_async([event(1)], timeout=10.0, attachment=r)

    with AuditLog(tmp_path / "audit.jsonl") as log:
        log.on_durable = signer.sign_group
        asyncio.run(main(log))
    assert r.signed is not None and r.signed.form == "jws"
    assert verify_receipt(from_wire(r.signed), keys_of(signer))["receipt_id"] == r.receipt_id
    # The audit record never holds the salt or the receipt's body.
    (record,) = read_records(tmp_path / "audit.jsonl")
    assert r.salt.hex() not in json.dumps(record)


def test_no_receipt_is_signed_for_a_record_that_is_not_durable(tmp_path: Path) -> None:
    signer = signer_for(ED25519)
    log = AuditLog(tmp_path / "audit.jsonl")
    hook = log.on_durable = Recording(log, signer)
    log.close()  # every append now fails closed
    r = pending(signer, 1)

    async def main() -> None:
        await log.append_many_async([event(1)], timeout=10.0, attachment=r)

    with pytest.raises(AuditUnavailable):
        asyncio.run(main())
    assert r.signed is None and hook.groups == []


def test_a_failing_group_hook_leaves_the_receipts_unsigned_and_wakes_the_callers(
    tmp_path: Path,
) -> None:
    signer = signer_for(ED25519)
    r = pending(signer, 1)

    def broken(group: list[PendingReceipt]) -> None:
        raise RuntimeError("signing key unreadable")

    async def main(log: AuditLog) -> None:
        await log.append_many_async([event(1)], timeout=10.0, attachment=r)

    with AuditLog(tmp_path / "audit.jsonl") as log:
        log.on_durable = broken
        asyncio.run(main(log))  # the record is durable; the pipeline refuses the answer
    assert r.signed is None
