"""`python -m bench.batch`: batch verification against unary calls, in one run.

On the 10,000-person pool of `bench.run` (same `govgw serve`, durable audit,
receipts), it measures:
  - unary: N VerifyIdentity calls, 32 in flight (grpc.aio), wall time and the
    server's CPU per verification (from /proc);
  - batch: the whole `govgw verify batch --input FILE --out OUT.jsonl` command
    for the same N items (process start, reading, every receipt verified on
    arrival, writing), wall time and server CPU per verification;
  - memory: a fresh server and `govgw verify batch` over a file of M items
    (--big), peak RSS of both (VmHWM; the CLI's from wait4).
The ratio of the two rates is the figure to quote; absolute numbers drift on a
shared machine. Results: bench/results/batch.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
from govgw.v1 import verification_pb2, verification_pb2_grpc

from bench.run import (
    RESULTS,
    add_serve_arg,
    cpu_seconds,
    free_port,
    peak_rss_mb,
    prepare,
    wait_port,
)
from bench.workers import start_redis

PURPOSE = "基准测试"
# Limits high enough that the repeated known persons are answered, not refused: the
# bench measures answers. Each item counts as a call against the caller's rate tier
# (agency: 120,000 per minute by default) and its subject's window, so a run of a
# million items at ~2,000/s would otherwise be throttled. (The defaults hold in
# production; an agency rechecking at volume gets a tier of its own.)
LIMITS = (
    "[tiers.agency]\ncalls_per_window = 100000000\n[subject]\ncalls = 100000000\ncallers = 10\n"
)


def start(data_dir: Path, limits: Path, extra: list[str]) -> tuple[subprocess.Popen, int]:
    for f in data_dir.glob("state*.sqlite*"):  # fresh limit windows each run
        f.unlink()
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "clients.cli", "serve", "--data-dir", str(data_dir),
         "--listen", f"127.0.0.1:{port}", "--limits-config", str(limits), *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_port(port, proc)
    return proc, port


def audit_bytes(data_dir: Path) -> int:
    """Bytes of the audit trail on disk (records and their index)."""
    return sum(f.stat().st_size for f in (data_dir / "audit").rglob("*") if f.is_file())


def write_input(path: Path, known: list[dict[str, str]], n: int) -> None:
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            p = known[i % len(known)]
            f.write(
                json.dumps({"name": p["name"], "id_number": p["id_number"]}, ensure_ascii=False)
            )
            f.write("\n")


async def unary(port: int, key: str, known: list[dict[str, str]], n: int, conc: int) -> int:
    md = (("authorization", f"Bearer {key}"),)
    errors = 0
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = verification_pb2_grpc.VerificationServiceStub(ch)
        todo = iter(range(n))

        async def worker() -> None:
            nonlocal errors
            for i in todo:
                p = known[i % len(known)]
                request = verification_pb2.VerifyIdentityRequest(
                    name=p["name"], id_number=p["id_number"], purpose=PURPOSE
                )
                try:
                    await stub.VerifyIdentity(request, metadata=md, timeout=30)
                except grpc.aio.AioRpcError:
                    errors += 1

        await asyncio.gather(*(worker() for _ in range(conc)))
    return errors


def cli_batch(port: int, key: str, src: Path, out: Path) -> tuple[float, float, dict]:
    """The whole command: (wall seconds, the CLI's peak RSS in MB, its summary with
    the CLI's own CPU seconds under "cli_cpu_s")."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "clients.cli", "--json", "--target", f"127.0.0.1:{port}",
         "--api-key", key, "--timeout", "30", "verify", "batch", "--input", str(src),
         "--purpose", PURPOSE, "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    stdout = proc.stdout.read() if proc.stdout else b""
    stderr = proc.stderr.read() if proc.stderr else b""
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    if status != 0:
        raise SystemExit(f"verify batch failed: {stderr.decode()[-2000:]}")
    summary = json.loads(stdout) | {"cli_cpu_s": usage.ru_utime + usage.ru_stime}
    return seconds, usage.ru_maxrss / 1024, summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=20_000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--big", type=int, default=200_000, help="items of the memory run (0: none)")
    ap.add_argument("--out", type=Path, help="default bench/results/batch.json (-redis.json)")
    ap.add_argument("--pool", type=int, default=10_000, help="persons in the pool (cached)")
    ap.add_argument(
        "--redis", action="store_true", help="state in a fresh redis-server (several nodes' setup)"
    )
    add_serve_arg(ap)
    args = ap.parse_args()
    extra = list(args.serve_arg)
    args.out = args.out or RESULTS / ("batch-redis.json" if args.redis else "batch.json")
    with contextlib.ExitStack() as stack:
        if args.redis:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            redis, url = start_redis(tmp)
            stack.callback(redis.wait)
            stack.callback(redis.terminate)
            extra += ["--redis-url", url]
        run(args, extra)


def run(args: argparse.Namespace, extra: list[str]) -> None:
    data_dir, key, known = prepare(args.pool)
    work = data_dir.parent / "batch-work"
    work.mkdir(parents=True, exist_ok=True)
    limits = work / "limits.toml"
    limits.write_text(LIMITS)
    src, out = work / "in.jsonl", work / "out.jsonl"
    write_input(src, known, args.items)
    doc: dict = {"items": args.items, "concurrency": args.concurrency, "pool": args.pool,
                 "serve_args": extra}  # fmt: skip

    proc, port = start(data_dir, limits, extra)
    try:
        a0, cpu0, t0 = audit_bytes(data_dir), cpu_seconds(proc.pid), time.perf_counter()
        errors = asyncio.run(unary(port, key, known, args.items, args.concurrency))
        u_s, u_cpu = time.perf_counter() - t0, cpu_seconds(proc.pid) - cpu0
        u_audit = (audit_bytes(data_dir) - a0) / args.items
        print(f"unary  {args.items:,} calls in {u_s:.2f} s: {args.items / u_s:,.0f}/s, "
              f"server CPU {u_cpu / args.items * 1e6:,.0f} µs/verification, {errors} errors; "
              f"audit {u_audit:,.0f} B/verification", flush=True)  # fmt: skip
        a0, cpu0 = audit_bytes(data_dir), cpu_seconds(proc.pid)
        b_s, cli_mb, summary = cli_batch(port, key, src, out)
        b_cpu = cpu_seconds(proc.pid) - cpu0
        b_audit = (audit_bytes(data_dir) - a0) / args.items
        out_b = out.stat().st_size / args.items
        print(f"batch  {args.items:,} items in {b_s:.2f} s (whole command): "
              f"{args.items / b_s:,.0f}/s, server CPU {b_cpu / args.items * 1e6:,.0f} "
              f"µs/verification, CLI CPU {summary['cli_cpu_s'] / args.items * 1e6:,.0f} "
              f"µs/item (start included); audit {b_audit:,.0f} B/verification, "
              f"output {out_b:,.0f} B/line; {summary}", flush=True)  # fmt: skip
    finally:
        proc.terminate()
        proc.wait()
    ratio = u_s / b_s
    print(f"ratio  batch/unary rate {ratio:.1f}x (target >= 10x)", flush=True)
    doc |= {
        "unary": {"seconds": u_s, "rps": args.items / u_s, "errors": errors,
                  "server_cpu_us": u_cpu / args.items * 1e6, "audit_bytes": u_audit},
        "batch": {"seconds": b_s, "rps": args.items / b_s, "summary": summary,
                  "server_cpu_us": b_cpu / args.items * 1e6, "cli_peak_rss_mb": cli_mb,
                  "cli_cpu_us": summary["cli_cpu_s"] / args.items * 1e6,
                  "audit_bytes": b_audit, "output_bytes_per_line": out_b},
        "ratio": ratio,
    }  # fmt: skip
    if args.big:
        write_input(src, known, args.big)
        proc, port = start(data_dir, limits, extra)
        try:
            base_mb = peak_rss_mb(proc.pid)
            s, cli_mb, summary = cli_batch(port, key, src, out)
            server_mb = peak_rss_mb(proc.pid)
        finally:
            proc.terminate()
            proc.wait()
        print(f"memory {args.big:,} items in {s:.1f} s ({args.big / s:,.0f}/s): server peak RSS "
              f"{server_mb:,.0f} MB (at start {base_mb:,.0f} MB), CLI peak RSS {cli_mb:,.0f} MB; "
              f"{summary}", flush=True)  # fmt: skip
        doc["memory"] = {"items": args.big, "seconds": s, "server_peak_rss_mb": server_mb,
                         "server_start_rss_mb": base_mb, "cli_peak_rss_mb": cli_mb}  # fmt: skip
    src.unlink(missing_ok=True)
    out.unlink(missing_ok=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
