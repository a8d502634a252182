"""The caller registry: who may call the gateway, and as what.

A caller is an agency system, a service counter or a public client. An
agency caller may represent providers: it is bound to them by the catalog's
provider ids (`provider_ids`), never by its department's name, so a department
whose name merely resembles a provider's gains nothing. API
keys are shown once, when the caller is added, and stored only as SHA-256
digests: keys are 256-bit random, so a fast hash is enough (no password
stretching needed) and a copy of the registry yields no usable key.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway import purposes
from gateway.catalog import PROVIDER_ID_RE
from gateway.storage import DuplicateKey, SqliteStorage, Storage

KINDS = ("agency", "counter", "public", "admin")
STATUSES = ("active", "suspended")
KEY_PREFIX = "gk_"
# How long a change made by another process (the CLI) may take to be seen.
REFRESH_S = 0.1
STORE = "callers"  # the name its changes are announced under
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,62}$")
_REGION_RE = re.compile(r"^\d{6}$")


class CallerError(ValueError):
    """A registry operation was refused (bad id, duplicate, unknown caller)."""


@dataclass(frozen=True)
class Caller:
    id: str
    kind: str
    department: str
    region: str
    status: str = "active"  # active | suspended
    created_at: str = ""
    # When the status last changed (epoch seconds): a reinstated caller's
    # enumeration monitor starts afresh from here.
    status_since: float = 0.0
    # The catalog providers this caller acts for (an agency of the providing
    # department): it decides their applications, reads their usage reports.
    provider_ids: tuple[str, ...] = ()
    # Who at the caller made this call (contract.metadata.OPERATOR_HEADER), set by
    # authentication for the call; empty when the caller names none. Since when the
    # operator is active: a reinstated clerk's monitor starts afresh from there.
    operator: str = ""
    operator_since: float = 0.0

    @property
    def principal(self) -> str:
        """What the enumeration monitor counts and suspends: the caller, or one of its
        operators (`caller/operator`; neither may contain '/')."""
        return f"{self.id}/{self.operator}" if self.operator else self.id

    @property
    def active_since(self) -> float:
        """Since when the principal has been active: its monitor counts from there."""
        since = self.status_since if self.status == "active" else 0.0
        return max(since, self.operator_since)

    def represents(self, provider_id: str) -> bool:
        """Does this caller act as the provider with this id (agencies only)?"""
        return self.kind == "agency" and bool(provider_id) and provider_id in self.provider_ids

    def policy_input(self) -> dict[str, str]:
        return {
            "id": self.id,
            "kind": self.kind,
            "department": self.department,
            "region": self.region,
        }

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["provider_ids"] = list(self.provider_ids)
        del doc["operator"], doc["operator_since"]  # of one call, not of the registry
        return doc


@dataclass(frozen=True)
class OperatorStatus:
    """An operator the monitor suspended (or an administrator reinstated)."""

    caller: str
    operator: str
    status: str  # active | suspended
    reason: str
    since: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def key_digest(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def _provider_ids(kind: str, provider_ids: Sequence[str]) -> tuple[str, ...]:
    """Checked, deduplicated provider ids; only an agency represents a provider."""
    providers = tuple(dict.fromkeys(p.strip() for p in provider_ids))
    for p in providers:
        if not PROVIDER_ID_RE.fullmatch(p):
            raise CallerError(
                f"provider-id: {p!r} is not a provider id"
                " (2-63 characters of a-z, 0-9, '.', '_', '-')"
            )
    if providers and kind != "agency":
        raise CallerError("provider-id: only an agency caller represents a provider")
    return providers


class CallerRegistry:
    """The registry on a storage (storage/): the data directory's SQLite file (a path
    is given) or the shared database. Reads come from an in-memory copy, reloaded when
    the storage's stamp of the store changes: a file stat on SQLite, a change announced
    by another node or the CLI on PostgreSQL."""

    def __init__(self, storage: Storage | Path | str) -> None:
        self.storage = storage if isinstance(storage, Storage) else SqliteStorage(Path(storage))
        self._lock = threading.Lock()
        self._by_digest: dict[str, Caller] = {}
        self._by_id: dict[str, Caller] = {}
        self._stamp: object = None
        self._checked = float("-inf")
        self._operators: dict[tuple[str, str], OperatorStatus] = {}
        if self.storage.shared:
            # Loaded now and on every announced change, in the storage's listener
            # thread: the gateway's event loop reads the cache and queries nothing.
            self._refresh(0.0)
            self.storage.subscribe(STORE, lambda: self._refresh(0.0))

    def _write(self, sql: str, params: Sequence[object]) -> int:
        """One statement in its own transaction, announced to every process; the
        number of rows it changed."""
        with self.storage.transaction() as db:
            rowcount = db.execute(self.storage.sql(sql), tuple(params)).rowcount
            if rowcount:
                self.storage.announce(db, STORE)
        # This process sees its own write at once, before its announcement comes back
        # (read under the lock after the commit, so no concurrent reload can undo it).
        self._refresh(0.0, force=True)
        return int(rowcount)

    def add(
        self,
        caller_id: str,
        kind: str,
        department: str,
        region: str,
        provider_ids: Sequence[str] = (),
    ) -> tuple[Caller, str]:
        """Register a caller; returns it with its API key (shown once, never stored)."""
        providers = _provider_ids(kind, provider_ids)
        if not _ID_RE.match(caller_id):
            raise CallerError("id: 2-63 characters of a-z, 0-9, '.', '_', '-'")
        if purposes.holds_personal_number(caller_id):
            # The id is in every audit record and report of the caller's calls.
            raise CallerError("id: must not be an ID number or phone number")
        if kind not in KINDS:
            raise CallerError(f"kind: must be one of {', '.join(KINDS)}")
        if not department.strip():
            raise CallerError("department: is required")
        if not _REGION_RE.match(region):
            raise CallerError("region: must be a 6-digit administrative division code")
        api_key = KEY_PREFIX + secrets.token_urlsafe(32)
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        try:
            self._write(
                "INSERT INTO callers (id, kind, department, region, key_digest, status,"
                " created_at, provider_ids) VALUES (?, ?, ?, ?, ?, 'active', ?, ?)",
                (
                    caller_id,
                    kind,
                    department.strip(),
                    region,
                    key_digest(api_key),
                    now,
                    ",".join(providers),
                ),
            )
        except DuplicateKey as e:
            raise CallerError(f"id: caller {caller_id!r} already exists") from e
        caller = Caller(
            caller_id, kind, department.strip(), region, "active", now, provider_ids=providers
        )
        return caller, api_key

    def set_provider_ids(self, caller_id: str, provider_ids: Sequence[str]) -> Caller:
        """Bind a registered caller to exactly these providers (none: unbind it)."""
        caller = self.get(caller_id)
        if caller is None:
            raise CallerError(f"id: no caller {caller_id!r}")
        providers = _provider_ids(caller.kind, provider_ids)
        self._write(
            "UPDATE callers SET provider_ids = ? WHERE id = ?", (",".join(providers), caller_id)
        )
        self._refresh(0.0)
        caller = self.get(caller_id)
        assert caller is not None
        return caller

    def set_status(self, caller_id: str, status: str) -> Caller:
        if status not in STATUSES:
            raise CallerError(f"status: must be one of {', '.join(STATUSES)}")
        changed = self._write(
            "UPDATE callers SET status = ?, status_since = ? WHERE id = ?",
            (status, time.time(), caller_id),
        )
        if changed == 0:
            raise CallerError(f"id: no caller {caller_id!r}")
        self._refresh(0.0)
        caller = self.get(caller_id)
        assert caller is not None
        return caller

    def set_operator_status(
        self, caller_id: str, operator: str, status: str, reason: str
    ) -> OperatorStatus:
        if status not in STATUSES:
            raise CallerError(f"status: must be one of {', '.join(STATUSES)}")
        if self.get(caller_id) is None:
            raise CallerError(f"id: no caller {caller_id!r}")
        if status == "active":
            self._refresh(0.0)
            held = self._operators.get((caller_id, operator))
            if held is None or held.status != "suspended":
                raise CallerError(f"operator: {operator!r} of {caller_id!r} is not suspended")
        row = OperatorStatus(caller_id, operator, status, reason, time.time())
        self._write(
            "INSERT INTO operators (caller, operator, status, reason, since)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (caller, operator) DO UPDATE SET"
            " status = excluded.status, reason = excluded.reason, since = excluded.since",
            (caller_id, operator, status, reason, row.since),
        )
        self._refresh(0.0)
        return row

    def operator(self, caller_id: str, operator: str) -> OperatorStatus | None:
        self._refresh(REFRESH_S)
        return self._operators.get((caller_id, operator))

    def operators(self) -> list[OperatorStatus]:
        self._refresh(REFRESH_S)
        return sorted(self._operators.values(), key=lambda o: (o.caller, o.operator))

    def list(self) -> list[Caller]:
        self._refresh(REFRESH_S)
        return sorted(self._by_id.values(), key=lambda c: c.id)

    def get(self, caller_id: str) -> Caller | None:
        self._refresh(REFRESH_S)
        return self._by_id.get(caller_id)

    def by_api_key(self, api_key: str) -> Caller | None:
        """The caller holding this key, if any.

        The lookup is keyed by the digest of the presented key, so its timing
        depends on the digest, not on how much of a stored key was guessed.
        """
        digest = key_digest(api_key)
        self._refresh(REFRESH_S)
        caller = self._by_digest.get(digest)
        if caller is None:
            # A caller the CLI added a moment ago is found at once.
            self._refresh(0.0)
            caller = self._by_digest.get(digest)
        return caller

    def _refresh(self, max_age_s: float = 0.0, *, force: bool = False) -> None:
        """Reload when the registry changed.

        The CLI (and, on a shared database, other nodes) add and suspend callers.
        The storage's stamp is looked at most every `max_age_s` (a suspension takes
        effect within REFRESH_S; a stat per request would cost the event loop more).
        `force` reloads whatever the stamp: after this process's own write, which
        its announcement has not stamped yet.
        """
        now = time.monotonic()
        if max_age_s and now - self._checked < max_age_s:
            return
        self._checked = now
        stamp = self.storage.stamp(STORE)
        if stamp == self._stamp and not force:
            return
        with self._lock:
            if stamp == self._stamp and not force:
                return
            with self.storage.transaction() as db:
                rows = db.execute(
                    "SELECT id, kind, department, region, key_digest, status, created_at,"
                    " status_since, provider_ids FROM callers"
                ).fetchall()
                operators = db.execute(
                    "SELECT caller, operator, status, reason, since FROM operators"
                ).fetchall()
            self._operators = {(r[0], r[1]): OperatorStatus(*r) for r in operators}
            by_digest, by_id = {}, {}
            for cid, kind, dept, region, digest, status, created, since, pids in rows:
                providers = tuple(p for p in pids.split(",") if p)
                c = Caller(cid, kind, dept, region, status, created, float(since), providers)
                by_id[cid] = c
                if digest:
                    by_digest[digest] = c
            self._by_digest, self._by_id = by_digest, by_id
            self._stamp = stamp
