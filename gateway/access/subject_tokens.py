"""Subject tokens: how a data subject proves who they are (R8, R9).

The gateway never holds citizens' passwords. A registered identity provider
(the province's unified identity platform, 统一身份认证平台) authenticates the
citizen or company and issues a short-lived subject token:

    base64url(payload JSON) "." base64url(Ed25519 signature over the payload JSON)

payload: iss (a registered issuer), sub (ID number or USCC), sub_type
(person | entity), aud "govgw", iat, exp (at most 30 min after iat), jti and
optionally azp, the caller id the token is bound to. The caller that carries
the token (the citizen's app, or a service counter helping in person) sends it
in the metadata `x-govgw-subject-token`; the caller itself authenticates as
always. Issuers are registered by public key in the data directory
(`subject_issuers.json`, `govgw subjects issuers add`) or, with a database URL, in
a row of PostgreSQL's `documents` table shared by every node.

Every rejection is UNAUTHENTICATED with a precise reason; no message, log line
or audit record carries the token or the subject key.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import re
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gateway.errors import GovgwError, unauthenticated, unavailable
from gateway.files import exclusive, replace_atomically
from gateway.storage import Storage, documents
from gateway.subjects import LEGAL_ENTITY, PERSON, is_person_key, normalize_subject_key

TOKEN_HEADER = "x-govgw-subject-token"
AUDIENCE = "govgw"
MAX_LIFETIME = timedelta(minutes=30)
# Reading one's own raw records (GetMyRecords) needs a token issued at most this long
# ago: a token is a bearer credential valid for up to 30 minutes, and the citizen's app
# or a counter may hold one well after the citizen walked away. Requiring a recent
# sign-in for the one call that returns raw personal data (rather than the calls that
# file or list requests) narrows what a token left on a counter's screen or in an app's
# cache can reveal to the minutes after the citizen signed in. `azp`, when present,
# binds it to the caller as for every subject call.
FRESH_FOR = timedelta(minutes=5)
DEFAULT_TTL = timedelta(minutes=10)
# Clocks of the identity platform and the gateway differ a little.
SKEW = timedelta(seconds=60)
MAX_TOKEN_CHARS = 4096
SUB_TYPES = {"person": PERSON, "entity": LEGAL_ENTITY}
_ISSUER_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,62}$")

log = logging.getLogger("govgw.subject_tokens")


class IssuerError(ValueError):
    """An issuer registry operation was refused (bad name, key, duplicate, unknown)."""


@dataclass(frozen=True)
class SubjectIdentity:
    """An authenticated data subject. `key` is personal data: never log or audit it."""

    key: str  # normalized ID number or USCC
    kind: str  # gateway.subjects.PERSON | LEGAL_ENTITY
    issuer: str
    token_id: str
    expires_at: datetime
    issued_at: datetime | None = None  # None only for identities built without a token

    def __repr__(self) -> str:  # a stray log of the object must not show the key
        return f"SubjectIdentity(kind={self.kind!r}, issuer={self.issuer!r})"


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64d(text: str) -> bytes:
    if not re.fullmatch(r"[A-Za-z0-9_-]*", text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _invalid(message: str) -> GovgwError:
    return unauthenticated("SUBJECT_TOKEN_INVALID", message)


# ----- the issuer registry ------------------------------------------------------------------


STORE = "subject_issuers"  # its row in `documents`, and the name of its announcements


def _public_keys(docs: dict[str, dict[str, Any]]) -> dict[str, Ed25519PublicKey]:
    keys = {}
    for name, d in docs.items():
        key = serialization.load_pem_public_key(d["public_key"].encode())
        if isinstance(key, Ed25519PublicKey):
            keys[name] = key
    return keys


class IssuerRegistry:
    """Registered identity providers by public key; a JSON file every process re-reads
    when it changes (stat per check), so `issuers remove` takes effect on the next call.
    On PostgreSQL, one row reloaded in memory when announced (every node, within 1 s)."""

    def __init__(self, path: Path, storage: Storage | None = None) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._docs: dict[str, dict[str, Any]] = {}
        self.storage = documents.shared(storage)
        if self.storage is not None:
            self._db_load()
            self.storage.subscribe(STORE, self._db_load)  # in the listener thread

    def _db_load(self) -> None:
        assert self.storage is not None
        _, _, docs = documents.read(self.storage, STORE, {})
        keys = _public_keys(docs)  # written by `add`, which checked each key
        with self._lock:
            self._keys, self._docs = keys, dict(docs)

    def _refresh(self) -> None:
        if self.storage is not None:
            return  # kept current by the announcements: memory only
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._keys, self._docs = None, {}, {}
            return
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp == self._stamp:
            return
        with self._lock:
            try:
                doc = json.loads(self.path.read_text(encoding="utf-8"))
                docs = dict(doc["issuers"])
                keys = _public_keys(docs)
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
                # A hand-edited, broken file: keep the issuers last read (writers refuse it).
                log.error("subject issuer registry unreadable: %s", type(e).__name__)
                if self._stamp is None and not self._docs:
                    raise IssuerError("the issuer registry cannot be read") from None
                return
            self._keys, self._docs, self._stamp = keys, docs, stamp

    def key(self, name: str) -> Ed25519PublicKey | None:
        self._refresh()
        return self._keys.get(name)

    def list(self) -> list[dict[str, Any]]:
        self._refresh()
        return [{"name": n, **d} for n, d in sorted(self._docs.items())]

    @contextlib.contextmanager
    def _mutate(self) -> Iterator[dict[str, dict[str, Any]]]:
        if self.storage is not None:
            with documents.change(self.storage, STORE, {}) as docs:
                yield docs  # an exception in the body rolls the transaction back
            self._db_load()  # this node sees its own change at once
            return
        with exclusive(self.path):
            # Read afresh and strictly: a broken file is refused, never overwritten.
            self._stamp, self._docs, self._keys = None, {}, {}
            self._refresh()
            docs = json.loads(json.dumps(self._docs))
            yield docs
            text = json.dumps({"issuers": docs}, ensure_ascii=False, indent=1)
            replace_atomically(self.path, text.encode("utf-8"))

    def add(self, name: str, public_key_pem: str, *, description: str = "") -> dict[str, Any]:
        if not _ISSUER_RE.match(name):
            raise IssuerError("name: 2-63 characters of a-z, 0-9, '.', '_', '-'")
        try:
            key = serialization.load_pem_public_key(public_key_pem.encode())
        except (ValueError, TypeError) as e:
            raise IssuerError("public key: not a PEM public key") from e
        if not isinstance(key, Ed25519PublicKey):
            raise IssuerError("public key: must be an Ed25519 key")
        pem = key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()
        with self._mutate() as docs:
            if name in docs:
                raise IssuerError(f"name: issuer {name!r} already exists")
            docs[name] = {
                "public_key": pem,
                "description": description,
                "added_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        return {"name": name, **docs[name]}

    def remove(self, name: str) -> None:
        with self._mutate() as docs:
            if name not in docs:
                raise IssuerError(f"name: no issuer {name!r}")
            del docs[name]


# ----- minting (demos and tests; the identity platform does this in production) -------------


def new_issuer_key() -> tuple[str, str]:
    """(private PEM, public PEM) of a fresh Ed25519 issuer key."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def load_private_key(pem: str | bytes) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(pem if isinstance(pem, bytes) else pem.encode(), None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("issuer key: must be an Ed25519 private key")
    return key


