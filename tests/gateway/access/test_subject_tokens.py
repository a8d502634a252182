"""Subject tokens: every rejection reason, and the issuer registry."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from stdnum.cn import ric, uscc

from gateway.access.subject_tokens import (
    IssuerError,
    IssuerRegistry,
    SubjectIdentity,
    encode,
    load_private_key,
    mint,
    new_issuer_key,
    verify,
)
from gateway.errors import GovgwError
from gateway.subjects import LEGAL_ENTITY, PERSON

NOW = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)
BODY = "51322119850315001"
PERSON_ID = BODY + ric.calc_check_digit(BODY + "0")
ENTITY = "91513221MA62X0000" + uscc.calc_check_digit("91513221MA62X0000")


@pytest.fixture
def registry(tmp_path: Path) -> IssuerRegistry:
    return IssuerRegistry(tmp_path / "subject_issuers.json")


@pytest.fixture
def idp(registry: IssuerRegistry):
    private, public = new_issuer_key()
    registry.add("sc-idp", public)
    return load_private_key(private)


def claims(**kw) -> dict:
    base = {
        "iss": "sc-idp",
        "sub": PERSON_ID,
        "sub_type": "person",
        "aud": "govgw",
        "iat": int(NOW.timestamp()),
        "exp": int(NOW.timestamp()) + 600,
        "jti": "t-1",
    }
    return {k: v for k, v in {**base, **kw}.items() if v is not None}


def reason_of(token: str, registry: IssuerRegistry, *, caller: str = "app", now=NOW) -> str:
    with pytest.raises(GovgwError) as e:
        verify(token, registry, caller_id=caller, now=now)
    assert e.value.code == grpc.StatusCode.UNAUTHENTICATED
    # Neither the token nor the subject key in what the caller is told.
    assert PERSON_ID not in str(e.value) and (not token or token not in str(e.value))
    return e.value.reason


def test_a_good_token_names_its_subject(registry: IssuerRegistry, idp) -> None:
    who = verify(encode(claims(), idp), registry, caller_id="app", now=NOW)
    assert (who.key, who.kind, who.issuer, who.token_id) == (PERSON_ID, PERSON, "sc-idp", "t-1")
    assert PERSON_ID not in repr(who)
    ent = mint(idp, issuer="sc-idp", subject=ENTITY.lower(), now=NOW, azp="counter-1")
    who = verify(ent, registry, caller_id="counter-1", now=NOW)
    assert (who.key, who.kind) == (ENTITY, LEGAL_ENTITY)
    # A little clock skew either way is tolerated.
    late = NOW + timedelta(seconds=600 + 30)
    assert verify(encode(claims(), idp), registry, caller_id="app", now=late).key == PERSON_ID
    early = NOW - timedelta(seconds=30)
    assert verify(encode(claims(), idp), registry, caller_id="app", now=early).key == PERSON_ID


def _b64(obj) -> str:
    raw = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_every_rejection_has_its_reason(registry: IssuerRegistry, idp) -> None:
    stranger = load_private_key(new_issuer_key()[0])
    good = encode(claims(), idp)
    sig = good.split(".")[1]
    cases = {
        "": "SUBJECT_TOKEN_MISSING",
        "no-dot": "SUBJECT_TOKEN_INVALID",
        "a.b.c": "SUBJECT_TOKEN_INVALID",
        "a+/.b": "SUBJECT_TOKEN_INVALID",
        f"{_b64(b'not json')}.{sig}": "SUBJECT_TOKEN_INVALID",
        f"{_b64([1, 2])}.{sig}": "SUBJECT_TOKEN_INVALID",
        f"{_b64({'sub': PERSON_ID})}.{sig}": "SUBJECT_TOKEN_INVALID",
        "x" * 5000 + "." + sig: "SUBJECT_TOKEN_INVALID",
        encode(claims(iss="other-idp"), stranger): "SUBJECT_ISSUER_UNKNOWN",
        encode(claims(), stranger): "SUBJECT_TOKEN_SIGNATURE",
        f"{_b64(claims(sub=ENTITY))}.{sig}": "SUBJECT_TOKEN_SIGNATURE",
        encode(claims(jti=None), idp): "SUBJECT_TOKEN_INVALID",
        encode(claims(sub=""), idp): "SUBJECT_TOKEN_INVALID",
        encode(claims(iat=1.5), idp): "SUBJECT_TOKEN_INVALID",
        encode(claims(exp=True), idp): "SUBJECT_TOKEN_INVALID",
        encode(claims(exp=10**20), idp): "SUBJECT_TOKEN_INVALID",
        encode(claims(sub_type="robot"), idp): "SUBJECT_TOKEN_INVALID",
        encode(claims(aud=None), idp): "SUBJECT_TOKEN_AUDIENCE",
        encode(claims(aud="other-gateway"), idp): "SUBJECT_TOKEN_AUDIENCE",
        encode(claims(exp=int(NOW.timestamp()) + 31 * 60), idp): "SUBJECT_TOKEN_LIFETIME",
        encode(claims(exp=int(NOW.timestamp())), idp): "SUBJECT_TOKEN_LIFETIME",
        encode(claims(sub=PERSON_ID[:17] + ("1" if PERSON_ID[17] != "1" else "2")), idp): (
            "SUBJECT_KEY_INVALID"
        ),
        encode(claims(sub="513221"), idp): "SUBJECT_KEY_INVALID",
        encode(claims(sub=ENTITY[:17] + "0", sub_type="entity"), idp): "SUBJECT_KEY_INVALID",
        encode(claims(azp="other-app"), idp): "SUBJECT_TOKEN_CALLER_MISMATCH",
    }
    for token, reason in cases.items():
        assert reason_of(token, registry) == reason, token[:40]
    # Time: past its end (beyond the skew), and issued in the future.
    assert reason_of(good, registry, now=NOW + timedelta(seconds=600 + 61)) == (
        "SUBJECT_TOKEN_EXPIRED"
    )
    assert reason_of(good, registry, now=NOW - timedelta(seconds=61)) == (
        "SUBJECT_TOKEN_NOT_YET_VALID"
    )


def test_registry_refuses_bad_issuers_and_removal_takes_effect(
    registry: IssuerRegistry, idp, tmp_path: Path
) -> None:
    _, public = new_issuer_key()
    with pytest.raises(IssuerError, match="name"):
        registry.add("Bad Name", public)
    with pytest.raises(IssuerError, match="PEM"):
        registry.add("x-idp", "not a key")
    ec_pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    with pytest.raises(IssuerError, match="Ed25519"):
        registry.add("ec-idp", ec_pem)
    with pytest.raises(IssuerError, match="exists"):
        registry.add("sc-idp", public)
    with pytest.raises(IssuerError, match="no issuer"):
        registry.remove("nobody")
    # Another process's registry (the server's) sees the removal on its next check.
    server_side = IssuerRegistry(tmp_path / "subject_issuers.json")
    token = encode(claims(), idp)
    assert verify(token, server_side, caller_id="app", now=NOW).key == PERSON_ID
    registry.remove("sc-idp")
    assert reason_of(token, server_side) == "SUBJECT_ISSUER_UNKNOWN"
    assert [i["name"] for i in registry.list()] == []


def test_a_broken_registry_file_keeps_the_last_issuers_and_is_not_overwritten(
    registry: IssuerRegistry, idp, tmp_path: Path
) -> None:
    token = encode(claims(), idp)
    assert verify(token, registry, caller_id="app", now=NOW).key == PERSON_ID
    path = tmp_path / "subject_issuers.json"
    path.write_text("{ broken")
    # The running server keeps the issuers it read...
    assert verify(token, registry, caller_id="app", now=NOW).key == PERSON_ID
    # ...a fresh process cannot check tokens and says so (no crash, no guess)...
    with pytest.raises(GovgwError) as e:
        verify(token, IssuerRegistry(path), caller_id="app", now=NOW)
    assert (e.value.code, e.value.reason) == (
        grpc.StatusCode.UNAVAILABLE,
        "SUBJECT_ISSUERS_UNREADABLE",
    )
    # ...and nobody overwrites the file.
    with pytest.raises(IssuerError, match="cannot be read"):
        registry.add("other-idp", new_issuer_key()[1])
    assert path.read_text() == "{ broken"


def test_mint_guesses_the_kind_of_an_all_digit_uscc_that_breaks_stdnum(
    registry: IssuerRegistry, idp
) -> None:
    from tests.gateway.test_subjects import USCC_440909

    # stdnum's ric.is_valid raises KeyError on it; mint must not.
    tok = mint(idp, issuer="sc-idp", subject=USCC_440909, now=NOW)
    subject = verify(tok, registry, caller_id="app", now=NOW)
    assert (subject.kind, subject.key) == (LEGAL_ENTITY, USCC_440909)


def test_require_fresh_allows_five_minutes_since_iat(registry: IssuerRegistry, idp) -> None:
    from gateway.access.subject_tokens import FRESH_FOR, require_fresh

    tok = mint(idp, issuer="sc-idp", subject=PERSON_ID, now=NOW)
    subject = verify(tok, registry, caller_id="app", now=NOW)
    assert subject.issued_at == NOW and timedelta(minutes=5) == FRESH_FOR
    require_fresh(subject, NOW)
    require_fresh(subject, NOW + FRESH_FOR)
    with pytest.raises(GovgwError) as e:
        require_fresh(subject, NOW + FRESH_FOR + timedelta(seconds=1))
    assert (e.value.code, e.value.reason) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "SUBJECT_TOKEN_STALE",
    )
    # An identity built without a token has no iat: never fresh.
    bare = SubjectIdentity(PERSON_ID, PERSON, "sc-idp", "t", NOW + timedelta(minutes=10))
    with pytest.raises(GovgwError):
        require_fresh(bare, NOW)
