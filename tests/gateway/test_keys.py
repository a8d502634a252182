"""The key ring: both suites, format 1 files, pool key versions, add and retire."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from contract import signing
from gateway import keys
from gateway.crypto import DEFAULT_SUITE, SM_SUITE


@pytest.mark.parametrize("suite", [DEFAULT_SUITE, SM_SUITE])
def test_generate_per_suite(tmp_path: Path, suite: str) -> None:
    path = tmp_path / "keyring.json"
    ring = keys.generate(path, suite)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ring.suite == suite and ring.version == 1 and ring.path == path
    assert [(k.version, k.suite, k.state) for k in ring.pool_keys] == [(1, suite, keys.ACTIVE)]
    assert len(ring.data_key) == (16 if suite == SM_SUITE else 32)
    assert ring.subject_hash("X") != keys.generate(tmp_path / "other.json", suite).subject_hash("X")
    assert len(ring.subject_hash("X")) == 64
    with pytest.raises(FileExistsError):
        keys.generate(path, suite)
    with pytest.raises(ValueError):
        keys.generate(tmp_path / "bad.json", "rot13")


def test_format_1_file_still_loads_and_is_upgraded_on_rotation(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    ring = keys.generate(path)
    doc = json.loads(path.read_text())
    # What the foundation wrote: four keys side by side, no pool_keys.
    old = {
        "version": 1,
        "created_at": doc["created_at"],
        "keys": {
            "data": base64.b64encode(ring.data_key).decode(),
            "index": base64.b64encode(ring.index_key).decode(),
            **doc["keys"],
        },
        "receipt_signing": doc["receipt_signing"],
    }
    path.write_text(json.dumps(old))
    v1 = keys.load(path)
    assert (v1.version, v1.data_key, v1.index_key, v1.suite) == (
        1,
        ring.data_key,
        ring.index_key,
        DEFAULT_SUITE,
    )
    assert v1.pseudonym_key == ring.pseudonym_key and v1.audit_key == ring.audit_key
    v2 = keys.add_pool_key(path)
    assert v2.version == 2 and [k.version for k in v2.pool_keys] == [2, 1]
    assert v2.pool_keys[1].data_key == ring.data_key
    assert v2.pseudonym_key == ring.pseudonym_key
    assert json.loads(path.read_text())["format"] == keys.FORMAT


def test_add_and_retire_pool_keys(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    ring = keys.generate(path)
    two = keys.add_pool_key(path, SM_SUITE)
    assert [(k.version, k.suite, k.state) for k in two.pool_keys] == [
        (2, SM_SUITE, keys.ACTIVE),
        (1, DEFAULT_SUITE, keys.DECRYPT_ONLY),
    ]
    assert two.suite == DEFAULT_SUITE  # pseudonyms and audit keep the deployment's suite
    assert two.pseudonym_key == ring.pseudonym_key and two.audit_key == ring.audit_key
    # The move to the SM suite makes an SM2 receipt key; the Ed25519 one stays published.
    assert (ring.receipt_key.algorithm, two.receipt_key.algorithm) == ("ed25519", "sm2")
    assert [(k.key_id, k.algorithm) for k in two.receipt_verify_only] == [
        (ring.receipt_key.key_id, "ed25519")
    ]
    assert signing.private_pem(ring.receipt_key.private_key) not in path.read_text()
    with pytest.raises(keys.KeyRingError, match="not the active key"):
        keys.retire_pool_keys(path, 1)
    assert keys.retire_pool_keys(path, 2) == [1]
    doc = json.loads(path.read_text())
    assert [k["version"] for k in doc["pool_keys"]] == [2]
    assert [r["version"] for r in doc["retired"]] == [1]
    assert base64.b64encode(ring.data_key).decode() not in path.read_text()
    # A retired version number is never reused.
    assert keys.add_pool_key(path).version == 3
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d["pool_keys"][0].update(state="sleeping"),
        lambda d: d["pool_keys"][0].update(data=base64.b64encode(b"short").decode()),
        lambda d: d["pool_keys"].append(dict(d["pool_keys"][0])),
        lambda d: d["pool_keys"][0].update(state=keys.DECRYPT_ONLY),
        lambda d: d.update(suite="rot13"),
    ],
)
def test_malformed_pool_keys_are_refused_and_never_rewritten(tmp_path: Path, damage) -> None:
    path = tmp_path / "keyring.json"
    keys.generate(path)
    doc = json.loads(path.read_text())
    damage(doc)
    path.write_text(json.dumps(doc))
    with pytest.raises(keys.KeyRingError, match="malformed"):
        keys.load(path)
    before = path.read_text()
    with pytest.raises(keys.KeyRingError):
        keys.add_pool_key(path)
    assert path.read_text() == before
