"""Scale figures of the pool on each backend: a million persons in SQLite and PostgreSQL.

    python -m bench.scale --persons 1000000 --backend sqlite,postgresql

For each backend: `govgw init`, then `govgw pool import` of one JSONL file of
synthetic, valid persons (the command as an operator runs it: validation,
sealing, progress bar, batched writes — binary COPY on PostgreSQL), timed for
rows/s; then VerifyIdentity and Lookup against a `govgw serve` on that pool,
side by side with the echo server, with bench/run.py's machinery (calls/s,
p50/p99, server CPU per call from /proc, ratios to echo). Reported, never
asserted: absolute figures drift on a shared machine; the ratios of one run
are the ones to quote.

Without `--database-url` a throwaway PostgreSQL is started as the tests start
theirs (tests/pg_server.py: loopback, fsync off — a bulk load's one commit
barely notices, reads not at all).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from bench.run import (
    DATA,
    KNOWN,
    RESULTS,
    Result,
    _known_persons,
    echo_call,
    gateway_calls,
    measure,
    start_echo,
    start_gateway,
)


def persons_file(n: int) -> tuple[Path, list[dict[str, str]]]:
    """A JSONL file of n persons (KNOWN of them the client asks about); made once."""
    from gateway.pool.seed import _bulk_rows

    path = DATA / f"scale-{n}.jsonl"
    known = _known_persons(KNOWN)
    if not path.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        tmp = path.with_suffix(".tmp")
        with tmp.open("w", encoding="utf-8") as f:
            for row in known:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
            for row in _bulk_rows(n - len(known), seed=n):
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        tmp.rename(path)
        print(f"  wrote {n:,} persons to {path} in {time.perf_counter() - t0:.1f} s", flush=True)
    return path, [{"name": p["name"], "id_number": p["id_number"]} for p in known]


def govgw(env: dict[str, str], *args: str, json_out: bool = True) -> dict:
    """A `govgw` command; its stderr (the progress bar) goes to the terminal."""
    done = subprocess.run(
        [sys.executable, "-m", "clients.cli", *args, *(["--json"] if json_out else [])],
        stdout=subprocess.PIPE, text=True, env=env, check=False,
    )  # fmt: skip
    if done.returncode not in (0, 1):  # 1: some rows rejected (reported)
        raise SystemExit(f"govgw {args[0]} failed ({done.returncode})")
    return json.loads(done.stdout) if json_out else {}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def import_pool(
    backend: str, url: str, path: Path, n: int
) -> tuple[Path, dict[str, str], dict[str, float]]:
    """A fresh data dir (and database) with the file imported; (dir, env, figures): rows/s
    of the whole command, and rows per second of the command's own CPU (which drifts
    less on a shared machine; the database server's CPU is not in it)."""
    d = DATA / f"scale-{n}-{backend}"
    subprocess.run(["rm", "-rf", str(d)], check=True)
    env = {**os.environ, "GOVGW_KEYRING_FILE": str(d / "keys" / "keyring.json")}
    env.pop("GOVGW_REDIS_URL", None)
    env.pop("GOVGW_DATABASE_URL", None)
    if backend == "postgresql":
        env["GOVGW_DATABASE_URL"] = url
    govgw(env, "init", "--data-dir", str(d))
    print(f"{backend}: pool import of {n:,} persons", flush=True)
    t0, cpu0 = time.perf_counter(), _children_cpu()
    # Not --json: the command shows its progress bar (or lines) on stderr.
    govgw(env, "pool", "import", "--data-dir", str(d), "--dataset", "population.basic",
          str(path), json_out=False)  # fmt: skip
    rate, cpu = n / (time.perf_counter() - t0), _children_cpu() - cpu0
    print(
        f"{backend}: imported {n:,} rows at {rate:,.0f} rows/s (the whole command),"
        f" {cpu:.0f} s of its CPU ({n / cpu:,.0f} rows per CPU second)",
        flush=True,
    )
    return d, env, {"rows_per_s": rate, "cpu_s": cpu, "rows_per_cpu_s": n / cpu}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--persons", type=int, default=1_000_000)
    ap.add_argument("--backend", default="sqlite,postgresql")
    ap.add_argument("--database-url", default="", help="an empty database (else one is started)")
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--concurrency", type=int, default=32)
    args = ap.parse_args()
    backends = args.backend.split(",")
    path, known = persons_file(args.persons)
    server = None
    url = args.database_url
    if "postgresql" in backends and not url:
        from tests.pg_server import PostgresServer

        server = PostgresServer().start()
        url = server.create_database("bench")
    rows: list[tuple[str, Result]] = []
    imports: dict[str, dict[str, float]] = {}
    try:
        echo, eport = start_echo("aio", 420)
        try:
            rows.append(("echo", measure("echo", eport, echo_call(420), echo, args)))
        finally:
            echo.terminate()
            echo.wait()
        for backend in backends:
            d, env, imports[backend] = import_pool(backend, url, path, args.persons)
            key = govgw(env, "callers", "add", "--data-dir", str(d), "--id", "bench-agency",
                        "--kind", "agency", "--department", "基准测试局",
                        "--region", "513221")["api_key"]  # fmt: skip
            gw, port = start_gateway(d, env=env)
            try:
                verify, lookup = gateway_calls(key, known)
                rows.append((backend, measure("verify_identity", port, verify, gw, args)))
                rows.append((backend, measure("lookup", port, lookup, gw, args)))
            finally:
                gw.terminate()
                gw.wait()
    finally:
        if server is not None:
            server.stop()
    report(args.persons, imports, rows)


def report(n: int, imports: dict[str, dict[str, float]], rows: list[tuple[str, Result]]) -> None:
    echo = rows[0][1]
    print(
        f"\npool of {n:,} persons; echo {echo.rps:,.0f} calls/s, {echo.cpu_us_per_call:.0f} us CPU/call"
    )
    for backend, f in imports.items():
        print(f"  {backend:<11} pool import {f['rows_per_s']:>9,.0f} rows/s,"
              f" {f['rows_per_cpu_s']:>9,.0f} rows per CPU second of the command")  # fmt: skip
    print(f"{'backend':<11} {'target':<16} {'calls/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}"
          f" {'vs echo':>8} {'cpu us/call':>12} {'cpu vs echo':>12}")  # fmt: skip
    out = []
    for backend, r in rows[1:]:
        ratio, cpu = r.rps / echo.rps, r.cpu_us_per_call / max(echo.cpu_us_per_call, 1e-9)
        print(f"{backend:<11} {r.name:<16} {r.rps:>9.0f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f}"
              f" {r.errors:>7} {ratio:>8.2f} {r.cpu_us_per_call:>12.0f} {cpu:>12.2f}")  # fmt: skip
        out.append({"backend": backend, "target": r.name, "rps": r.rps, "p50_ms": r.p50_ms,
                    "p99_ms": r.p99_ms, "errors": r.errors, "vs_echo": ratio,
                    "cpu_us_per_call": r.cpu_us_per_call, "cpu_vs_echo": cpu})  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    doc = {"persons": n, "import": imports, "echo_rps": echo.rps, "calls": out}
    (RESULTS / f"scale-{n}.json").write_text(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
