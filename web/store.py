"""The web app's own state: clerks, sign-in failures, each clerk's recent checks.

One owner-only SQLite file in the web data directory (0700 directory, 0600
files). Nothing personal is kept: a check row holds the time, the purpose,
the answer and the signed receipt, which carries only a keyed commitment to
the subject, never a name or an ID number.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

DB_NAME = "web.sqlite"
SECRET_NAME = "session-secret"
KEYS_NAME = "receipt-keys.json"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS clerks (
  username TEXT PRIMARY KEY,
  caller TEXT NOT NULL,
  password_hash TEXT NOT NULL,
  must_change INTEGER NOT NULL,
  created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS failures (username TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS failures_by_user ON failures (username, at);
CREATE TABLE IF NOT EXISTS checks (
  receipt_id TEXT PRIMARY KEY,
  username TEXT NOT NULL,
  at TEXT NOT NULL,
  kind TEXT NOT NULL,
  purpose TEXT NOT NULL,
  answer TEXT NOT NULL,
  receipt_json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS checks_by_user ON checks (username, at);
"""

# argon2id with the library's defaults (RFC 9106 low-memory profile).
_hasher = PasswordHasher()


def private_dir(path: Path) -> Path:
    """The directory, made 0700 (and tightened if it exists looser)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def _private_file(path: Path) -> None:
    """Create the file 0600 before anything is written to it (no window of 0644)."""
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    os.chmod(path, 0o600)


def session_secret(data_dir: Path) -> bytes:
    """The cookie-signing secret, generated at first start into the data directory."""
    path = private_dir(data_dir) / SECRET_NAME
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(48))
    os.chmod(path, 0o600)
    return path.read_text().strip().encode()


@dataclass(frozen=True)
class Clerk:
    username: str
    caller: str
    must_change: bool


@dataclass(frozen=True)
class Check:
    receipt_id: str
    at: str
    kind: str
    purpose: str
    answer: str


class WebStore:
    """Thread-safe access to web.sqlite (uvicorn runs sync work in a thread pool)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = private_dir(data_dir)
        self.path = self.data_dir / DB_NAME
        _private_file(self.path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        # WAL keeps a -wal and -shm beside the file: the umask makes them owner-only too.
        self._db.executescript(_SCHEMA)
        # Sign-in failures are kept under a keyed hash of what was typed as the username:
        # a citizen's number typed into the wrong field is not written down.
        self._failure_key = hashlib.sha256(b"failures\0" + session_secret(self.data_dir)).digest()

    def _who(self, username: str) -> str:
        return hmac.new(self._failure_key, username.encode(), hashlib.sha256).hexdigest()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()

    # -- clerks ----------------------------------------------------------------
    def add_clerk(self, username: str, caller: str) -> str:
        """A new clerk with a one-time password (returned, never stored in clear)."""
        one_time = secrets.token_urlsafe(12)
        with self._tx() as db:
            if db.execute("SELECT 1 FROM clerks WHERE username = ?", (username,)).fetchone():
                raise ValueError(f"username: clerk {username!r} exists already")
            db.execute(
                "INSERT INTO clerks VALUES (?, ?, ?, 1, ?)",
                (username, caller, _hasher.hash(one_time), _now()),
            )
        return one_time

    def clerk(self, username: str) -> Clerk | None:
        with self._lock:
            row = self._db.execute(
                "SELECT username, caller, must_change FROM clerks WHERE username = ?", (username,)
            ).fetchone()
        return Clerk(row[0], row[1], bool(row[2])) if row else None

    def check_password(self, username: str, password: str) -> Clerk | None:
        with self._lock:
            row = self._db.execute(
                "SELECT password_hash FROM clerks WHERE username = ?", (username,)
            ).fetchone()
        if row is None:
            # Spend the same work as for a real clerk: timing tells no usernames.
            _hasher.hash(password)
            return None
        try:
            _hasher.verify(row[0], password)
        except (VerificationError, InvalidHashError):
            return None
        return self.clerk(username)

    def set_password(self, username: str, password: str) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE clerks SET password_hash = ?, must_change = 0 WHERE username = ?",
                (_hasher.hash(password), username),
            )

    # -- sign-in failures (lockout) ----------------------------------------------
    def failures_since(self, username: str, since: float) -> int:
        with self._lock:
            (n,) = self._db.execute(
                "SELECT COUNT(*) FROM failures WHERE username = ? AND at >= ?",
                (self._who(username), since),
            ).fetchone()
        return int(n)

    def add_failure(self, username: str, at: float, forget_before: float) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM failures WHERE at < ?", (forget_before,))
            db.execute("INSERT INTO failures VALUES (?, ?)", (self._who(username), at))

    def clear_failures(self, username: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM failures WHERE username = ?", (self._who(username),))

    # -- recent checks -------------------------------------------------------------
    def add_check(
        self, username: str, kind: str, purpose: str, answer: str, receipt: dict[str, str]
    ) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO checks VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    receipt["receipt_id"],
                    username,
                    _now(),
                    kind,
                    purpose,
                    answer,
                    json.dumps(receipt, sort_keys=True),
                ),
            )

    def recent_checks(self, username: str, limit: int = 50) -> list[Check]:
        with self._lock:
            rows = self._db.execute(
                "SELECT receipt_id, at, kind, purpose, answer FROM checks WHERE username = ?"
                " ORDER BY at DESC LIMIT ?",
                (username, limit),
            ).fetchall()
        return [Check(*r) for r in rows]

    def receipt(self, username: str, receipt_id: str) -> dict[str, str] | None:
        """A receipt of this clerk's own checks (another clerk's is not found)."""
        with self._lock:
            row = self._db.execute(
                "SELECT receipt_json FROM checks WHERE username = ? AND receipt_id = ?",
                (username, receipt_id),
            ).fetchone()
        return json.loads(row[0]) if row else None


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