def encode(payload: dict[str, Any], key: Ed25519PrivateKey) -> str:
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return f"{_b64e(body)}.{_b64e(key.sign(body))}"


def mint(
    key: Ed25519PrivateKey,
    *,
    issuer: str,
    subject: str,
    sub_type: str = "",
    ttl: timedelta = DEFAULT_TTL,
    azp: str = "",
    now: datetime | None = None,
) -> str:
    """A subject token. sub_type defaults from the key (an ID number's check digit)."""
    now = now or datetime.now(UTC)
    if not sub_type:
        sub_type = "person" if is_person_key(subject) else "entity"
    payload: dict[str, Any] = {
        "iss": issuer,
        "sub": subject.strip().upper(),
        "sub_type": sub_type,
        "aud": AUDIENCE,
        "iat": int(now.timestamp()),
        "exp": int((now + ttl).timestamp()),
        "jti": secrets.token_hex(12),
    }
    if azp:
        payload["azp"] = azp
    return encode(payload, key)


# ----- checking -----------------------------------------------------------------------------


def verify(
    token: str, issuers: IssuerRegistry, *, caller_id: str, now: datetime
) -> SubjectIdentity:
    """The subject the token proves, or UNAUTHENTICATED with the precise reason."""
    if not token:
        raise unauthenticated(
            "SUBJECT_TOKEN_MISSING",
            f"send the subject token from the identity platform in `{TOKEN_HEADER}` metadata",
        )
    if len(token) > MAX_TOKEN_CHARS or token.count(".") != 1:
        raise _invalid("the subject token is not `payload.signature`")
    body_part, sig_part = token.split(".")
    try:
        body, signature = _b64d(body_part), _b64d(sig_part)
        payload = json.loads(body)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise _invalid("the subject token is not base64url-encoded JSON") from None
    if not isinstance(payload, dict):
        raise _invalid("the subject token's payload is not a JSON object")
    issuer = payload.get("iss")
    if not isinstance(issuer, str) or not issuer:
        raise _invalid("the subject token names no issuer")
    try:
        public = issuers.key(issuer)
    except IssuerError:
        raise unavailable(
            "SUBJECT_ISSUERS_UNREADABLE", "the issuer registry cannot be read; try again later"
        ) from None
    if public is None:
        raise unauthenticated(
            "SUBJECT_ISSUER_UNKNOWN", "the subject token's issuer is not registered"
        )
    try:
        public.verify(signature, body)
    except InvalidSignature:
        raise unauthenticated(
            "SUBJECT_TOKEN_SIGNATURE", "the subject token's signature does not verify"
        ) from None
    # Signed by a registered issuer from here on: check what it claims.
    claims = {k: payload.get(k) for k in ("sub", "sub_type", "aud", "iat", "exp", "jti")}
    if not all(isinstance(claims[k], str) and claims[k] for k in ("sub", "sub_type", "jti")):
        raise _invalid("the subject token lacks sub, sub_type or jti")
    if not all(type(claims[k]) is int for k in ("iat", "exp")):
        raise _invalid("the subject token's iat and exp must be integer seconds")
    if claims["aud"] != AUDIENCE:
        raise unauthenticated(
            "SUBJECT_TOKEN_AUDIENCE", f"the subject token is not meant for `{AUDIENCE}`"
        )
    kind = SUB_TYPES.get(str(claims["sub_type"]))
    if kind is None:
        raise _invalid("the subject token's sub_type must be person or entity")
    try:
        issued = datetime.fromtimestamp(int(claims["iat"]), UTC)  # type: ignore[arg-type]
        expires = datetime.fromtimestamp(int(claims["exp"]), UTC)  # type: ignore[arg-type]
    except (OverflowError, OSError, ValueError):
        raise _invalid("the subject token's iat or exp is out of range") from None
    if expires <= issued or expires - issued > MAX_LIFETIME:
        raise unauthenticated(
            "SUBJECT_TOKEN_LIFETIME", "a subject token lives at most 30 minutes after iat"
        )
    if issued > now + SKEW:
        raise unauthenticated(
            "SUBJECT_TOKEN_NOT_YET_VALID", "the subject token is issued in the future"
        )
    if now >= expires + SKEW:
        raise unauthenticated(
            "SUBJECT_TOKEN_EXPIRED", "the subject token has expired; sign in again"
        )
    azp = payload.get("azp")
    if azp is not None and azp != caller_id:
        raise unauthenticated(
            "SUBJECT_TOKEN_CALLER_MISMATCH", "the subject token is bound to another caller"
        )
    try:
        key = normalize_subject_key(kind, str(claims["sub"]), "sub")
    except GovgwError:
        # The issuer signed a key that fails its check digit: refuse it, without the value.
        raise unauthenticated(
            "SUBJECT_KEY_INVALID", "the subject token's subject key is not a valid key"
        ) from None
    return SubjectIdentity(key, kind, issuer, str(claims["jti"]), expires, issued)


def require_fresh(
    subject: SubjectIdentity, now: datetime, fresh_for: timedelta = FRESH_FOR
) -> None:
    """UNAUTHENTICATED SUBJECT_TOKEN_STALE unless the token was issued at most `fresh_for`
    before `now` (see FRESH_FOR). A token issued a little in the future is already
    bounded by SKEW in `verify`."""
    if subject.issued_at is None or now - subject.issued_at > fresh_for:
        minutes = int(fresh_for.total_seconds() // 60)
        raise unauthenticated(
            "SUBJECT_TOKEN_STALE",
            f"reading your records needs a sign-in of the last {minutes} minutes; sign in again",
        )
