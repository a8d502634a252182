"""The audit index against a scan of the chains, on a large audit trail.

    .venv/bin/python -m bench.audit_index [--records 1000000] [--chains 2] [--days 10]
        [--dir DIR] [--json]

Writes `records` valid hash-chained audit records (the writer's own line
format: canonical JSON with `hash` last, seq and prev chained) spread over
`chains` chain files, as many gateway worker processes would leave after
`days` days, with the pipeline's fields (caller metadata, plan hash, input
summary, keyed subject hashes, grants, a few emergency calls). Then times:

- the one-time indexing cost (refresh from nothing) and the index's size;
- a data subject's listing (first page of "who used my data"), a provider's
  usage report over the whole period, and the sweep's last use per grant,
  each by scanning the chains and through the index (median of a few runs,
  refresh included);
- an incremental refresh after 1,000 more records.

Not a timed test: figures depend on the machine. The scan and the index must
answer the same; the script checks that as it goes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gateway.access.subject_usage import Disclosure, uses_of
from gateway.access.sweep import last_uses
from gateway.access.usage import usage_report
from gateway.audit.index import AuditIndex
from gateway.audit.log import GENESIS, canonical_json, utc_timestamp
from gateway.config import Layout
from gateway.grants import GrantStore
from gateway.policy.bundle import load_bundle
from gateway.policy.decider import Decider
from gateway.policy.engine import RegorusEngine

POLICIES = Path(__file__).resolve().parents[1] / "policies"
START = datetime(2026, 1, 1, tzinfo=UTC)
OWN = frozenset({"subject.usage", "subject.correct", "subject.withdraw", "subject.read"})
DATASETS = [f"dept{i:02d}.dataset{j}" for i in range(10) for j in range(2)]
PURPOSES = ["户籍业务办理", "资格审核", "社会救助审核", "不动产登记", "刑事案件侦查", "就业登记"]
KINDS = ["agency"] * 6 + ["counter"] * 3 + ["public"]


class Trail:
    """Chained records, as AuditLog writes them, appended to one chain file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seq = 0
        self.prev = GENESIS

    def write(self, events: list[dict[str, Any]], stamps: list[datetime]) -> None:
        out = []
        for event, at in zip(events, stamps, strict=True):
            self.seq += 1
            body = canonical_json(
                {**event, "seq": self.seq, "prev": self.prev, "ts": utc_timestamp(at)}
            ).encode()
            digest = hashlib.sha256(body).hexdigest()
            out.append(body[:-1] + b',"hash":"' + digest.encode() + b'"}\n')
            self.prev = digest
        with open(self.path, "ab") as f:
            f.write(b"".join(out))


# 200 callers, each of one kind and department, using a few datasets for one
# or two purposes: a county's traffic has thousands of distinct call shapes.
_CALLERS = [
    (
        i,
        KINDS[i % len(KINDS)],
        [DATASETS[(i * 7 + k) % len(DATASETS)] for k in range(3)],
        [PURPOSES[(i + k) % len(PURPOSES)] for k in range(2)],
    )
    for i in range(200)
]


