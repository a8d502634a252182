"""Key rotation of the pool: both suites, a second process's view, interruptions, races."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gateway import keys
from gateway.crypto import DEFAULT_SUITE, SM_SUITE
from gateway.pool import Pool
from gateway.pool.rotate import rotate
from tests.gateway.pool import CATALOG, licence, person, uscc_code

POP = "population.basic"
LIC = "licence.business"


def keyring_file(d: Path) -> Path:
    return d / "keys" / "keyring.json"


def make(d: Path, suite: str = DEFAULT_SUITE, n: int = 40) -> tuple[Pool, list[dict[str, str]]]:
    ring = keys.generate(keyring_file(d), suite)
    pool = Pool(d / "pool.db", ring, CATALOG)
    people = [person(f"张{i}", order=100 + i) for i in range(n)]
    pool.write_batch(POP, people)
    code = uscc_code()
    pool.write_batch(LIC, [licence(code, f"JY{i:04d}") for i in range(3)])
    return pool, people


def versions_on_disk(path: Path) -> set[int]:
    with sqlite3.connect(path) as conn:
        return {v for (v,) in conn.execute("SELECT DISTINCT key_version FROM records")}


def bidxs_on_disk(path: Path) -> set[bytes]:
    with sqlite3.connect(path) as conn:
        return {b for (b,) in conn.execute("SELECT bidx FROM records")}


@pytest.mark.requirement("R12")
@pytest.mark.parametrize("suite", [DEFAULT_SUITE, SM_SUITE])
def test_pool_round_trip_per_suite(tmp_path: Path, suite: str) -> None:
    pool, people = make(tmp_path, suite)
    assert pool.read(POP, people[3]["id_number"]) == [people[3]]
    assert len(pool.read(LIC, uscc_code())) == 3
    raw = (tmp_path / "pool.db").read_bytes()
    assert people[3]["name"].encode() not in raw and people[3]["id_number"].encode() not in raw
    pool.close()


@pytest.mark.parametrize(
    ("start", "to"), [(DEFAULT_SUITE, None), (DEFAULT_SUITE, SM_SUITE), (SM_SUITE, DEFAULT_SUITE)]
)
def test_rotation_moves_every_row_and_retires_the_old_key(
    tmp_path: Path, start: str, to: str | None
) -> None:
    pool, people = make(tmp_path, start)
    before = bidxs_on_disk(pool.path)
    report = rotate(
        pool.path, keyring_file(tmp_path), CATALOG, suite=to, subjects_per_step=7, grace_s=0
    )
    assert report.new_version == 2 and report.old_versions == [1]
    assert report.rows_moved == {**dict.fromkeys(CATALOG.datasets, 0), POP: 40, LIC: 3}
    assert report.suite == (to or start)
    assert versions_on_disk(pool.path) == {2}
    assert not before & bidxs_on_disk(pool.path)  # re-indexed, not only re-sealed
    ring = keys.load(keyring_file(tmp_path))
    assert [k.version for k in ring.pool_keys] == [2]
    # The pool opened before the rotation follows the key file.
    for p in people:
        assert pool.read(POP, p["id_number"]) == [p]
    assert [r["licence_no"] for r in pool.read(LIC, uscc_code())] == ["JY0000", "JY0001", "JY0002"]
    assert pool.active_key_version == 2
    pool.close()
    # And a fresh process's pool, with only the new key, reads everything.
    with Pool(pool.path, ring, CATALOG) as fresh:
        assert fresh.read(POP, people[0]["id_number"]) == [people[0]]
        assert sorted(r["id_number"] for r in fresh.iter_rows(POP)) == sorted(
            p["id_number"] for p in people
        )


def test_interrupted_rotation_reads_both_versions_and_a_rerun_finishes(tmp_path: Path) -> None:
    pool, people = make(tmp_path)
    stale_view = Pool(pool.path, keys.load(keyring_file(tmp_path)), CATALOG)  # loaded v1 only
    ring = keys.add_pool_key(keyring_file(tmp_path))
    mover = Pool(pool.path, ring, CATALOG)
    cursor, moved = mover.reencrypt_step(POP, b"", 10)  # stop after one step
    assert moved == 10 and cursor is not None
    assert versions_on_disk(pool.path) == {1, 2}
    # Every subject is readable whichever side of the move it is on, by a pool
    # that knows both keys and by one that has not re-read the key file yet.
    for view in (mover, stale_view):
        for p in people:
            assert view.read(POP, p["id_number"]) == [p]
    # An import mid-rotation replaces the subject's rows under either index.
    changed = {**people[0], "phone": "13900009999"}
    mover.write_batch(POP, [changed])
    assert mover.read(POP, people[0]["id_number"]) == [changed]
    assert mover.count(POP) == 40
    report = rotate(pool.path, keyring_file(tmp_path), CATALOG, grace_s=0)
    assert report.new_version == 3 and report.old_versions == [2, 1]
    assert versions_on_disk(pool.path) == {3}
    assert stale_view.read(POP, people[5]["id_number"]) == [people[5]]
    for p in (mover, stale_view, pool):
        p.close()


def test_a_row_under_a_retired_key_fails_closed(tmp_path: Path) -> None:
    pool, people = make(tmp_path)
    path = keyring_file(tmp_path)
    keys.add_pool_key(path)
    keys.retire_pool_keys(path, 2)  # retired without moving the rows: an operator error
    fresh = Pool(pool.path, keys.load(path), CATALOG)
    from gateway.pool import PoolError

    # Found nothing under the new index: the subject looks absent, never another's row.
    assert fresh.read(POP, people[0]["id_number"]) == []
    assert fresh.read_many(POP, [people[0]["id_number"]]) == {people[0]["id_number"]: []}
    with pytest.raises(PoolError, match="version 1"):
        list(fresh.iter_rows(POP))
    ring2 = keys.load(path)
    with pytest.raises(PoolError, match="no longer holds"), Pool(pool.path, ring2, CATALOG) as p:
        p.reencrypt_step(POP, b"", 5)
    fresh.close()
    pool.close()


def test_pseudonyms_use_the_deployment_suite_mac(tmp_path: Path) -> None:
    import datetime

    from gateway.catalog import Treatment
    from masking import MaskingContext, apply_treatment

    key = b"k" * 32
    today = datetime.date(2026, 1, 1)
    aes = MaskingContext("c", key, today)
    sm = MaskingContext("c", key, today, suite=SM_SUITE)
    t = Treatment("pseudonym")
    assert apply_treatment(t, "X", aes) != apply_treatment(t, "X", sm)
    assert apply_treatment(t, "X", sm) == apply_treatment(t, "X", sm)
