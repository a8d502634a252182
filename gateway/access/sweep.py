"""Revoking grants left unused for three months (Yingkou art. 22; R5).

A grant's last use is the newest successful call the audit trail records
under it (a record's `grants` lists the grants its plans used); a grant never
used counts from its creation. The gateway asks the audit index
(gateway.audit.index) for last uses; given chain files, they are scanned. The sweep runs from `govgw access sweep` and,
periodically, in the server; each revocation is audited by whoever runs it.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.audit import read_records
from gateway.audit.index import BaseAuditIndex
from gateway.grants import ACTIVE, GrantStore

UNUSED_MONTHS = 3
SWEEP_REASON = "UNUSED_3_MONTHS"


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def add_months(moment: datetime, months: int) -> datetime:
    """The same day `months` later, clamped to the month's end (30 Nov + 3 = 28/29 Feb)."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def last_uses(audit: Iterable[Path] | BaseAuditIndex) -> dict[str, datetime]:
    """Grant id -> time of the newest successful call made under it."""
    if isinstance(audit, BaseAuditIndex):
        audit.refresh()
        return audit.last_uses()
    last: dict[str, datetime] = {}
    for path in audit:
        for rec in read_records(path):
            if rec.get("outcome") != "OK" or not rec.get("grants") or not rec.get("ts"):
                continue
            at = parse_time(str(rec["ts"]))
            for gid in rec["grants"]:
                if gid not in last or at > last[gid]:
                    last[gid] = at
    return last


def unused(
    grants: Iterable[Mapping[str, Any]],
    last_used: Mapping[str, datetime],
    now: datetime,
    months: int = UNUSED_MONTHS,
) -> list[Mapping[str, Any]]:
    """Active grants with no use in the last `months` months (counting from creation)."""
    out = []
    for g in grants:
        if g.get("status") != ACTIVE:
            continue
        since = last_used.get(g["id"]) or parse_time(str(g.get("created_at") or ""))
        if add_months(since, months) <= now:
            out.append(g)
    return out


def sweep_unused(
    store: GrantStore, audit: Iterable[Path] | BaseAuditIndex, now: datetime
) -> list[dict[str, Any]]:
    """Revoke every active grant unused for three months; the revoked grants."""
    stale = unused(store.list(), last_uses(audit), now)
    revoked = []
    for g in stale:
        current = store.get(g["id"])  # another process may have changed it meanwhile
        if current is not None and current.get("status") == ACTIVE:
            revoked.append(store.revoke(g["id"], SWEEP_REASON, now))
    return revoked
