"""The pool on the storage seam: one contract, both backends (the data directory's
pool.sqlite; PostgreSQL shared by nodes). Rows sealed alike, found alike, rotated
alike; another node's import is read at once and its version seen within 1 s."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from gateway import keys
from gateway.pool import Pool, PoolIntegrityError, bulk_persons
from gateway.pool.rotate import rotate
from gateway.pool.store import INSERT_CHUNK
from gateway.storage import Storage, StorageUnavailable, open_storage
from tests.gateway.pool import CATALOG, id_number, licence, new_keyring, person, uscc_code
from tests.support import holds_within

POP = "population.basic"


@pytest.fixture(params=["sqlite", "postgresql"])
def pools(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Pool]]:
    """Open pools on one backend and one key ring: each call is another process."""
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else ""
    ring = new_keyring(tmp_path)
    opened: list[tuple[Pool, Storage | None]] = []

    def open_one() -> Pool:
        storage = open_storage(url, tmp_path) if url else None
        opened.append((Pool(tmp_path / "pool.sqlite", ring, CATALOG, storage), storage))
        return opened[-1][0]

    open_one.url = url  # type: ignore[attr-defined]
    yield open_one
    for pool, storage in opened:
        pool.close()
        if storage is not None:
            storage.close()


def test_pool_contract(pools: Callable[[], Pool]) -> None:
    pool = pools()
    a, b = person("陈凯", order=11), person("李娜", order=12)
    first = pool.write_batch(POP, [a, b])
    assert pool.read(POP, a["id_number"]) == [a]
    assert pool.read(POP, a["id_number"].lower()) == [a]  # the blind index normalizes
    assert pool.read(POP, id_number(order=13)) == []
    assert pool.count(POP) == 2 and pool.dataset_version(POP) == first
    # A batch replaces its subjects' rows only; replace_all the dataset's.
    moved = {**a, "phone": "13900002222"}
    pool.write_batch(POP, [moved])
    assert pool.read(POP, a["id_number"]) == [moved] and pool.read(POP, b["id_number"]) == [b]
    assert [v["rows"] for v in pool.versions(POP)] == [2, 2]
    pool.write_batch(POP, [b], replace_all=True)
    assert pool.read(POP, a["id_number"]) == [] and pool.count(POP) == 1
    # Several rows of one subject (where the dataset allows it) come back in write order.
    code = uscc_code()
    licences = [licence(code, f"JY15132210000{i}") for i in (3, 1, 2)]
    pool.write_batch("licence.business", licences)
    assert [r["licence_no"] for r in pool.read("licence.business", code)] == [
        r["licence_no"] for r in licences
    ]
    c = [person("王芳", order=21)]
    pool.write_normalized(POP, c)
    with pool.snapshot():
        walked = list(pool.scan_subjects(POP))
    assert [rows for _, rows in walked] == sorted(
        [[b], c], key=lambda rows: pool.blind_index(POP, rows[0]["id_number"])
    )
    assert sorted(r["name"] for r in pool.iter_rows(POP)) == ["李娜", "王芳"]


def test_a_large_import_goes_in_chunks_and_replaces_across_them(pools: Callable[[], Pool]) -> None:
    pool = pools()
    n = INSERT_CHUNK + 500
    bulk_persons(pool, n, seed=3)
    assert pool.count(POP) == n
    bulk_persons(pool, n, seed=3)  # the same persons again: replaced, not doubled
    assert pool.count(POP) == n
    every = list(pool.iter_rows(POP))  # every row of every chunk opens
    assert len(every) == n
    assert pool.read(POP, every[-1]["id_number"]) == [every[-1]]


def _with_a_moved_ciphertext(
    pools: Callable[[], Pool],
) -> tuple[Pool, dict[str, str], dict[str, str]]:
    """A pool of a and b where b's ciphertext was copied under a's blind index."""
    pool = pools()
    a, b = person("陈凯", order=11), person("李娜", order=12)
    pool.write_batch(POP, [a, b])
    bidx_a, bidx_b = (pool.blind_index(POP, p["id_number"]) for p in (a, b))
    swap = "UPDATE {t} SET ct = (SELECT ct FROM {t} WHERE bidx = {p}) WHERE bidx = {p}"
    url = pools.url  # type: ignore[attr-defined]
    if url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(swap.format(t="govgw.pool_records", p="%s"), (bidx_b, bidx_a))
    else:
        import sqlite3

        with sqlite3.connect(pool.path) as conn:
            conn.execute(swap.format(t="records", p="?"), (bidx_b, bidx_a))
    return pool, a, b


def test_a_moved_ciphertext_fails_authentication(pools: Callable[[], Pool]) -> None:
    pool, a, _ = _with_a_moved_ciphertext(pools)
    with pytest.raises(PoolIntegrityError):
        pool.read(POP, a["id_number"])


def test_another_nodes_import_is_read_at_once_and_its_version_within_a_second(
    pools: Callable[[], Pool],
) -> None:
    node_a, node_b = pools(), pools()
    assert node_b.dataset_version(POP) == ""
    row = person("陈凯", order=11)
    version = node_a.write_batch(POP, [row])
    assert node_b.read(POP, row["id_number"]) == [row]
    assert holds_within(lambda: node_b.dataset_version(POP) == version)


def test_rotation_moves_every_row_on_either_backend(
    pools: Callable[[], Pool], tmp_path: Path
) -> None:
    pool = pools()
    rows = [person("陈凯", order=11), person("李娜", order=12), person("王芳", order=21)]
    pool.write_batch(POP, rows)
    ring_file = tmp_path / "keys" / "keyring.json"
    storage = open_storage(pools.url, tmp_path) if pools.url else None  # type: ignore[attr-defined]
    try:
        report = rotate(
            tmp_path / "pool.sqlite", ring_file, CATALOG, grace_s=0, subjects_per_step=2,
            storage=storage,
        )  # fmt: skip
    finally:
        if storage is not None:
            storage.close()
    assert report.rows_moved[POP] == 3
    assert pool.rows_not_on(report.new_version) == 0
    for row in rows:  # the serving pool follows the key file
        assert pool.read(POP, row["id_number"]) == [row]
    assert pool.active_key_version == report.new_version


def test_a_database_outage_is_storage_unavailable_and_a_dropped_connection_is_replaced(
    pg_server, pg_url: str, tmp_path: Path
) -> None:
    storage = open_storage(pg_url, tmp_path)
    pool = Pool(tmp_path / "pool.sqlite", new_keyring(tmp_path), CATALOG, storage)
    try:
        row = person("陈凯", order=11)
        pool.write_batch(POP, [row])
        name = pg_url.rsplit("/", 1)[1]
        with psycopg.connect(pg_server.url(), autocommit=True) as conn:
            conn.execute(  # what a database restart does to the pool's connections
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
        assert pool.read(POP, row["id_number"]) == [row]
        pg_server.drop_database(pg_url)
        with pytest.raises(StorageUnavailable, match="database unavailable"):
            pool.read(POP, row["id_number"])
    finally:
        pool.close()
        storage.close()


def test_read_many_answers_as_read_does_in_one_query(pools: Callable[[], Pool]) -> None:
    pool = pools()
    a, b, c = person("陈凯", order=11), person("李娜", order=12), person("王芳", order=21)
    pool.write_batch(POP, [a, b, c])
    absent = id_number(order=13)
    spaced = f"{a['id_number'][:6]} {a['id_number'][6:]}"  # the blind index normalizes
    keys = [b["id_number"], absent, spaced, a["id_number"], b["id_number"]]
    many = pool.read_many(POP, keys)
    # Every subject as given (two spellings of one subject each get its rows), once.
    assert list(many) == [b["id_number"], absent, spaced, a["id_number"]]
    assert many == {k: pool.read(POP, k) for k in keys}
    assert many[absent] == [] and many[a["id_number"]] == [a]
    assert pool.read_many(POP, []) == {}
    # Several rows of one subject come back in write order, beside another subject's.
    code, other = uscc_code(), uscc_code("MA6CB1235")
    licences = [licence(code, f"JY15132210000{i}") for i in (3, 1, 2)]
    pool.write_batch("licence.business", [licences[0], licence(other, "JY151322100009")])
    pool.write_batch("licence.business", licences)  # the subject's rows replaced
    got = pool.read_many("licence.business", [code, other])
    assert [r["licence_no"] for r in got[code]] == [r["licence_no"] for r in licences]
    assert [r["licence_no"] for r in got[other]] == ["JY151322100009"]


def test_read_many_fails_authentication_of_a_moved_ciphertext(pools: Callable[[], Pool]) -> None:
    pool, a, b = _with_a_moved_ciphertext(pools)
    with pytest.raises(PoolIntegrityError):
        pool.read_many(POP, [b["id_number"], a["id_number"]])


def test_read_many_mid_rotation_and_with_keys_not_yet_reread(
    pools: Callable[[], Pool], tmp_path: Path
) -> None:
    """Half the subjects moved to a new key: read_many finds each under its old index
    or its new one, in the process that moved them and in one still holding the old
    key only (which re-reads the key file when subjects look absent)."""
    pool = pools()
    people = [person("陈凯", order=o) for o in range(11, 31)]
    pool.write_batch(POP, people)
    stale = pools()  # loaded key version 1 only
    stale.read_many(POP, [people[0]["id_number"]])
    ring = keys.add_pool_key(tmp_path / "keys" / "keyring.json")
    storage = open_storage(pools.url, tmp_path) if pools.url else None  # type: ignore[attr-defined]
    try:
        mover = Pool(tmp_path / "pool.sqlite", ring, CATALOG, storage)
        cursor, moved = mover.reencrypt_step(POP, b"", 10)
        assert moved == 10 and cursor is not None
        assert mover.rows_not_on(2) == 10  # half moved
        wanted = [p["id_number"] for p in people] + [id_number(order=99)]
        expected = {p["id_number"]: [p] for p in people} | {id_number(order=99): []}
        assert mover.read_many(POP, wanted) == expected
        assert stale.read_many(POP, wanted) == expected
        assert stale.active_key_version == 2  # it followed the key file
        mover.close()
    finally:
        if storage is not None:
            storage.close()


def test_a_closed_pool_stops_following_announcements(
    pg_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`pool seed` and `keys rotate` close pools before their storage: an announcement
    after that printed "reloading pool after a change failed: … already closed"."""
    caplog.set_level(logging.WARNING, logger="govgw.storage")
    ring = new_keyring(tmp_path)
    storage = open_storage(pg_url, tmp_path)
    try:
        Pool(tmp_path / "pool.sqlite", ring, CATALOG, storage).close()
        reloaded = threading.Event()
        storage.subscribe("pool", reloaded.set)  # runs after the closed pool's reload
        with Pool(tmp_path / "pool.sqlite", ring, CATALOG, storage) as writer:
            writer.write_batch(POP, [person("陈凯", order=31)])
            assert reloaded.wait(30), "the write's announcement never reached the listener"
        assert [r.getMessage() for r in caplog.records if "reloading" in r.getMessage()] == []
    finally:
        storage.close()


