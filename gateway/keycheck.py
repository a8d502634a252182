"""One keyring per database: a node started with another keyring is refused at start.

Nodes on one PostgreSQL database must share one keyring (GOVGW_KEYRING_FILE): a node
with keys of its own would seal pool rows, blind-index subjects and hash audit subjects
that no other node can read or match. So the database records, at the first `init` or
`serve` against it, keyed fingerprints of the keyring it was written with, and every
later start compares:

- the deployment's fingerprint, a MAC of a fixed label under the audit key (the audit
  and pseudonym keys never rotate, so it names the deployment's keyring for good);
- each pool key version's fingerprint, a MAC of a fixed label under its index key.
  `govgw keys rotate` adds a version: the rotated keyring's new version is recorded
  (by the rotation, or by the first node that starts with it), so nodes with the
  rotated keyring still start, while a node whose keyring lacks a version the database
  has (a stale copy from before the rotation) is refused.

A fingerprint is 16 bytes of a MAC: it identifies a key without revealing anything of
it. The table is `keyring_fingerprints` (migration step in storage/migrations.py).
"""

from __future__ import annotations

from gateway.crypto import get_suite
from gateway.keys import KeyRing
from gateway.storage import Storage, StorageError, _now

DEPLOYMENT = "deployment"
POOL = "pool"
_DEPLOYMENT_LABEL = b"govgw keyring fingerprint v1"
_POOL_LABEL = b"govgw pool key fingerprint v1"
HINT = "set GOVGW_KEYRING_FILE to the shared keyring"


class KeyringMismatch(StorageError):
    """This node's keyring is not the one the database was written with."""


def deployment_fingerprint(ring: KeyRing) -> str:
    return ring.mac_suite.mac(ring.audit_key, _DEPLOYMENT_LABEL)[:16].hex()


def fingerprints(ring: KeyRing) -> dict[tuple[str, int], str]:
    """(kind, version) -> fingerprint of every key of `ring` the database records."""
    found = {(DEPLOYMENT, 0): deployment_fingerprint(ring)}
    for key in ring.pool_keys:
        found[(POOL, key.version)] = get_suite(key.suite).mac(key.index_key, _POOL_LABEL)[:16].hex()
    return found


def check_keyring(storage: Storage, ring: KeyRing) -> None:
    """Record `ring`'s fingerprints the database lacks, and refuse (KeyringMismatch,
    nothing recorded) a keyring that differs from the one the database holds. Only a
    shared database is checked: a data directory's own SQLite lives beside its keys."""
    if not storage.shared:
        return
    mine = fingerprints(ring)
    with storage.transaction() as db:  # one transaction: a refusal records nothing
        for (kind, version), fp in mine.items():
            # ON CONFLICT: two nodes starting at once both record, neither fails.
            db.execute(
                storage.sql(
                    "INSERT INTO keyring_fingerprints (kind, version, fingerprint, recorded_at)"
                    " VALUES (?, ?, ?, ?) ON CONFLICT (kind, version) DO NOTHING"
                ),
                (kind, version, fp, _now()),
            )
        rows = db.execute("SELECT kind, version, fingerprint FROM keyring_fingerprints").fetchall()
        recorded = {(str(k), int(v)): str(fp) for k, v, fp in rows}
        _compare(mine, recorded)


def _compare(mine: dict[tuple[str, int], str], recorded: dict[tuple[str, int], str]) -> None:
    theirs = recorded[(DEPLOYMENT, 0)]
    if mine[(DEPLOYMENT, 0)] != theirs:
        raise KeyringMismatch(
            f"this node's keyring (fingerprint {mine[(DEPLOYMENT, 0)]}) differs from the one"
            f" the database was written with ({theirs}): {HINT}"
        )
    for (kind, version), fp in sorted(mine.items()):
        if kind == POOL and recorded[(kind, version)] != fp:
            raise KeyringMismatch(
                f"this node's pool key version {version} (fingerprint {fp}) differs from the"
                f" version {version} the database was written with ({recorded[(kind, version)]}):"
                f" {HINT}"
            )
    newest = max(v for k, v in mine if k == POOL)
    newer = sorted(v for k, v in recorded if k == POOL and v > newest)
    if newer:
        raise KeyringMismatch(
            f"the database was written with pool key version {newer[-1]}, which this node's"
            f" keyring (newest version {newest}) lacks: a rotation happened elsewhere; {HINT}"
            " (the rotated one)"
        )
