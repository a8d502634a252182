"""The policy version store on both backends (the data directory's files; PostgreSQL
shared by nodes): content addresses, tamper detection on read, the active pointer
with its history, rollback targets, trust and required signatures, and a change made
by one node seen by another."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from contract import signing
from gateway.policy.bundle import PolicyBundle, bundle_from_files, read_policy_files
from gateway.policy.serving import policy_store
from gateway.policy.versions import VersionError, VersionStore, sign_files
from gateway.storage import Storage, open_storage
from tests.support import holds_within

POLICIES = Path(__file__).resolve().parents[2] / "policies"

Opener = Callable[[], VersionStore]


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Opener, str]]:
    """(open a store, the database URL or ''): each call opens the store as another
    process ("node") would, on its own storage."""
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else ""
    opened: list[Storage] = []

    def open_one() -> VersionStore:
        opened.append(open_storage(url, tmp_path))
        return policy_store(tmp_path, opened[-1])

    yield open_one, url
    for storage in opened:
        storage.close()


def bundle(marker: str = "") -> PolicyBundle:
    """The shipped policies; `marker` makes another version (a test file of its own)."""
    files = read_policy_files(POLICIES)
    if marker:
        files[f"tests/{marker}_test.rego"] = f"package govgw.{marker}_test\n".encode()
    return bundle_from_files(files, include_tests=True)


def sql(url: str, statement: str, *args: object) -> None:
    """Write to the database behind govgw's back, as someone with its password could."""
    with psycopg.connect(url, autocommit=True, options="-c search_path=govgw") as db:
        db.execute(statement, args)


def test_versions_are_content_addressed_and_shared(backend: tuple[Opener, str]) -> None:
    open_store, _ = backend
    store = open_store()
    a = store.create(bundle(), author="alice", reason="first")
    assert store.create(bundle(), author="bob", reason="again") == a  # the same files
    b = store.create(bundle("b"), author="bob", reason="second", parent=a.version)
    assert a.version == bundle().version and b.version != a.version
    other = open_store()  # another node
    assert [v.version for v in other.list()] == [a.version, b.version]
    info, files = other.read_files(a.version)
    assert info == a and files == bundle().files  # byte for byte
    assert other.load(b.version)[1].version == b.version
    assert sorted(other.version_ids()) == sorted([a.version, b.version])
    for bad, reason in (("pv-000000000000", "VERSION_NOT_FOUND"), ("../x", "VERSION_INVALID")):
        with pytest.raises(VersionError) as e:
            other.read_files(bad)
        assert e.value.reason == reason


def _tamper(store: VersionStore, url: str, version: str, how: str) -> None:
    if url:  # a row of the database
        if how == "edit":
            sql(url, "UPDATE policy_files SET content = content || %s"
                " WHERE version = %s AND path = 'share.rego'", b"\n# x\n", version)  # fmt: skip
        elif how == "add":
            sql(url, "INSERT INTO policy_files VALUES (%s, 'evil.rego', %s)", version,
                b"package govgw.evil\n")  # fmt: skip
        else:
            sql(url, "DELETE FROM policy_files WHERE version = %s"
                " AND path = 'tests/share_test.rego'", version)  # fmt: skip
        return
    root = store.bundle_dir(version)  # a file of the data directory
    if how == "edit":
        (root / "share.rego").write_text((root / "share.rego").read_text() + "\n# x\n")
    elif how == "add":
        (root / "evil.rego").write_text("package govgw.evil\n")
    else:
        (root / "tests" / "share_test.rego").unlink()


@pytest.mark.parametrize("how", ["edit", "add", "remove"])
def test_a_version_changed_behind_govgw_is_refused(backend: tuple[Opener, str], how: str) -> None:
    open_store, url = backend
    store = open_store()
    info = store.create(bundle(), author="a", reason="r")
    _tamper(store, url, info.version, how)
    for reader in (store, open_store()):
        with pytest.raises(VersionError) as e:
            reader.load(info.version)
        assert e.value.reason == "VERSION_CORRUPT"
        with pytest.raises(VersionError), reader.checkable(info.version):
            pass  # nor is it handed to the child-process check


@pytest.mark.requirement("R10")
def test_activation_rollback_and_history_are_seen_by_every_node(
    backend: tuple[Opener, str],
) -> None:
    open_store, _ = backend
    store, other = open_store(), open_store()
    a = store.create(bundle(), author="a", reason="r").version
    b = store.create(bundle("b"), author="a", reason="r").version
    assert other.active() is None and other.history() == []
    with pytest.raises(VersionError) as e:
        other.rollback_target()
    assert e.value.reason == "NO_EARLIER_VERSION"
    store.set_active(a, actor="alice", action="activate", reason="一", request_id="req_1")
    before = other.stamp()
    store.set_active(b, actor="bob", action="activate", reason="二")
    # The other node learns of the switch within 1 s (its stamp moves: the runtime's cue).
    assert holds_within(lambda: other.stamp() != before)
    assert other.active_version() == b and other.active()["seq"] == 2
    assert [(h.seq, h.version, h.previous, h.actor, h.reason) for h in other.history()] == [
        (1, a, "", "alice", "一"),
        (2, b, a, "bob", "二"),
    ]
    assert other.rollback_target() == a
    other.set_active(a, actor="carol", action="rollback", reason="回退")
    assert store.active_version() == a and store.history()[-1].action == "rollback"
    with pytest.raises(VersionError) as e:
        store.rollback_target(a)
    assert e.value.reason == "VERSION_ALREADY_ACTIVE"
    c = store.create(bundle("c"), author="a", reason="r").version
    with pytest.raises(VersionError) as e:
        store.rollback_target(c)
    assert e.value.reason == "VERSION_NEVER_ACTIVE"
    with pytest.raises(VersionError) as e:
        store.set_active("pv-000000000000", actor="x", action="activate", reason="r")
    assert e.value.reason == "VERSION_NOT_FOUND"


