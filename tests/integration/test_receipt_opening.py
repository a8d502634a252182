"""The openable subject commitment end to end: a real gateway, the SDK and the CLI.

The caller gets the salt with its receipt; the gateway keeps it nowhere (not
in the audit trail, not in any file of its data directory). The counter,
holding ID number and salt, opens the commitment to an inspector with
`govgw receipt verify --open`.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from clients.sdk import open_commitment
from contract.receipts import key_id_for, keyset_document
from contract.signing import SM2, generate
from gateway.keys import ReceiptSigningKey
from gateway.receipts import ReceiptRequest, ReceiptSigner
from tests.clients.test_cli import govgw
from tests.support import Harness

PURPOSE = "户籍业务办理"
COUNTER = "counter-wenchuan"

pytestmark = pytest.mark.requirement("R12")


def salt_forms(salt: bytes) -> list[bytes]:
    return [
        salt,
        salt.hex().encode(),
        base64.b64encode(salt).rstrip(b"="),
        base64.urlsafe_b64encode(salt).rstrip(b"="),
    ]


def test_the_gateway_keeps_no_salt_anywhere(gateway: Harness) -> None:
    adult = gateway.demo["adult_resident"]
    with gateway.client(COUNTER) as gw:
        r = gw.verify_identity(adult["name"], adult["id_number"], purpose=PURPOSE)
    assert r.receipt is not None and len(r.receipt.salt) == 16
    assert open_commitment(r.receipt.signed, adult["id_number"], r.receipt.salt)
    assert r.receipt.opens(adult["id_number"]) and not r.receipt.opens("11010519491231002X")
    # The audit record of that call (durable before the answer) names the receipt only.
    (record,) = [a for a in gateway.audit_records() if a.get("receipt_id") == r.receipt.receipt_id]
    assert record["subject"] == gateway.parts.keyring.subject_hash(adult["id_number"])
    assert record["subject"] != r.receipt.claims.subject_commitment
    text = json.dumps(record).encode()
    assert not any(form in text for form in salt_forms(r.receipt.salt))
    # Nor is it in any file of the data directory.
    for path in gateway.data_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not any(form in data for form in salt_forms(r.receipt.salt)), path


def test_receipt_verify_open_checks_an_opening(gateway: Harness, tmp_path: Path) -> None:
    adult = gateway.demo["adult_resident"]
    out = govgw(
        "--target", gateway.target, "--api-key", gateway.keys[COUNTER], "verify", "identity",
        "--name", adult["name"], "--id-number", adult["id_number"], "--purpose", PURPOSE, "--json",
    )  # fmt: skip
    receipt = tmp_path / "receipt.json"
    receipt.write_text(out.stdout)
    salt = json.loads(out.stdout)["receipt"]["commitment_salt"]
    keys = str(gateway.data_dir / "keys" / "receipt-keys.json")

    def verify(*extra: str) -> object:
        return govgw("receipt", "verify", "--key-file", keys, *extra, str(receipt), check=False)

    ok = verify("--open", "--id-number", adult["id_number"].lower(), "--salt", salt, "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["opened"] is True
    # The salt defaults to the one the receipt file holds.
    assert verify("--open", "--id-number", adult["id_number"]).returncode == 0

    other = "11010519491231002X"
    wrong = verify("--open", "--id-number", other, "--salt", salt, "--json")
    assert wrong.returncode == 1 and "OPENING_INVALID" in wrong.stdout
    assert other not in wrong.stderr and adult["id_number"] not in wrong.stderr
    bad_salt = verify("--open", "--id-number", adult["id_number"], "--salt", "00" * 16)
    assert bad_salt.returncode == 1 and "opening INVALID" in bad_salt.stderr
    no_id = verify("--open")
    assert no_id.returncode == 1 and "--open needs --id-number" in no_id.stderr
    not_hex = verify("--open", "--id-number", adult["id_number"], "--salt", "xyz")
    assert not_hex.returncode == 1 and "salt must be hex" in not_hex.stderr


def test_receipt_verify_takes_batch_receipts_and_refuses_a_moved_one(tmp_path: Path) -> None:
    """A receipt of a Merkle-signed batch verifies offline with the CLI, and opens."""
    key = generate(SM2)  # the SM suite: SM2 signature, SM3 tree and commitment
    signer = ReceiptSigner(ReceiptSigningKey(key_id_for(key.public_key()), key, ""))
    subjects = ["11010519491231002X", "513221199001011235", "110105194912310037"]
    batch = signer.issue_batch(
        [
            ReceiptRequest("agency", "verify.identity", "MATCH", "population.basic", s, "v7")
            for s in subjects
        ]
    )
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps(keyset_document(signer.public_keys())))
    receipt = tmp_path / "receipt.json"
    receipt.write_text(json.dumps(batch[2].to_json()))
    ok = govgw("receipt", "verify", "--key-file", str(keys), "--open", "--id-number",
               subjects[2], str(receipt), "--json")  # fmt: skip
    assert json.loads(ok.stdout)["opened"] is True
    moved = batch[2].to_json()
    moved["batch"]["index"] = 1
    receipt.write_text(json.dumps(moved))
    bad = govgw("receipt", "verify", "--key-file", str(keys), str(receipt), check=False)
    assert bad.returncode == 1 and "does not lead to the signed root" in bad.stderr
