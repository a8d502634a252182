"""GrantStore: versioned JSON file, atomic writes, changes seen across processes."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.grants import GrantError, GrantStore

LATER = datetime(2027, 1, 1, tzinfo=UTC)


def test_empty_store(tmp_path: Path) -> None:
    store = GrantStore(tmp_path / "grants.json")
    assert (store.version, store.list()) == (0, [])


def test_add_list_revoke_bump_version(tmp_path: Path) -> None:
    store = GrantStore(tmp_path / "g" / "grants.json")
    g = store.add("c1", "social_assistance.recipient", ["name", "name", "amount"], "p", LATER)
    assert g["id"].startswith("g-") and g["status"] == "active"
    assert g["fields"] == ["amount", "name"]
    assert g["expires_at"] == "2027-01-01T00:00:00Z"
    assert store.version == 1 and store.list() == [g]
    revoked = store.revoke(g["id"], "misuse")
    assert revoked["status"] == "revoked" and revoked["revoke_reason"] == "misuse"
    assert store.version == 2
    doc = json.loads((tmp_path / "g" / "grants.json").read_text(encoding="utf-8"))
    assert doc["version"] == 2 and doc["grants"][0]["status"] == "revoked"
    # the temporary file of each atomic write is gone
    assert {p.name for p in (tmp_path / "g").iterdir()} == {"grants.json", "grants.json.lock"}


def test_expiry_normalized_to_utc(tmp_path: Path) -> None:
    store = GrantStore(tmp_path / "grants.json")
    g = store.add("c1", "d", ["f"], "p", "2027-01-01T08:00:00+08:00")
    assert g["expires_at"] == "2027-01-01T00:00:00Z"


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("", "d", ["f"], "p", LATER), "caller"),
        (("c", "d", ["f"], " ", LATER), "purpose"),
        (("c", "d", [], "p", LATER), "fields"),
        (("c", "d", "f", "p", LATER), "fields"),
        (("c", "d", ["f"], "p", "tomorrow"), "RFC 3339"),
        (("c", "d", ["f"], "p", datetime(2027, 1, 1)), "time zone"),
    ],
)
def test_bad_arguments_refused_and_nothing_written(tmp_path: Path, args: tuple, match: str) -> None:
    store = GrantStore(tmp_path / "grants.json")
    with pytest.raises(GrantError, match=match):
        store.add(*args)
    assert store.version == 0 and not (tmp_path / "grants.json").exists()


def test_revoke_unknown_grant(tmp_path: Path) -> None:
    store = GrantStore(tmp_path / "grants.json")
    with pytest.raises(GrantError):
        store.revoke("g-nope", "x")
    assert store.version == 0


def test_list_returns_copies(tmp_path: Path) -> None:
    store = GrantStore(tmp_path / "grants.json")
    store.add("c1", "d", ["f"], "p", LATER)
    store.list()[0]["status"] = "active-forever"
    assert store.list()[0]["status"] == "active"


def test_change_by_another_process_is_seen(tmp_path: Path) -> None:
    path = tmp_path / "grants.json"
    server = GrantStore(path, refresh_interval=0)
    assert server.version == 0
    code = (
        "import sys; from gateway.grants import GrantStore;"
        "GrantStore(sys.argv[1]).add('c9', 'd', ['f'], 'p', '2030-01-01T00:00:00Z')"
    )
    root = Path(__file__).resolve().parents[3]
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, cwd=root)
    assert server.version == 1
    assert server.list()[0]["caller"] == "c9"


def test_disk_is_checked_at_most_once_per_interval(tmp_path: Path) -> None:
    path = tmp_path / "grants.json"
    server = GrantStore(path, refresh_interval=3600)
    GrantStore(path).add("c1", "d", ["f"], "p", LATER)  # the CLI, say
    assert server.version == 0  # not looked yet: the check stays off the hot path
    server.refresh_interval = 0
    assert server.version == 1


def test_writers_in_two_stores_and_threads_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "grants.json"
    stores = [GrantStore(path, refresh_interval=0), GrantStore(path, refresh_interval=0)]

    def work(n: int) -> None:
        for i in range(10):
            stores[n % 2].add(f"c{n}", "d", ["f"], f"p{i}", LATER)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert stores[0].version == stores[1].version == 40
    assert len({g["id"] for g in stores[1].list()}) == 40


def test_broken_file_keeps_last_good_grants_and_refuses_writes(tmp_path: Path) -> None:
    path = tmp_path / "grants.json"
    store = GrantStore(path, refresh_interval=0)
    store.add("c1", "d", ["f"], "p", LATER)
    path.write_text("{not json", encoding="utf-8")
    assert store.version == 1 and len(store.list()) == 1
    with pytest.raises(ValueError):
        store.add("c2", "d", ["f"], "p", LATER)
    assert path.read_text(encoding="utf-8") == "{not json"


def test_snapshot_pairs_version_and_grants(tmp_path: Path) -> None:
    store = GrantStore(tmp_path / "grants.json")
    store.add("c1", "d", ["f"], "p", datetime.now(UTC) + timedelta(days=1))
    version, grants = store.snapshot()
    assert version == 1 and len(grants) == 1
