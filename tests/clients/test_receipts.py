"""Offline receipt verification, independent of the gateway package."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from clients.receipts import (
    KeySetError,
    ReceiptInvalid,
    SignedReceipt,
    canonical_json,
    key_id_for,
    keyset_document,
    load_public_keys,
    verify_receipt,
)
from contract import signing
from contract.keysets import pem_keyset_document
from contract.signing import Sm2PrivateKey

PRIVATE = Ed25519PrivateKey.generate()
OTHER = Ed25519PrivateKey.generate()
KID = key_id_for(PRIVATE.public_key())
KEYS = {KID: PRIVATE.public_key()}

CLAIMS = {
    "receipt_id": "rcpt_0123456789abcdef0123456789abcdef",
    "caller": "counter-wenchuan",
    "action": "VerifyIdentity",
    "outcome": "MATCH",
    "dataset": "population",
    "subject_commitment": hashlib.sha256(b"a keyed hash stands here").hexdigest(),
    "policy_version": "v7",
    "issued_at": "2024-05-01T08:00:00.000000Z",
}


def signed(
    claims: dict[str, str] | None = None, *, payload: bytes | None = None, key=PRIVATE
) -> SignedReceipt:
    claims = dict(CLAIMS if claims is None else claims)
    body = canonical_json(claims) if payload is None else payload
    return SignedReceipt(
        receipt_id=claims.get("receipt_id", ""), key_id=KID, payload=body, signature=key.sign(body)
    )


def pem(key: Ed25519PrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def test_round_trip_returns_the_claims() -> None:
    assert verify_receipt(signed(), KEYS) == CLAIMS
    assert signed().claims() == CLAIMS


def test_key_id_derivation_is_the_gateways() -> None:
    raw = PRIVATE.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    assert "rk-" + hashlib.sha256(raw).hexdigest()[:16] == KID


def test_canonical_json_is_sorted_compact_utf8() -> None:
    assert canonical_json({"b": "县", "a": "x"}) == '{"a":"x","b":"县"}'.encode()


@settings(max_examples=100)
@given(st.data())
def test_any_changed_payload_byte_is_a_bad_signature(data: st.DataObject) -> None:
    r = signed()
    i = data.draw(st.integers(0, len(r.payload) - 1))
    b = data.draw(st.integers(0, 255).filter(lambda v: v != r.payload[i]))
    forged = SignedReceipt(
        r.receipt_id, r.key_id, r.payload[:i] + bytes([b]) + r.payload[i + 1 :], r.signature
    )
    with pytest.raises(ReceiptInvalid, match="bad signature"):
        verify_receipt(forged, KEYS)


@settings(max_examples=100)
@given(st.data())
def test_any_changed_signature_byte_is_a_bad_signature(data: st.DataObject) -> None:
    r = signed()
    i = data.draw(st.integers(0, len(r.signature) - 1))
    b = data.draw(st.integers(0, 255).filter(lambda v: v != r.signature[i]))
    sig = r.signature[:i] + bytes([b]) + r.signature[i + 1 :]
    with pytest.raises(ReceiptInvalid, match="bad signature"):
        verify_receipt(SignedReceipt(r.receipt_id, r.key_id, r.payload, sig), KEYS)


def test_changed_key_id_is_unknown() -> None:
    r = signed()
    with pytest.raises(ReceiptInvalid, match="unknown key id"):
        verify_receipt(
            SignedReceipt(r.receipt_id, "rk-0000000000000000", r.payload, r.signature), KEYS
        )


def test_signature_by_another_key_is_rejected() -> None:
    with pytest.raises(ReceiptInvalid, match="bad signature"):
        verify_receipt(signed(key=OTHER), KEYS)
    # Nor does a keyset that maps the id to the wrong key accept the real signature.
    with pytest.raises(ReceiptInvalid, match="bad signature"):
        verify_receipt(signed(), {KID: OTHER.public_key()})


@pytest.mark.parametrize("sig", [b"", b"\0" * 64, b"\0" * 63])
def test_stripped_or_blank_signature_never_passes(sig: bytes) -> None:
    r = signed()
    stripped = SignedReceipt(r.receipt_id, r.key_id, r.payload, sig)
    with pytest.raises(ReceiptInvalid, match="bad signature"):
        verify_receipt(stripped, KEYS)
    # Also through the file format, where an empty signature is valid base64.
    doc = {**r.to_json(), "signature": ""}
    with pytest.raises(ReceiptInvalid, match="bad signature"):
        verify_receipt(SignedReceipt.from_json(doc), KEYS)


def test_signed_but_not_canonical_payload_is_rejected() -> None:
    loose = json.dumps(CLAIMS, indent=1).encode()
    with pytest.raises(ReceiptInvalid, match="not canonical"):
        verify_receipt(signed(payload=loose), KEYS)


@pytest.mark.parametrize("field", ["caller", "subject_commitment", "issued_at", "receipt_id"])
def test_signed_payload_missing_a_field_is_rejected(field: str) -> None:
    claims = {k: v for k, v in CLAIMS.items() if k != field}
    r = signed(claims)
    with pytest.raises(ReceiptInvalid, match=f"missing: {field}"):
        verify_receipt(SignedReceipt(CLAIMS["receipt_id"], KID, r.payload, r.signature), KEYS)


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (b"\xff\xfe", "not UTF-8 JSON"),
        (b"[]", "not a JSON object"),
        (canonical_json({**CLAIMS, "outcome": 1}), "must be strings: outcome"),
    ],
)
def test_signed_garbage_is_rejected(payload: bytes, why: str) -> None:
    with pytest.raises(ReceiptInvalid, match=why):
        verify_receipt(signed(payload=payload), KEYS)


def test_envelope_receipt_id_must_match_the_payload() -> None:
    r = signed()
    moved = SignedReceipt("rcpt_ffffffffffffffffffffffffffffffff", r.key_id, r.payload, r.signature)
    with pytest.raises(ReceiptInvalid, match="differs from the envelope"):
        verify_receipt(moved, KEYS)


@pytest.mark.parametrize(
    ("value", "why"), [("yesterday", "RFC 3339"), ("2024-05-01T08:00:00", "time zone")]
)
def test_issued_at_must_be_a_zoned_time(value: str, why: str) -> None:
    with pytest.raises(ReceiptInvalid, match=why):
        verify_receipt(signed({**CLAIMS, "issued_at": value}), KEYS)


def test_file_and_proto_forms_round_trip() -> None:
    r = signed()
    doc = json.loads(json.dumps(r.to_json()))
    assert base64.b64decode(doc["payload"]) == r.payload
    assert SignedReceipt.from_json(doc) == r
    assert SignedReceipt.from_proto(r.to_proto()) == r
    assert (
        SignedReceipt.from_proto(type(r.to_proto()).FromString(r.to_proto().SerializeToString()))
        == r
    )


@pytest.mark.parametrize(
    "doc",
    [
        [],
        {"receipt_id": 1, "key_id": KID, "payload": "", "signature": ""},
        {"receipt_id": "r", "key_id": KID, "payload": "***", "signature": ""},
        {"receipt_id": "r", "key_id": KID, "signature": ""},
    ],
)
def test_malformed_receipt_files_are_rejected(doc) -> None:
    with pytest.raises(ReceiptInvalid, match="receipt file"):
        SignedReceipt.from_json(doc)


# -- key files ----------------------------------------------------------------


def test_pem_key_file(tmp_path: Path) -> None:
    path = tmp_path / "receipt.pem"
    path.write_text(pem(PRIVATE))
    keys = load_public_keys(path)
    assert list(keys) == [KID]
    assert verify_receipt(signed(), keys) == CLAIMS


def test_pem_file_with_several_keys(tmp_path: Path) -> None:
    path = tmp_path / "receipt.pem"
    path.write_text(pem(PRIVATE) + pem(OTHER))
    assert set(load_public_keys(path)) == {KID, key_id_for(OTHER.public_key())}


def test_json_keyset(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    doc = keyset_document([(KID, "ed25519", pem(PRIVATE)), ("rk-old", "ed25519", pem(OTHER))])
    path.write_text(json.dumps(doc))
    keys = load_public_keys(path)
    assert set(keys) == {KID, "rk-old"}
    assert verify_receipt(signed(), keys) == CLAIMS


def _ec_pem() -> str:
    return (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ("garbage", "neither a PEM public key nor a JSON keyset"),
        ('{"keys": {}}', "neither"),
        ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "no PEM public key"),
        (
            json.dumps({"keys": [{"key_id": "k", "algorithm": "rsa", "public_key_pem": "x"}]}),
            "algorithm",
        ),
        (json.dumps({"keys": [{"algorithm": "ed25519"}]}), "key_id missing"),
        (json.dumps({"keys": [{"key_id": "k", "algorithm": "ed25519"}]}), "public_key_pem missing"),
        (
            json.dumps({"keys": [{"key_id": "k", "algorithm": "ed25519", "public_key_pem": "x"}]}),
            "not a PEM",
        ),
        ("EC", "not an Ed25519 or SM2 public key"),
        ("DUP", "names two different keys"),
    ],
)
def test_bad_key_files_are_rejected(tmp_path: Path, content: str, why: str) -> None:
    if content == "EC":
        content = _ec_pem()
    elif content == "DUP":
        content = json.dumps(
            keyset_document([("k", "ed25519", pem(PRIVATE)), ("k", "ed25519", pem(OTHER))])
        )
    path = tmp_path / "keys"
    path.write_text(content)
    with pytest.raises(KeySetError, match=why):
        load_public_keys(path)


# -- SM2 receipts (GB/T 32918), from deployments made with `govgw init --crypto sm` --------
SM2_KEY = Sm2PrivateKey.generate()
SM2_OTHER = Sm2PrivateKey.generate()
SM2_KID = key_id_for(SM2_KEY.public_key())
SM2_CLAIMS = {**CLAIMS, "alg": "sm2"}
MIXED = {**KEYS, SM2_KID: SM2_KEY.public_key()}


def sm2_signed(claims: dict[str, str] | None = None, *, key=SM2_KEY) -> SignedReceipt:
    body = canonical_json(SM2_CLAIMS if claims is None else claims)
    return SignedReceipt(CLAIMS["receipt_id"], SM2_KID, body, key.sign(body))


SM2_RECEIPT = sm2_signed()


@pytest.mark.requirement("R12")
def test_one_verifier_checks_ed25519_and_sm2_receipts() -> None:
    assert verify_receipt(sm2_signed(), MIXED) == SM2_CLAIMS
    # Receipts from before the alg claim (Ed25519), and Ed25519 ones that carry it.
    assert verify_receipt(signed(), MIXED) == CLAIMS
    assert verify_receipt(signed({**CLAIMS, "alg": "ed25519"}), MIXED)["alg"] == "ed25519"


@pytest.mark.requirement("R12")
@settings(max_examples=60, deadline=None)
@given(st.data())
def test_any_changed_byte_of_an_sm2_receipt_is_a_bad_signature(data: st.DataObject) -> None:
    r = SM2_RECEIPT  # one signature: SM2's random k gives another length each time
    field = data.draw(st.sampled_from(["payload", "signature"]))
    value = getattr(r, field)
    i = data.draw(st.integers(0, len(value) - 1))
    b = data.draw(st.integers(0, 255).filter(lambda v: v != value[i]))
    changed = value[:i] + bytes([b]) + value[i + 1 :]
    forged = SignedReceipt(
        r.receipt_id,
        r.key_id,
        changed if field == "payload" else r.payload,
        changed if field == "signature" else r.signature,
    )
    with pytest.raises(ReceiptInvalid, match="bad signature"):
        verify_receipt(forged, MIXED)


@pytest.mark.requirement("R12")
def test_an_sm2_receipt_signed_by_another_sm2_key_fails() -> None:
    with pytest.raises(ReceiptInvalid, match="bad signature"):
        verify_receipt(sm2_signed(key=SM2_OTHER), MIXED)
    # Nor does an Ed25519 signature pass under the SM2 key id, or the reverse.
    body = canonical_json(SM2_CLAIMS)
    with pytest.raises(ReceiptInvalid, match="bad signature"):
        verify_receipt(
            SignedReceipt(CLAIMS["receipt_id"], SM2_KID, body, PRIVATE.sign(body)), MIXED
        )
    with pytest.raises(ReceiptInvalid, match="bad signature"):
        verify_receipt(SignedReceipt(CLAIMS["receipt_id"], KID, body, SM2_KEY.sign(body)), MIXED)


@pytest.mark.parametrize(
    "claims",
    [{**CLAIMS, "alg": "ed25519"}, CLAIMS, {**CLAIMS, "alg": "rsa"}],
    ids=["ed25519", "absent", "unknown"],
)
def test_the_signed_alg_claim_must_name_the_keys_algorithm(claims: dict[str, str]) -> None:
    with pytest.raises(ReceiptInvalid, match=r"alg .* differs from key"):
        verify_receipt(sm2_signed(claims), MIXED)


def test_pem_and_json_keysets_hold_both_kinds(tmp_path: Path) -> None:
    sm2_pem = signing.public_pem(SM2_KEY.public_key())
    path = tmp_path / "keys.pem"
    path.write_text(pem(PRIVATE) + sm2_pem)
    assert set(load_public_keys(path)) == {KID, SM2_KID}
    path = tmp_path / "keys.json"
    path.write_text(
        json.dumps(keyset_document([(SM2_KID, "sm2", sm2_pem), (KID, "ed25519", pem(PRIVATE))]))
    )
    keys = load_public_keys(path)
    assert verify_receipt(sm2_signed(), keys) == SM2_CLAIMS
    assert verify_receipt(signed(), keys) == CLAIMS
    # An entry whose algorithm is not its key's is refused, both ways.
    for kid, alg, key_pem in [(SM2_KID, "ed25519", sm2_pem), (KID, "sm2", pem(PRIVATE))]:
        path.write_text(json.dumps(pem_keyset_document([(kid, alg, key_pem)])))
        with pytest.raises(KeySetError, match="but the key is"):
            load_public_keys(path)
