"""Batch receipts: one signature over a Merkle root, each receipt verifiable on its own.

Every proof is checked by the one verifier the SDK and the CLI use; a receipt
fails when its leaf, a sibling, the root, the signing key or its index is
not the one the batch signed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest

from contract import merkle
from contract.jose import b64url, b64url_decode, jcs, sign_compact, split_compact
from contract.receipts import (
    BatchProof,
    ReceiptInvalid,
    SignedReceipt,
    key_id_for,
    keyset_document,
    open_commitment,
    public_keys_from_keyset,
    verify_receipt,
)
from contract.signing import ED25519, SM2, generate, public_pem
from gateway.keys import ReceiptSigningKey
from gateway.receipts import ReceiptRequest, ReceiptSigner

pytestmark = pytest.mark.requirement("R12")

ID_NUMBER = "51322119900101123X"


def signer_for(algorithm: str) -> ReceiptSigner:
    key = generate(algorithm)
    return ReceiptSigner(ReceiptSigningKey(key_id_for(key.public_key()), key, ""))


def keys_of(*signers: ReceiptSigner) -> dict:
    """The keys as a verifier gets them: through the published JWK Set."""
    entries = [e for s in signers for e in s.public_keys()]
    return public_keys_from_keyset(json.loads(json.dumps(keyset_document(entries))))


def request(i: int, subject: str = "") -> ReceiptRequest:
    return ReceiptRequest(
        "agency-audit", "verify.identity", "MATCH" if i % 3 else "NO_MATCH", "population",
        subject or f"51322119900101{i % 1000:03d}1", "v7",
    )  # fmt: skip


@pytest.fixture(scope="module", params=[ED25519, SM2])
def signer(request: pytest.FixtureRequest) -> ReceiptSigner:
    return signer_for(request.param)


@pytest.fixture(scope="module")
def batch(signer: ReceiptSigner) -> list[SignedReceipt]:
    return signer.issue_batch([request(i) for i in range(13)])


def test_every_receipt_of_a_batch_verifies_alone_after_the_wire_and_the_file(
    signer: ReceiptSigner, batch: list[SignedReceipt]
) -> None:
    keys = keys_of(signer)
    signatures = {r.batch.signature for r in batch if r.batch}
    assert len(signatures) == 1  # ONE signature for the whole batch
    for r in batch:
        wire = type(r.to_proto()).FromString(r.to_proto().SerializeToString())
        assert verify_receipt(SignedReceipt.from_proto(wire), keys) == r.claims()
        saved = SignedReceipt.from_json(json.loads(json.dumps(r.to_json())))
        assert verify_receipt(saved, keys)["receipt_id"] == r.receipt_id


def test_the_batch_signature_names_the_suites_hash(
    signer: ReceiptSigner, batch: list[SignedReceipt]
) -> None:
    protected, body, _ = split_compact(batch[0].batch.signature)  # type: ignore[union-attr]
    doc = json.loads(body)
    sm = signer.algorithm == SM2
    assert doc["hash"] == ("sm3" if sm else "sha-256") and doc["size"] == 13
    assert json.loads(protected) == {
        "alg": "SM2SM3" if sm else "EdDSA",
        "kid": signer.key_id,
        "typ": "govgw-receipt-batch+jws",
    }
    # The root is the RFC 6962 tree hash of the payloads, recomputed here from scratch.
    h = merkle.hasher(doc["hash"])
    assert doc["root"] == rfc6962_root(h, [r.payload for r in batch]).hex()


def rfc6962_root(h, leaves: list[bytes]) -> bytes:
    """MTH of RFC 6962 §2.1, recursively, as the RFC writes it."""
    if len(leaves) == 1:
        return h(b"\x00" + leaves[0])
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return h(b"\x01" + rfc6962_root(h, leaves[:k]) + rfc6962_root(h, leaves[k:]))


def test_a_changed_leaf_fails(signer: ReceiptSigner, batch: list[SignedReceipt]) -> None:
    r = batch[5]
    payload = r.payload.replace(b'"MATCH"', b'"NO_MATCH"')
    assert payload != r.payload
    with pytest.raises(ReceiptInvalid, match="does not lead to the signed root"):
        verify_receipt(dataclasses.replace(r, payload=payload), keys_of(signer))


def test_a_changed_sibling_fails(signer: ReceiptSigner, batch: list[SignedReceipt]) -> None:
    r = batch[6]
    assert r.batch is not None
    for level in range(len(r.batch.path)):
        path = list(r.batch.path)
        path[level] = bytes([path[level][0] ^ 1]) + path[level][1:]
        proof = dataclasses.replace(r.batch, path=tuple(path))
        with pytest.raises(ReceiptInvalid, match="does not lead to the signed root"):
            verify_receipt(dataclasses.replace(r, batch=proof), keys_of(signer))
    # A sibling too many or too few fails as well.
    for path in (r.batch.path[:-1], (*r.batch.path, r.batch.path[0])):
        proof = dataclasses.replace(r.batch, path=path)
        with pytest.raises(ReceiptInvalid, match="does not lead to the signed root"):
            verify_receipt(dataclasses.replace(r, batch=proof), keys_of(signer))


def test_a_wrong_leaf_index_fails(signer: ReceiptSigner, batch: list[SignedReceipt]) -> None:
    r = batch[4]
    assert r.batch is not None
    for index in (3, 5, 12, 13, 1 << 40):
        proof = dataclasses.replace(r.batch, index=index)
        with pytest.raises(ReceiptInvalid, match="does not lead to the signed root"):
            verify_receipt(dataclasses.replace(r, batch=proof), keys_of(signer))


def resigned(signer: ReceiptSigner, r: SignedReceipt, **changes: object) -> SignedReceipt:
    """r with its batch document changed and signed again by `signer`'s key."""
    assert r.batch is not None
    _, body, _ = split_compact(r.batch.signature)
    doc = json.loads(body) | changes
    key = signer._key  # the test's own key, to sign a forged batch
    token = sign_compact(key.private_key, key.key_id, "govgw-receipt-batch+jws", jcs(doc))
    return dataclasses.replace(
        r, key_id=key.key_id, batch=dataclasses.replace(r.batch, signature=token)
    )


