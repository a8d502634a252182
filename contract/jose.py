"""JOSE for receipts: JWS compact serialization (RFC 7515) and JWK Sets (RFC 7517).

Ed25519 is RFC 8037's: `alg` EdDSA, keys `kty` OKP / `crv` Ed25519. SM2 has
no registered JOSE names; ours (docs/receipts.md) are `alg` SM2SM3 (the
GB/T 32918 signature with SM3 and the default identifier, DER r||s as
contract.signing makes it) and keys `kty` EC / `crv` SM2 with the affine
coordinates x, y (32 bytes each, base64url) as for RFC 7518's EC keys.

JSON that is signed is canonical per RFC 8785 (JCS), by Trail of Bits'
`rfc8785`, so any JCS implementation recomputes the same bytes.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from contract.signing import ED25519, SM2, PrivateKey, PublicKey, Sm2PublicKey, algorithm_of
from contract.signing import public_raw as _public_raw

# contract.signing's algorithm names <-> JWS `alg` values, in this one place.
JWS_ALG = {ED25519: "EdDSA", SM2: "SM2SM3"}
# RFC 9864 deprecates the polymorphic EdDSA for the fully specified Ed25519; we still
# issue EdDSA (RFC 8037, what most libraries verify today) and already accept Ed25519,
# so a later switch of JWS_ALG breaks no verifier of ours.
ACCEPTED_ALGS = {ED25519: ("EdDSA", "Ed25519"), SM2: ("SM2SM3",)}
RECEIPT_TYP = "govgw-receipt+jws"
BATCH_TYP = "govgw-receipt-batch+jws"


class JoseError(ValueError):
    """A JWS or JWK that cannot be read or does not verify; the message says why."""


# The largest integer every IEEE double between it and zero holds exactly (2^53 - 1).
_SAFE_INT = 2**53 - 1


def jcs(obj: Any) -> bytes:
    """RFC 8785 canonical JSON.

    Receipt claims are a flat object of strings with ASCII names; for those,
    sorted-key `json.dumps` writes exactly the RFC 8785 bytes (same member
    order, same escapes: the short forms, \\u00xx for other controls, all
    else as is) at a fraction of the pure-Python canonicalizer's cost, which
    dominated batch signing. The same holds for integers an IEEE double holds
    exactly (a batch document's `size`): plain decimals in both. A property
    test holds the two equal; anything else goes to `rfc8785`.
    """
    if (
        type(obj) is dict
        and all(type(k) is str and k.isascii() for k in obj)
        and all(
            type(v) is str or (type(v) is int and -_SAFE_INT <= v <= _SAFE_INT)
            for v in obj.values()
        )
    ):
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return rfc8785.dumps(obj)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: Any, name: str) -> bytes:
    """Unpadded base64url (RFC 7515 §2); JoseError naming the part otherwise."""
    if not isinstance(text, str) or "=" in text or not text.isascii():
        raise JoseError(f"{name} is not unpadded base64url")
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except binascii.Error as e:
        raise JoseError(f"{name} is not unpadded base64url") from e
    if b64url(raw) != text:  # one encoding per value: no stray bits in the last character
        raise JoseError(f"{name} is not unpadded base64url")
    return raw


def header_for(key_id: str, algorithm: str, typ: str) -> bytes:
    """The protected header, as the JCS bytes that are signed."""
    return jcs({"alg": JWS_ALG[algorithm], "kid": key_id, "typ": typ})


def signing_input(protected: bytes, payload: bytes) -> bytes:
    return f"{b64url(protected)}.{b64url(payload)}".encode("ascii")


def sign_compact(key: PrivateKey, key_id: str, typ: str, payload: bytes) -> str:
    protected = header_for(key_id, algorithm_of(key), typ)
    data = signing_input(protected, payload)
    return f"{data.decode('ascii')}.{b64url(key.sign(data))}"


def split_compact(token: Any) -> tuple[bytes, bytes, bytes]:
    """(protected header, payload, signature) of a compact JWS, unchecked."""
    if not isinstance(token, str) or token.count(".") != 2:
        raise JoseError("not a JWS compact serialization (three base64url parts)")
    head, body, sig = token.split(".")
    return (
        b64url_decode(head, "JWS header"),
        b64url_decode(body, "JWS payload"),
        b64url_decode(sig, "JWS signature"),
    )


def verify_signature(
    protected: bytes,
    payload: bytes,
    signature: bytes,
    keys: Mapping[str, PublicKey],
    typ: str,
) -> str:
    """The key id whose key verified the JWS, or JoseError saying what is wrong.

    The header is read (it must name a published key, its algorithm and our
    `typ`, and ask for no extension), then the signature is checked over the
    exact signing input with the key's own algorithm.
    """
    try:
        header = json.loads(protected.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise JoseError("JWS header is not UTF-8 JSON") from e
    if not isinstance(header, dict):
        raise JoseError("JWS header is not a JSON object")
    if "crit" in header:
        raise JoseError("JWS header asks for extensions (crit) this verifier does not know")
    if header.get("typ") != typ:
        raise JoseError(f"JWS typ must be {typ!r}")
    kid = header.get("kid")
    key = keys.get(kid) if isinstance(kid, str) else None
    if key is None:
        raise JoseError(f"unknown key id {kid!r}")
    if header.get("alg") not in ACCEPTED_ALGS[algorithm_of(key)]:
        raise JoseError(f"JWS alg {header.get('alg')!r} differs from key {kid}'s algorithm")
    if not signature:
        raise JoseError("bad signature: the JWS is not signed")
    try:
        key.verify(signature, signing_input(protected, payload))
    except InvalidSignature as e:
        raise JoseError(f"bad signature: does not verify under key {kid}") from e
    return kid


# -- JWK Sets ------------------------------------------------------------------


def jwk_of(key_id: str, key: PublicKey) -> dict[str, str]:
    algorithm = algorithm_of(key)
    common = {"kid": key_id, "use": "sig", "alg": JWS_ALG[algorithm]}
    if isinstance(key, Sm2PublicKey):
        point = key.point()  # 04 || X || Y
        return {"kty": "EC", "crv": "SM2", "x": b64url(point[1:33]), "y": b64url(point[33:])} | (
            common
        )
    return {"kty": "OKP", "crv": "Ed25519", "x": b64url(_public_raw(key))} | common


def jwks_document(keys: Iterable[tuple[str, PublicKey]]) -> dict[str, Any]:
    return {"keys": [jwk_of(kid, key) for kid, key in keys]}


def key_from_jwk(jwk: Mapping[str, Any], where: str) -> tuple[str, PublicKey]:
    """(kid, key) of one JWK of a receipt JWKS; JoseError naming the member otherwise."""
    kid = jwk.get("kid")
    if not isinstance(kid, str) or not kid:
        raise JoseError(f"{where}: kid missing")
    if jwk.get("use", "sig") != "sig":
        raise JoseError(f"{where}: use must be sig")
    kty, crv = jwk.get("kty"), jwk.get("crv")
    if (kty, crv) == ("OKP", "Ed25519"):
        x = b64url_decode(jwk.get("x"), f"{where}: x")
        if len(x) != 32:
            raise JoseError(f"{where}: x must be 32 bytes")
        key: PublicKey = Ed25519PublicKey.from_public_bytes(x)
    elif (kty, crv) == ("EC", "SM2"):
        x = b64url_decode(jwk.get("x"), f"{where}: x")
        y = b64url_decode(jwk.get("y"), f"{where}: y")
        if len(x) != 32 or len(y) != 32:
            raise JoseError(f"{where}: x and y must be 32 bytes each")
        try:
            key = Sm2PublicKey.from_point(b"\x04" + x + y)
        except ValueError as e:
            raise JoseError(f"{where}: not a point of the SM2 curve") from e
    else:
        raise JoseError(f"{where}: kty/crv must be OKP/Ed25519 or EC/SM2")
    alg = jwk.get("alg")
    if alg is not None and alg not in ACCEPTED_ALGS[algorithm_of(key)]:
        raise JoseError(f"{where}: alg {alg!r} does not fit a {crv} key")
    return kid, key
