"""ReceiptSigner issues receipts the SDK verifies, and they carry no personal data."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum.cn import ric, uscc

from contract.receipts import (
    ReceiptInvalid,
    SignedReceipt,
    keyset_document,
    load_public_keys,
    open_commitment,
    subject_commitment,
    verify_receipt,
)
from gateway import keys as keyring_mod
from gateway.crypto import DEFAULT_SUITE, SM_SUITE
from gateway.keys import KeyRing
from gateway.receipts import ReceiptSigner

NOW = datetime(2024, 5, 1, 16, 0, 0, 123456, tzinfo=timezone(timedelta(hours=8)))


# Every test here runs for both kinds of receipt key: Ed25519 (the AES suite's)
# and SM2 (the SM suite's, GB/T 32918).
@pytest.fixture(scope="module", params=[DEFAULT_SUITE, SM_SUITE], ids=["ed25519", "sm2"])
def ring(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> KeyRing:
    return keyring_mod.generate(tmp_path_factory.mktemp("keys") / "keyring.json", request.param)


@pytest.fixture(scope="module")
def signer(ring: KeyRing) -> ReceiptSigner:
    return ReceiptSigner(ring.receipt_key)


def issue(signer: ReceiptSigner, subject: str, **kw: object) -> SignedReceipt:
    args: dict[str, object] = {
        "caller": "counter-wenchuan",
        "action": "VerifyIdentity",
        "outcome": "MATCH",
        "dataset": "population",
        "subject": subject,
        "policy_version": "v7",
        "issued_at": NOW,
        **kw,
    }
    return signer.issue(**args)  # type: ignore[arg-type]


def keyset_file(tmp_path: Path, signer: ReceiptSigner) -> Path:
    path = tmp_path / "receipt-keys.json"
    path.write_text(json.dumps(keyset_document(signer.public_keys())))
    return path


def test_issued_receipt_verifies_offline(
    tmp_path: Path, ring: KeyRing, signer: ReceiptSigner
) -> None:
    r = issue(signer, "513221199001011235")
    claims = verify_receipt(r, load_public_keys(keyset_file(tmp_path, signer)))
    commitment = subject_commitment(signer.algorithm, r.salt, "513221199001011235")
    assert re.fullmatch(r"rcpt_[0-9a-f]{32}", r.receipt_id)
    assert r.key_id == ring.receipt_key.key_id
    assert claims == {
        "receipt_id": r.receipt_id,
        "caller": "counter-wenchuan",
        "action": "VerifyIdentity",
        "outcome": "MATCH",
        "dataset": "population",
        "subject_commitment": commitment,
        "policy_version": "v7",
        "issued_at": "2024-05-01T08:00:00.123456Z",  # normalized to UTC
        "alg": "sm2" if ring.suite == SM_SUITE else "ed25519",
    }


def test_receipt_survives_the_wire_and_the_file(
    tmp_path: Path, ring: KeyRing, signer: ReceiptSigner
) -> None:
    r = issue(signer, "x")
    keys = load_public_keys(keyset_file(tmp_path, signer))
    wire = type(r.to_proto()).FromString(r.to_proto().SerializeToString())
    assert verify_receipt(SignedReceipt.from_proto(wire), keys)["receipt_id"] == r.receipt_id
    saved = json.loads(json.dumps(r.to_json()))
    assert verify_receipt(SignedReceipt.from_json(saved), keys) == r.claims()


def test_pem_from_public_keys_derives_the_same_key_id(
    tmp_path: Path, ring: KeyRing, signer: ReceiptSigner
) -> None:
    ((key_id, algorithm, pem),) = signer.public_keys()
    assert algorithm == ("sm2" if ring.suite == SM_SUITE else "ed25519")
    path = tmp_path / "receipt.pem"
    path.write_text(pem)
    assert list(load_public_keys(path)) == [key_id] == [signer.key_id]


def test_receipt_ids_are_unique(ring: KeyRing, signer: ReceiptSigner) -> None:
    ids = {issue(signer, "x").receipt_id for _ in range(200)}
    assert len(ids) == 200


def test_another_gateways_key_does_not_verify(
    tmp_path: Path, ring: KeyRing, signer: ReceiptSigner
) -> None:
    other = ReceiptSigner(keyring_mod.generate(tmp_path / "other.json").receipt_key)
    r = issue(other, "x")
    with pytest.raises(ReceiptInvalid, match="unknown key id"):
        verify_receipt(r, load_public_keys(keyset_file(tmp_path, signer)))


def test_default_issue_time_is_now_in_utc(ring: KeyRing, signer: ReceiptSigner) -> None:
    before = datetime.now(UTC)
    r = issue(signer, "", issued_at=None)
    at = datetime.fromisoformat(r.claims()["issued_at"])
    assert before <= at <= datetime.now(UTC)
    assert r.claims()["issued_at"].endswith("Z")


@pytest.mark.parametrize(
    ("kw", "why"),
    [
        ({"dataset": ""}, "dataset"),
        ({"caller": ""}, "caller"),
        ({"policy_version": ""}, "policy_version"),
        ({"issued_at": datetime(2024, 5, 1)}, "timezone-aware"),
    ],
)
def test_unfit_claims_are_refused(ring: KeyRing, signer: ReceiptSigner, kw: dict, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        issue(signer, "x", **kw)  # kw overrides the defaults


@st.composite
def id_numbers(draw: st.DrawFn) -> str:
    born = draw(st.dates(min_value=date(1930, 1, 1), max_value=date(2020, 12, 31)))
    body = draw(st.sampled_from(["513221", "513224", "110101"])) + born.strftime("%Y%m%d")
    body += draw(st.from_regex(r"\A[0-9]{3}\Z"))
    return body + ric.calc_check_digit(body + "0")


@st.composite
def usccs(draw: st.DrawFn) -> str:
    body = draw(st.from_regex(r"\A[0-9]{8}[0-9ABCDEFGHJKLMNPQRTUWXY]{9}\Z"))
    return body + uscc.calc_check_digit(body + "0")


@settings(max_examples=100, deadline=None)
@given(key=st.one_of(id_numbers(), usccs()))
def test_payload_holds_the_commitment_never_the_subject_key(
    ring: KeyRing, signer: ReceiptSigner, key: str
) -> None:
    # USCC first: stdnum's ric.is_valid raises KeyError (not False) on some all-digit
    # USCCs whose first six digits name a region without a county (e.g. 440909...).
    assert uscc.is_valid(key) or ric.is_valid(key)
    r = issue(signer, key.lower())
    again = issue(signer, key)
    assert len(r.salt) == 16 and r.salt != again.salt
    # Salted: two receipts about one subject do not link, nor match the audit's keyed hash.
    commitments = {r.claims()["subject_commitment"], again.claims()["subject_commitment"]}
    assert len(commitments) == 2 and ring.subject_hash(key) not in commitments
    assert open_commitment(r, key, r.salt) and open_commitment(again, key, again.salt.hex())
    assert not open_commitment(r, key, again.salt)
    assert key.encode() not in r.payload
    assert key not in json.dumps(r.to_json())
    assert key not in r.receipt_id


def test_disputed_fields_are_claimed_and_signed(
    tmp_path: Path, ring: KeyRing, signer: ReceiptSigner
) -> None:
    """A field under correction (R8) is in the signed claims; altering it breaks the signature."""
    disputed = "population.basic:name:2026-06-01"
    r = issue(signer, "x", disputed_fields=disputed)
    keys = load_public_keys(keyset_file(tmp_path, signer))
    assert verify_receipt(r, keys)["disputed_fields"] == disputed
    forged = SignedReceipt(
        r.receipt_id, r.key_id, r.payload.replace(b"name:", b"phone:"), r.signature, r.protected
    )
    with pytest.raises(ReceiptInvalid):
        verify_receipt(forged, keys)
    assert "disputed_fields" not in issue(signer, "x").claims()
