"""Impact preview: replay recorded decisions against a candidate policy.

Every audit record keeps the decision's input summary (caller, kind,
department, region, action, dataset, purpose, requested fields; no personal
data) and its plan hash. Replaying a window of the trail through the policy
now served and through the candidate, with the same grants and each record's
own time, shows what the candidate would change for real traffic:

    allow_to_deny / deny_to_allow      the decision flips
    deny_reason_changed                still denied, for another reason
    field_exposed / field_unmasked     a field newly released / now released raw
    field_masked / field_withheld      a raw field now masked / no longer released
    treatment_changed                  same operator, other parameters
    predicate_added / predicate_removed, constraints_changed

grouped by dataset, caller and change, with counts and a few examples (request
ids, never subjects). A request is replayed once, however many subjects it
named. The candidate is untrusted: the service runs this module in a child
process (like the bundle check), which checks the candidate first.

    python -m gateway.policy.impact --current DIR --candidate DIR --audit FILE \
        [--audit-index DB] [--grants FILE] [--emergencies FILE]
        [--regions FILE | --callers FILE] [--since 24h]
        [--json]

Calls made under an emergency (R11) are replayed with input.emergencies and the
emergency's grants as they were at the record's time (`EmergencyHistory`), so a
candidate that narrows emergency access shows those calls as allow_to_deny.

With --audit-index (gateway.audit.index), only the records of the window are
read, by offset; without it the chains are read from their start.
"""

from __future__ import annotations

import argparse
import json
import re
import sqlite3
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gateway.plan import Plan
from gateway.policy.bundle import load_bundle
from gateway.policy.engine import PolicyEngine, RegorusEngine, rego_error_text

EXAMPLES = 3
_DURATION = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

CHANGE_KINDS = (
    "allow_to_deny",
    "deny_to_allow",
    "deny_reason_changed",
    "field_exposed",
    "field_unmasked",
    "field_masked",
    "field_withheld",
    "treatment_changed",
    "predicate_added",
    "predicate_removed",
    "constraints_changed",
)


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """'24h', '7d', '30m', '90s', '2w' before now, or an RFC 3339 time."""
    now = now or datetime.now(UTC)
    m = _DURATION.match(text.strip())
    if m:
        return now - timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2)])
    try:
        at = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError("since: give a duration like 24h or 7d, or an RFC 3339 time") from None
    if at.tzinfo is None:
        raise ValueError("since: an RFC 3339 time needs a time zone")
    return at.astimezone(UTC)


def _ts(text: str) -> datetime | None:
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


# ----- what changed for one input --------------------------------------------------------------


def _op(t: Any) -> str:
    return t.operator


def plan_changes(before: Plan, after: Plan) -> list[tuple[str, str]]:
    """(change kind, field or predicate name or "") for one replayed input."""
    if before.allow != after.allow:
        return [("deny_to_allow" if after.allow else "allow_to_deny", "")]
    if not before.allow:
        return [("deny_reason_changed", "")] if before.reason != after.reason else []
    out: list[tuple[str, str]] = []
    for name in sorted(before.fields.keys() | after.fields.keys()):
        b, a = before.fields.get(name), after.fields.get(name)
        if b == a:
            continue
        if b is None:
            out.append(("field_exposed", name))
        elif a is None:
            out.append(("field_withheld", name))
        elif _op(a) == "keep" and _op(b) != "keep":
            out.append(("field_unmasked", name))
        elif _op(b) == "keep" and _op(a) != "keep":
            out.append(("field_masked", name))
        else:
            out.append(("treatment_changed", name))
    out += [("predicate_added", p) for p in sorted(after.predicates - before.predicates)]
    out += [("predicate_removed", p) for p in sorted(before.predicates - after.predicates)]
    if before.region_prefix != after.region_prefix:
        out.append(("constraints_changed", ""))
    return out


def _plan_summary(plan: Plan) -> dict[str, Any]:
    if not plan.allow:
        return {"allow": False, "reason": plan.reason}
    return {
        "allow": True,
        "fields": {k: v.operator for k, v in sorted(plan.fields.items())},
        "predicates": sorted(plan.predicates),
        "region_prefix": plan.region_prefix,
    }


# ----- the report --------------------------------------------------------------------------------


@dataclass
class Group:
    dataset: str
    caller: str
    caller_kind: str
    change: str
    count: int = 0
    names: Counter[str] = field(default_factory=Counter)  # fields or predicates involved
    examples: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "caller": self.caller,
            "caller_kind": self.caller_kind,
            "change": self.change,
            "count": self.count,
            "names": dict(sorted(self.names.items())),
            "examples": self.examples,
        }


