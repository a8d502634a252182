"""Backup and restore (R12), on both backends: a backup taken while the gateway serves,
restored into an empty directory (and an empty database), answers as the original did
and its audit chains verify; a tampered or truncated backup, a wrong keyring and a
non-empty target are refused with a message naming the problem."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clients.sdk import to_json
from gateway import admin
from gateway.backup import BackupError, backup, restore
from gateway.storage import migrations, open_storage
from tests.pg_server import PostgresServer
from tests.support import Harness, make_data_dir, start

PURPOSE = "社会保障待遇资格认证"
SHARE = "social_assistance.recipient"
SHARE_PURPOSE = "最低生活保障资格复核"


def _grant(h: Harness) -> None:
    """agency-far applies for the shared dataset and its provider approves: a grant."""
    with h.client("agency-far") as far, h.client("agency-civil") as civil:
        app = far.apply(
            SHARE, ["name", "assistance_type"], purpose=SHARE_PURPOSE,
            scenario="复核低保对象救助类型", duration_days=90,
        )  # fmt: skip
        civil.decide_application(app.id, approve=True, fields=["assistance_type"])


def _answers(h: Harness) -> dict[str, Any]:
    """What the gateway answers about the demo subjects, and the provider's usage report."""
    adult = h.demo["adult_resident"]
    recipient = h.demo["assistance_recipient"]["id_number"]
    with (
        h.client("counter-wenchuan") as counter,
        h.client("agency-civil") as civil,
        h.client("agency-far") as far,
    ):
        verified = counter.verify_identity(adult["name"], adult["id_number"], purpose=PURPOSE)
        looked = civil.lookup("population.basic", adult["id_number"], purpose=PURPOSE)
        shared = far.lookup(SHARE, recipient, purpose=SHARE_PURPOSE)  # through the grant
        return {
            "verify": to_json(verified.result),
            "lookup": to_json(looked.records),
            "share": to_json(shared.records),
        }


def _usage(h: Harness) -> Any:
    with h.client("agency-civil") as civil:
        return to_json(civil.usage_report(SHARE).rows)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """'' (the embedded default) or a fresh database URL, set as the verbs' GOVGW_DATABASE_URL."""
    monkeypatch.delenv("GOVGW_KEYRING_FILE", raising=False)
    if request.param == "sqlite":
        monkeypatch.delenv("GOVGW_DATABASE_URL", raising=False)
        yield ""
        return
    server: PostgresServer = request.getfixturevalue("pg_server")
    url = server.create_database("bk")
    monkeypatch.setenv("GOVGW_DATABASE_URL", url)
    try:
        yield url
    finally:
        server.drop_database(url)