@pytest.mark.requirement("R12")
def test_a_node_on_a_stale_keyring_copy_fails_closed_after_a_rotation(
    pg_url: str, tmp_path: Path
) -> None:
    """A node whose copy of the keyring predates a rotation cannot find the moved rows:
    it refuses (UNAVAILABLE KEYRING_STALE) instead of answering "no record". The
    rotation records the new key version before moving any row, so this holds while
    rows move too; a node with the rotated keyring answers, absent subjects included."""
    import shutil

    from gateway.errors import GovgwError
    from gateway.keycheck import check_keyring

    ring_file = tmp_path / "a" / "keys" / "keyring.json"
    ring = new_keyring(tmp_path / "a")
    copy = tmp_path / "b" / "keyring.json"
    copy.parent.mkdir(parents=True)
    shutil.copy(ring_file, copy)
    storages = [open_storage(pg_url, tmp_path / "a"), open_storage(pg_url, tmp_path / "b")]
    try:
        check_keyring(storages[0], ring)  # as `govgw init` records it
        node_a = Pool(tmp_path / "a" / "pool.sqlite", ring, CATALOG, storages[0])
        row = person("陈凯", order=11)
        node_a.write_batch(POP, [row])
        node_b = Pool(tmp_path / "b" / "pool.sqlite", keys.load(copy), CATALOG, storages[1])
        assert node_b.read(POP, row["id_number"]) == [row]
        rotate(
            tmp_path / "a" / "pool.sqlite", ring_file, CATALOG, grace_s=0, storage=storages[0],
            added=lambda rotated: check_keyring(storages[0], rotated),
        )  # fmt: skip
        for ask in (
            lambda: node_b.read(POP, row["id_number"]),
            lambda: node_b.read_many(POP, [row["id_number"]]),
        ):
            with pytest.raises(GovgwError) as refused:
                ask()
            assert (refused.value.code.name, refused.value.reason) == (
                "UNAVAILABLE",
                "KEYRING_STALE",
            )
        assert node_a.read(POP, row["id_number"]) == [row]
        assert node_a.read(POP, id_number(order=13)) == []  # current keys: a plain "no"
        node_a.close()
        node_b.close()
    finally:
        for storage in storages:
            storage.close()
