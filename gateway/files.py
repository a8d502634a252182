"""Crash-safe file primitives the stores share.

The gateway keeps its small state (grants, emergencies, withdrawals, issuers,
holiday schedules, policy versions, applications, corrections) in files that
several processes — gateway workers and the `govgw` command — read and write.
Two rules make that safe, and live here once:

- a file is replaced, never rewritten in place: temp file in the same
  directory, fsync, rename, fsync the directory. A reader (or a crash) sees
  the old file or the new one, never part of either;
- a read-modify-write holds an exclusive flock on a sibling `.lock` file, so
  no update is lost between processes;
- everything made in a data directory is owner-only — files 0600, directories
  0700 — whatever the process umask (R12): the data directory holds keys, API
  key digests, sealed personal data and the audit trail, and nothing there is
  for other local users. open() and mkdir() only ever *remove* umask bits from
  the mode asked for, so every creation here asks for the exact mode and sets
  it again when the umask could have changed it; `govgw` also runs with umask
  077 (set_private_umask) so that a file made by a library outside these
  helpers is private too. A directory made by an older govgw is tightened
  when the gateway or a `govgw` verb opens it (tighten_tree).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

FILE_MODE = 0o600
DIR_MODE = 0o700
# What SQLite creates beside a database; it gives them the database's mode
# (and re-applies it over the umask), so a private database keeps them private.
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")

log = logging.getLogger("govgw.files")


def set_private_umask() -> int:
    """Make this process create owner-only files by default; returns the old umask.

    For process entry points (the `govgw` command) only: a library must not
    change its host process's umask."""
    return os.umask(0o077)


def _tighten(path: Path, want: int) -> None:
    """chmod `path` to `want` if it differs; never follows a symlink."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode) or stat.S_IMODE(st.st_mode) == want:
        return
    try:
        os.chmod(path, want)
    except OSError as e:
        # Not ours (EPERM: e.g. made by root for a service user) or a read-only
        # mount (EROFS): serving goes on, but the operator should know.
        log.warning(
            "cannot make %s owner-only (mode %o): %s", path, stat.S_IMODE(st.st_mode), e.strerror
        )


def private_dir(path: Path, *, tighten: bool = True) -> Path:
    """`mkdir -p` whose every new directory is 0700; an existing `path` is
    tightened too unless `tighten` is false (a directory outside the data
    directory, e.g. one holding GOVGW_KEYRING_FILE, is the operator's).

    Path.mkdir(parents=True) gives the parents the umask's mode and the leaf
    `mode & ~umask`, so each directory is made one at a time and chmod-ed."""
    path = Path(path)
    missing = []
    p = path
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it first
            d.mkdir(mode=DIR_MODE)
        _tighten(d, DIR_MODE)
    if tighten and not missing:
        _tighten(path, DIR_MODE)
    return path


def open_private(path: Path, flags: int) -> int:
    """os.open a file, created (or tightened to) 0600; missing directories above
    it are made 0700 (existing ones are left: the file may be an export into a
    directory of the operator's; tighten_tree sees to the data directory's)."""
    path = Path(path)
    private_dir(path.parent, tighten=False)
    fd = os.open(path, flags | os.O_CREAT, FILE_MODE)
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) != FILE_MODE:
            os.fchmod(fd, FILE_MODE)
    except OSError as e:  # EPERM (not its owner), EROFS
        log.warning("cannot make %s owner-only: %s", path, e.strerror)
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_private(path: Path, data: bytes) -> None:
    """Write a whole file in place, 0600 (for files nobody reads while they are
    written; the stores' files go through replace_atomically)."""
    with os.fdopen(open_private(path, os.O_WRONLY | os.O_TRUNC), "wb") as f:
        f.write(data)


def connect_sqlite(path: Path, **kwargs: Any) -> sqlite3.Connection:
    """sqlite3.connect to a database that is made 0600 before SQLite sees it.

    SQLite would create the file 0644 (less the umask); made here first, the
    database — and the -wal/-shm/-journal files SQLite gives its mode — stay
    private. Side files left by an older govgw are tightened too."""
    path = Path(path)
    os.close(open_private(path, os.O_RDONLY))  # fchmod needs ownership, not write access
    for suffix in SQLITE_SIDE_FILES:
        _tighten(path.with_name(path.name + suffix), FILE_MODE)
    return sqlite3.connect(path, **kwargs)


def tighten_tree(root: Path) -> None:
    """Make an existing data directory owner-only: 0700 directories, 0600 files.

    For directories made by a govgw before R12's modes: cheap (stat calls on a
    small tree) so it runs whenever the gateway or a `govgw` verb opens one.
    Symlinks are left alone (chmod would follow them out of the tree)."""
    root = Path(root)
    if not root.is_dir() or root.is_symlink():
        return
    _tighten(root, DIR_MODE)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            _tighten(Path(dirpath, name), DIR_MODE)
        for name in filenames:
            _tighten(Path(dirpath, name), FILE_MODE)


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
    private_dir(path.parent, tighten=False)
    # mkstemp creates the file 0600 (less a umask, which can only narrow it).
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
    with os.fdopen(
        open_private(path.with_name(path.name + ".lock"), os.O_WRONLY | os.O_APPEND), "a"
    ) as lock:
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
    db = connect_sqlite(path, timeout=10, isolation_level=None)
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
