"""Prometheus metrics: the one object the gateway's parts report to (`Parts.metrics`).

What operators watch on each node (`govgw serve --metrics-listen HOST:PORT`):

    govgw_calls_total{method, code, reason}    every call the pipeline ran, refusals too
    govgw_call_duration_seconds{method}        from the call's start to its answer
    govgw_audit_queue_records                  records waiting to be made durable
    govgw_audit_fsync_duration_seconds         one group commit's write + fdatasync
    govgw_audit_records_total                  records made durable
    govgw_plan_cache_hits_total / _misses_total
    govgw_limit_refusals_total{reason}         RESOURCE_EXHAUSTED and CALLER_SUSPENDED
    govgw_suspensions_total{reason}            callers suspended by the enumeration monitor
    govgw_policy_version_info{version}         1 for the version served, 0 once replaced
    govgw_build_info{version, python, grpc}

Labels are closed sets the gateway itself defines: the route table's methods,
status code names and ErrorInfo reasons (code constants, or a policy's reason
codes, checked for shape and capped in number). Nothing a caller typed becomes a
label: no subject key, name, purpose text, not even the caller id -- a province
registers thousands of counter terminals, and callers x methods x codes would
multiply the series past what Prometheus keeps; the audit trail names the
caller of every call, and a refusal's log line names it too.

Under `--workers N` every worker writes its values to files in a private
directory (prometheus_client's multiprocess mode, PROMETHEUS_MULTIPROC_DIR set
by the supervisor before the workers start) and the supervisor serves one
endpoint that sums them (`MultiprocessEndpoint`).

The hot path pays a dict lookup and a lock per metric; label children are
looked up once and kept. The endpoint is prometheus_client's HTTP server on a
thread of its own, never on the gRPC event loop.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import platform
import re
import ssl
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    start_http_server,
)
from prometheus_client import multiprocess as mp

log = logging.getLogger("govgw.metrics")
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
OTHER = "OTHER"
# A reason label is an ErrorInfo reason code: upper snake case. A policy can name
# reasons of its own, so their number is capped too; past it they count as OTHER.
_REASON = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
MAX_REASONS = 200
# Calls run from well under a millisecond (a cached verification) to seconds (a
# report over the audit trail); the default buckets start at 5 ms.
CALL_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
FSYNC_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)
LIMIT_REASONS = frozenset(
    {
        "RATE_LIMITED",
        "SUBJECT_RATE_LIMITED",
        "SUBJECT_CALLERS_LIMITED",
        "TOO_MANY_IN_FLIGHT",
        "STREAMS_EXHAUSTED",
        "CALLER_SUSPENDED",
    }
)


# What the enumeration monitor suspends for (gateway.oracle.Suspension.reason).
SUSPENSION_REASONS = ("NO_MATCH_RATIO", "SUBJECT_SPREAD")


def multiprocess_dir() -> str:
    """The multiprocess directory this process writes to ("" in single-process mode)."""
    return os.environ.get(MULTIPROC_ENV, "")


class Metrics:
    """The gateway's metrics of one process, in a registry of their own (several
    gateways in one test process must not collide in the global registry)."""

    def __init__(self) -> None:
        self.multiprocess = bool(multiprocess_dir())
        self.registry = CollectorRegistry()
        r = self.registry
        if not self.multiprocess:  # not supported across processes by prometheus_client
            ProcessCollector(registry=r)
            PlatformCollector(registry=r)
        self._calls = Counter(
            "govgw_calls", "Calls run by the pipeline, by RPC, status code and ErrorInfo reason",
            ("method", "code", "reason"), registry=r,
        )  # fmt: skip
        self._duration = Histogram(
            "govgw_call_duration_seconds", "Time from a call's start to its answer (audit included)",
            ("method",), buckets=CALL_BUCKETS, registry=r,
        )  # fmt: skip
        self._queue = Gauge(
            "govgw_audit_queue_records", "Audit records queued, not yet durable",
            registry=r, multiprocess_mode="livesum",
        )  # fmt: skip
        self._fsync = Histogram(
            "govgw_audit_fsync_duration_seconds", "One group commit: write and fdatasync",
            buckets=FSYNC_BUCKETS, registry=r,
        )  # fmt: skip
        self._records = Counter("govgw_audit_records", "Audit records made durable", registry=r)
        self._hits = Counter("govgw_plan_cache_hits", "Plans served from the cache", registry=r)
        self._misses = Counter(
            "govgw_plan_cache_misses", "Plans evaluated by the policy engine", registry=r
        )
        self._limits = Counter(
            "govgw_limit_refusals", "Calls refused by a limit or a suspension, by reason",
            ("reason",), registry=r,
        )  # fmt: skip
        self._suspensions = Counter(
            "govgw_suspensions", "Callers suspended by the enumeration monitor, by reason",
            ("reason",), registry=r,
        )  # fmt: skip
        # Known reasons start at 0, so that a dashboard shows 0, not "no data", and
        # rate() sees the first refusal as an increase.
        for reason in LIMIT_REASONS:
            self._limits.labels(reason)
        for reason in SUSPENSION_REASONS:
            self._suspensions.labels(reason)
        # livemax: a version shows 1 while any live worker serves it.
        self._policy = Gauge(
            "govgw_policy_version_info", "The policy version served (1) and those replaced (0)",
            ("version",), registry=r, multiprocess_mode="livemax",
        )  # fmt: skip
        build = Gauge(
            "govgw_build_info", "The gateway's build", ("version", "python", "grpc"),
            registry=r, multiprocess_mode="livemax",
        )  # fmt: skip
        build.labels(_version(), platform.python_version(), grpc.__version__).set(1)
        self._lock = threading.Lock()
        self._call_children: dict[tuple[str, str, str], tuple[Any, Any, Any]] = {}
        self._reasons: set[str] = set()
        self._version = ""

    # -- the pipeline ---------------------------------------------------------

    def call_done(
        self, method: str, code: str, reason: str, seconds: float, suspensions: Iterable[str] = ()
    ) -> None:
        """One call ended: `method` from the route table, `code` a status code name."""
        try:
            children = self._call_children.get((method, code, reason))
            if children is None:
                children = self._children(method, code, reason)
            calls, duration, limit = children
            calls.inc()
            duration.observe(seconds)
            if limit is not None:
                limit.inc()
            for why in suspensions:
                self._suspensions.labels(self._bounded(why)).inc()
        except OSError as e:
            # Metrics never fail a call. In multiprocess mode a new series takes space
            # in the worker's file (a full disk); values already there are memory writes.
            log.warning("metrics: a new series could not be recorded (%s)", type(e).__name__)

    def _children(self, method: str, code: str, reason: str) -> tuple[Any, Any, Any]:
        bounded = self._bounded(reason) if reason else ""
        limit = self._limits.labels(bounded) if bounded in LIMIT_REASONS else None
        children = (
            self._calls.labels(method, code, bounded),
            self._duration.labels(method),
            limit,
        )
        with self._lock:
            self._call_children[(method, code, reason)] = children
        return children

    def _bounded(self, reason: str) -> str:
        if not _REASON.fullmatch(reason):
            return OTHER
        with self._lock:
            if reason not in self._reasons:
                if len(self._reasons) >= MAX_REASONS:
                    return OTHER
                self._reasons.add(reason)
        return reason

    def plan_cache(self, hit: bool) -> None:
        (self._hits if hit else self._misses).inc()

    # -- the audit writer (its own thread) --------------------------------------

    def audit_queue(self, depth: int) -> None:
        self._queue.set(depth)

    def audit_synced(self, records: int, seconds: float) -> None:
        self._records.inc(records)
        self._fsync.observe(seconds)

    # -- the policy runtime -------------------------------------------------------

    def policy_served(self, version: str) -> None:
        with self._lock:
            previous, self._version = self._version, version
        try:
            if previous and previous != version:
                self._policy.labels(previous).set(0)
            self._policy.labels(version).set(1)
        except OSError as e:  # as in call_done: an activation must not fail on its metric
            log.warning("metrics: the policy version could not be recorded (%s)", type(e).__name__)


def _version() -> str:
    try:
        return importlib.metadata.version("govgw")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class TlsMaterial:
    """The gateway's own server certificate: with --tls the metrics are HTTPS too."""

    cert: Path
    key: Path
    ca: Path
    require_client_cert: bool = False


