"""Receipts issued per CPU second: one JWS each (`issue`) vs one per batch (`issue_batch`).

    PYTHONPATH=$PWD /work/main/.venv/bin/python -m bench.receipts [--seconds 2] [--batch 1000]

For a key ring of each suite (Ed25519 with SHA-256; SM2 with SM3), the
gateway's own ReceiptSigner issues receipts for a subject each (fresh salt,
commitment, claims, RFC 8785 canonical JSON), singly and in batches; then the
one verifier checks a sample of each kind. Process CPU time, steadier than
wall time on a shared machine. A benchmark reports; nothing here asserts.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from contract.receipts import keyset_document, public_keys_from_keyset, verify_receipt
from gateway import keys
from gateway.crypto import DEFAULT_SUITE, SM_SUITE
from gateway.receipts import ReceiptRequest, ReceiptSigner


def per_cpu_second(work: Callable[[], int], seconds: float) -> float:
    """Items per CPU second: `work` returns how many items one call made."""
    done, start = 0, time.process_time()
    while (spent := time.process_time() - start) < seconds:
        done += work()
    return done / spent


def measure(signer: ReceiptSigner, batch: int, seconds: float) -> dict[str, float]:
    now = datetime.now(UTC)
    requests = [
        ReceiptRequest(
            "bench-agency",
            "verify.identity",
            "MATCH",
            "population.basic",
            f"51322119900101{i % 1000:03d}X",
            "pv-0123456789ab",
            now,
        )
        for i in range(batch)
    ]
    one = requests[0]

    def single() -> int:
        signer.issue(
            caller=one.caller, action=one.action, outcome=one.outcome, dataset=one.dataset,
            subject=one.subject, policy_version=one.policy_version, issued_at=now,
        )  # fmt: skip
        return 1

    published = keyset_document(signer.public_keys())
    verifier = public_keys_from_keyset(json.loads(json.dumps(published)))
    sample = signer.issue_batch(requests)[: min(batch, 200)]
    jws = [signer.issue(subject=r.subject, **_common(r)) for r in requests[:200]]
    return {
        "single_per_s": per_cpu_second(single, seconds),
        "batch_per_s": per_cpu_second(lambda: len(signer.issue_batch(requests)), seconds),
        "verify_single_per_s": per_cpu_second(
            lambda: sum(1 for r in jws if verify_receipt(r, verifier)), seconds
        ),
        "verify_batch_member_per_s": per_cpu_second(
            lambda: sum(1 for r in sample if verify_receipt(r, verifier)), seconds
        ),
    }


def _common(r: ReceiptRequest) -> dict[str, object]:
    return {
        "caller": r.caller, "action": r.action, "outcome": r.outcome, "dataset": r.dataset,
        "policy_version": r.policy_version, "issued_at": r.issued_at,
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="CPU seconds per measurement")
    ap.add_argument("--batch", type=int, default=1000, help="receipts per batch")
    ap.add_argument("--out", type=Path, help="also write the figures here as JSON")
    args = ap.parse_args()
    results = {}
    print(
        f"{'algorithm':<9} {'issue/s single':>15} {f'issue/s batch {args.batch}':>19} "
        f"{'ratio':>6} {'verify/s single':>16} {'verify/s batch':>15}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for suite in (DEFAULT_SUITE, SM_SUITE):
            ring = keys.generate(Path(tmp) / f"{suite.replace('/', '_')}.json", suite)
            signer = ReceiptSigner(ring.receipt_key)
            r = measure(signer, args.batch, args.seconds)
            results[signer.algorithm] = r
            print(
                f"{signer.algorithm:<9} {r['single_per_s']:>15,.0f} {r['batch_per_s']:>19,.0f} "
                f"{r['batch_per_s'] / r['single_per_s']:>5.1f}x {r['verify_single_per_s']:>16,.0f}"
                f" {r['verify_batch_member_per_s']:>15,.0f}"
            )
    if args.out:
        args.out.write_text(json.dumps({"batch": args.batch, "results": results}, indent=2))


if __name__ == "__main__":
    main()