@dataclass
class ImpactReport:
    current_version: str
    candidate_version: str
    since: str
    records_read: int = 0
    requests_replayed: int = 0
    decisions_compared: int = 0
    decisions_changed: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    recorded_differs: int = 0  # the current policy no longer decides as recorded
    totals: Counter[str] = field(default_factory=Counter)
    groups: dict[tuple[str, str, str], Group] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "current_version": self.current_version,
            "candidate_version": self.candidate_version,
            "since": self.since,
            "records_read": self.records_read,
            "requests_replayed": self.requests_replayed,
            "decisions_compared": self.decisions_compared,
            "decisions_changed": self.decisions_changed,
            "skipped": dict(sorted(self.skipped.items())),
            "recorded_differs": self.recorded_differs,
            "totals": {k: self.totals[k] for k in CHANGE_KINDS if self.totals[k]},
            "groups": [
                g.to_json()
                for g in sorted(
                    self.groups.values(),
                    key=lambda g: (CHANGE_KINDS.index(g.change), g.dataset, g.caller),
                )
            ],
        }


RegionOf = Callable[[str], str]


def registry_regions(callers_db: Path | None) -> RegionOf:
    """Caller id -> region, from the registry (for records written before caller_region)."""
    regions: dict[str, str] = {}
    if callers_db is not None and Path(callers_db).is_file():
        db = sqlite3.connect(f"file:{callers_db}?mode=ro", uri=True)
        try:
            regions = dict(db.execute("SELECT id, region FROM callers").fetchall())
        except sqlite3.Error:
            regions = {}
        finally:
            db.close()
    return lambda caller_id: regions.get(caller_id, "")


def file_regions(path: Path) -> RegionOf:
    """Caller id -> region, from the registry as the gateway read it ({id: region} JSON)."""
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    regions = {str(k): str(v) for k, v in doc.items()} if isinstance(doc, dict) else {}
    return lambda caller_id: regions.get(caller_id, "")


class EmergencyHistory:
    """The emergency store (R11) as it stood at any past moment, for the replay.

    A call made under an emergency was decided with that emergency in
    input.emergencies and its grant in force; by the time it is replayed the
    emergency may have ended and its grants been revoked. The store keeps when
    each emergency was declared and ended, and which grants it created, so
    both are rebuilt as they were at the record's time: the emergencies then
    active, and their grants in force from the declaration until the end
    revoked them. Other grants are replayed as they stand.
    """

    def __init__(
        self, emergencies: Sequence[Mapping[str, Any]], grants: Sequence[Mapping[str, Any]]
    ) -> None:
        self.emergencies = [
            e for e in emergencies if isinstance(e, Mapping) and _ts(str(e.get("declared_at", "")))
        ]
        self.grants = [dict(g) for g in grants]
        declared = {str(e.get("id")): e for e in self.emergencies}
        # grant index -> (in force from, revoked at) for grants an emergency created
        self._lifetimes: dict[int, tuple[datetime, datetime | None]] = {}
        for i, g in enumerate(self.grants):
            e = declared.get(str(g.get("emergency_id") or ""))
            if e is None:
                continue
            start = _ts(str(g.get("created_at") or "")) or _ts(str(e["declared_at"]))
            revoked = _ts(str(g.get("revoked_at") or "")) if g.get("status") == "revoked" else None
            if g.get("status") == "revoked" and (revoked is None or g.get("status_changed_at")):
                # Revoked, but when, or from which state (a suspension came first), is
                # not known: replay it as it stands.
                continue
            assert start is not None
            self._lifetimes[i] = (start, revoked)

    def active_at(self, at: datetime | None, named: Sequence[str] = ()) -> list[dict[str, Any]]:
        """input.emergencies as the decider built it at `at` (gateway.access.emergency).

        `named` are the emergencies the record says its call was made under: they
        were in force then, whatever the store's whole-second stamps suggest for a
        call made in the second an emergency ended."""
        if at is None:
            return []
        out = []
        for e in self.emergencies:
            declared = _ts(str(e["declared_at"]))
            ended = _ts(str(e.get("ended_at") or ""))
            if e["id"] in named or (
                declared is not None and declared <= at and (ended is None or at < ended)
            ):
                out.append(
                    {
                        "id": e["id"],
                        "status": "active",
                        "agencies": list(e.get("agencies", [])),
                        "scope": dict(e.get("scope", {})),
                        "ends_at": e.get("ends_at", ""),
                    }
                )
        return out

    def live_grants(self, at: datetime | None, named: Sequence[str] = ()) -> tuple[int, ...]:
        """The emergency grants in force at `at` (indices into `grants`).

        The store stamps whole seconds: a grant of an emergency the record names
        was in force in the second its revocation is stamped with."""
        if at is None:
            return ()
        return tuple(
            i
            for i, (start, end) in sorted(self._lifetimes.items())
            if start <= at
            and (
                end is None
                or at < end
                or (self.grants[i].get("emergency_id") in named and at < end + _SECOND)
            )
        )

    def grants_with(self, live: Sequence[int]) -> list[dict[str, Any]]:
        """The grants as they stood when exactly the `live` emergency grants were in force."""
        keep = set(live)
        return [
            {**g, "status": "active"} if i in keep else g
            for i, g in enumerate(self.grants)
            if i in keep or i not in self._lifetimes
        ]


