"""An agency checks our receipts with a JOSE library of its own: joserfc, not our code.

The gateway's signer issues the receipts and its published JWK Set is
written to a file; from then on only joserfc, json and hashlib touch them.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from joserfc import jws
from joserfc.errors import BadSignatureError
from joserfc.jwk import KeySet

from contract.receipts import key_id_for, keyset_document
from contract.signing import ED25519, generate
from gateway.keys import ReceiptSigningKey
from gateway.receipts import ReceiptRequest, ReceiptSigner

pytestmark = [
    pytest.mark.requirement("R12"),
    # joserfc warns that RFC 9864 deprecates EdDSA (for Ed25519); we issue EdDSA as RFC
    # 8037 has it (docs/receipts.md says so), and the warning is that, nothing else.
    pytest.mark.filterwarnings("ignore:EdDSA is deprecated via RFC 9864"),
]


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> tuple[ReceiptSigner, Path]:
    key = generate(ED25519)
    signer = ReceiptSigner(ReceiptSigningKey(key_id_for(key.public_key()), key, ""))
    path = tmp_path_factory.mktemp("keys") / "receipt-keys.json"
    path.write_text(json.dumps(keyset_document(signer.public_keys())))
    return signer, path


def test_joserfc_verifies_a_single_receipt_with_the_published_jwks(
    published: tuple[ReceiptSigner, Path], tmp_path: Path
) -> None:
    signer, jwks = published
    receipt = signer.issue(
        caller="counter-wenchuan", action="verify.identity", outcome="MATCH",
        dataset="population", subject="51322119900101123X", policy_version="v7",
    )  # fmt: skip
    saved = tmp_path / "receipt.json"
    saved.write_text(json.dumps(receipt.to_json()))

    # The agency's side: the receipt file, the JWK Set file, joserfc.
    token = json.loads(saved.read_text())["jws"]
    keys = KeySet.import_key_set(json.loads(jwks.read_text()))
    verified = jws.deserialize_compact(token, keys, algorithms=["EdDSA"])
    assert verified.protected == {
        "alg": "EdDSA",
        "kid": receipt.key_id,
        "typ": "govgw-receipt+jws",
    }
    claims = json.loads(verified.payload)
    assert claims["outcome"] == "MATCH" and claims["receipt_id"] == receipt.receipt_id

    # A flipped claim: joserfc refuses it too.
    head, _, sig = token.split(".")
    forged_claims = json.dumps(claims | {"outcome": "NO_MATCH"}, separators=(",", ":"))
    forged_body = base64.urlsafe_b64encode(forged_claims.encode()).rstrip(b"=").decode()
    with pytest.raises(BadSignatureError):
        jws.deserialize_compact(f"{head}.{forged_body}.{sig}", keys, algorithms=["EdDSA"])


def test_joserfc_and_hashlib_check_a_batch_receipt(
    published: tuple[ReceiptSigner, Path], tmp_path: Path
) -> None:
    signer, jwks = published
    batch = signer.issue_batch(
        [
            ReceiptRequest("agency", "verify.identity", "MATCH", "population", f"s{i}", "v7")
            for i in range(5)
        ]
    )
    doc = json.loads(json.dumps(batch[4].to_json()))

    # The batch signature is a JWS of its own over {batch_time, hash, root, size}.
    keys = KeySet.import_key_set(json.loads(jwks.read_text()))
    signed = jws.deserialize_compact(doc["batch"]["signature"], keys, algorithms=["EdDSA"])
    assert signed.protected["typ"] == "govgw-receipt-batch+jws"
    batch_doc = json.loads(signed.payload)
    assert batch_doc["hash"] == "sha-256" and batch_doc["size"] == 5

    # The inclusion proof, step by step as docs/receipts.md writes it (RFC 9162 §2.1.3.2).
    payload = base64.urlsafe_b64decode(doc["payload"] + "=" * (-len(doc["payload"]) % 4))
    fn, sn = doc["batch"]["index"], batch_doc["size"] - 1
    r = hashlib.sha256(b"\x00" + payload).digest()
    for sibling in map(bytes.fromhex, doc["batch"]["path"]):
        if fn & 1 or fn == sn:
            r = hashlib.sha256(b"\x01" + sibling + r).digest()
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = hashlib.sha256(b"\x01" + r + sibling).digest()
        fn, sn = fn >> 1, sn >> 1
    assert sn == 0 and r.hex() == batch_doc["root"]
    assert json.loads(payload)["receipt_id"] == batch[4].receipt_id
