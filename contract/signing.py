"""The signature algorithms receipts and policy versions are signed with: Ed25519 and SM2.

SM2 here is the digital signature of GB/T 32918.2 on the recommended curve
sm2p256v1 (GB/T 32918.5), with SM3 over Z_A || M and the default
distinguishing identifier "1234567812345678" (ENTL 0x0080, GM/T 0009). The
signature is the DER SEQUENCE of the integers r and s (GM/T 0009
SM2Signature), which GmSSL, Tongsuo/OpenSSL and Bouncy Castle verify as is.

`cryptography` has no SM2 signatures (its OpenSSL refuses the curve), so SM2
comes from `tongsuopy`, the Python binding of Tongsuo (the OpenSSL fork of the
OpenAtom foundation with the Chinese algorithms): C, and checked against the
standard's example and an independent implementation (docs/crypto.md).

SM2 keys are wrapped so that both kinds offer one interface, the Ed25519 one:
`sign(data)`, `verify(signature, data)` (raising
`cryptography.exceptions.InvalidSignature`) and `public_key()`. Every other
module names an algorithm by the constants here only (the JWS envelope maps
them to its `alg` values, EdDSA and SM2SM3, in one place: contract.jose).
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from tongsuopy.crypto import hashes as ts_hashes
from tongsuopy.crypto import serialization as ts_serialization
from tongsuopy.crypto.asymciphers import ec as ts_ec
from tongsuopy.crypto.exceptions import InternalError as TsInternalError
from tongsuopy.crypto.exceptions import InvalidSignature as TsInvalidSignature
from tongsuopy.crypto.exceptions import UnsupportedAlgorithm as TsUnsupportedAlgorithm

ED25519 = "ed25519"
SM2 = "sm2"
ALGORITHMS = (ED25519, SM2)
# GB/T 35276 / GM/T 0009: the identifier both sides use when none is agreed.
SM2_DEFAULT_ID = b"1234567812345678"
# DER of two 256-bit integers: 2 + 2 * (2 + 33) bytes at most.
SM2_SIGNATURE_MAX_BYTES = 72
# The order n of sm2p256v1's base point (GB/T 32918.5).
SM2_N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123


def _sm3_sm2() -> ts_ec.ECDSA:
    # Tongsuo's SM2 key type turns "ECDSA with SM3" into the SM2 signature
    # proper: Z_A with the default identifier, then e = SM3(Z_A || M).
    return ts_ec.ECDSA(ts_hashes.SM3())


class Sm2PublicKey:
    """An SM2 public key (a point of sm2p256v1)."""

    def __init__(self, key: ts_ec.EllipticCurvePublicKey) -> None:
        if not isinstance(getattr(key, "curve", None), ts_ec.SM2):
            raise ValueError("not an SM2 key")
        self._key = key

    @classmethod
    def from_point(cls, point: bytes) -> Sm2PublicKey:
        """From the uncompressed point 04 || X || Y (65 bytes)."""
        if len(point) != 65 or point[0] != 4:
            raise ValueError("an SM2 public point is 04 || X || Y, 65 bytes")
        return cls(ts_ec.EllipticCurvePublicKey.from_encoded_point(ts_ec.SM2(), point))

    def verify(self, signature: bytes, data: bytes) -> None:
        if not is_sm2_signature(signature):
            # Tongsuo reports undecodable DER as an internal error, not as a bad
            # signature: such bytes never reach it.
            raise InvalidSignature()
        try:
            self._key.verify(signature, data, _sm3_sm2())
        except (TsInvalidSignature, TsInternalError):
            raise InvalidSignature() from None

    def point(self) -> bytes:
        return self._key.public_bytes(
            ts_serialization.Encoding.X962, ts_serialization.PublicFormat.UncompressedPoint
        )

    def public_pem(self) -> str:
        return self._key.public_bytes(
            ts_serialization.Encoding.PEM, ts_serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()


def is_sm2_signature(signature: bytes) -> bool:
    """Whether the bytes are a canonical DER (r, s) with 0 < r, s < n (the form, not validity)."""
    if not 8 <= len(signature) <= SM2_SIGNATURE_MAX_BYTES:
        return False
    try:
        r, s = decode_dss_signature(signature)
    except ValueError:
        return False
    # One encoding per signature: BER variants and trailing bytes are refused.
    return 0 < r < SM2_N and 0 < s < SM2_N and encode_dss_signature(r, s) == signature


class Sm2PrivateKey:
    """An SM2 private key; signs with SM3 and the default identifier."""

    def __init__(self, key: ts_ec.EllipticCurvePrivateKey) -> None:
        if not isinstance(getattr(key, "curve", None), ts_ec.SM2):
            raise ValueError("not an SM2 key")
        self._key = key

    @classmethod
    def generate(cls) -> Sm2PrivateKey:
        return cls(ts_ec.generate_private_key(ts_ec.SM2()))

    @classmethod
    def from_scalar(cls, d: int) -> Sm2PrivateKey:
        return cls(ts_ec.derive_private_key(d, ts_ec.SM2()))

    def sign(self, data: bytes) -> bytes:
        return bytes(self._key.sign(data, _sm3_sm2()))

    def public_key(self) -> Sm2PublicKey:
        return Sm2PublicKey(self._key.public_key())

    def private_pem(self) -> str:
        return self._key.private_bytes(
            ts_serialization.Encoding.PEM,
            ts_serialization.PrivateFormat.PKCS8,
            ts_serialization.NoEncryption(),
        ).decode()


PrivateKey = Ed25519PrivateKey | Sm2PrivateKey
PublicKey = Ed25519PublicKey | Sm2PublicKey


def algorithm_of(key: PrivateKey | PublicKey) -> str:
    if isinstance(key, Ed25519PrivateKey | Ed25519PublicKey):
        return ED25519
    if isinstance(key, Sm2PrivateKey | Sm2PublicKey):
        return SM2
    raise ValueError(f"unsupported key type {type(key).__name__}")


def generate(algorithm: str) -> PrivateKey:
    if algorithm == ED25519:
        return Ed25519PrivateKey.generate()
    if algorithm == SM2:
        return Sm2PrivateKey.generate()
    raise ValueError(f"unknown signature algorithm {algorithm!r} (use {' or '.join(ALGORITHMS)})")


def public_raw(key: PublicKey) -> bytes:
    """The raw public key key ids are derived from: 32 bytes (Ed25519), 04||X||Y (SM2)."""
    if isinstance(key, Sm2PublicKey):
        return key.point()
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_pem(key: PublicKey) -> str:
    """SubjectPublicKeyInfo PEM (SM2: id-ecPublicKey on curve 1.2.156.10197.1.301)."""
    if isinstance(key, Sm2PublicKey):
        return key.public_pem()
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def private_pem(key: PrivateKey) -> str:
    """Unencrypted PKCS#8 PEM, for files the owner alone may read."""
    if isinstance(key, Sm2PrivateKey):
        return key.private_pem()
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def load_public_pem(data: bytes) -> PublicKey:
    """An Ed25519 or SM2 public key from SubjectPublicKeyInfo PEM; ValueError otherwise."""
    try:
        key = serialization.load_pem_public_key(data)
    except UnsupportedAlgorithm:
        # cryptography parses the PEM but knows no SM2 curve: Tongsuo does.
        try:
            return Sm2PublicKey(ts_serialization.load_pem_public_key(data))
        except (ValueError, TypeError, TsUnsupportedAlgorithm) as e:
            raise ValueError("not an Ed25519 or SM2 public key") from e
    except ValueError as e:  # cryptography's message is long and says the same
        raise ValueError("not a PEM public key") from e
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 or SM2 public key")
    return key


def load_private_pem(data: bytes) -> PrivateKey:
    """An Ed25519 or SM2 private key from unencrypted PKCS#8 PEM; ValueError otherwise."""
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except UnsupportedAlgorithm:
        try:
            return Sm2PrivateKey(ts_serialization.load_pem_private_key(data, password=None))
        except (ValueError, TypeError, TsUnsupportedAlgorithm) as e:
            raise ValueError("not an Ed25519 or SM2 private key") from e
    except TypeError as e:  # encrypted PEM without a password
        raise ValueError("the private key is encrypted") from e
    except ValueError as e:
        raise ValueError("not a PEM private key") from e
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("not an Ed25519 or SM2 private key")
    return key