_SECOND = timedelta(seconds=1)


def replay(
    records: Iterable[Mapping[str, Any]],
    current: PolicyEngine,
    candidate: PolicyEngine,
    *,
    grants: Sequence[Mapping[str, Any]] = (),
    emergencies: Sequence[Mapping[str, Any]] = (),
    since: datetime | None = None,
    region_of: RegionOf = lambda _id: "",
    examples: int = EXAMPLES,
) -> ImpactReport:
    report = ImpactReport(
        current.version, candidate.version, since.isoformat() if since else "", skipped=Counter()
    )
    history = EmergencyHistory(emergencies, grants)
    # One data document per set of emergency grants in force: it changes only when
    # an emergency starts or ends (or one of its grants is revoked), and the engine
    # reuses a document it has seen.
    extras: dict[tuple[int, ...], dict[str, Any]] = {}
    granted = {(g.get("caller"), g.get("dataset")) for g in grants}
    seen: set[str] = set()
    memo: dict[tuple[str, ...], tuple[Plan, Plan]] = {}
    for rec in records:
        report.records_read += 1
        at = _ts(str(rec.get("ts", "")))
        if since is not None and (at is None or at < since):
            continue
        rid = str(rec.get("request_id", ""))
        if rid in seen:
            continue  # one record per subject: the request is replayed once
        seen.add(rid)
        if not rec.get("caller") or not rec.get("plan_hash"):
            report.skipped["undecided"] += 1  # refused before any decision
            continue
        report.requests_replayed += 1
        region = str(rec.get("caller_region") or region_of(str(rec["caller"])))
        now = str(rec.get("ts", ""))
        named = tuple(str(e) for e in rec.get("emergencies") or ())
        active = history.active_at(at, named)
        in_force = tuple(e["id"] for e in active)
        live = history.live_grants(at, named)
        extra = extras.get(live)
        if extra is None:
            extra = extras[live] = {"grants": history.grants_with(live)}
        flips_recorded = []
        for dataset in str(rec.get("dataset", "")).split(","):
            doc = {
                "caller": {
                    "id": str(rec["caller"]),
                    "kind": str(rec.get("caller_kind", "")),
                    "department": str(rec.get("department", "")),
                    "region": region,
                },
                "action": str(rec.get("action", "")),
                "dataset": dataset,
                "purpose": str(rec.get("purpose", "")),
                "now": now,
            }
            if active:
                doc["emergencies"] = active
            # Time matters only through grant expiry and the emergencies in force:
            # without a grant in play, the same input under the same emergencies
            # decides the same at any time, so the pair is evaluated once.
            key = tuple(
                [doc["caller"][k] for k in ("id", "kind", "department", "region")]
                + [doc["action"], dataset, doc["purpose"], *in_force, "|"]
                + ([now] if (doc["caller"]["id"], dataset) in granted else [])
            )
            pair = memo.get(key)
            if pair is None:
                pair = (
                    _decide(current, doc, extra),
                    _decide(candidate, doc, extra),
                )
                memo[key] = pair
            before, after = pair
            report.decisions_compared += 1
            flips_recorded.append(before.allow)
            changes = plan_changes(before, after)
            if changes:
                report.decisions_changed += 1
            for change in {c for c, _ in changes}:
                report.totals[change] += 1
                gkey = (dataset, doc["caller"]["id"], change)
                g = report.groups.get(gkey)
                if g is None:
                    g = report.groups[gkey] = Group(
                        dataset, doc["caller"]["id"], doc["caller"]["kind"], change
                    )
                g.count += 1
                g.names.update(n for c, n in changes if c == change and n)
                if len(g.examples) < examples:
                    g.examples.append(
                        {
                            "request_id": rid,
                            "ts": now,
                            "action": doc["action"],
                            "purpose": doc["purpose"],
                            "requested_fields": list((rec.get("input") or {}).get("fields", [])),
                            "before": _plan_summary(before),
                            "after": _plan_summary(after),
                        }
                    )
        recorded = rec.get("decision")
        if recorded in ("allow", "deny") and (recorded == "allow") != all(flips_recorded):
            report.recorded_differs += 1
    return report


