"""SM2 receipts end to end: `govgw init --crypto sm`, a real gateway, the SDK and the CLI.

A deployment made for national cryptography signs receipts with SM2 (GB/T
32918); `govgw receipt keys` publishes an sm2 key and `govgw receipt verify`
checks receipts offline with it. A deployment that moves to the SM suite
later (`govgw keys rotate --crypto sm`) signs with SM2 from then on, and its
earlier Ed25519 receipts still verify with the keyset it publishes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clients.receipts import SignedReceipt, load_public_keys, verify_receipt
from contract.jose import b64url, b64url_decode
from gateway import keys
from tests.clients.test_cli import govgw
from tests.gateway.test_file_modes import loose_modes
from tests.support import Harness, make_data_dir, start

PURPOSE = "户籍业务办理"
COUNTER = "counter-wenchuan"

pytestmark = pytest.mark.requirement("R12")


def make_sm_deployment(data: Path) -> Harness:
    """`govgw init --crypto sm` as a user runs it, then the demo pool and callers, served."""
    out = json.loads(govgw("init", "--data-dir", str(data), "--crypto", "sm", "--json").stdout)
    assert out["suite"] == "sm4-gcm/hmac-sm3" and out["receipt_key"]["algorithm"] == "sm2"
    api_keys, demo = make_data_dir(data, persons=40, entities=10)
    return start(data, api_keys, demo)


def verify_json(h: Harness, tmp_path: Path, name: str) -> tuple[Path, dict]:
    """`govgw verify identity --json` for the demo adult; the output file holds the receipt."""
    adult = h.demo["adult_resident"]
    out = govgw(
        "--target",
        h.target,
        "--api-key",
        h.keys[COUNTER],
        "verify",
        "identity",
        "--name",
        adult["name"],
        "--id-number",
        adult["id_number"],
        "--purpose",
        PURPOSE,
        "--json",
    )
    path = tmp_path / name
    path.write_text(out.stdout)
    return path, json.loads(out.stdout)


def receipt_keys(h: Harness, out: Path) -> dict:
    govgw("--target", h.target, "--api-key", h.keys[COUNTER], "receipt", "keys", "--out", str(out))
    return json.loads(out.read_text())


def test_an_sm_deployment_signs_sm2_receipts_the_sdk_and_cli_verify(tmp_path: Path) -> None:
    data = tmp_path / "data"
    h = make_sm_deployment(data)
    try:
        ring = keys.load(keys.keyring_path(data))
        assert ring.receipt_key.algorithm == "sm2"
        # The SDK fetches the keyset and checks every receipt on arrival.
        adult = h.demo["adult_resident"]
        with h.client(COUNTER) as gw:
            r = gw.verify_identity(adult["name"], adult["id_number"], purpose=PURPOSE)
        assert r.matched and r.receipt is not None
        assert r.receipt.claims.alg == "sm2"
        assert r.receipt.key_id == ring.receipt_key.key_id

        keyset = receipt_keys(h, tmp_path / "receipt-keys.json")
        # A JWK Set; SM2 keys are kty EC, crv SM2, alg SM2SM3 (docs/receipts.md).
        assert [(k["kid"], k["kty"], k["crv"], k["alg"]) for k in keyset["keys"]] == [
            (ring.receipt_key.key_id, "EC", "SM2", "SM2SM3")
        ]
        # The keyset `init` wrote in the data directory is the one the gateway serves.
        assert json.loads((data / "keys" / "receipt-keys.json").read_text()) == keyset

        receipt, doc = verify_json(h, tmp_path, "receipt.json")
        ok = govgw(
            "receipt", "verify", "--key-file", str(tmp_path / "receipt-keys.json"), str(receipt)
        )
        assert "receipt VALID" in ok.stdout and "sm2" in ok.stdout
        assert adult["id_number"] not in receipt.read_text()
        # The counter opens the SM3 commitment with the ID number and its salt.
        opened = govgw(
            "receipt", "verify", "--key-file", str(tmp_path / "receipt-keys.json"), "--open",
            "--id-number", adult["id_number"], "--salt", doc["receipt"]["commitment_salt"],
            str(receipt),
        )  # fmt: skip
        assert "subject commitment OPENS" in opened.stdout

        # The outcome flipped in the signed payload: the receipt no longer verifies.
        head, payload, sig = doc["receipt"]["jws"].split(".")
        flipped = b64url_decode(payload, "payload").replace(b'"MATCH"', b'"NO_MATCH"')
        doc["receipt"]["jws"] = ".".join((head, b64url(flipped), sig))
        receipt.write_text(json.dumps(doc))
        bad = govgw(
            "receipt",
            "verify",
            "--key-file",
            str(tmp_path / "receipt-keys.json"),
            str(receipt),
            check=False,
        )
        assert bad.returncode == 1 and "INVALID" in bad.stderr and "bad signature" in bad.stderr
    finally:
        h.stop()
    # Keys generated at init stay owner-only, like every other file of the data directory.
    assert loose_modes(data) == []


def test_a_deployment_moved_to_sm_still_verifies_its_ed25519_receipts(tmp_path: Path) -> None:
    data = tmp_path / "data"
    api_keys, demo = make_data_dir(data, persons=40, entities=10)
    h = start(data, api_keys, demo)
    try:
        old_receipt, old = verify_json(h, tmp_path, "old.json")
    finally:
        h.stop()
    old_key = old["receipt"]["key_id"]

    rotated = json.loads(
        govgw("keys", "rotate", "--data-dir", str(data), "--crypto", "sm", "--json").stdout
    )
    assert rotated["receipt_key"]["algorithm"] == "sm2"
    assert rotated["receipt_key"]["key_id"] != old_key

    h = start(data, api_keys, demo)
    try:
        new_receipt, _ = verify_json(h, tmp_path, "new.json")
        keyset = receipt_keys(h, tmp_path / "keys.json")
    finally:
        h.stop()
    assert [(k["kid"], k["alg"]) for k in keyset["keys"]] == [
        (rotated["receipt_key"]["key_id"], "SM2SM3"),
        (old_key, "EdDSA"),
    ]
    published = load_public_keys(tmp_path / "keys.json")
    claims_old = verify_receipt_file(old_receipt, published)
    claims_new = verify_receipt_file(new_receipt, published)
    assert (claims_old.get("alg"), claims_new["alg"]) == ("ed25519", "sm2")
    for receipt in (old_receipt, new_receipt):
        ok = govgw("receipt", "verify", "--key-file", str(tmp_path / "keys.json"), str(receipt))
        assert "receipt VALID" in ok.stdout
    # The Ed25519 private key is gone from the key ring; only its public part is kept.
    ring = keys.load(keys.keyring_path(data))
    assert [k.key_id for k in ring.receipt_verify_only] == [old_key]
    # The data directory's keyset follows the rotation.
    assert json.loads((data / "keys" / "receipt-keys.json").read_text()) == keyset


def verify_receipt_file(path: Path, published: dict) -> dict[str, str]:
    doc = json.loads(path.read_text())["receipt"]
    return verify_receipt(SignedReceipt.from_json(doc), published)
