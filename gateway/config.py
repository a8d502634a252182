"""Where a gateway keeps its state, and how it listens.

Everything lives under one data directory, created by `govgw init`:

    keys/keyring.json   secrets (mode 0600; or GOVGW_KEYRING_FILE)
    pool.sqlite         the encrypted pool
    callers.sqlite      the caller registry (API key digests)
    grants.json         conditional-access grants
    emergencies.json    declared emergencies (R11)
    audit/audit.log     the hash-chained audit trail (audit-<n>.log per worker
                        with --workers N; audit-admin.log for CLI transitions)
    audit-index.sqlite  the audit index: derived from audit/, deletable, rebuilt
                        by `govgw audit reindex` (gateway.audit.index)
    state.sqlite        in-process rate and enumeration windows, suspensions,
                        nonces, idempotency results (gateway.state.memory;
                        not used with Redis; state-<n>.sqlite per worker)
    tls/                private CA, server and client certificates

Everything in it is owner-only (R12): files 0600, directories 0700, whatever
the umask; gateway.files makes them so and tightens a directory an older
govgw made.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

# The bottom of the gateway's layers: the settings of every part live here, so
# the parts import their settings and this module imports none of them.
from gateway.callers import KINDS as CALLER_KINDS
from gateway.catalog import DEFAULT_CATALOG
from gateway.logs import FORMATS as LOG_FORMATS

DEFAULT_POLICY_DIR = DEFAULT_CATALOG.parent.parent
DEFAULT_LISTEN = "127.0.0.1:50051"
# Working-day deadline profiles (gateway.access.deadlines.PROFILES names the same;
# a test holds them equal).
JURISDICTIONS = ("aba", "yichuan", "yingkou")


class ConfigError(ValueError):
    pass


# -- guards: limits (gateway.limits) and the enumeration monitor (gateway.oracle) --
@dataclass(frozen=True)
class Tier:
    calls_per_window: int
    window_s: float = 60.0
    max_in_flight: int = 64


DEFAULT_TIERS: dict[str, Tier] = {
    # Agency systems batch-verify; counters serve people one at a time;
    # the public is the most likely to probe, so it gets the least.
    "agency": Tier(120_000),
    "counter": Tier(60_000),
    "public": Tier(600, max_in_flight=8),
    # Administrators make few calls, but some are heavy (impact replays,
    # reports over the whole audit trail): few at a time.
    "admin": Tier(3_000, max_in_flight=8),
    # Named by a plan's rate_tier obligation, e.g. for sensitive datasets.
    "strict": Tier(60, max_in_flight=4),
}


@dataclass(frozen=True)
class SubjectLimits:
    """Per subject (ID number), across all callers, per window."""

    calls: int = 60
    callers: int = 10
    window_s: float = 3600.0


@dataclass(frozen=True)
class StreamLimits:
    """Open server streams (BatchLookup) per caller and per server process.

    A stream holds up to a thousand subjects' reads and audit records: past
    these caps a new stream is refused at once (RESOURCE_EXHAUSTED
    STREAMS_EXHAUSTED with RetryInfo) rather than queued until gRPC cancels
    it unanswered. Counted per process: an open stream is a local resource."""

    per_caller: int = 8
    per_server: int = 32
    retry_after_s: float = 1.0


@dataclass(frozen=True)
class LimitsConfig:
    tiers: Mapping[str, Tier] = field(default_factory=lambda: dict(DEFAULT_TIERS))
    subject: SubjectLimits = SubjectLimits()
    streams: StreamLimits = StreamLimits()


@dataclass(frozen=True)
class OracleConfig:
    window_s: float = 3600.0
    # The miss ratio (NO_MATCH, not found) is judged once a caller has had this
    # many answers in the window: fewer is noise (a clerk's typo), more gives an
    # attacker more.
    min_answers: int = 20
    max_no_match_ratio: float = 0.5
    # Distinct subjects one caller may ask about per window (a counter serves
    # people one by one; sweeping thousands of ID numbers is a harvest).
    max_subjects: int = 5000
    # Per caller kind overrides of the three thresholds above (limits file:
    # [oracle.counter] max_subjects = 300): a counter serves people one by one,
    # an agency system rechecks thousands.
    kinds: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    # A caller whose calls name operators (a hall's clerks) is judged per operator
    # by the thresholds above, and as a whole by a bound this many times larger
    # (answers before the ratio is judged, distinct subjects).
    hall_scale: float = 10.0

    def for_kind(self, kind: str) -> OracleConfig:
        override = self.kinds.get(kind)
        return replace(self, kinds={}, **override) if override else self

    def for_hall(self) -> OracleConfig:
        return replace(
            self,
            min_answers=round(self.min_answers * self.hall_scale),
            max_subjects=round(self.max_subjects * self.hall_scale),
        )


@dataclass(frozen=True)
class Layout:
    data_dir: Path
    # Each process holds its own audit file (AuditLog locks it exclusively).
    audit_name: str = "audit.log"
    # Each process keeps its own in-process state file too: two writers of one
    # snapshot would overwrite each other's windows.
    state_name: str = "state.sqlite"

    @property
    def pool(self) -> Path:
        return self.data_dir / "pool.sqlite"

    @property
    def callers(self) -> Path:
        return self.data_dir / "callers.sqlite"

    @property
    def grants(self) -> Path:
        return self.data_dir / "grants.json"

    @property
    def emergencies(self) -> Path:
        return self.data_dir / "emergencies.json"

    @property
    def calendar_dir(self) -> Path:
        """Holiday schedules for years chinese-calendar does not cover yet."""
        return self.data_dir / "calendar"

    @property
    def applications(self) -> Path:
        return self.data_dir / "applications.sqlite"

    @property
    def corrections(self) -> Path:
        return self.data_dir / "corrections.sqlite"

    @property
    def withdrawals(self) -> Path:
        return self.data_dir / "withdrawals.json"

    @property
    def opening_suspensions(self) -> Path:
        """Datasets whose opening is suspended on a security risk (R9)."""
        return self.data_dir / "opening_suspensions.json"

    @property
    def subject_issuers(self) -> Path:
        """Identity providers whose subject tokens the gateway accepts (public keys)."""
        return self.data_dir / "subject_issuers.json"

    @property
    def audit(self) -> Path:
        return self.data_dir / "audit" / self.audit_name

    @property
    def state(self) -> Path:
        """The in-process state backend's windows, kept across restarts."""
        return self.data_dir / self.state_name

    @property
    def shared_state_marker(self) -> Path:
        """Present once a gateway served this directory on shared state (Redis): its
        suspensions live there too, so lifting one needs the same URL."""
        return self.data_dir / "shared-state"

    @property
    def audit_dir(self) -> Path:
        return self.data_dir / "audit"

    @property
    def admin_audit(self) -> Path:
        """Where the CLI records administrators' transitions (suspend, reinstate)."""
        return self.audit_dir / "audit-admin.log"

    @property
    def audit_index(self) -> Path:
        """The audit index (gateway.audit.index): derived from the chains, rebuildable."""
        return self.data_dir / "audit-index.sqlite"

    def audit_files(self) -> list[Path]:
        """Every audit chain in the data directory: one per process that wrote one."""
        if not self.audit_dir.is_dir():
            return []
        return sorted(p for p in self.audit_dir.glob("audit*.log") if p.is_file())


