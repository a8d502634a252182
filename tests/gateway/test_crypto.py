"""Cipher suites: known answers for SM4 and SM3, SM4-GCM as an AEAD, the suite registry."""

from __future__ import annotations

import hashlib
import os

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given
from hypothesis import strategies as st

from gateway.crypto import (
    DEFAULT_SUITE,
    SM_SUITE,
    InvalidTag,
    Sm4Gcm,
    get_suite,
    suite_for_alias,
    suite_names,
)


@pytest.mark.requirement("R12")
def test_sm4_known_answer_gb_t_32907() -> None:
    # The example of GB/T 32907-2016, appendix A.1: key = plaintext.
    key = bytes.fromhex("0123456789abcdeffedcba9876543210")
    enc = Cipher(algorithms.SM4(key), modes.ECB()).encryptor()
    assert (enc.update(key) + enc.finalize()).hex() == "681edf34d206965e86b3e94f536e4246"


@pytest.mark.requirement("R12")
def test_sm3_known_answer_gb_t_32905() -> None:
    h = hashes.Hash(hashes.SM3())
    h.update(b"abc")
    assert h.finalize().hex() == (
        "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    )


def _sm3(data: bytes) -> bytes:
    h = hashes.Hash(hashes.SM3())
    h.update(data)
    return h.finalize()


@pytest.mark.requirement("R12")
@given(key=st.binary(min_size=0, max_size=100), msg=st.binary(max_size=200))
def test_hmac_sm3_is_rfc_2104_over_sm3(key: bytes, msg: bytes) -> None:
    # Built by hand from the hash (block size 64), independently of the HMAC class.
    k = _sm3(key) if len(key) > 64 else key
    k = k.ljust(64, b"\0")
    inner = _sm3(bytes(b ^ 0x36 for b in k) + msg)
    expected = _sm3(bytes(b ^ 0x5C for b in k) + inner)
    assert get_suite(SM_SUITE).mac(key, msg) == expected


def test_hmac_sha256_suite_is_plain_hmac_sha256() -> None:
    import hmac

    key, msg = os.urandom(32), b"population.basic\0X"
    assert get_suite(DEFAULT_SUITE).mac(key, msg) == hmac.new(key, msg, hashlib.sha256).digest()


@pytest.mark.requirement("R12")
@given(data=st.binary(max_size=300), aad=st.binary(max_size=40))
def test_sm4_gcm_round_trip_and_tamper(data: bytes, aad: bytes) -> None:
    aead = Sm4Gcm(os.urandom(16))
    nonce = os.urandom(12)
    ct = aead.encrypt(nonce, data, aad)
    assert len(ct) == len(data) + 16
    assert aead.decrypt(nonce, ct, aad) == data
    with pytest.raises(InvalidTag):
        aead.decrypt(nonce, ct, aad + b"x")
    flipped = bytes([ct[0] ^ 1]) + ct[1:]
    with pytest.raises(InvalidTag):
        aead.decrypt(nonce, flipped, aad)
    with pytest.raises(InvalidTag):
        Sm4Gcm(os.urandom(16)).decrypt(nonce, ct, aad)
    with pytest.raises(InvalidTag):
        aead.decrypt(nonce, ct[:10], aad)


def test_sm4_gcm_matches_the_cipher_interface_output() -> None:
    key, nonce = os.urandom(16), os.urandom(12)
    enc = Cipher(algorithms.SM4(key), modes.GCM(nonce)).encryptor()
    enc.authenticate_additional_data(b"aad")
    expected = enc.update(b"hello") + enc.finalize() + enc.tag
    assert Sm4Gcm(key).encrypt(nonce, b"hello", b"aad") == expected


def test_suite_registry() -> None:
    assert suite_names() == [DEFAULT_SUITE, SM_SUITE]
    assert suite_for_alias("sm").name == SM_SUITE
    assert suite_for_alias("aes").name == DEFAULT_SUITE
    assert get_suite(SM_SUITE).data_key_bytes == 16
    with pytest.raises(ValueError, match="unknown cipher suite"):
        get_suite("des/md5")
    with pytest.raises(ValueError, match="unknown crypto"):
        suite_for_alias("rot13")
    with pytest.raises(ValueError, match="16 bytes"):
        Sm4Gcm(os.urandom(32))
