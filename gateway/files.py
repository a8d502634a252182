"""Crash-safe file primitives the stores share.

The gateway keeps its small state (grants, emergencies, withdrawals, issuers,
holiday schedules, policy versions, applications, corrections) in files that
several processes — gateway workers and the `govgw` command — read and write.
Two rules make that safe, and live here once:

- a file is replaced, never rewritten in place: temp file in the same
  directory, fsync, rename, fsync the directory. A reader (or a crash) sees
  the old file or the new one, never part of either;
- a read-modify-write holds an exclusive flock on a sibling `.lock` file, so
  no update is lost between processes.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """Make a rename in `path` survive a crash (best effort where unsupported)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def replace_atomically(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold the cross-process lock of `path` (its sibling `<name>.lock`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextlib.contextmanager
def sqlite_transaction(path: Path) -> Iterator[sqlite3.Connection]:
    """One write transaction on a SQLite store shared by processes.

    BEGIN IMMEDIATE takes the write lock up front, so two processes deciding
    on the same row serialize instead of failing at commit; WAL lets readers
    go on meanwhile; synchronous=FULL makes a commit durable before the
    caller answers.
    """
    db = sqlite3.connect(path, timeout=10, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
    finally:
        db.close()
