"""VerifyIdentity under concurrent calls: each receipt, signed with the others of its
audit group commit (one signature per group, issue 13) or alone, verifies on its
own offline, names the call's audit record, and the chain still verifies."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from clients.receipts import load_public_keys, verify_receipt
from gateway.audit import verify_chain
from tests.support import Harness

PURPOSE = "户籍业务办理"


@pytest.mark.requirement("R12")
def test_concurrent_verifications_each_get_a_receipt_that_verifies_alone(
    gateway: Harness,
) -> None:
    adult = gateway.demo["adult_resident"]

    def calls(n: int) -> list:
        with gateway.client("counter-wenchuan") as gw:
            return [
                gw.verify_identity(adult["name"], adult["id_number"], purpose=PURPOSE)
                for _ in range(n)
            ]

    with ThreadPoolExecutor(8) as pool:
        results = [r for batch in pool.map(calls, [3] * 8) for r in batch]
    keys = load_public_keys(gateway.data_dir / "keys" / "receipt-keys.json")
    audited = {rec.get("receipt_id") for rec in gateway.audit_records() if rec.get("receipt_id")}
    for r in results:
        assert r.matched and r.receipt is not None and r.receipt.verified
        signed = r.receipt.signed
        assert signed.form in ("jws", "batch")
        assert verify_receipt(signed, keys)["outcome"] == "MATCH"
        assert signed.receipt_id in audited  # issued for a durable audit record
    assert len({r.receipt.signed.receipt_id for r in results}) == len(results)
    assert verify_chain(gateway.config.layout.audit).ok
