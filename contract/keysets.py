"""Receipt verification keys: JWK Sets (RFC 7517, contract.jose), PEM, the former keyset.

`govgw receipt keys --out` and the data directory's keys/receipt-keys.json
are JWK Sets; files of the former keyset format and PEM public keys are
still read, so keysets saved before keep verifying.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from contract.jose import JoseError, jwks_document, key_from_jwk
from contract.signing import ALGORITHMS, PublicKey, algorithm_of, load_public_pem, public_raw

_PEM_BLOCK = re.compile(rb"-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----", re.DOTALL)


class KeySetError(ValueError):
    """A public key file could not be read as a PEM key or a JSON keyset."""


def key_id_for(public_key: PublicKey) -> str:
    """ "rk-" + first 16 hex of SHA-256 of the raw key (Ed25519: 32 bytes; SM2: 04||X||Y)."""
    return "rk-" + hashlib.sha256(public_raw(public_key)).hexdigest()[:16]


def keyset_document(entries: Iterable[tuple[str, str, str]]) -> dict[str, Any]:
    """The JWK Set (`govgw receipt keys --out`) for (key_id, algorithm, pem) entries."""
    return jwks_document((kid, _load_pem(pem.encode(), kid)) for kid, _alg, pem in entries)


def pem_keyset_document(entries: Iterable[tuple[str, str, str]]) -> dict[str, Any]:
    """The keyset format before JWKS, which load_public_keys still reads."""
    return {
        "keys": [
            {"key_id": kid, "algorithm": alg, "public_key_pem": pem} for kid, alg, pem in entries
        ]
    }


def _load_pem(block: bytes, where: str) -> PublicKey:
    try:
        return load_public_pem(block)
    except ValueError as e:
        raise KeySetError(f"{where}: {e}") from e


def _add(keys: dict[str, PublicKey], key_id: str, key: PublicKey) -> None:
    old = keys.get(key_id)
    if old is not None and key_id_for(old) != key_id_for(key):
        raise KeySetError(f"key id {key_id} names two different keys")
    keys[key_id] = key


def load_public_keys(path: Path) -> dict[str, PublicKey]:
    """Receipt verification keys by key id.

    Accepts a JWK Set, PEM public keys (one or more blocks; key ids derived
    as the gateway derives them) or the former JSON keyset {"keys": [{key_id,
    algorithm, public_key_pem}]}.
    """
    data = Path(path).read_bytes()
    keys: dict[str, PublicKey] = {}
    if data.lstrip().startswith(b"-----BEGIN"):
        blocks = _PEM_BLOCK.findall(data)
        if not blocks:
            raise KeySetError(f"{path}: no PEM public key block")
        for block in blocks:
            key = _load_pem(block, str(path))
            _add(keys, key_id_for(key), key)
        return keys
    try:
        doc = json.loads(data)
    except ValueError as e:
        raise KeySetError(f"{path}: neither a PEM public key nor a JSON keyset") from e
    return public_keys_from_keyset(doc, str(path))


def public_keys_from_keyset(doc: Any, where: str = "keyset") -> dict[str, PublicKey]:
    """Keys by key id from a keyset document (what ListReceiptKeys returns)."""
    entries = doc.get("keys") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise KeySetError(f"{where}: neither a PEM public key nor a JSON keyset")
    keys: dict[str, PublicKey] = {}
    for i, entry in enumerate(entries):
        at = f"{where}: keys[{i}]"
        if isinstance(entry, dict) and "kty" in entry:
            try:
                _add(keys, *key_from_jwk(entry, at))
            except JoseError as e:
                raise KeySetError(str(e)) from e
            continue
        if not isinstance(entry, dict) or not isinstance(entry.get("key_id"), str):
            raise KeySetError(f"{at}: key_id missing")
        algorithm = entry.get("algorithm")
        if algorithm not in ALGORITHMS:
            raise KeySetError(f"{at}: algorithm must be one of {', '.join(ALGORITHMS)}")
        pem = entry.get("public_key_pem")
        if not isinstance(pem, str):
            raise KeySetError(f"{at}: public_key_pem missing")
        key = _load_pem(pem.encode(), at)
        if algorithm_of(key) != algorithm:
            raise KeySetError(f"{at}: algorithm {algorithm!r} but the key is {algorithm_of(key)}")
        _add(keys, entry["key_id"], key)
    return keys