@dataclass(frozen=True)
class ServeConfig:
    data_dir: Path
    listen: str = DEFAULT_LISTEN
    tls: bool = False  # serve TLS with the certificates in <data-dir>/tls
    require_client_cert: bool = False  # mTLS only: no API-key-only callers
    max_concurrent_rpcs: int = 1024
    grace_s: float = 5.0
    policy_dir: Path = DEFAULT_POLICY_DIR
    # The catalog of this gateway release: the datasets and fields the pool holds. The
    # catalog served is the served policy version's, which must name the same ones.
    catalog_path: Path = DEFAULT_CATALOG
    extra: dict[str, str] = field(default_factory=dict)
    # Shared state: "" is in-process; a redis:// URL (or GOVGW_REDIS_URL) shares it.
    redis_url: str = ""
    # Shared stores: "" keeps them in the data directory; a postgresql:// URL (or
    # GOVGW_DATABASE_URL) puts the migrated ones on PostgreSQL (gateway/storage).
    database_url: str = ""
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    oracle: OracleConfig = field(default_factory=OracleConfig)
    # Several processes on one port: the kernel balances connections among them.
    reuse_port: bool = False
    worker: int | None = None  # this process's index under --workers N
    # Working-day deadlines of applications (gateway.access.deadlines): aba, yingkou, yichuan.
    jurisdiction: str = "aba"
    # How often the server revokes grants unused for three months (0: never).
    sweep_interval_s: float = 6 * 3600.0
    # How often the server ends emergencies whose end time passed (0: never). Their
    # grants stop working at the end time whatever this is (grant expiry); this
    # records the end and revokes the grants.
    emergency_interval_s: float = 60.0
    # Where this process serves Prometheus metrics (HOST:PORT; "" for none). Under
    # --workers N the supervisor serves them, and the workers get metrics_dir instead.
    metrics_listen: str = ""
    # prometheus_client's multiprocess directory a worker writes its metrics to.
    metrics_dir: str = ""
    # "text" or "json": how log lines are written (gateway.logs).
    log_format: str = "text"
    # While other calls are in flight, how long a finished call's audit records are
    # held for theirs, so that one group commit covers them (gateway.audit.log; 0: never).
    audit_commit_delay_s: float = 0.004

    @property
    def metrics_enabled(self) -> bool:
        return bool(self.metrics_listen or self.metrics_dir)

    @property
    def layout(self) -> Layout:
        if self.worker is None:
            return Layout(Path(self.data_dir))
        return Layout(
            Path(self.data_dir), f"audit-{self.worker}.log", f"state-{self.worker}.sqlite"
        )

    def host_port(self) -> tuple[str, int]:
        return split_host_port(self.listen, "listen")

    def metrics_host_port(self) -> tuple[str, int]:
        return split_host_port(self.metrics_listen, "metrics-listen")

    def validate(self) -> None:
        host, _ = self.host_port()
        if not self.tls and not is_loopback(host):
            raise ConfigError(
                f"refusing plaintext on {host}: plaintext is for loopback only; use --tls"
            )
        if self.metrics_listen:
            mhost, mport = self.metrics_host_port()
            # The same rule as the gRPC port: metrics hold no personal data, but
            # plaintext leaves loopback only as HTTPS with the gateway's certificate.
            if not self.tls and not is_loopback(mhost):
                raise ConfigError(
                    f"metrics-listen: refusing plaintext on {mhost}: plaintext is for loopback"
                    " only; with --tls the metrics are served over HTTPS"
                )
            if mport != 0 and (mhost, mport) == self.host_port():
                raise ConfigError("metrics-listen: must differ from --listen")
        if self.log_format not in LOG_FORMATS:
            raise ConfigError(
                f"log-format: {self.log_format!r} is not one of {', '.join(LOG_FORMATS)}"
            )
        if not 0 <= self.audit_commit_delay_s <= 0.1:
            raise ConfigError(
                f"audit-commit-delay-ms: {self.audit_commit_delay_s * 1000:g} is not"
                " between 0 and 100"
            )
        if self.require_client_cert and not self.tls:
            raise ConfigError("require_client_cert needs --tls")
        if self.jurisdiction not in JURISDICTIONS:
            raise ConfigError(
                f"jurisdiction: {self.jurisdiction!r} is not one of {', '.join(JURISDICTIONS)}"
            )


