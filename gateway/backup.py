"""`govgw backup` and `govgw restore` (R12): a consistent, encrypted copy of a node.

What a backup holds, taken while the gateway serves:

- every SQLite file of the data directory (pool, callers, applications, corrections,
  audit index, state…), found by its header, copied with SQLite's online backup API
  (a consistent snapshot while writers go on);
- the audit chains (audit/*.log), append-only, copied up to the last whole record;
- every other file (JSON stores, policy versions, calendar, certificates…), read
  under its writer's lock when it has one (gateway.files.exclusive); writers replace
  files atomically, so a read sees a whole file in any case;
- with a database URL, `pg_dump` of the schema govgw (gateway/backup_pg.py);
- a manifest: govgw version, schema versions, node, and every file's size and SHA-256.

Left out: the keyring (it is distributed separately; the backup is sealed under a key
derived from it: gateway/backup_stream.py), lock files, SQLite's -wal/-shm/-journal
(the snapshot holds their content) and hidden temporary files.

Restore goes into an empty directory (and an empty database): it refuses anything else
naming what is there, checks every file against the manifest before anything is put in
place, and the restored gateway answers as the original did.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import socket
import sqlite3
import tarfile
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import IO, Any

from gateway import backup_pg, keys
from gateway.backup_stream import BackupError, DecryptingReader, EncryptingWriter
from gateway.config import Layout
from gateway.files import (
    SQLITE_SIDE_FILES,
    exclusive,
    fsync_dir,
    open_private,
    private_dir,
    tighten_tree,
)
from gateway.keycheck import deployment_fingerprint
from gateway.storage import StorageError, migrations, open_storage, redact

MANIFEST = "manifest.json"
FILES = "files/"
DUMP = "database/govgw.sql"
SQLITE_MAGIC = b"SQLite format 3\x00"
KEYRING_NOTE = (
    "the keyring is not in the backup (it is distributed separately): keep it safe;"
    " restoring needs it"
)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("govgw")
    except PackageNotFoundError:
        return "unknown"


def _load_ring(path: Path) -> keys.KeyRing:
    try:
        return keys.load(path)
    except keys.KeyRingError as e:
        raise BackupError(str(e)) from None


# -- backup -------------------------------------------------------------------
def _members(data_dir: Path, keyring: Path) -> Iterator[tuple[str, Path]]:
    """(kind, path) of every file a backup takes: 'sqlite', 'audit' or 'file'."""
    # The keyring in use, and the directory's own keyring file even when another is in use.
    skip = {keyring.resolve(), (data_dir / "keys" / "keyring.json").resolve()}
    for path in sorted(data_dir.rglob("*")):
        rel = path.relative_to(data_dir)
        if any(part.startswith(".") for part in rel.parts) or path.is_symlink():
            continue  # temporary files of atomic replaces; never follow a link out
        if not path.is_file() or path.resolve() in skip:
            continue
        if path.name.endswith(".lock") or path.name.endswith(SQLITE_SIDE_FILES):
            continue
        with path.open("rb") as f:
            head = f.read(len(SQLITE_MAGIC))
        if head == SQLITE_MAGIC:
            yield "sqlite", path
        elif rel.parts[0] == "audit" and path.suffix == ".log":
            yield "audit", path
        else:
            yield "file", path


def _sqlite_snapshot(path: Path, tmp: Path) -> Path:
    out = tmp / f"snapshot-{path.name}"
    out.unlink(missing_ok=True)
    try:
        src = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=30)  # never creates
        try:
            dst = sqlite3.connect(out)
            try:
                src.backup(dst)  # the online backup API: consistent while writers go on
            finally:
                dst.close()
        finally:
            src.close()
    except sqlite3.Error as e:  # SQLite's reasons name no stored value
        raise BackupError(f"{path}: cannot take a snapshot of this SQLite file ({e})") from None
    return out


def _record_boundary(path: Path) -> int:
    """Bytes of `path` up to its last whole record (newline): a record being appended
    is left for the next backup."""
    size = path.stat().st_size
    with path.open("rb") as f:
        end = size
        while end > 0:
            start = max(0, end - 65536)
            f.seek(start)
            block = f.read(end - start)
            cut = block.rfind(b"\n")
            if cut >= 0:
                return start + cut + 1
            end = start
    return 0


class _Hashing(io.RawIOBase):
    """Reads at most `limit` bytes of `f`, hashing them."""

    def __init__(self, f: IO[bytes], limit: int) -> None:
        self._f, self._left, self.sha = f, limit, hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = self._left if n < 0 else min(n, self._left)
        data = self._f.read(n)
        self._left -= len(data)
        self.sha.update(data)
        return data


def _add(tar: tarfile.TarFile, name: str, f: IO[bytes], size: int) -> dict[str, Any]:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o600, 0
    hashing = _Hashing(f, size)
    tar.addfile(info, hashing)  # type: ignore[arg-type]
    return {"path": name, "size": size, "sha256": hashing.sha.hexdigest()}


def _schema_versions(data_dir: Path, url: str) -> dict[str, int]:
    versions = {}
    if Layout(data_dir).callers.is_file():
        storage = open_storage("", data_dir)
        versions["sqlite"] = storage.schema_version()
    if url:
        storage = open_storage(url, data_dir)
        try:
            versions["postgresql"] = storage.schema_version()
        finally:
            storage.close()
    return versions


def backup(data_dir: Path, out: Path, url: str = "") -> dict[str, Any]:
    """Write an encrypted backup of `data_dir` (and the database of `url`) to `out`."""
    data_dir, out = Path(data_dir), Path(out)
    if not data_dir.is_dir():
        raise BackupError(f"data-dir: {data_dir} is not a directory; run `govgw init`")
    if out.exists():
        raise BackupError(f"out: {out} exists; a backup never overwrites a file")
    if out.resolve().is_relative_to(data_dir.resolve()):
        raise BackupError(f"out: {out} is inside the data directory; write it elsewhere")
    keyring = keys.keyring_path(data_dir)
    ring = _load_ring(keyring)
    manifest: dict[str, Any] = {
        "format": 1,
        "govgw": _version(),
        "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "node": socket.gethostname(),
        "backend": "postgresql" if url else "sqlite",
        "schema": _schema_versions(data_dir, url),
        "keyring": deployment_fingerprint(ring),
        "keyring_included": False,
        "files": [],
    }
    partial = out.with_name(f".{out.name}.partial")
    with tempfile.TemporaryDirectory(prefix="govgw-backup-") as tmp_name:
        tmp = Path(tmp_name)  # 0700 (mkdtemp): snapshots of sealed stores only
        try:
            with os.fdopen(open_private(partial, os.O_WRONLY | os.O_TRUNC), "wb") as raw:
                sealed = EncryptingWriter(raw, ring)
                with tarfile.open(fileobj=sealed, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
                    _add_files(tar, data_dir, keyring, tmp, manifest["files"])
                    if url:
                        dumped = tmp / "govgw.sql"
                        backup_pg.dump(url, dumped)
                        with dumped.open("rb") as f:
                            manifest["files"].append(_add(tar, DUMP, f, dumped.stat().st_size))
                    body = json.dumps(manifest, indent=2, sort_keys=True).encode()
                    _add(tar, MANIFEST, io.BytesIO(body), len(body))
                sealed.close()
                raw.flush()
                os.fsync(raw.fileno())
            os.replace(partial, out)
            fsync_dir(out.parent)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    return {
        "out": str(out),
        "bytes": out.stat().st_size,
        "files": len(manifest["files"]),
        "backend": manifest["backend"],
        "schema": manifest["schema"],
        "keyring": manifest["keyring"],
        "note": KEYRING_NOTE,
    }


def _add_files(
    tar: tarfile.TarFile, data_dir: Path, keyring: Path, tmp: Path, listed: list[dict[str, Any]]
) -> None:
    for kind, path in _members(data_dir, keyring):
        name = FILES + path.relative_to(data_dir).as_posix()
        if kind == "sqlite":
            snap = _sqlite_snapshot(path, tmp)
            with snap.open("rb") as f:
                listed.append(_add(tar, name, f, snap.stat().st_size))
            snap.unlink()
        elif kind == "audit":
            with path.open("rb") as f:
                listed.append(_add(tar, name, f, _record_boundary(path)))
        else:
            lock = path.with_name(path.name + ".lock")
            if lock.exists():  # a store with a writer's lock: read while holding it
                with exclusive(path):
                    data = path.read_bytes()
            else:
                data = path.read_bytes()
            listed.append(_add(tar, name, io.BytesIO(data), len(data)))


# -- restore ------------------------------------------------------------------
def _check_targets(data_dir: Path, url: str) -> None:
    if data_dir.exists():
        if not data_dir.is_dir():
            raise BackupError(f"data-dir: {data_dir} is a file; restore into an empty directory")
        present = sorted(p.name for p in data_dir.iterdir())
        if present:
            shown = ", ".join(present[:5]) + (
                f" and {len(present) - 5} more" if len(present) > 5 else ""
            )
            raise BackupError(
                f"data-dir: {data_dir} is not empty (it holds {shown}); restore into an empty"
                " directory"
            )
    if url:
        tables = backup_pg.existing_schema(url)
        if tables is not None:
            raise BackupError(
                f"database-url: {redact(url)} already has a govgw schema ({tables} tables);"
                " restore into an empty database"
            )


def _member_path(staging: Path, name: str) -> Path:
    pure = PurePosixPath(name)
    ok = name in (MANIFEST, DUMP) or (name.startswith(FILES) and len(pure.parts) > 1)
    if not ok or pure.is_absolute() or ".." in pure.parts:
        raise BackupError(f"the backup holds an unexpected entry {name!r}: refused")
    return staging.joinpath(*pure.parts)


def _extract(reader: DecryptingReader, staging: Path) -> dict[str, dict[str, Any]]:
    """Every member into `staging`; returns path -> {size, sha256} as read."""
    seen: dict[str, dict[str, Any]] = {}
    with tarfile.open(fileobj=reader, mode="r|") as tar:  # type: ignore[call-overload]
        for member in tar:
            if not member.isfile() or member.name in seen:
                raise BackupError(f"the backup holds an unexpected entry {member.name!r}: refused")
            target = _member_path(staging, member.name)
            private_dir(target.parent)
            src = tar.extractfile(member)
            assert src is not None  # a regular file
            sha = hashlib.sha256()
            with os.fdopen(open_private(target, os.O_WRONLY | os.O_TRUNC), "wb") as f:
                while chunk := src.read(1 << 20):
                    sha.update(chunk)
                    f.write(chunk)
            seen[member.name] = {"size": member.size, "sha256": sha.hexdigest()}
    reader.drain()
    return seen


def _check_manifest(staging: Path, seen: dict[str, dict[str, Any]]) -> dict[str, Any]:
    if MANIFEST not in seen:
        raise BackupError("the backup has no manifest: refused")
    try:
        manifest = json.loads((staging / MANIFEST).read_bytes())
        listed = {str(f["path"]): f for f in manifest["files"]}
        if not {"created_at", "govgw", "node", "schema"} <= set(manifest):
            raise KeyError("a field")
    except (ValueError, KeyError, TypeError) as e:
        raise BackupError(f"the backup's manifest is malformed ({type(e).__name__})") from None
    for name, got in seen.items():
        if name == MANIFEST:
            continue
        want = listed.get(name)
        if want is None:
            raise BackupError(f"{name} is not in the backup's manifest: refused")
        if (want["size"], want["sha256"]) != (got["size"], got["sha256"]):
            raise BackupError(f"{name} differs from the backup's manifest (SHA-256): refused")
    missing = sorted(set(listed) - set(seen))
    if missing:
        raise BackupError(f"the backup lacks {', '.join(missing[:5])} its manifest lists: refused")
    pg = manifest.get("schema", {}).get("postgresql", 0)
    if pg > migrations.latest("postgresql"):
        raise BackupError(
            f"the backup's database schema is version {pg}, newer than this govgw knows"
            f" ({migrations.latest('postgresql')}): restore with the govgw that made it"
        )
    return manifest


def _restore_keyring(explicit: Path | None, data_dir: Path) -> tuple[Path, keys.KeyRing]:
    path = explicit or keys.keyring_path(data_dir)
    if not path.is_file():
        raise BackupError(
            f"keyring: no keyring at {path}; {KEYRING_NOTE}: pass --keyring FILE (or set"
            " GOVGW_KEYRING_FILE) to the deployment's keyring"
        )
    return path, _load_ring(path)


def restore(
    source: Path, data_dir: Path, url: str = "", keyring: Path | None = None
) -> dict[str, Any]:
    """Restore a backup into an empty `data_dir` (and the empty database of `url`)."""
    source, data_dir = Path(source), Path(data_dir)
    ring_path, ring = _restore_keyring(keyring, data_dir)
    _check_targets(data_dir, url)
    private_dir(data_dir.parent, tighten=False)
    staging = Path(tempfile.mkdtemp(prefix=f".{data_dir.name}.restoring-", dir=data_dir.parent))
    try:
        try:
            with source.open("rb") as raw:
                seen = _extract(DecryptingReader(raw, ring), staging)
        except (tarfile.TarError, EOFError) as e:
            raise BackupError(f"the backup's contents are damaged ({type(e).__name__})") from None
        manifest = _check_manifest(staging, seen)
        has_dump = DUMP in seen
        if has_dump and not url:
            raise BackupError(
                "this backup holds a PostgreSQL database: pass --database-url of an empty database"
            )
        if url and not has_dump:
            raise BackupError(
                "this backup holds no database (it was made without --database-url):"
                " restore it without one"
            )
        if has_dump:
            backup_pg.load(url, staging / DUMP)
            open_storage(url, data_dir).close()  # the restored schema opens (and migrates)
        private_dir(data_dir)
        files = staging / FILES.rstrip("/")
        if files.is_dir():
            for entry in sorted(files.iterdir()):
                os.replace(entry, data_dir / entry.name)
        if not os.environ.get(keys.KEYRING_ENV):  # a node of its own keeps its keyring inside
            target = data_dir / "keys" / "keyring.json"
            private_dir(target.parent)
            with os.fdopen(open_private(target, os.O_WRONLY | os.O_EXCL), "wb") as f:
                f.write(ring_path.read_bytes())
        tighten_tree(data_dir)
        fsync_dir(data_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {
        "data_dir": str(data_dir),
        "database": redact(url) if url else "",
        "files": len(seen) - 1,
        "made_at": manifest["created_at"],
        "made_by": manifest["govgw"],
        "node": manifest["node"],
        "schema": manifest["schema"],
        "audit": _verify_chains(data_dir),
        "keyring": (
            f"{ring_path} (GOVGW_KEYRING_FILE: used in place, not copied)"
            if os.environ.get(keys.KEYRING_ENV)
            else f"{ring_path} copied to {data_dir / 'keys' / 'keyring.json'}"
        ),
    }


def _verify_chains(data_dir: Path) -> dict[str, Any]:
    from gateway.audit import verify_chain

    reports = [(p.name, verify_chain(p)) for p in Layout(data_dir).audit_files()]
    broken = [f"{name}: {r.problem}" for name, r in reports if not r.ok]
    return {"ok": not broken, "records": sum(r.records for _, r in reports), "problems": broken}


__all__ = ["BackupError", "StorageError", "backup", "restore"]
