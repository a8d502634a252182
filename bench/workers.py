"""`make bench` (workers): one gateway process against two sharing Redis, side by side.

Three targets on the same pool, client and load:
  - 1 worker, in-process state (the embedded default);
  - 1 worker, Redis state (the cost of sharing: two round trips per call);
  - 2 workers, Redis state (`govgw serve --workers 2`, SO_REUSEPORT).

SO_REUSEPORT balances connections, not calls, so the client opens several
channels (one connection each) and spreads its concurrency over them. The
client runs in its own processes so it is not the bottleneck it would be on
one event loop. On a machine with few cores the client, Redis and the
workers share them: read the 2-worker/1-worker ratio with the core count.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc

from bench.run import RESULTS, cpu_seconds, free_port, gateway_calls, prepare, wait_port


def start_redis(workdir: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_port(port, proc, timeout=20)
    return proc, f"redis://127.0.0.1:{port}/0"


def start_gateway(data_dir: Path, workers: int, redis_url: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    cmd = [sys.executable, "-m", "clients.cli", "serve", "--data-dir", str(data_dir),
           "--listen", f"127.0.0.1:{port}", "--workers", str(workers)]  # fmt: skip
    if redis_url:
        cmd += ["--redis-url", redis_url]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, proc)
    time.sleep(1.0 if workers > 1 else 0.2)  # let every worker bind, not only the first
    return proc, port


async def _drive(port: int, key: str, known: list, channels: int, concurrency: int,
                 seconds: float, warmup: float) -> tuple[int, int, list[float], int]:  # fmt: skip
    verify, _ = gateway_calls(key, known)
    # Each channel gets its own connection: a distinct channel argument stops
    # grpc from sharing one subchannel between them.
    chans = [
        grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.channel_id", i)])
        for i in range(channels)
    ]
    calls = [verify(ch) for ch in chans]
    lat: list[float] = []
    errors = done = 0  # done: every answered call, warm-up included (for CPU per call)
    t_warm = time.perf_counter() + warmup
    t_end = t_warm + seconds

    async def worker(i: int) -> None:
        nonlocal errors, done
        rng, call = random.Random(i), calls[i % len(calls)]
        while (t0 := time.perf_counter()) < t_end:
            try:
                await call(rng)
            except grpc.aio.AioRpcError:
                errors += 1
                continue
            done += 1
            if t0 >= t_warm:
                lat.append(time.perf_counter() - t0)

    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    for ch in chans:
        await ch.close()
    return len(lat), errors, lat, done


def _client(args: tuple) -> tuple[int, int, list[float], int]:
    return asyncio.run(_drive(*args))


def tree_cpu_seconds(pid: int) -> float:
    """CPU of a process and every live descendant (the workers of `--workers N`)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            total += cpu_seconds(p)
        except OSError:
            continue
        todo += children.get(p, [])
    return total


def measure(port: int, key: str, known: list, a: argparse.Namespace, server: int) -> dict:
    per = (port, key, known, a.channels, a.concurrency, a.seconds, a.warmup)
    cpu0 = tree_cpu_seconds(server)
    with multiprocessing.get_context("spawn").Pool(a.client_procs) as pool:
        parts = pool.map(_client, [per] * a.client_procs)
    cpu = tree_cpu_seconds(server) - cpu0
    lat = sorted(x for _, _, part, _ in parts for x in part)
    calls, errors = sum(p[0] for p in parts), sum(p[1] for p in parts)
    done = sum(p[3] for p in parts)
    pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000 if lat else 0.0  # noqa: E731
    # Server CPU per call (all its processes, warm-up calls included on both sides):
    # what a call costs the gateway, whoever else shares the cores.
    return {"calls": calls, "errors": errors, "rps": calls / a.seconds,
            "p50_ms": pick(0.5), "p99_ms": pick(0.99),
            "server_cpu_us": cpu / done * 1e6 if done else 0.0}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--persons", type=int, default=10000)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--channels", type=int, default=8, help="connections per client process")
    ap.add_argument("--concurrency", type=int, default=32, help="calls in flight per client")
    ap.add_argument("--client-procs", type=int, default=2)
    a = ap.parse_args()
    data_dir, key, known = prepare(a.persons)
    print(f"govgw bench workers: {os.cpu_count()} cores, {a.client_procs} client processes x "
          f"{a.channels} channels x {a.concurrency} in flight, {a.seconds:g} s per target")  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        redis, url = start_redis(Path(tmp))
        try:
            for label, workers, state in (
                ("1 worker, in-process", 1, ""),
                ("1 worker, redis", 1, url),
                ("2 workers, redis", 2, url),
            ):
                subprocess.run(["redis-cli", "-u", url, "flushall"], capture_output=True)
                # Fresh audit files per target: the chains are verified, not benchmarked.
                for f in (data_dir / "audit").glob("audit*.log"):
                    f.unlink()
                gw, port = start_gateway(data_dir, workers, state)
                try:
                    rows.append({"target": label, **measure(port, key, known, a, gw.pid)})
                finally:
                    gw.terminate()
                    gw.wait(30)
        finally:
            redis.terminate()
            redis.wait()
    base = rows[1]["rps"] or 1.0
    print(
        f"\n{'target':24} {'calls/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'vs 1w redis':>12}"
        f" {'server CPU µs/call':>19}"
    )
    for r in rows:
        print(f"{r['target']:24} {r['rps']:9.0f} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} "
              f"{r['errors']:7d} {r['rps'] / base:11.2f}x {r['server_cpu_us']:19,.0f}")  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "workers.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