def _decide(engine: PolicyEngine, doc: Mapping[str, Any], extra: Mapping[str, Any]) -> Plan:
    try:
        result = engine.evaluate(doc, extra)
    except Exception as e:
        return Plan.deny("POLICY_ERROR", rego_error_text(e)[:200], engine.version)
    if result is None:
        return Plan.deny("POLICY_ERROR", "no decision", engine.version)
    try:
        return Plan.from_policy(result, engine.version)
    except (KeyError, TypeError, ValueError, AttributeError):
        return Plan.deny("POLICY_ERROR", "malformed plan", engine.version)


def windowed_trail(
    index_path: Path, audit: Sequence[Path], since: datetime
) -> Callable[[], Iterator[dict[str, Any]]]:
    """Whole records of the chains with ts at or after `since`, through the index.

    Returns a function giving a fresh iterator, for replaying again should a
    chain change under the read (IndexStale)."""
    from gateway.audit.index import AuditIndex

    index = AuditIndex(index_path, lambda: list(audit))

    def records() -> Iterator[dict[str, Any]]:
        index.refresh()
        return index.records_since(since)

    return records


def read_trail(path: Path) -> Iterator[dict[str, Any]]:
    from gateway.audit import read_records

    if Path(path).exists():
        yield from read_records(Path(path))


def _grants(path: Path | None, key: str = "grants") -> list[dict[str, Any]]:
    if path is None or not Path(path).is_file():
        return []
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    return list(doc.get(key, [])) if isinstance(doc, dict) else []


def main(argv: Sequence[str] | None = None) -> int:
    from gateway.policy.check import _limit_memory, check_bundle

    parser = argparse.ArgumentParser(prog="python -m gateway.policy.impact")
    parser.add_argument("--current", type=Path, required=True)
    parser.add_argument("--candidate", type=Path, required=True)
    parser.add_argument("--audit", type=Path, action="append", required=True, help="repeatable")
    parser.add_argument("--audit-index", type=Path, help="read the window through this index")
    parser.add_argument("--grants", type=Path)
    parser.add_argument("--emergencies", type=Path, help="the emergency store (emergencies.json)")
    parser.add_argument("--callers", type=Path, help="the registry's SQLite file")
    parser.add_argument("--regions", type=Path, help="{caller id: region} read by the gateway")
    parser.add_argument("--since", default="24h")
    parser.add_argument("--examples", type=int, default=EXAMPLES)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--memory-mb", type=int, default=1024)
    args = parser.parse_args(argv)
    if args.memory_mb > 0:
        _limit_memory(args.memory_mb)
    problems = check_bundle(args.candidate)
    if problems:
        doc: dict[str, Any] = {"problems": [p.to_json() for p in problems]}
    else:
        from gateway.audit.index import IndexStale

        since = parse_since(args.since)
        current = RegorusEngine(load_bundle(args.current))
        candidate = RegorusEngine(load_bundle(args.candidate))

        def run(records: Iterable[Mapping[str, Any]]) -> ImpactReport:
            return replay(
                records,
                current,
                candidate,
                grants=_grants(args.grants),
                emergencies=_grants(args.emergencies, "emergencies"),
                since=since,
                region_of=file_regions(args.regions)
                if args.regions
                else registry_regions(args.callers),
                examples=args.examples,
            )

        if args.audit_index is None:
            report = run(rec for path in args.audit for rec in read_trail(path))
        else:
            window = windowed_trail(args.audit_index, args.audit, since)
            try:
                report = run(window())
            except IndexStale:  # a chain replaced mid-read: the refresh re-indexes it
                report = run(window())
        doc = {"problems": [], "report": report.to_json()}
    print(json.dumps(doc, ensure_ascii=False, indent=None if args.json else 2))
    return 1 if doc["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