@pytest.mark.requirement("R12")
def test_a_backup_taken_while_serving_restores_to_a_gateway_that_answers_the_same(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "node"
    keys, demo = make_data_dir(source, persons=30, entities=5)
    h = start(source, keys, demo, database_url=backend)
    try:
        _grant(h)
        before = _answers(h)
        out = tmp_path / "node.govgw-backup"
        made = backup(source, out, backend)  # while the gateway serves
        usage_before = _usage(h)  # the calls up to the backup, as the original counts them
    finally:
        h.stop()
    assert made["files"] >= 5 and "keyring is not in the backup" in made["note"]
    raw = out.read_bytes()
    for secret in (demo["adult_resident"]["id_number"], demo["adult_resident"]["name"]):
        assert secret.encode() not in raw  # encrypted at rest (and sealed inside)
    assert b"SQLite format 3" not in raw and b"CREATE TABLE" not in raw

    target_url = ""
    if backend:
        server: PostgresServer = request.getfixturevalue("pg_server")
        target_url = server.create_database("rs")
        request.addfinalizer(lambda: server.drop_database(target_url))
        monkeypatch.setenv("GOVGW_DATABASE_URL", target_url)
    restored = tmp_path / "restored"
    doc = restore(out, restored, target_url, keyring=source / "keys" / "keyring.json")
    assert doc["audit"]["ok"] and doc["audit"]["records"] > 0
    assert (restored / "keys" / "keyring.json").read_bytes() == (
        source / "keys" / "keyring.json"
    ).read_bytes()
    verified = admin.audit_verify(restored)
    assert verified["ok"] and verified["records"] == doc["audit"]["records"]

    h2 = start(restored, keys, demo, database_url=target_url)
    try:
        assert usage_before and _usage(h2) == usage_before
        assert _answers(h2) == before
    finally:
        h2.stop()


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An embedded node's backup, for the refusals (shared: they only read it)."""
    source = tmp_path_factory.mktemp("refusals") / "node"
    make_data_dir(source, persons=5, entities=2)
    out = source.parent / "node.govgw-backup"
    backup(source, out)
    return source, out


def _refused(out: Path, target: Path, message: str, **kw: Any) -> None:
    with pytest.raises(BackupError) as e:
        restore(out, target, **kw)
    assert message in str(e.value), e.value
    assert not target.exists() or not any(target.iterdir())  # nothing half-restored


@pytest.mark.requirement("R12")
def test_a_tampered_or_truncated_backup_is_refused(made: tuple[Path, Path], tmp_path: Path) -> None:
    source, out = made
    ring = source / "keys" / "keyring.json"
    data = out.read_bytes()
    for i, spot in enumerate((len(data) // 2, len(data) - 3)):
        bad = tmp_path / f"flipped-{i}"
        changed = bytearray(data)
        changed[spot] ^= 0x01
        bad.write_bytes(bytes(changed))
        _refused(bad, tmp_path / f"t{i}", "fails authentication", keyring=ring)
    cut = tmp_path / "cut"
    cut.write_bytes(data[: len(data) // 2])
    _refused(cut, tmp_path / "t-cut", "", keyring=ring)
    longer = tmp_path / "longer"
    longer.write_bytes(data + b"x")
    _refused(longer, tmp_path / "t-longer", "after its last frame", keyring=ring)
    _refused(source / "pool.sqlite", tmp_path / "t-not", "not a govgw backup", keyring=ring)


@pytest.mark.requirement("R12")
def test_a_wrong_keyring_or_none_is_refused(made: tuple[Path, Path], tmp_path: Path) -> None:
    from gateway import keys

    _, out = made
    other = tmp_path / "other" / "keyring.json"
    keys.generate(other)
    _refused(out, tmp_path / "t1", "made with the keyring of fingerprint", keyring=other)
    _refused(out, tmp_path / "t2", "the keyring is not in the backup")


def test_the_command_refuses_a_non_empty_directory_naming_what_is_there(
    made: tuple[Path, Path], tmp_path: Path
) -> None:
    source, out = made
    target = tmp_path / "busy"
    target.mkdir()
    (target / "pool.sqlite").write_bytes(b"")
    proc = subprocess.run(
        [sys.executable, "-m", "clients.cli", "restore", "--in", str(out), "--data-dir",
         str(target), "--keyring", str(source / "keys" / "keyring.json"), "--json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "is not empty (it holds pool.sqlite)" in json.loads(proc.stdout)["error"]["message"]
    assert "Traceback" not in proc.stderr
    # The command names what a backup lacks: the keyring.
    again = subprocess.run(
        [sys.executable, "-m", "clients.cli", "backup", "--data-dir", str(source),
         "--out", str(tmp_path / "second")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "the keyring is not in the backup" in again.stdout


def test_the_restore_output_says_once_where_the_keyring_is(
    made: tuple[Path, Path], tmp_path: Path
) -> None:
    """With GOVGW_KEYRING_FILE the keyring is used in place: one plain clause, not the
    "(not copied) (not in the backup)" an operator met on the walk through README."""
    import os

    source, out = made
    ring = source / "keys" / "keyring.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVGW_")}
    proc = subprocess.run(
        [sys.executable, "-m", "clients.cli", "restore", "--in", str(out), "--data-dir",
         str(tmp_path / "restored")],
        capture_output=True, text=True, timeout=60, env={**env, "GOVGW_KEYRING_FILE": str(ring)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (
        f"keyring: {ring} (GOVGW_KEYRING_FILE: used in place, not copied); a backup never holds it"
        in proc.stdout.splitlines()
    )
    assert not (tmp_path / "restored" / "keys" / "keyring.json").exists()


@pytest.mark.requirement("R12")
def test_restore_refuses_a_database_that_holds_a_govgw_schema(
    made: tuple[Path, Path], pg_url: str, tmp_path: Path
) -> None:
    source, out = made
    open_storage(pg_url, tmp_path).close()  # a migrated, govgw database
    _refused(
        out, tmp_path / "t", "already has a govgw schema", url=pg_url,
        keyring=source / "keys" / "keyring.json",
    )  # fmt: skip


@pytest.mark.requirement("R12")
def test_a_backup_under_calls_cuts_every_chain_at_a_record_boundary(tmp_path: Path) -> None:
    """Calls go on while the backup runs: the restored chains verify, holding a prefix
    of the original's records (the ones appended meanwhile wait for the next backup)."""
    import threading

    source = tmp_path / "node"
    keys, demo = make_data_dir(source, persons=10, entities=2)
    h = start(source, keys, demo)
    stop = threading.Event()
    calls = [0]

    def load() -> None:
        adult = demo["adult_resident"]
        with h.client("counter-wenchuan") as gw:
            while not stop.is_set():
                gw.verify_identity(adult["name"], adult["id_number"], purpose=PURPOSE)
                calls[0] += 1

    worker = threading.Thread(target=load)
    worker.start()
    try:
        while calls[0] < 20:  # the load is under way before the backup starts
            worker.join(0.05)
        backup(source, tmp_path / "b")
    finally:
        stop.set()
        worker.join(30)
        h.stop()
    doc = restore(tmp_path / "b", tmp_path / "r", keyring=source / "keys" / "keyring.json")
    original = (source / "audit" / "audit.log").read_bytes()
    restored = (tmp_path / "r" / "audit" / "audit.log").read_bytes()
    assert doc["audit"]["ok"] and restored.endswith(b"\n") and original.startswith(restored)
    assert admin.audit_verify(tmp_path / "r")["ok"]


@pytest.mark.requirement("R12")
def test_a_national_suite_keyring_seals_its_backup_with_sm4_gcm(tmp_path: Path) -> None:
    from gateway.crypto import suite_for_alias

    source = tmp_path / "node"
    suite = suite_for_alias("sm").name
    admin.init(source, suite=suite)
    make_data_dir(source, persons=5, entities=2)
    out = tmp_path / "sm.govgw-backup"
    backup(source, out)
    assert f'"cipher": "{suite}"'.encode() in out.read_bytes()[:400]  # the clear header
    ring = source / "keys" / "keyring.json"
    data = bytearray(out.read_bytes())
    data[len(data) // 2] ^= 0x01
    (tmp_path / "flipped").write_bytes(bytes(data))
    _refused(tmp_path / "flipped", tmp_path / "t", "fails authentication", keyring=ring)
    doc = restore(out, tmp_path / "r", keyring=ring)
    assert doc["audit"]["ok"]
    assert _rows(tmp_path / "r" / "pool.sqlite") == _rows(source / "pool.sqlite")


def _rows(path: Path) -> list[str]:
    import sqlite3

    db = sqlite3.connect(path)
    try:
        return list(db.iterdump())
    finally:
        db.close()


@pytest.mark.requirement("R12")
def test_the_commands_round_trip_a_node_and_its_database(
    pg_server: PostgresServer, tmp_path: Path
) -> None:
    """`govgw backup|restore --database-url` as an operator runs them; then `govgw audit
    verify` and the caller registry on the restored node and database."""
    import os

    source_url, target_url = pg_server.create_database("cs"), pg_server.create_database("ct")
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GOVGW_")}

        def govgw(url: str, *args: str) -> dict[str, Any]:
            proc = subprocess.run(
                [sys.executable, "-m", "clients.cli", *args, "--database-url", url, "--json"],
                capture_output=True, text=True, timeout=120, env=env,
            )  # fmt: skip
            assert proc.returncode == 0, proc.stderr
            return json.loads(proc.stdout)

        node, restored = tmp_path / "node", tmp_path / "restored"
        govgw(source_url, "init", "--data-dir", str(node))
        govgw(source_url, "callers", "add", "--data-dir", str(node), "--id", "hall-a",
              "--kind", "counter", "--department", "政务大厅", "--region", "513221")  # fmt: skip
        govgw(
            source_url, "callers", "suspend", "--data-dir", str(node), "hall-a", "--reason", "复核"
        )
        made = govgw(source_url, "backup", "--data-dir", str(node), "--out", str(tmp_path / "b"))
        assert made["backend"] == "postgresql" and made["schema"][
            "postgresql"
        ] == migrations.latest("postgresql")
        done = govgw(target_url, "restore", "--in", str(tmp_path / "b"), "--data-dir",
                     str(restored), "--keyring", str(node / "keys" / "keyring.json"))  # fmt: skip
        assert done["audit"]["ok"] and done["audit"]["records"] >= 1  # the suspension's record
        assert govgw(target_url, "audit", "verify", "--data-dir", str(restored))["ok"]
        listed = govgw(target_url, "callers", "list", "--data-dir", str(restored))
        rows = listed["items"] if isinstance(listed, dict) else listed
        assert [(c["id"], c["status"]) for c in rows] == [("hall-a", "suspended")]
    finally:
        pg_server.drop_database(source_url)
        pg_server.drop_database(target_url)