def make_events(rng: random.Random, n: int, subjects: list[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while len(out) < n:
        c, kind, datasets, purposes = rng.choice(_CALLERS)
        dataset = rng.choice(datasets)
        if rng.random() < 0.05:
            dataset += "," + rng.choice(datasets)
        ok = rng.random() < 0.95
        rid = f"{rng.getrandbits(96):024x}"
        base: dict[str, Any] = {
            "request_id": rid,
            "caller": f"{kind}-{c:03d}",
            "caller_kind": kind,
            "department": f"汶川县第{c // 4}局",
            "caller_region": "513221",
            "action": rng.choice(("lookup", "lookup", "verify.identity", "lookup.batch")),
            "dataset": dataset,
            "purpose": rng.choice(purposes),
            "decision": "allow" if ok else "deny",
            "reason": "" if ok else "NO_GRANT",
            "policy_version": "sha256:" + "7" * 16,
            "plan_hash": f"{rng.getrandbits(128):032x}",
            "outcome": "OK" if ok else "PERMISSION_DENIED",
            "latency_ms": round(rng.uniform(0.5, 20), 3),
            "input": {"fields": ["name", "birth_date", "address"], "predicates": [],
                      "violations": []},
        }  # fmt: skip
        if kind == "agency":
            base["grants"] = [f"g-{c % 300:04d}"]
        if rng.random() < 0.001:
            base["emergencies"] = ["em-0001"]
        # A batch call is one record per subject (the pipeline's layout).
        for _ in range(rng.choice((1, 1, 1, 2, 5))):
            out.append({**base, "subject": rng.choice(subjects)})
    return out[:n]


def generate(files: list[Path], records: int, days: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    subjects = [hashlib.sha256(f"subject-{i}".encode()).hexdigest() for i in range(300_000)]
    trails = [Trail(p) for p in files]
    step = timedelta(days=days) / records
    batch = max(1, min(20_000, records // (len(files) * 10)))
    for start in range(0, records, batch):
        n = min(batch, records - start)
        events = make_events(rng, n, subjects)
        stamps = [START + step * (start + i) for i in range(n)]
        k = (start // batch) % len(trails)  # workers take turns
        trails[k].write(events, stamps)
    return subjects


def timed(fn: Callable[[], Any], runs: int = 1) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(runs):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


def run(records: int, chains: int, days: int, root: Path) -> dict[str, Any]:
    layout = Layout(root)
    layout.audit_dir.mkdir(parents=True, exist_ok=True)
    files = [layout.audit_dir / f"audit-{i}.log" for i in range(chains)]
    for f in files:
        f.unlink(missing_ok=True)
    layout.audit_index.unlink(missing_ok=True)
    t = time.perf_counter()
    generate(files, records, days)
    gen_s = time.perf_counter() - t
    audit_bytes = sum(f.stat().st_size for f in files)

    index = AuditIndex(layout.audit_index, layout.audit_files)
    index_s, stats = timed(index.refresh)
    assert stats.records == records, f"indexed {stats.records} of {records}: a generator bug"

    # A subject with several uses, as the listing's caller.
    with open(files[0], "rb") as f:
        for _ in range(1000):
            rec = json.loads(f.readline())
        subject = rec["subject"]
    engine = RegorusEngine(load_bundle(POLICIES))
    disclosure = Disclosure(Decider(engine, GrantStore(root / "bench-grants.json")))
    since, until = START, START + timedelta(days=days + 1)
    listing_args: dict[str, Any] = {
        "since": since, "until": until, "exclude_actions": OWN, "disclosure": disclosure,
        "now": until, "page_size": 50,
    }  # fmt: skip
    dataset = DATASETS[3]
    figures: dict[str, Any] = {}
    queries: dict[str, Callable[[Any], Any]] = {
        "subject_listing": lambda src: uses_of(src, subject, **listing_args),
        "usage_report": lambda src: usage_report(src, dataset, since, until),
        "sweep_last_uses": lambda src: last_uses(src),
    }
    for name, query in queries.items():
        scan_s, scanned = timed(lambda q=query: q(files))
        index_q_s, indexed = timed(lambda q=query: q(index), runs=5)
        assert scanned == indexed, f"{name}: the index answers differently"
        figures[name] = {"scan_s": round(scan_s, 3), "index_s": round(index_q_s, 4),
                         "speedup": round(scan_s / index_q_s)}  # fmt: skip
    figures["subject_listing"]["uses"] = len(queries["subject_listing"](index)[0])
    figures["usage_report"]["calls"] = queries["usage_report"](index).calls

    generate_more = make_events(random.Random(11), 1000, [subject])
    Trail_ = Trail(files[0])
    last = json.loads(files[0].read_bytes().rsplit(b"\n", 2)[-2])
    Trail_.seq, Trail_.prev = last["seq"], last["hash"]
    Trail_.write(generate_more, [until] * 1000)
    incr_s, incr = timed(index.refresh)
    assert incr.records == 1000
    return {
        "records": records,
        "chains": chains,
        "days": days,
        "audit_bytes": audit_bytes,
        "generate_s": round(gen_s, 1),
        "index_build_s": round(index_s, 1),
        "index_build_records_per_s": round(records / index_s),
        "index_bytes": index.size_bytes(),
        "refresh_1000_new_s": round(incr_s, 3),
        "queries": figures,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.audit_index")
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--dir", type=Path, help="work here (default: a temporary directory)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.dir:
        doc = run(args.records, args.chains, args.days, args.dir)
    else:
        with tempfile.TemporaryDirectory(prefix="govgw-bench-") as tmp:
            doc = run(args.records, args.chains, args.days, Path(tmp))
    if args.json:
        print(json.dumps(doc, indent=2))
        return
    mb = 1024 * 1024
    print(f"{doc['records']} records in {doc['chains']} chains over {doc['days']} days: "
          f"{doc['audit_bytes'] / mb:.0f} MiB of audit")  # fmt: skip
    print(f"index build: {doc['index_build_s']} s ({doc['index_build_records_per_s']} records/s),"
          f" index {doc['index_bytes'] / mb:.0f} MiB; refresh after 1000 new records:"
          f" {doc['refresh_1000_new_s']} s")  # fmt: skip
    for name, q in doc["queries"].items():
        print(f"{name:16} scan {q['scan_s']:8.3f} s   index {q['index_s']:8.4f} s   "
              f"x{q['speedup']}")  # fmt: skip


if __name__ == "__main__":
    main()
