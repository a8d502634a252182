"""JWS receipts, their JWK Set and the openable commitment, checked by the one verifier.

One verifier takes all three forms: JWS, batch, and the legacy receipts issued
before JWS (so receipts kept by counters keep their force).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from pathlib import Path

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from contract.jose import b64url, jcs, jwk_of
from contract.keysets import pem_keyset_document
from contract.receipts import (
    KeySetError,
    ReceiptInvalid,
    SignedReceipt,
    canonical_json,
    key_id_for,
    keyset_document,
    load_public_keys,
    open_commitment,
    public_keys_from_keyset,
    subject_commitment,
    verify_receipt,
)
from contract.signing import ED25519, SM2, generate, public_pem
from gateway.keys import ReceiptSigningKey
from gateway.receipts import ReceiptSigner

pytestmark = pytest.mark.requirement("R12")

ID_NUMBER = "51322119900101123X"


@pytest.fixture(scope="module", params=[ED25519, SM2])
def signer(request: pytest.FixtureRequest) -> ReceiptSigner:
    key = generate(request.param)
    return ReceiptSigner(ReceiptSigningKey(key_id_for(key.public_key()), key, ""))


@pytest.fixture(scope="module")
def keys(signer: ReceiptSigner) -> dict:
    return public_keys_from_keyset(json.loads(json.dumps(keyset_document(signer.public_keys()))))


def issue(signer: ReceiptSigner, subject: str = ID_NUMBER) -> SignedReceipt:
    return signer.issue(
        caller="counter-wenchuan", action="verify.identity", outcome="MATCH",
        dataset="population", subject=subject, policy_version="v7",
    )  # fmt: skip


# -- RFC 8785 ------------------------------------------------------------------


def test_jcs_gives_rfc_8785s_own_examples() -> None:
    # RFC 8785 §3.2.2 (sorting by UTF-16 code units) and §3.2.2.2 (string escapes).
    assert (
        jcs(
            {
                "\u20ac": "Euro Sign",
                "\r": "Carriage Return",
                "\ufb33": "Hebrew Letter Dalet With Dagesh",
                "1": "One",
                "\U0001f600": "Emoji: Grinning Face",
                "\u0080": "Control",
                "\u00f6": "Latin Small Letter O With Diaeresis",
            }
        )
        == (
            '{"\\r":"Carriage Return","1":"One","\u0080":"Control","\u00f6":"Latin Small Letter O '
            'With Diaeresis","\u20ac":"Euro Sign","\U0001f600":"Emoji: Grinning Face","\ufb33":'
            '"Hebrew Letter Dalet With Dagesh"}'
        ).encode()
    )
    assert jcs({"string": "\u20ac$\u000f\u000aA'\u0042\u0022\u005c\\\"/"}) == (
        b'{"string":"\xe2\x82\xac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    )
    assert jcs({"b": [1, {"d": 2, "c": 3}], "a": 0}) == b'{"a":0,"b":[1,{"c":3,"d":2}]}'


# Text as claims may hold it: any code point but lone surrogates (UTF-8 cannot carry them).
_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)


@settings(max_examples=300, deadline=None)
@given(claims=st.dictionaries(st.text(st.characters(max_codepoint=127), max_size=12), _TEXT))
def test_the_fast_path_for_flat_string_claims_is_rfc_8785(claims: dict[str, str]) -> None:
    assert jcs(claims) == rfc8785.dumps(claims)


@settings(max_examples=300, deadline=None)
@given(
    doc=st.dictionaries(
        st.text(st.characters(max_codepoint=127), max_size=12),
        _TEXT | st.integers(-(2**53) + 1, 2**53 - 1),
    )
)
def test_the_fast_path_with_integers_is_rfc_8785(doc: dict[str, str | int]) -> None:
    """Batch documents (their `size`) take the fast path too."""
    assert jcs(doc) == rfc8785.dumps(doc)


def test_integers_past_what_a_double_holds_are_not_on_the_fast_path() -> None:
    with pytest.raises(rfc8785.IntegerDomainError):
        jcs({"size": 2**53})
    assert jcs({"ok": True, "n": 3}) == b'{"n":3,"ok":true}'


# -- JWS receipts ----------------------------------------------------------------


def test_a_receipt_is_a_compact_jws_with_our_header(signer: ReceiptSigner, keys: dict) -> None:
    r = issue(signer)
    head, body, _ = r.jws().split(".")
    assert json.loads(base64.urlsafe_b64decode(head + "==")) == {
        "alg": "SM2SM3" if signer.algorithm == SM2 else "EdDSA",
        "kid": signer.key_id,
        "typ": "govgw-receipt+jws",
    }
    assert base64.urlsafe_b64decode(body + "==") == r.payload == jcs(r.claims())
    assert "=" not in r.jws()
    assert verify_receipt(r, keys) == r.claims()


def forged_header(r: SignedReceipt, **changes: object) -> SignedReceipt:
    header = json.loads(r.protected) | changes
    return dataclasses.replace(r, protected=jcs({k: v for k, v in header.items() if v}))


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"typ": "JWT"}, "typ must be"),
        ({"typ": None}, "typ must be"),
        ({"crit": ["exp"]}, "crit"),
        ({"kid": "rk-0000000000000000"}, "unknown key id"),
        ({"alg": "none"}, "differs from key"),
        ({"alg": "HS256"}, "differs from key"),
    ],
)
def test_a_changed_header_fails(signer: ReceiptSigner, keys: dict, changes: dict, why: str) -> None:
    with pytest.raises(ReceiptInvalid, match=why):
        verify_receipt(forged_header(issue(signer), **changes), keys)


def test_the_other_algorithms_alg_fails(signer: ReceiptSigner, keys: dict) -> None:
    other = "EdDSA" if signer.algorithm == SM2 else "SM2SM3"
    with pytest.raises(ReceiptInvalid, match="differs from key"):
        verify_receipt(forged_header(issue(signer), alg=other), keys)


def test_a_changed_payload_or_signature_fails(signer: ReceiptSigner, keys: dict) -> None:
    r = issue(signer)
    flipped = jcs(r.claims() | {"outcome": "NO_MATCH"})
    with pytest.raises(ReceiptInvalid, match="bad signature"):
        verify_receipt(dataclasses.replace(r, payload=flipped), keys)
    sig = bytes([r.signature[-1] ^ 1])
    with pytest.raises(ReceiptInvalid, match="bad signature"):
        verify_receipt(dataclasses.replace(r, signature=r.signature[:-1] + sig), keys)
    with pytest.raises(ReceiptInvalid, match="receipt_id in payload differs"):
        verify_receipt(dataclasses.replace(r, receipt_id="rcpt_other"), keys)


@pytest.mark.parametrize(
    ("jws", "why"),
    [
        ("a.b", "three base64url parts"),
        ("a.b.c.d", "three base64url parts"),
        ("ab=.cd.ef", "JWS header is not unpadded base64url"),
        ("a+b.cd.ef", "JWS header is not unpadded base64url"),
        ("aQ.c.aQ", "JWS payload is not unpadded base64url"),  # 1 char: no whole byte
        ("aQ.aQ.eF", "JWS signature is not unpadded base64url"),  # stray low bits
        (7, "three base64url parts"),
    ],
)
def test_a_malformed_jws_file_names_the_part(jws: object, why: str) -> None:
    with pytest.raises(ReceiptInvalid, match=why):
        SignedReceipt.from_json({"receipt_id": "r", "key_id": "k", "jws": jws})


def test_legacy_receipts_still_verify_beside_jws_ones(signer: ReceiptSigner, keys: dict) -> None:
    """A receipt of the former format (signature over sorted-key JSON) keeps verifying."""
    key = signer._key.private_key  # the test signs a receipt as the gateway once did
    claims = issue(signer).claims() | {"subject_commitment": "ab" * 32}
    payload = canonical_json(claims)
    legacy = {
        "receipt_id": claims["receipt_id"],
        "key_id": signer.key_id,
        "payload": base64.b64encode(payload).decode(),
        "signature": base64.b64encode(key.sign(payload)).decode(),
    }
    r = SignedReceipt.from_json(legacy)
    assert r.form == "legacy" and verify_receipt(r, keys) == claims
    # It cannot be opened: its commitment was a keyed hash.
    assert not open_commitment(r, ID_NUMBER, "00" * 16)
    # Nor can its signature be passed off as a JWS signature.
    with pytest.raises(ReceiptInvalid, match="bad signature"):
        verify_receipt(dataclasses.replace(r, protected=signer._protected), keys)


# -- the openable commitment -------------------------------------------------------


def test_the_commitment_opens_with_id_number_and_salt_only(
    signer: ReceiptSigner, keys: dict
) -> None:
    r = issue(signer, " 51322119900101123x ")
    assert len(r.salt) == 16
    claims = verify_receipt(r, keys)
    assert claims["subject_commitment"] == subject_commitment(signer.algorithm, r.salt, ID_NUMBER)
    assert open_commitment(r, ID_NUMBER, r.salt)
    assert open_commitment(r, ID_NUMBER.lower(), r.salt.hex())
    assert not open_commitment(r, "513221199001011235", r.salt)
    assert not open_commitment(r, ID_NUMBER, bytes(16))
    assert not open_commitment(r, ID_NUMBER, r.salt[:8])  # a short salt never opens
    with pytest.raises(ReceiptInvalid, match="salt must be hex"):
        open_commitment(r, ID_NUMBER, "not hex")
    # The salt is the caller's: not in the signed payload, in the wire message and file.
    assert r.salt.hex() not in r.payload.decode() and r.salt not in r.payload
    assert r.to_json()["commitment_salt"] == r.salt.hex()
    assert r.to_proto().commitment_salt == r.salt


def test_the_commitment_hash_follows_the_suite(signer: ReceiptSigner) -> None:
    r = issue(signer)
    name = "sm3" if signer.algorithm == SM2 else "sha256"
    tag = b"govgw/subject-commitment/v1\x00"
    assert (
        r.claims()["subject_commitment"]
        == hashlib.new(name, tag + r.salt + ID_NUMBER.encode()).hexdigest()
    )


def test_a_receipt_about_no_subject_has_no_commitment_and_no_salt(signer: ReceiptSigner) -> None:
    r = issue(signer, "")
    assert r.claims()["subject_commitment"] == "" and r.salt == b""
    assert "commitment_salt" not in r.to_json()


# -- the JWK Set -----------------------------------------------------------------


def test_the_jwks_holds_rfc_8037_okp_keys_and_our_sm2_keys(signer: ReceiptSigner) -> None:
    ((kid, _, pem),) = signer.public_keys()
    (jwk,) = keyset_document(signer.public_keys())["keys"]
    if signer.algorithm == ED25519:
        assert set(jwk) == {"kty", "crv", "x", "kid", "use", "alg"}
        assert (jwk["kty"], jwk["crv"], jwk["alg"], jwk["use"]) == (
            "OKP",
            "Ed25519",
            "EdDSA",
            "sig",
        )
    else:
        assert set(jwk) == {"kty", "crv", "x", "y", "kid", "use", "alg"}
        assert (jwk["kty"], jwk["crv"], jwk["alg"], jwk["use"]) == ("EC", "SM2", "SM2SM3", "sig")
    assert jwk["kid"] == kid
    assert public_pem(public_keys_from_keyset({"keys": [jwk]})[kid]) == pem


def test_former_keysets_and_pem_still_load(signer: ReceiptSigner, tmp_path: Path) -> None:
    r = issue(signer)
    old = tmp_path / "old.json"
    old.write_text(json.dumps(pem_keyset_document(signer.public_keys())))
    pem = tmp_path / "key.pem"
    pem.write_text(signer.public_keys()[0][2])
    for path in (old, pem):
        assert verify_receipt(r, load_public_keys(path))["receipt_id"] == r.receipt_id


@pytest.mark.parametrize(
    ("jwk", "why"),
    [
        ({"kty": "OKP", "crv": "Ed25519", "x": b64url(bytes(32))}, "kid missing"),
        ({"kid": "k", "kty": "RSA", "n": "AQAB", "e": "AQAB"}, "kty/crv must be"),
        ({"kid": "k", "kty": "OKP", "crv": "Ed25519", "x": b64url(bytes(31))}, "32 bytes"),
        ({"kid": "k", "kty": "OKP", "crv": "Ed25519", "x": "a=="}, "x is not unpadded"),
        (
            {"kid": "k", "kty": "EC", "crv": "SM2", "x": b64url(bytes(32)), "y": b64url(bytes(32))},
            "not a point of the SM2 curve",
        ),
        (
            {"kid": "k", "use": "enc", "kty": "OKP", "crv": "Ed25519", "x": b64url(bytes(32))},
            "use must be sig",
        ),
    ],
)
def test_a_bad_jwk_names_the_entry_and_the_member(jwk: dict, why: str) -> None:
    with pytest.raises(KeySetError, match=rf"keyset: keys\[0\]: .*{why}"):
        public_keys_from_keyset({"keys": [jwk]})


def test_a_jwk_whose_alg_does_not_fit_its_key_is_refused() -> None:
    key = generate(ED25519).public_key()
    jwk = jwk_of("k", key) | {"alg": "SM2SM3"}
    with pytest.raises(KeySetError, match="does not fit"):
        public_keys_from_keyset({"keys": [jwk]})
