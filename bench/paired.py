"""One side of a paired run: two versions of the gateway measured at the same time.

On a shared machine, alternating runs cannot resolve a few per cent; two gateways
driven over the same seconds see the same contention. Run this module from each
checkout with the same start time, e.g.

    T=$(( $(date +%s) + 45 ))
    (cd A && PYTHONPATH=$PWD python -m bench.paired --at $T) &
    (cd B && PYTHONPATH=$PWD python -m bench.paired --at $T) & wait

Each side seeds (or reuses) its own pool under its checkout's bench/data, starts its
gateway, waits for the start time and prints calls/s, p50/p99 and server CPU per call.
"""

from __future__ import annotations

import argparse
import sys
import time
import types

from bench.run import add_serve_arg, gateway_calls, measure, prepare, start_gateway


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--at", type=float, required=True, help="start time, epoch seconds")
    ap.add_argument("--target", choices=("verify", "lookup"), default="verify")
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--crypto", choices=("aes", "sm"), default="aes")
    add_serve_arg(ap)
    args = ap.parse_args()
    data_dir, key, known = prepare(10000, args.crypto)
    proc, port = start_gateway(data_dir, serve_args=args.serve_arg)
    try:
        verify, lookup = gateway_calls(key, known)
        late = time.time() - args.at
        if late > 0:
            sys.exit(f"started {late:.1f} s after --at: give the sides more time")
        time.sleep(-late)
        run = types.SimpleNamespace(concurrency=32, seconds=args.seconds, warmup=2.0)
        r = measure(args.target, port, verify if args.target == "verify" else lookup, proc, run)
        print(
            f"{args.target} {args.crypto}: {r.rps:.0f} calls/s, p50 {r.p50_ms:.1f} ms,"
            f" p99 {r.p99_ms:.1f} ms, {r.cpu_us_per_call:.0f} us CPU per call, {r.errors} errors"
        )
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
