"""Key rotation: move the whole pool to a new key version while the gateway serves.

`rotate()` is what `govgw keys rotate` runs, in its own process, against a
data directory (or, with `storage`, a PostgreSQL pool) servers may be serving from:

1. add a new pool key version to the key ring (old versions become
   decrypt_only) - servers notice the file change within KEYS_TTL_S, and at
   once when a read misses;
2. wait that long, so servers seal and look up with the new key before rows
   start moving (an optimisation: a server that is late looks again on a miss);
3. walk every dataset in blind-index order, re-sealing and re-indexing a few
   hundred subjects per transaction; WAL readers are never blocked, and an
   import waits at most one small step;
4. with the pool's write lock held, check that no row is left under an old
   version (an import that raced the walk is walked again), then retire the
   old keys: their material is deleted from the key ring.

A rotation interrupted at any point leaves a consistent pool: every row is
readable under one of the versions the key ring still holds, and running
rotate again finishes the job (it adds another version; rows under any older
one move).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway import keys
from gateway.catalog import Catalog
from gateway.pool.store import KEYS_TTL_S, Pool
from gateway.storage import Storage

SUBJECTS_PER_STEP = 256
MAX_SWEEPS = 10


@dataclass
class RotationReport:
    old_versions: list[int]
    new_version: int
    suite: str
    rows_moved: dict[str, int] = field(default_factory=dict)
    sweeps: int = 0
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "old_versions": self.old_versions,
            "new_version": self.new_version,
            "suite": self.suite,
            "rows_moved": self.rows_moved,
            "rows_moved_total": sum(self.rows_moved.values()),
            "sweeps": self.sweeps,
            "seconds": round(self.seconds, 3),
        }


def rotate(
    pool_path: Path,
    keyring_file: Path,
    catalog: Catalog,
    *,
    suite: str | None = None,
    subjects_per_step: int = SUBJECTS_PER_STEP,
    grace_s: float = 2 * KEYS_TTL_S,
    pause_s: float = 0.0,
    progress: Callable[[str, int], None] | None = None,
    storage: Storage | None = None,
    added: Callable[[keys.KeyRing], None] | None = None,
) -> RotationReport:
    """Rotate the pool keys; see the module doc. `pause_s` sleeps between steps (throttle).
    `added` is called with the keyring holding the new version before any row moves (on
    a shared database: record it, so that a node still on the old keyring fails closed
    instead of missing a moved record)."""
    started = time.monotonic()
    with keys.exclusive(keyring_file):
        before = keys.load(keyring_file)
        old_versions = [k.version for k in before.pool_keys]
        ring = keys.add_pool_key(keyring_file, suite)
        report = RotationReport(old_versions, ring.version, ring.active.suite)
        if added is not None:
            added(ring)
        time.sleep(grace_s)
        pool = Pool(pool_path, ring, catalog, storage)
        try:
            while True:
                report.sweeps += 1
                for name in catalog.datasets:
                    cursor: bytes | None = b""
                    while cursor is not None:
                        cursor, moved = pool.reencrypt_step(name, cursor, subjects_per_step)
                        report.rows_moved[name] = report.rows_moved.get(name, 0) + moved
                        if progress is not None and moved:
                            progress(name, moved)
                        if pause_s:
                            time.sleep(pause_s)
                with pool.writes_held():
                    if pool.rows_not_on(ring.version) == 0:
                        keys.retire_pool_keys(keyring_file, ring.version)
                        break
                if report.sweeps >= MAX_SWEEPS:
                    raise keys.KeyRingError(
                        "rows under old key versions keep appearing; old keys not retired"
                    )
        finally:
            pool.close()
    report.seconds = time.monotonic() - started
    return report
