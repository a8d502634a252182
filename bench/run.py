"""`make bench`: the gateway side by side with a bare gRPC echo server.

One run measures, with the same asyncio client, concurrency and payload size:
  - echo:     a bare grpc.aio server (the gateway's framework) returning a payload the size of a
              VerifyIdentity response (the floor any Python gRPC service pays);
  - verify:   VerifyIdentity (policy, pool read, receipt, durable audit);
  - lookup:   Lookup of four masked population fields;
on pools of 10,000 and 1,000,000 persons, and reports throughput, p50/p99,
the gateway/echo ratios, the 1M/10k ratio and each server's peak memory.
`--crypto aes,sm` runs the gateway on a data dir of each suite (the SM one
signs receipts with SM2, seals rows with SM4-GCM and keys the blind index with
HMAC-SM3; its rows end in `_sm`) and adds the in-process CPU cost of issuing
one receipt with each signature algorithm, the part of the difference that is
the receipt's signature.
Absolute numbers drift on shared machines; the ratios taken in one run are
the figures to quote.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from govgw.v1 import lookup_pb2, lookup_pb2_grpc, verification_pb2, verification_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / "data"
RESULTS = ROOT / "bench" / "results"
ECHO_METHOD = "/govgw.bench.Echo/Echo"
KNOWN = 2000  # persons the client knows, written beside the bulk rows


@dataclass
class Result:
    name: str
    calls: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    peak_rss_mb: float = 0.0
    # Server CPU (user + system, from /proc) per call, after the warm-up: drifts far
    # less than throughput when the machine is shared.
    cpu_us_per_call: float = 0.0

    @property
    def rps(self) -> float:
        return self.calls / self.seconds


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("server did not start")


def wait_quiet(pid: int, step: float = 0.5, idle_cpu_s: float = 0.02, timeout: float = 30) -> None:
    """Wait until a freshly started server stops burning CPU on its own.

    The gateway warms its free-text analyzer (presidio imports, ~1 s of CPU) in a
    thread after its port opens; measured from the port, that startup work was
    charged to the first target's CPU per call (~200-300 us of VerifyIdentity's)."""
    deadline = time.monotonic() + timeout
    last = cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(step)
        now = cpu_seconds(pid)
        if now - last < idle_cpu_s:
            return
        last = now


# -- data ----------------------------------------------------------------------
def prepare(persons: int, crypto: str = "aes") -> tuple[Path, str, list[dict[str, str]]]:
    """A data dir with `persons` persons; reused across runs. Returns (dir, api key, known persons)."""
    from gateway import admin
    from gateway.crypto import suite_for_alias
    from gateway.pool.seed import bulk_persons

    d = DATA / (f"pool-{persons}" if crypto == "aes" else f"pool-{persons}-{crypto}")
    meta = d / "bench.json"
    if meta.exists():
        doc = json.loads(meta.read_text())
        return d, doc["api_key"], doc["known"]
    if d.exists():
        subprocess.run(["rm", "-rf", str(d)], check=True)
    t0 = time.perf_counter()
    admin.init(d, suite=suite_for_alias(crypto).name)
    pool = admin._pool(d)
    known = _known_persons(KNOWN)
    try:
        if persons > len(known):
            bulk_persons(pool, persons - len(known), seed=persons)
        pool.write_batch("population.basic", known)
    finally:
        pool.close()
    key = admin.callers_add(d, "bench-agency", "agency", "基准测试局", "513221")["api_key"]
    known = [{"name": p["name"], "id_number": p["id_number"]} for p in known]
    meta.write_text(json.dumps({"api_key": key, "known": known}, ensure_ascii=False))
    print(f"  prepared pool of {persons:,} persons in {time.perf_counter() - t0:.1f} s", flush=True)
    return d, key, known


def _known_persons(n: int) -> list[dict[str, str]]:
    """Persons the client can ask about, valid and distinct from the bulk rows (orders 000-499)."""
    from datetime import date, timedelta

    from stdnum.cn import ric

    rng = random.Random(11)
    surnames, given = (
        "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗",
        "伟芳娜敏静丽强磊军洋勇艳杰涛明超霞平刚",
    )
    out = []
    for i in range(n):
        born = date(1950, 1, 1) + timedelta(days=rng.randrange(365 * 60))
        body = f"513221{born:%Y%m%d}{i % 500:03d}"
        id_number = body + ric.calc_check_digit(body + "0")
        gender = "男" if int(id_number[16]) % 2 else "女"
        out.append(
            {
                "id_number": id_number,
                "name": rng.choice(surnames) + rng.choice(given) + rng.choice(given),
                "gender": gender,
                "birth_date": born.isoformat(),
                "ethnicity": "汉族",
                "household_address": "四川省阿坝藏族羌族自治州汶川县威州镇岷江路1号",
                "region_code": "513221",
                "phone": f"139{rng.randrange(10**8):08d}",
            }
        )
    return list({p["id_number"]: p for p in out}.values())


# -- servers -------------------------------------------------------------------
def start_gateway(
    data_dir: Path,
    metrics_port: int = 0,
    env: dict[str, str] | None = None,
    serve_args: Sequence[str] = (),
) -> tuple[subprocess.Popen, int]:
    # The pool is kept between runs to save seeding it; the limit windows are not:
    # a restart keeps them (state.sqlite), and every run would add to the last one's.
    for f in data_dir.glob("state*.sqlite*"):
        f.unlink()
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "clients.cli",
            "serve",
            "--data-dir",
            str(data_dir),
            "--listen",
            f"127.0.0.1:{port}",
            *(["--metrics-listen", f"127.0.0.1:{metrics_port}"] if metrics_port else []),
            *serve_args,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    wait_port(port, proc)
    wait_quiet(proc.pid)
    return proc, port


def add_serve_arg(ap: argparse.ArgumentParser) -> None:
    ap.add_argument(
        "--serve-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="an argument for `govgw serve` (repeat), e.g. --serve-arg=--audit-commit-delay-ms=0",
    )


class Scraper:
    """Fetches /metrics every second, as Prometheus would (more often than its usual 15 s)."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/metrics"
        self.scrapes = self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            try:
                with urllib.request.urlopen(self.url, timeout=5) as r:
                    r.read()
                self.scrapes += 1
            except OSError:
                self.failures += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def start_echo(kind: str, payload: int) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.echo", str(port), str(payload), kind],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_port(port, proc)
    wait_quiet(proc.pid)  # as for the gateway: startup is not per-call work
    return proc, port


