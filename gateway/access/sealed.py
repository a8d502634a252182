"""Sealing the personal data that subject-rights records hold at rest.

Correction statements, evidence references, withdrawal reasons and the
subject keys providers must see are encrypted with the deployment's AEAD
(gateway.crypto: AES-256-GCM, or SM4-GCM under national cryptography). The
key is derived by HKDF from the key ring's audit key, not taken from the pool
keys: pool keys are rotated and retired with the pool (gateway.pool.rotate),
which re-encrypts pool rows only, while these records must stay readable for
as long as they are kept; the audit key stays with the deployment. HKDF with
its own label keeps this key separate from the audit MAC it derives from.
Each sealed value is bound (associated data) to its record id and field name,
so a ciphertext moved to another record or field does not open.
"""

from __future__ import annotations

import base64
import os
from functools import cached_property

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gateway.crypto import Aead, InvalidTag
from gateway.keys import KeyRing

LABEL = b"govgw subject-rights records v1"
NONCE_BYTES = 12


class SealError(ValueError):
    """A sealed value does not open (wrong key, record or field, or tampered)."""


class Sealer:
    def __init__(self, keyring: KeyRing) -> None:
        self.keyring = keyring

    @cached_property
    def _aead(self) -> Aead:
        suite = self.keyring.mac_suite
        algorithm = hashes.SM3() if "sm3" in suite.name else hashes.SHA256()
        key = HKDF(algorithm, suite.data_key_bytes, salt=None, info=LABEL).derive(
            self.keyring.audit_key
        )
        return suite.aead(key)

    def seal(self, value: str, record_id: str, field_name: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        data = self._aead.encrypt(nonce, value.encode(), f"{record_id}/{field_name}".encode())
        return base64.b64encode(nonce + data).decode("ascii")

    def open(self, sealed: str, record_id: str, field_name: str) -> str:
        if not sealed:
            return ""
        try:
            raw = base64.b64decode(sealed, validate=True)
            data = self._aead.decrypt(
                raw[:NONCE_BYTES], raw[NONCE_BYTES:], f"{record_id}/{field_name}".encode()
            )
        except (InvalidTag, ValueError) as e:
            raise SealError(f"{field_name} of {record_id} does not open") from e
        return data.decode()