def test_a_changed_root_fails(signer: ReceiptSigner, batch: list[SignedReceipt]) -> None:
    r = batch[7]
    assert r.batch is not None
    head, body, sig = r.batch.signature.split(".")
    doc = json.loads(b64url_decode(body, "body"))
    doc["root"] = hashlib.sha256(b"another batch").hexdigest()
    token = ".".join((head, b64url(jcs(doc)), sig))
    forged = dataclasses.replace(r, batch=dataclasses.replace(r.batch, signature=token))
    with pytest.raises(ReceiptInvalid, match="bad signature"):
        verify_receipt(forged, keys_of(signer))
    # Even signed properly, another root does not take this receipt in.
    with pytest.raises(ReceiptInvalid, match="does not lead to the signed root"):
        verify_receipt(resigned(signer, r, root=doc["root"]), keys_of(signer))


def test_a_root_signed_by_another_key_fails(
    signer: ReceiptSigner, batch: list[SignedReceipt]
) -> None:
    other = signer_for(signer.algorithm)
    forged = resigned(other, batch[2])
    # Unknown to the verifier: refused by key id.
    with pytest.raises(ReceiptInvalid, match="unknown key id"):
        verify_receipt(forged, keys_of(signer))
    # Its kid relabelled as the gateway's: the signature does not verify under the gateway's key.
    head, body, sig = forged.batch.signature.split(".")  # type: ignore[union-attr]
    header = json.loads(b64url_decode(head, "head")) | {"kid": signer.key_id}
    token = ".".join((b64url(jcs(header)), body, sig))
    relabelled = dataclasses.replace(
        forged, key_id=signer.key_id, batch=dataclasses.replace(forged.batch, signature=token)
    )
    with pytest.raises(ReceiptInvalid, match="bad signature"):
        verify_receipt(relabelled, keys_of(signer, other))


def test_a_batch_document_with_another_size_or_hash_fails(
    signer: ReceiptSigner, batch: list[SignedReceipt]
) -> None:
    r = batch[12]
    with pytest.raises(ReceiptInvalid, match="does not lead to the signed root"):
        verify_receipt(resigned(signer, r, size=14), keys_of(signer))
    other_hash = "sha-256" if signer.algorithm == SM2 else "sm3"
    with pytest.raises(ReceiptInvalid, match="does not fit key"):
        verify_receipt(resigned(signer, r, hash=other_hash), keys_of(signer))
    with pytest.raises(ReceiptInvalid, match="batch_time, hash, root, size"):
        verify_receipt(resigned(signer, r, extra="x"), keys_of(signer))