def load_guard_config(path: Path) -> tuple[LimitsConfig, OracleConfig]:
    """Limits and enumeration-monitor settings from a TOML or JSON file.

        [tiers.counter]          # per caller kind, or a name a plan's rate_tier uses
        calls_per_window = 600
        window_s = 60
        max_in_flight = 16
        [subject]                # per ID number, across all callers
        calls = 20
        callers = 5
        window_s = 3600
        [oracle]
        min_answers = 20
        max_no_match_ratio = 0.5
        max_subjects = 5000
        window_s = 3600
        hall_scale = 10          # calls naming operators: each operator by the above,
                                 # the whole caller by this many times more
        [oracle.counter]         # per caller kind: min_answers, max_no_match_ratio,
        max_subjects = 300       # max_subjects override [oracle] for that kind
        [streams]                # open BatchLookup streams, per process
        per_caller = 8
        per_server = 32

    Unknown keys are refused: a misspelt limit must not silently fall back.
    """
    import dataclasses
    import json
    import tomllib

    text = Path(path).read_text(encoding="utf-8")
    try:
        doc = json.loads(text) if str(path).endswith(".json") else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{path}: {e}") from None

    def build(cls: type, section: str, values: object, base: object = None) -> object:
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: [{section}] must be a table")
        names = {f.name for f in dataclasses.fields(cls)} - {"kinds"}
        unknown = set(values) - names
        if unknown:
            raise ConfigError(f"{path}: [{section}] unknown keys: {', '.join(sorted(unknown))}")
        try:
            return dataclasses.replace(base, **values) if base is not None else cls(**values)
        except TypeError as e:
            raise ConfigError(f"{path}: [{section}] {e}") from None

    extra = set(doc) - {"tiers", "subject", "oracle", "streams"}
    if extra:
        raise ConfigError(f"{path}: unknown sections: {', '.join(sorted(extra))}")
    tiers = dict(DEFAULT_TIERS)
    for name, values in (doc.get("tiers") or {}).items():
        tiers[name] = build(Tier, f"tiers.{name}", values, tiers.get(name))  # type: ignore[assignment]
    subject = build(SubjectLimits, "subject", doc.get("subject") or {}, SubjectLimits())
    oracle_doc = dict(doc.get("oracle") or {})
    kinds = {k: oracle_doc.pop(k) for k in list(oracle_doc) if isinstance(oracle_doc[k], dict)}
    oracle = build(OracleConfig, "oracle", oracle_doc, OracleConfig())
    overridable = {"min_answers", "max_no_match_ratio", "max_subjects"}
    for kind, values in kinds.items():
        if kind not in CALLER_KINDS:
            raise ConfigError(f"{path}: [oracle.{kind}] names no caller kind")
        unknown = set(values) - overridable
        if unknown:
            raise ConfigError(f"{path}: [oracle.{kind}] unknown keys: {', '.join(sorted(unknown))}")
    oracle = replace(oracle, kinds=kinds)  # type: ignore[type-var]
    streams = build(StreamLimits, "streams", doc.get("streams") or {}, StreamLimits())
    return LimitsConfig(tiers=tiers, subject=subject, streams=streams), oracle  # type: ignore[arg-type]


def split_host_port(value: str, name: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"{name}: expected HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def from_env(data_dir: Path | None = None, **overrides: object) -> ServeConfig:
    d = data_dir or Path(os.environ.get("GOVGW_DATA_DIR", ".govgw"))
    if "jurisdiction" not in overrides and os.environ.get("GOVGW_JURISDICTION"):
        overrides["jurisdiction"] = os.environ["GOVGW_JURISDICTION"]
    return ServeConfig(data_dir=Path(d), **overrides)  # type: ignore[arg-type]