def test_concurrent_activations_from_two_nodes_get_one_history(
    backend: tuple[Opener, str],
) -> None:
    open_store, _ = backend
    nodes = [open_store(), open_store()]
    versions = [nodes[0].create(bundle(m), author="a", reason="r").version for m in ("p", "q")]

    def activate(node: VersionStore, version: str) -> None:
        for _ in range(8):
            node.set_active(version, actor="x", action="activate", reason="r")

    threads = [
        threading.Thread(target=activate, args=pair) for pair in zip(nodes, versions, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    history = nodes[1].history()
    assert [h.seq for h in history] == list(range(1, 17))  # none lost, none twice
    assert nodes[0].active()["seq"] == 16 and nodes[0].active_version() == history[-1].version


def test_the_pointer_and_its_history_change_together(pg_url: str, tmp_path: Path) -> None:
    """On PostgreSQL an activation is one transaction: a history row that cannot be
    written leaves the pointer where it was."""
    storage = open_storage(pg_url, tmp_path)
    try:
        store = policy_store(tmp_path, storage)
        a = store.create(bundle(), author="a", reason="r").version
        b = store.create(bundle("b"), author="a", reason="r").version
        store.set_active(a, actor="x", action="activate", reason="r")
        sql(pg_url, "INSERT INTO policy_history VALUES (2, '{}')")  # seq 2 is taken
        with pytest.raises(Exception):  # noqa: B017 (the database's refusal, whichever)
            store.set_active(b, actor="x", action="activate", reason="r")
        assert store.active_version() == a and store.active()["seq"] == 1
    finally:
        storage.close()


@pytest.fixture(params=signing.ALGORITHMS)
def signer(request: pytest.FixtureRequest) -> signing.PrivateKey:
    return signing.generate(request.param)


def test_trust_and_required_signatures_hold_on_every_node(
    backend: tuple[Opener, str], signer: signing.PrivateKey
) -> None:
    open_store, url = backend
    store, other = open_store(), open_store()
    pem = signing.public_pem(signer.public_key())
    store.set_trust(key_id="alice", public_key_pem=pem, require_signature=True)
    assert other.trust().require_signature and set(other.trust().keys) == {"alice"}
    with pytest.raises(VersionError) as e:
        other.set_trust(key_id="bad id!", public_key_pem=pem)
    assert e.value.reason == "KEY_ID_INVALID"
    unsigned = store.create(bundle("u"), author="a", reason="r")
    with pytest.raises(VersionError) as e:
        other.load(unsigned.version)
    assert e.value.reason == "SIGNATURE_REQUIRED"
    b = bundle()
    signed = store.create(b, author="a", reason="r", signature=sign_files(b.files, signer, "alice"))
    assert other.load(signed.version)[0].signature == signed.signature
    # Stripping the signature from the stored manifest does not get around the trust.
    stripped = json.dumps({**signed.to_json(), "signature": None}, indent=2).encode()
    if url:
        sql(url, "UPDATE policy_versions SET manifest = %s WHERE version = %s", stripped,
            signed.version)  # fmt: skip
    else:
        (store.versions_dir / signed.version / "manifest.json").write_bytes(stripped)
    with pytest.raises(VersionError) as e:
        other.load(signed.version)
    assert e.value.reason == "SIGNATURE_REQUIRED"
    # An unreadable trust fails closed: signing required, no key trusted.
    if url:
        sql(url, "UPDATE policy_settings SET doc = %s WHERE name = 'trust'", b"{not json")
    else:
        store.trust_path.write_text("{not json")
    assert other.trust().require_signature and not other.trust().keys
    with pytest.raises(VersionError) as e:  # and is not overwritten blindly
        store.set_trust(require_signature=False)
    assert e.value.reason == "TRUST_CORRUPT"


def test_policy_trust_through_the_cli_lands_in_the_database(pg_url: str, tmp_path: Path) -> None:
    from tests.storage.test_two_nodes import govgw

    key = signing.generate(signing.ED25519)
    pub = tmp_path / "alice.pub"
    pub.write_text(signing.public_pem(key.public_key()))
    env = {**os.environ, "GOVGW_DATABASE_URL": pg_url}
    doc = govgw(env, "policy", "trust", "--data-dir", str(tmp_path / "d"), "--key-id", "alice",
                "--public-key", str(pub), "--require-signatures")  # fmt: skip
    assert doc == {"require_signature": True, "keys": ["alice"]}
    assert not (tmp_path / "d" / "policy" / "trust.json").exists()  # the database holds it
    storage = open_storage(pg_url, tmp_path)
    try:
        trust = policy_store(tmp_path / "elsewhere", storage).trust()
        assert trust.require_signature and set(trust.keys) == {"alice"}
    finally:
        storage.close()
    # A database that cannot be reached is a plain error naming it, not a traceback.
    bad = subprocess.run(
        [sys.executable, "-m", "clients.cli", "policy", "trust", "--data-dir", str(tmp_path / "d"),
         "--database-url", "postgresql://govgw@127.0.0.1:1/none", "--allow-unsigned"],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert "cannot connect to the database postgresql://govgw@127.0.0.1:1/none" in bad.stderr