def test_a_batch_of_one(signer: ReceiptSigner) -> None:
    (r,) = signer.issue_batch([request(0, ID_NUMBER)])
    assert r.batch is not None and r.batch.path == () and r.batch.index == 0
    assert verify_receipt(r, keys_of(signer))["outcome"] == "NO_MATCH"
    assert open_commitment(r, ID_NUMBER.lower(), r.salt)


def test_a_batch_of_ten_thousand_every_proof_checks(signer: ReceiptSigner) -> None:
    batch = signer.issue_batch([request(i) for i in range(10_000)])
    assert len({r.receipt_id for r in batch}) == 10_000
    assert len({r.salt for r in batch}) == 10_000
    (token,) = {r.batch.signature for r in batch if r.batch}
    _, body, _ = split_compact(token)
    doc = json.loads(body)
    h = merkle.hasher(doc["hash"])
    root = bytes.fromhex(doc["root"])
    # Every inclusion proof leads to the signed root; 14 siblings at most (2^14 > 10,000).
    for i, r in enumerate(batch):
        assert r.batch is not None and r.batch.index == i and len(r.batch.path) <= 14
        assert merkle.root_from_path(h, r.payload, i, 10_000, r.batch.path) == root
    keys = keys_of(signer)
    for i in (0, 1, 4095, 8191, 8192, 9998, 9999):  # edges of the unbalanced right side
        assert verify_receipt(batch[i], keys)["receipt_id"] == batch[i].receipt_id
        assert open_commitment(batch[i], request(i).subject, batch[i].salt)


def test_proofs_of_every_tree_size_up_to_forty(signer: ReceiptSigner) -> None:
    h = merkle.hasher("sha-256")
    for size in range(1, 41):
        leaves = [f"leaf {i}".encode() for i in range(size)]
        root, paths = merkle.build(h, leaves)
        assert root == rfc6962_root(h, leaves)
        for i in range(size):
            assert merkle.root_from_path(h, leaves[i], i, size, paths[i]) == root
            if size > 1:  # the same proof at another index or size never leads there
                assert merkle.root_from_path(h, leaves[i], (i + 1) % size, size, paths[i]) != root
            # An index outside the tree is refused. (The size alone may change a
            # proof's verdict or not; it is signed with the root, so it cannot be moved.)
            assert merkle.root_from_path(h, leaves[i], i, i, paths[i]) is None


def test_an_empty_batch_is_refused(signer: ReceiptSigner) -> None:
    with pytest.raises(ValueError, match="at least one"):
        signer.issue_batch([])


def test_single_receipts_keep_working_beside_batches(signer: ReceiptSigner) -> None:
    r = signer.issue(
        caller="c", action="verify.identity", outcome="MATCH", dataset="population",
        subject=ID_NUMBER, policy_version="v7",
    )  # fmt: skip
    assert r.form == "jws" and r.batch is None
    assert verify_receipt(r, keys_of(signer))["subject_commitment"]
    # A JWS receipt dressed as a batch receipt has no batch signature to lean on.
    fake = dataclasses.replace(r, protected=b"", signature=b"", batch=BatchProof(0, (), r.jws()))
    with pytest.raises(ReceiptInvalid, match="typ"):
        verify_receipt(fake, keys_of(signer))


def test_the_pem_of_a_published_key_is_what_the_jwks_holds(signer: ReceiptSigner) -> None:
    ((kid, _, pem),) = signer.public_keys()
    assert public_pem(keys_of(signer)[kid]) == pem


def test_a_batch_signature_checked_once_still_fails_under_another_key(
    signer: ReceiptSigner, batch: list[SignedReceipt]
) -> None:
    """The verifier checks a batch's signature once and remembers it: only for the very
    key it verified with. The same receipts under a key set whose kid names another key
    fail, however often they passed before."""
    good = keys_of(signer)
    for r in batch:
        verify_receipt(r, good)
    other = signer_for(signer.algorithm)
    swapped = {signer.key_id: next(iter(keys_of(other).values()))}
    with pytest.raises(ReceiptInvalid):
        verify_receipt(batch[0], swapped)
    # A changed leaf of a remembered batch fails too: the proof is checked every time.
    changed = dataclasses.replace(batch[1], payload=batch[1].payload.replace(b"v7", b"v8"))
    with pytest.raises(ReceiptInvalid):
        verify_receipt(changed, good)
