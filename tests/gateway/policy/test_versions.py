"""Version store: content addresses, integrity, signatures (no stripped-signature bypass), pointer."""

from __future__ import annotations

import base64
import json
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contract import signing
from gateway.policy.bundle import load_bundle, read_policy_files
from gateway.policy.versions import (
    Signature,
    VersionError,
    VersionStore,
    generate_key,
    load_private_key,
    sign_files,
)

POLICIES = Path(__file__).resolve().parents[3] / "policies"


@pytest.fixture
def store(tmp_path: Path) -> VersionStore:
    return VersionStore(tmp_path / "policy")


def bundle(**edits: bytes):
    files = {**read_policy_files(POLICIES), **edits}
    from gateway.policy.bundle import bundle_from_files

    return bundle_from_files(files, include_tests=True)


def pem(key: signing.PrivateKey) -> str:
    return signing.public_pem(key.public_key())


def test_versions_are_content_addressed_and_idempotent(store: VersionStore) -> None:
    a = store.create(bundle(), author="alice", reason="first")
    again = store.create(bundle(), author="bob", reason="again")
    assert again == a and a.author == "alice"
    assert a.version == load_bundle(POLICIES).version  # what the engine reports as policy_version
    test_edit = bundle(**{"tests/x_test.rego": b"package govgw.x_test\n"})
    assert store.create(test_edit, author="a", reason="r").version != a.version
    assert [v.version for v in store.list()] == sorted(
        [a.version, test_edit.version], key=lambda v: v != a.version
    )


@pytest.mark.parametrize("tamper", ["edit", "add", "remove"])
def test_any_change_on_disk_makes_a_version_unreadable(store: VersionStore, tamper: str) -> None:
    info = store.create(bundle(), author="a", reason="r")
    root = store.bundle_dir(info.version)
    if tamper == "edit":
        (root / "share.rego").write_text((root / "share.rego").read_text() + "\n# x\n")
    elif tamper == "add":
        (root / "evil.rego").write_text("package govgw.evil\n")
    else:
        (root / "tests" / "share_test.rego").unlink()
    with pytest.raises(VersionError) as e:
        store.load(info.version)
    assert e.value.reason == "VERSION_CORRUPT"


def test_pointer_history_and_rollback_targets(store: VersionStore) -> None:
    a = store.create(bundle(), author="a", reason="r").version
    b = store.create(
        bundle(**{"tests/b_test.rego": b"package b\n"}), author="a", reason="r"
    ).version
    assert store.active() is None
    with pytest.raises(VersionError) as e:
        store.rollback_target()
    assert e.value.reason == "NO_EARLIER_VERSION"
    store.set_active(a, actor="alice", action="activate", reason="one", request_id="req_1")
    store.set_active(b, actor="bob", action="activate", reason="two")
    assert store.active_version() == b and store.active()["seq"] == 2
    assert [(h.seq, h.version, h.previous, h.actor) for h in store.history()] == [
        (1, a, "", "alice"),
        (2, b, a, "bob"),
    ]
    assert store.rollback_target() == a
    assert store.rollback_target(a) == a
    with pytest.raises(VersionError) as e:
        store.rollback_target(b)
    assert e.value.reason == "VERSION_ALREADY_ACTIVE"
    c = store.create(bundle(**{"tests/c_test.rego": b"package c\n"}), author="a", reason="r")
    with pytest.raises(VersionError) as e:
        store.rollback_target(c.version)
    assert e.value.reason == "VERSION_NEVER_ACTIVE"
    with pytest.raises(VersionError) as e:
        store.set_active("pv-000000000000", actor="x", action="activate", reason="r")
    assert e.value.reason == "VERSION_NOT_FOUND"


def test_readers_never_see_a_half_written_pointer(store: VersionStore) -> None:
    a = store.create(bundle(), author="a", reason="r").version
    b = store.create(
        bundle(**{"tests/b_test.rego": b"package b\n"}), author="a", reason="r"
    ).version
    store.set_active(a, actor="x", action="activate", reason="r")
    seen: set[str] = set()
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            doc = store.active()
            assert doc is not None and not doc.get("corrupt")
            seen.add(doc["version"])

    readers = [threading.Thread(target=read) for _ in range(2)]
    for t in readers:
        t.start()
    for i in range(60):
        store.set_active(b if i % 2 == 0 else a, actor="x", action="activate", reason="r")
    stop.set()
    for t in readers:
        t.join()
    assert seen <= {a, b}


# ----- signatures ----------------------------------------------------------------------------