# -- client --------------------------------------------------------------------
async def drive(
    port: int, make_call, concurrency: int, seconds: float, warmup: float, pid: int = 0
) -> tuple[int, int, list[float], int, float]:
    """Calls, errors, latencies (calls started after the warm-up), and for the CPU per
    call: the calls answered after the warm-up and the server's CPU at its end."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        call = make_call(ch)
        latencies: list[float] = []
        errors = 0
        done = 0  # calls answered after the warm-up (for CPU per call)
        t_end_warm = time.perf_counter() + warmup
        t_end = t_end_warm + seconds
        cpu_warm = 0.0

        async def warmed() -> None:
            # The CPU is counted from the end of the warm-up: a server's first calls
            # (plan compilation, the purpose analyzer's first use) are not per-call work.
            nonlocal cpu_warm
            await asyncio.sleep(max(t_end_warm - time.perf_counter(), 0))
            cpu_warm = cpu_seconds(pid) if pid else 0.0

        async def worker(i: int) -> None:
            nonlocal errors, done
            rng = random.Random(i)
            while True:
                t0 = time.perf_counter()
                if t0 >= t_end:
                    return
                try:
                    await call(rng)
                except grpc.aio.AioRpcError:
                    errors += 1
                    continue
                t1 = time.perf_counter()
                done += t1 >= t_end_warm
                if t0 >= t_end_warm:
                    latencies.append(t1 - t0)

        await asyncio.gather(warmed(), *(worker(i) for i in range(concurrency)))
        return len(latencies), errors, latencies, done, cpu_warm


def measure(name: str, port: int, make_call, proc: subprocess.Popen, args) -> Result:
    calls, errors, lat, done, cpu0 = asyncio.run(
        drive(port, make_call, args.concurrency, args.seconds, args.warmup, proc.pid)
    )
    cpu_us = (cpu_seconds(proc.pid) - cpu0) / max(done, 1) * 1e6
    lat.sort()
    pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000 if lat else 0.0  # noqa: E731
    return Result(
        name, calls, errors, args.seconds, pick(0.5), pick(0.99), peak_rss_mb(proc.pid), cpu_us
    )


def gateway_calls(key: str, known: list[dict[str, str]]):
    md = (("authorization", f"Bearer {key}"),)

    def verify(ch):
        stub = verification_pb2_grpc.VerificationServiceStub(ch)

        async def call(rng: random.Random) -> None:
            p = rng.choice(known)
            await stub.VerifyIdentity(
                verification_pb2.VerifyIdentityRequest(
                    name=p["name"], id_number=p["id_number"], purpose="基准测试"
                ),
                metadata=md,
            )

        return call

    def lookup(ch):
        stub = lookup_pb2_grpc.LookupServiceStub(ch)

        async def call(rng: random.Random) -> None:
            p = rng.choice(known)
            await stub.Lookup(
                lookup_pb2.LookupRequest(
                    dataset="population.basic",
                    subject_key=p["id_number"],
                    fields=["name", "gender", "birth_date", "phone"],
                    purpose="基准测试",
                ),
                metadata=md,
            )

        return call

    return verify, lookup


def echo_call(payload: int):
    body = b"x" * payload

    def make(ch):
        rpc = ch.unary_unary(ECHO_METHOD)

        async def call(rng: random.Random) -> None:
            await rpc(body)

        return call

    return make


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,1000000")
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument(
        "--crypto", default="aes", help="suites to run the gateway with: aes, sm, aes,sm"
    )
    ap.add_argument(
        "--metrics",
        action="store_true",
        help="serve the gateway's metrics (--metrics-listen), scraped every second meanwhile",
    )
    add_serve_arg(ap)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    suites = args.crypto.split(",")
    RESULTS.mkdir(parents=True, exist_ok=True)
    print(
        f"govgw bench: {os.cpu_count()} cores, concurrency {args.concurrency}, {args.seconds:g} s per target"
        + (", metrics on and scraped every second" if args.metrics else "")
    )
    rows: list[tuple[int, Result]] = []
    for size in sizes:
        # Payload sizes matched to the gateway's: request ~ 60 bytes, response ~ 420 bytes.
        # echo_edge: grpc.aio as the gateway's edge uses it, no pipeline (bench.echo)
        for kind in ("aio", "sync", "edge"):
            echo, eport = start_echo(kind, 420)
            try:
                name = "echo" if kind == "aio" else f"echo_{kind}"
                rows.append((size, measure(name, eport, echo_call(420), echo, args)))
            finally:
                echo.terminate()
                echo.wait()
        for crypto in suites:
            data_dir, key, known = prepare(size, crypto)
            suffix = "" if crypto == "aes" else f"_{crypto}"
            mport = free_port() if args.metrics else 0
            gw, gport = start_gateway(data_dir, mport, serve_args=args.serve_arg)
            scraper = Scraper(mport) if mport else None
            try:
                verify, lookup = gateway_calls(key, known)
                rows.append((size, measure("verify_identity" + suffix, gport, verify, gw, args)))
                rows.append((size, measure("lookup" + suffix, gport, lookup, gw, args)))
            finally:
                if scraper is not None:
                    scraper.stop()
                    print(f"metrics: {scraper.scrapes} scrapes, {scraper.failures} failed")
                gw.terminate()
                gw.wait()
    report(rows)
    if "sm" in suites:
        from bench.sm2 import receipt_issue_cost

        costs = receipt_issue_cost(min(args.seconds, 3.0))
        print(
            "receipt issue (in-process CPU per receipt, claims + signature): "
            + ", ".join(f"{alg} {us:.0f} us" for alg, us in costs.items())
        )


def report(rows: list[tuple[int, Result]]) -> None:
    print()
    print(
        f"{'pool':>10} {'target':<16} {'calls/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'peak MB':>8} {'vs echo':>8} {'cpu us/call':>12} {'cpu vs echo':>12}"
    )
    by = {(s, r.name): r for s, r in rows}
    out = []
    for size, r in rows:
        echo = by.get((size, "echo"))
        ratio = r.rps / echo.rps if echo and r.name != "echo" else 1.0
        cpu_ratio = (
            r.cpu_us_per_call / echo.cpu_us_per_call if echo and echo.cpu_us_per_call else 1.0
        )
        print(
            f"{size:>10,} {r.name:<16} {r.rps:>9.0f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f} {r.errors:>7} {r.peak_rss_mb:>8.0f} {ratio:>8.2f} {r.cpu_us_per_call:>12.0f} {cpu_ratio:>12.2f}"
        )
        out.append(
            {
                "pool": size,
                "target": r.name,
                "rps": r.rps,
                "p50_ms": r.p50_ms,
                "p99_ms": r.p99_ms,
                "errors": r.errors,
                "peak_rss_mb": r.peak_rss_mb,
                "vs_echo": ratio,
                "cpu_us_per_call": r.cpu_us_per_call,
                "cpu_vs_echo": cpu_ratio,
            }
        )
    sizes = sorted({s for s, _ in rows})
    if len(sizes) > 1:
        small, big = sizes[0], sizes[-1]
        for name in ("verify_identity", "lookup"):
            a, b = by.get((small, name)), by.get((big, name))
            if a and b:
                # Normalised by each run's echo, so machine drift between the two runs cancels.
                norm = (b.rps / by[(big, "echo")].rps) / (a.rps / by[(small, "echo")].rps)
                # CPU per call drifts least on a shared machine: 10k cost / 1M cost.
                cpu = a.cpu_us_per_call / b.cpu_us_per_call if b.cpu_us_per_call else 0.0
                print(
                    f"{name}: {big:,} pool / {small:,} pool = {b.rps / a.rps:.2f} raw, {norm:.2f} echo-normalised"
                    f", {cpu:.2f} by server CPU per call"
                )
    (RESULTS / "latest.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
