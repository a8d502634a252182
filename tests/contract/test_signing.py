"""SM2 signatures (GB/T 32918) against the standard's example and an independent implementation.

The vectors are the SM2 signature example on the recommended curve sm2p256v1
(GB/T 32918.5 / GM/T 0003.5 annex): private key d, its public point P, the
message "message digest", the default identifier "1234567812345678" (ENTL
0x0080), the fixed k of the example, and the (r, s) it gives. Our signatures
come from Tongsuo (random k, so never those bytes): they are checked by
verifying the standard's (r, s), and by `gmalg`, a pure-Python
implementation with no code in common, both ways.
"""

from __future__ import annotations

import hashlib

import gmalg
import pytest
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from contract import signing
from contract.receipts import key_id_for
from contract.signing import SM2_DEFAULT_ID, SM2_N, InvalidSignature, Sm2PrivateKey, Sm2PublicKey

D = 0x3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8
PX = 0x09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020
PY = 0xCCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13
K = 0x59276E27D506861A16680F3AD9C02DCCEF3CC1FA3CDBE4CE6D54B80DEAC1BC21
R = 0xF5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3
S = 0xB1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA
MESSAGE = b"message digest"
POINT = b"\x04" + PX.to_bytes(32, "big") + PY.to_bytes(32, "big")
STANDARD_SIGNATURE = encode_dss_signature(R, S)

pytestmark = pytest.mark.requirement("R12")


def b32(n: int) -> bytes:
    return n.to_bytes(32, "big")


def independent(*, k: int | None = None) -> gmalg.SM2:
    """gmalg with the standard's key and the default identifier (and a fixed k if given)."""
    rnd = (lambda _bits: k) if k is not None else None
    return gmalg.SM2(b32(D), SM2_DEFAULT_ID, POINT, rnd_fn=rnd)


def test_the_standards_key_gives_the_standards_public_point() -> None:
    assert Sm2PrivateKey.from_scalar(D).public_key().point() == POINT


def test_the_standards_signature_verifies_under_the_standards_public_key() -> None:
    Sm2PublicKey.from_point(POINT).verify(STANDARD_SIGNATURE, MESSAGE)


@pytest.mark.parametrize(
    "message, signature",
    [
        (b"message digesT", STANDARD_SIGNATURE),
        (MESSAGE, encode_dss_signature(R, (S + 1) % SM2_N)),
        (MESSAGE, encode_dss_signature((R + 1) % SM2_N, S)),
        (MESSAGE, encode_dss_signature(S, R)),
    ],
    ids=["message", "s", "r", "swapped"],
)
def test_the_standards_example_changed_anywhere_fails(message: bytes, signature: bytes) -> None:
    with pytest.raises(InvalidSignature):
        Sm2PublicKey.from_point(POINT).verify(signature, message)


def test_the_independent_implementation_reproduces_the_standards_r_s_with_its_k() -> None:
    """The vectors above are the standard's: gmalg, given the example's k, signs them."""
    r, s = independent(k=K).sign(MESSAGE)
    assert (int.from_bytes(r, "big"), int.from_bytes(s, "big")) == (R, S)


def test_our_signatures_verify_in_the_independent_implementation() -> None:
    ours = Sm2PrivateKey.from_scalar(D)
    for message in (MESSAGE, b"", '{"outcome":"MATCH","办理":"户籍"}'.encode()):
        r, s = decode_dss_signature(ours.sign(message))
        assert independent().verify(message, b32(r), b32(s))
        assert not independent().verify(message + b"!", b32(r), b32(s))


def test_the_independent_implementations_signatures_verify_here() -> None:
    for message in (MESSAGE, b"receipt payload"):
        r, s = independent().sign(message)
        der = encode_dss_signature(int.from_bytes(r, "big"), int.from_bytes(s, "big"))
        Sm2PublicKey.from_point(POINT).verify(der, message)


def test_round_trip_through_pem_and_another_key_fails() -> None:
    key = signing.generate(signing.SM2)
    again = signing.load_private_pem(signing.private_pem(key).encode())
    public = signing.load_public_pem(signing.public_pem(key.public_key()).encode())
    assert signing.algorithm_of(public) == signing.SM2
    public.verify(again.sign(b"payload"), b"payload")
    with pytest.raises(InvalidSignature):
        signing.generate(signing.SM2).public_key().verify(key.sign(b"payload"), b"payload")
    # The curve is named by its OID in the PEM (1.2.156.10197.1.301), as GmSSL writes it.
    assert "MFkwEwYHKoZIzj0CAQYIKoEcz1UBgi0DQgAE" in signing.public_pem(public)


def test_sm2_key_ids_hash_the_uncompressed_point() -> None:
    key_id = key_id_for(Sm2PublicKey.from_point(POINT))
    assert key_id == "rk-" + hashlib.sha256(POINT).hexdigest()[:16]


@pytest.mark.parametrize(
    "signature",
    [
        b"",
        b"\x30\x00",
        STANDARD_SIGNATURE + b"\x00",  # trailing bytes
        STANDARD_SIGNATURE[:-1],
        b32(R) + b32(S),  # raw r || s is not the DER form
        encode_dss_signature(0, S),
        encode_dss_signature(R, SM2_N),
        encode_dss_signature(R + SM2_N, S),
        # r with a needless leading zero byte: BER, not DER.
        b"\x30\x47\x02\x22\x00\x00" + b32(R) + STANDARD_SIGNATURE[-35:],
    ],
    ids=["empty", "empty-seq", "trailing", "truncated", "raw", "r0", "s=n", "r>n", "ber"],
)
def test_malformed_signatures_are_bad_signatures_never_errors(signature: bytes) -> None:
    with pytest.raises(InvalidSignature):
        Sm2PublicKey.from_point(POINT).verify(signature, MESSAGE)


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=80))
def test_arbitrary_bytes_never_verify_and_never_raise_otherwise(junk: bytes) -> None:
    with pytest.raises(InvalidSignature):
        Sm2PublicKey.from_point(POINT).verify(junk, MESSAGE)


@pytest.mark.parametrize(
    "pem", [b"junk", b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"]
)
def test_unreadable_keys_are_value_errors(pem: bytes) -> None:
    with pytest.raises(ValueError, match="not a PEM public key"):
        signing.load_public_pem(pem)
    with pytest.raises(ValueError, match="not a PEM private key"):
        signing.load_private_pem(pem)