# Administrators sign with Ed25519 or SM2 keys (GB/T 32918): every signature test runs for both.
@pytest.fixture(params=signing.ALGORITHMS)
def signer(
    store: VersionStore, tmp_path: Path, request: pytest.FixtureRequest
) -> signing.PrivateKey:
    priv, pub = generate_key(tmp_path / "keys", "alice", request.param)
    assert priv.stat().st_mode & 0o777 == 0o600
    assert signing.algorithm_of(load_private_key(priv)) == request.param
    store.set_trust(key_id="alice", public_key_pem=pub.read_text(), require_signature=True)
    return load_private_key(priv)


def test_signed_version_loads_when_signing_is_required(
    store: VersionStore, signer: signing.PrivateKey
) -> None:
    b = bundle()
    info = store.create(b, author="a", reason="r", signature=sign_files(b.files, signer, "alice"))
    loaded, served = store.load(info.version)
    assert loaded.signature is not None and served.version == info.version


def check(store: VersionStore, signature: Signature | None, files=None) -> str | None:
    b = bundle()
    problem = store.trust().check(signature, b.version, files or b.files)
    return problem[0] if problem else None


def test_missing_or_empty_signature_never_passes_when_required(
    store: VersionStore, signer: signing.PrivateKey
) -> None:
    assert check(store, None) == "SIGNATURE_REQUIRED"
    assert check(store, Signature("alice", "")) == "SIGNATURE_REQUIRED"
    assert check(store, Signature("", "AAAA")) == "SIGNATURE_REQUIRED"


def test_bad_signatures_are_refused(store: VersionStore, signer: signing.PrivateKey) -> None:
    b = bundle()
    good = sign_files(b.files, signer, "alice")
    assert check(store, good) is None
    other = sign_files(bundle(**{"tests/z_test.rego": b"package z\n"}).files, signer, "alice")
    assert check(store, other) == "SIGNATURE_INVALID"  # signed other content
    mallory = sign_files(b.files, signing.generate(signing.algorithm_of(signer)), "alice")
    assert check(store, mallory) == "SIGNATURE_INVALID"  # right id, wrong key
    other_kind = next(a for a in signing.ALGORITHMS if a != signing.algorithm_of(signer))
    cross = sign_files(b.files, signing.generate(other_kind), "alice")
    assert check(store, cross) == "SIGNATURE_INVALID"  # right id, a key of the other algorithm
    assert check(store, Signature("mallory", good.value)) == "SIGNATURE_KEY_UNTRUSTED"
    assert check(store, Signature("alice", "not base64!")) == "SIGNATURE_INVALID"
    # Signed as alice's key id, verified with another id's key: the id is in the payload.
    store.set_trust(key_id="bob", public_key_pem=pem(signer))
    assert check(store, Signature("bob", good.value)) == "SIGNATURE_INVALID"


def test_a_present_bad_signature_fails_even_when_signing_is_optional(
    store: VersionStore, signer: signing.PrivateKey
) -> None:
    store.set_trust(require_signature=False)
    assert check(store, None) is None
    bad = Signature("alice", base64.b64encode(b"\0" * 64).decode())
    assert check(store, bad) == "SIGNATURE_INVALID"


def test_stripping_the_signature_from_a_stored_version_does_not_bypass(
    store: VersionStore, signer: signing.PrivateKey
) -> None:
    b = bundle()
    info = store.create(b, author="a", reason="r", signature=sign_files(b.files, signer, "alice"))
    manifest = store.versions_dir / info.version / "manifest.json"
    doc = json.loads(manifest.read_text())
    doc["signature"] = None
    manifest.write_text(json.dumps(doc))
    with pytest.raises(VersionError) as e:
        store.load(info.version)
    assert e.value.reason == "SIGNATURE_REQUIRED"


def test_unreadable_trust_fails_closed(store: VersionStore, signer: signing.PrivateKey) -> None:
    b = bundle()
    good = sign_files(b.files, signer, "alice")
    store.trust_path.write_text("{not json")
    assert store.trust().require_signature and check(store, good) == "SIGNATURE_KEY_UNTRUSTED"


def test_trust_refuses_bad_keys(store: VersionStore) -> None:
    with pytest.raises(VersionError) as e:
        store.set_trust(key_id="k", public_key_pem="-----BEGIN PUBLIC KEY-----\nxx\n")
    assert e.value.reason == "KEY_INVALID"
    with pytest.raises(VersionError) as e:
        store.set_trust(key_id="bad id!", public_key_pem=pem(Ed25519PrivateKey.generate()))
    assert e.value.reason == "KEY_ID_INVALID"
