"""The conflicts report (R16) on a large pool: time and peak memory.

    .venv/bin/python -m bench.conflicts [--persons 100000] [--assisted 0.1 1.0] [--out FILE]

Builds a data directory with `persons` synthetic people (bulk_persons), a
share of them also in social_assistance.recipient with 1% of those rows
disagreeing on one attribute, then runs the offline report
(`govgw conflicts report --data-dir DIR --json`) in a child process and
reads its wall time and peak resident size (the child's VmHWM), so the
figure is the report's own and not the pool builder's. The walk decrypts
one subject at a time and probes population.basic by blind index, so
memory should stay flat as the pool grows; the time grows with the smaller
dataset, not the larger.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFLICTING = 0.01


def build(data_dir: Path, persons: int, assisted: float) -> dict[str, int]:
    from gateway import admin, keys
    from gateway.catalog import load as load_catalog
    from gateway.config import Layout
    from gateway.pool import Pool, bulk_persons

    admin.init(data_dir)
    layout = Layout(data_dir)
    ring = keys.load(keys.keyring_path(data_dir))
    with Pool(layout.pool, ring, load_catalog()) as pool:
        return bulk_persons(pool, persons, seed=11, assisted=assisted, conflicting=CONFLICTING)


# The child reads its own high-water mark: ru_maxrss of a child counts the
# memory of the forked parent before exec (here the big pool builder).
_CHILD = """
import contextlib, io, json, sys
from clients.cli import main
out = io.StringIO()
code = 0
if sys.argv[1:]:
    with contextlib.redirect_stdout(out):
        code = main(["conflicts", "report", "--data-dir", sys.argv[1], "--json"])
status = open("/proc/self/status").read()
hwm = int(status.split("VmHWM:")[1].split()[0])
count = json.loads(out.getvalue())["count"] if sys.argv[1:] else 0
print(json.dumps({"code": code, "count": count, "hwm_kb": hwm}))
"""


def _child(*args: str) -> dict[str, int]:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, *args], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def run_report(data_dir: Path) -> dict[str, float | int]:
    """`govgw conflicts report --data-dir DIR --json` in a child: wall time, peak RSS, count."""
    started = time.perf_counter()
    child = _child(str(data_dir))
    seconds = time.perf_counter() - started
    assert child["code"] == 0, child
    return {
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(child["hwm_kb"] / 1024, 1),
        "conflicts": child["count"],
    }


def baseline_rss() -> float:
    """Peak RSS of a child that only imports the CLI: the interpreter's and libraries' share."""
    return round(_child()["hwm_kb"] / 1024, 1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--persons", type=int, default=100_000)
    p.add_argument("--assisted", type=float, nargs="+", default=[0.1, 1.0])
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    results = {"persons": args.persons, "cores": os.cpu_count(), "baseline_rss_mb": baseline_rss()}
    runs = []
    for share in sorted(args.assisted):
        with tempfile.TemporaryDirectory(prefix="govgw-conflicts-") as tmp:
            data_dir = Path(tmp)
            t0 = time.perf_counter()
            counts = build(data_dir, args.persons, share)
            build_s = round(time.perf_counter() - t0, 1)
            report = run_report(data_dir)
            assert report["conflicts"] == counts["conflicting"], (report, counts)
            runs.append({**counts, "build_seconds": build_s, **report})
            print(json.dumps(runs[-1]), flush=True)
    results["runs"] = runs
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
