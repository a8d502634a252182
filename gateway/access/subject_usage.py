"""Who used my data (R8): a data subject's view of the audit trail, like Estonia's Data Tracker.

Every audit record about a subject carries its keyed subject hash (one record
per subject per call, gateway.pipeline), so the uses of one subject's data are
found by that hash in every audit chain of the data directory (one per worker
process); the gateway finds them through the audit index
(gateway.audit.index), by hash and period, instead of reading the chains. Listed: time, caller, caller kind, department, purpose, action,
dataset and outcome. Left out:

- the subject's own subject-rights calls (listing, filing, withdrawing): they
  are not uses of the data by someone else;
- records a policy marks hidden by law (package govgw.subject_access, e.g. a
  criminal investigation by public security, or state security). They are left
  out silently: no count, no gap, no marker, because even "1 use hidden"
  tells the subject they are under investigation. The listing's own audit
  record does not count them either.

The policy decides per (caller kind, department, dataset, action, purpose),
never per record, so each distinct combination is evaluated once and cached.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.access.sweep import parse_time
from gateway.audit import read_records
from gateway.audit.index import BaseAuditIndex
from gateway.callers import KINDS
from gateway.errors import invalid, unavailable
from gateway.plan import SUBJECT_DISCLOSE, Plan
from gateway.policy.decider import Decider, rfc3339

log = logging.getLogger("govgw.subject_usage")

HIDDEN_BY_LAW = "HIDDEN_BY_LAW"
MAX_PAGE = 200
DEFAULT_PAGE = 50


@dataclass(frozen=True)
class Use:
    at: str
    caller: str
    caller_kind: str
    department: str
    purpose: str
    action: str
    dataset: str
    outcome: str
    request_id: str

    def to_json(self) -> dict[str, str]:
        return self.__dict__.copy()


class Disclosure:
    """Whether the policy lets a subject see a kind of use; cached per policy version."""

    def __init__(self, decider: Decider) -> None:
        self.decider = decider
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, ...], bool] = {}

    def hidden(self, rec: Mapping[str, Any], now: datetime) -> bool:
        if rec.get("caller_kind") not in KINDS:
            # The gateway's own housekeeping (caller kind "system": sweeps and the like)
            # is no caller the policy knows, and no investigation: shown as it is.
            return False
        engine = self.decider.engine
        combo = tuple(
            str(rec.get(k, ""))
            for k in ("caller_kind", "department", "dataset", "action", "purpose")
        )
        key = (engine.version, *combo)
        with self._lock:
            found = self._cache.get(key)
        if found is not None:
            return found
        kind, department, dataset, action, purpose = combo
        doc = {
            "caller": {"id": "", "kind": kind, "department": department, "region": ""},
            "action": SUBJECT_DISCLOSE,
            "dataset": dataset,
            "purpose": purpose,
            "use": {"action": action},
            "now": rfc3339(now),
        }
        try:
            plan = Plan.from_policy(
                engine.evaluate(doc, self.decider.policy_data()), engine.version
            )
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as e:  # regorus panics are BaseExceptions
            log.error("disclosure policy failed: %s", type(e).__name__)
            plan = Plan.deny("POLICY_ERROR", "", engine.version)
        if not plan.allow and plan.reason not in (HIDDEN_BY_LAW,):
            # Neither shown nor hidden by the policy: list nothing rather than
            # risk disclosing a use the law hides (fail closed, say so).
            raise unavailable(
                "POLICY_ERROR", "the disclosure policy could not be evaluated; try again later"
            )
        hidden = not plan.allow
        with self._lock:
            self._cache[key] = hidden
        return hidden


def encode_cursor(use: Use) -> str:
    raw = json.dumps([use.at, use.request_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str) -> tuple[str, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        at, rid = json.loads(raw)
        if not isinstance(at, str) or not isinstance(rid, str):
            raise ValueError
        parse_time(at)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise invalid(
            "page_token", "is not a token from a previous page", "PAGE_TOKEN_INVALID"
        ) from None
    return at, rid


def uses_of(
    audit: Iterable[Path] | BaseAuditIndex,
    subject_hash: str,
    *,
    since: datetime,
    until: datetime,
    exclude_actions: frozenset[str],
    disclosure: Disclosure,
    now: datetime,
    page_size: int = DEFAULT_PAGE,
    cursor: tuple[str, str] | None = None,
) -> tuple[list[Use], str]:
    """One page of the uses of the subject's data in [since, until), newest first,
    and the next page's token ("" on the last page). Reads files: run it off the loop."""
    records: Iterable[tuple[str, Mapping[str, Any]]]
    if isinstance(audit, BaseAuditIndex):
        audit.refresh()
        records = audit.records_of_subject(subject_hash, since, until)
    else:
        records = ((path.name, rec) for path in audit for rec in read_records(path))
    found: dict[str, Use] = {}
    for chain, rec in records:
        if rec.get("subject") != subject_hash or rec.get("action") in exclude_actions:
            continue
        ts = str(rec.get("ts") or "")
        if not ts or not since <= parse_time(ts) < until:
            continue
        if disclosure.hidden(rec, now):
            continue  # silently: see the module docstring
        rid = str(rec.get("request_id") or f"{chain}:{rec.get('seq')}")
        found[rid] = Use(
            at=ts,
            caller=str(rec.get("caller", "")),
            caller_kind=str(rec.get("caller_kind", "")),
            department=str(rec.get("department", "")),
            purpose=str(rec.get("purpose", "")),
            action=str(rec.get("action", "")),
            dataset=str(rec.get("dataset", "")),
            outcome=str(rec.get("outcome", "")),
            request_id=rid,
        )
    ordered = sorted(found.values(), key=lambda u: (parse_time(u.at), u.request_id), reverse=True)
    if cursor is not None:
        at, rid = parse_time(cursor[0]), cursor[1]
        ordered = [u for u in ordered if (parse_time(u.at), u.request_id) < (at, rid)]
    page = ordered[:page_size]
    more = len(ordered) > page_size
    return page, encode_cursor(page[-1]) if more and page else ""


def default_until(now: datetime) -> datetime:
    return now.astimezone(UTC)