class MetricsEndpoint:
    """`/metrics` over HTTP(S) on a thread of prometheus_client's, off the event loop."""

    def __init__(self, host: str, port: int, registry: Any, tls: TlsMaterial | None = None):
        kw: dict[str, Any] = {}
        if tls is not None:
            kw = {
                "certfile": str(tls.cert),
                "keyfile": str(tls.key),
                "client_cafile": str(tls.ca),
                "client_auth_required": tls.require_client_cert,
                "tls_min_version": ssl.TLSVersion.TLSv1_2,
            }
        self._httpd, self._thread = start_http_server(port, host, registry, **kw)
        self.port: int = self._httpd.server_port

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()


class MultiprocessEndpoint(MetricsEndpoint):
    """The supervisor's endpoint under --workers N: the sum of every worker's files."""

    def __init__(self, host: str, port: int, directory: Path, tls: TlsMaterial | None = None):
        self.directory = directory
        registry = CollectorRegistry()
        mp.MultiProcessCollector(registry, path=str(directory))
        super().__init__(host, port, registry, tls)

    def worker_gone(self, pid: int) -> None:
        """A worker exited: its live gauges (queue depth, version served) stop counting;
        its counters stay in the sums, as counters must."""
        mp.mark_process_dead(pid, str(self.directory))
