"""Cipher suites: which AEAD seals pool rows and which MAC keys the blind index and pseudonyms.

A deployment picks one suite when its key ring is created (`govgw init --crypto
sm` for national cryptography, 商用密码, R12); every pool key records the
suite it belongs to, so a key rotation can also move the pool from one suite to
the other. Suites are looked up by name like masking operators.

The ciphers and MACs of both suites come from the `cryptography` package (its
bundled OpenSSL has SM4 with GCM mode and SM3), so there is no second library
to vet for them:

- `aes-gcm/hmac-sha256`: AES-256-GCM, HMAC-SHA256 (the default);
- `sm4-gcm/hmac-sm3`: SM4-GCM (GB/T 32907 cipher in GCM mode, 16-byte tag),
  HMAC-SM3 (GB/T 32905).

A suite also names the algorithm receipts are signed with (contract.signing):
Ed25519 with the AES suite, SM2 (GB/T 32918, from `tongsuopy`, as
`cryptography` has no SM2 signatures) with the SM suite.
"""

from __future__ import annotations

import hmac
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from contract.signing import ED25519, SM2

__all__ = [
    "DEFAULT_SUITE",
    "SM_SUITE",
    "Aead",
    "InvalidTag",
    "Suite",
    "get_suite",
    "suite_for_alias",
    "suite_names",
]

TAG_BYTES = 16


class Aead(Protocol):
    """The AESGCM interface: ciphertext is the encrypted data followed by the tag."""

    def encrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes: ...

    def decrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes: ...


class Suite(ABC):
    name: ClassVar[str]
    alias: ClassVar[str]  # the short name `govgw init --crypto` takes
    data_key_bytes: ClassVar[int]
    mac_key_bytes: ClassVar[int] = 32
    signature: ClassVar[str]  # the receipt signature algorithm (contract.signing)

    @abstractmethod
    def aead(self, key: bytes) -> Aead:
        """An AEAD object for the data key (build once per key, reuse per row)."""

    @abstractmethod
    def mac(self, key: bytes, message: bytes) -> bytes:
        """HMAC of message under key (blind indexes, pseudonyms, audit subject hashes)."""


_SUITES: dict[str, Suite] = {}
# A process holds a few MAC keys (one per key version of its keyring); a process
# that opens many keyrings (tests, tools) starts afresh past this many.
_KEYED_MAX = 64


def _keep(keyed: dict[bytes, Any], key: bytes, mac: Any) -> Any:
    if len(keyed) >= _KEYED_MAX:
        keyed.clear()
    keyed[key] = mac
    return mac


def _register(cls: type[Suite]) -> type[Suite]:
    _SUITES[cls.name] = cls()
    return cls


def get_suite(name: str) -> Suite:
    try:
        return _SUITES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown cipher suite {str(name)!r} (known: {', '.join(suite_names())})"
        ) from None


def suite_names() -> list[str]:
    return sorted(_SUITES)


def suite_for_alias(alias: str) -> Suite:
    """`aes` or `sm` (or a full suite name) -> the suite."""
    for suite in _SUITES.values():
        if alias in (suite.alias, suite.name):
            return suite
    raise ValueError(
        f"unknown crypto {alias!r} (use one of: {', '.join(s.alias for s in _SUITES.values())})"
    )


@_register
class AesGcmHmacSha256(Suite):
    name = "aes-gcm/hmac-sha256"
    alias = "aes"
    data_key_bytes = 32
    signature = ED25519

    def aead(self, key: bytes) -> Aead:
        return AESGCM(key)

    def __init__(self) -> None:
        self._keyed: dict[bytes, hmac.HMAC] = {}

    def mac(self, key: bytes, message: bytes) -> bytes:
        # A copy of an HMAC already keyed: the key schedule is done once per key, and
        # a short update keeps the GIL, where hmac.digest releases and retakes it on
        # every call (a hand-off to another thread per blind index on the hot path).
        keyed = self._keyed.get(key)
        if keyed is None:
            keyed = _keep(self._keyed, key, hmac.new(key, digestmod="sha256"))
        h = keyed.copy()
        h.update(message)
        return h.digest()


class Sm4Gcm:
    """SM4 in GCM mode with the AESGCM calling convention (ciphertext || 16-byte tag).

    `cryptography` offers SM4-GCM through the Cipher interface only (there is
    no SM4GCM AEAD class), so this adapter does what AESGCM does: associated
    data first, then the data, the tag appended; decryption checks the tag
    before returning anything.
    """

    def __init__(self, key: bytes) -> None:
        if len(key) != 16:
            raise ValueError("SM4 keys are 16 bytes")
        self._algorithm = algorithms.SM4(key)

    def encrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes:
        enc = Cipher(self._algorithm, modes.GCM(nonce)).encryptor()
        if associated_data:
            enc.authenticate_additional_data(associated_data)
        ct = enc.update(data) + enc.finalize()
        return ct + enc.tag

    def decrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes:
        if len(data) < TAG_BYTES:
            raise InvalidTag()
        ct, tag = data[:-TAG_BYTES], data[-TAG_BYTES:]
        dec = Cipher(self._algorithm, modes.GCM(nonce, tag)).decryptor()
        if associated_data:
            dec.authenticate_additional_data(associated_data)
        return dec.update(ct) + dec.finalize()


@_register
class Sm4GcmHmacSm3(Suite):
    name = "sm4-gcm/hmac-sm3"
    alias = "sm"
    data_key_bytes = 16  # SM4 has one key size, 128 bits
    signature = SM2

    def aead(self, key: bytes) -> Aead:
        return Sm4Gcm(key)

    def __init__(self) -> None:
        self._keyed: dict[bytes, crypto_hmac.HMAC] = {}

    def mac(self, key: bytes, message: bytes) -> bytes:
        keyed = self._keyed.get(key)  # as AesGcmHmacSha256.mac: keyed once per key
        if keyed is None:
            keyed = _keep(self._keyed, key, crypto_hmac.HMAC(key, hashes.SM3()))
        h = keyed.copy()
        h.update(message)
        return h.finalize()


DEFAULT_SUITE = AesGcmHmacSha256.name
SM_SUITE = Sm4GcmHmacSm3.name
