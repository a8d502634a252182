"""Operations on a data directory, behind the `govgw` command's local verbs."""

from __future__ import annotations

import atexit
import dataclasses
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from contract.metadata import OPERATOR_PATTERN
from contract.receipts import keyset_document
from gateway import keys
from gateway.callers import CallerError, CallerRegistry
from gateway.config import Layout, ServeConfig
from gateway.files import private_dir, replace_atomically, tighten_tree, write_private
from gateway.keycheck import check_keyring, deployment_fingerprint
from gateway.receipts import ReceiptSigner
from gateway.storage import Storage, database_url, open_storage

# Who an offline report (read from the data directory, not through the
# gateway) is recorded as: whoever holds the machine and its key ring.
LOCAL_ADMIN = "local-administrator"


def init(data_dir: Path, *, suite: str | None = None) -> dict[str, Any]:
    """Create the data directory, keys and receipt keyset (idempotent).

    `suite` picks the cipher suite of a new key ring (gateway.crypto); for an
    existing one it must match, since a deployment's suite changes only by
    a key rotation.
    """
    from gateway.crypto import DEFAULT_SUITE

    layout = Layout(Path(data_dir))
    # Owner-only (R12); a directory made by an older govgw is tightened here.
    tighten_tree(layout.data_dir)
    private_dir(layout.audit_dir)
    private_dir(layout.data_dir / "keys")
    ring = keys.load_or_generate(layout.data_dir, suite or DEFAULT_SUITE)
    if suite is not None and ring.suite != suite:
        raise ValueError(
            f"crypto: the key ring already uses {ring.suite}; a deployment picks its suite when"
            " its keys are made (`govgw keys rotate --crypto` moves the pool keys only)"
        )
    keyset = write_receipt_keyset(layout.data_dir, ring)
    issuer_key = demo_subject_issuer(layout.data_dir)
    shared = storage(layout.data_dir) if database_url() else None  # migrated, or a clear error
    node = ""
    if shared is not None:
        check_keyring(shared, ring)  # one keyring per database: another one is refused here
        from gateway.audit.nodes import node_id

        node = node_id(layout.data_dir)  # its chains are keyed by it in the shared audit index
    return {
        "data_dir": str(layout.data_dir),
        "storage": shared.kind if shared is not None else "sqlite",
        **({"node": node} if node else {}),
        # Said back so that an operator joining a node sees which keyring it took and
        # that the database holds its fingerprint (recorded now, or matched).
        "keyring": str(ring.path),
        **({"keyring_fingerprint": deployment_fingerprint(ring)} if shared is not None else {}),
        "keyset": str(keyset),
        "suite": ring.suite,
        "receipt_key": {"key_id": ring.receipt_key.key_id, "algorithm": ring.receipt_key.algorithm},
        "demo_subject_issuer_key": str(issuer_key),
    }


_STORAGES: dict[str, Storage] = {}


def storage(data_dir: Path) -> Storage:
    """The storage of this data directory's verbs: the database of GOVGW_DATABASE_URL
    (set by --database-url) or the directory's SQLite; opened once per process."""
    url = database_url()
    if not url:  # a file of the directory: opened (and its schema checked) each time, as before
        return open_storage("", Path(data_dir))
    if url not in _STORAGES:  # one pool and listener per process
        if not _STORAGES:
            atexit.register(close_storages)
        _STORAGES[url] = open_storage(url, Path(data_dir))
    return _STORAGES[url]


def close_storages() -> None:
    """Close the databases `storage` opened (at exit; a test running verbs in-process
    closes them after each test, so no listener outlives its database)."""
    while _STORAGES:
        _STORAGES.popitem()[1].close()


def shared_storage(data_dir: Path) -> Storage | None:
    """The database of GOVGW_DATABASE_URL, or None: the stores that are files of the
    data directory by default stay files (no SQLite file is made for them)."""
    return storage(data_dir) if database_url() else None


def caller_registry(data_dir: Path) -> CallerRegistry:
    return CallerRegistry(storage(data_dir))


def policy_store(data_dir: Path) -> Any:
    """The policy versions of this data directory's deployment (the shared database's
    with a URL), for the `govgw policy` verbs that work without a server."""
    from gateway.policy.serving import policy_store as versions

    return versions(Path(data_dir), storage(data_dir) if database_url() else None)


def grant_store(data_dir: Path) -> Any:
    from gateway.grants import GrantStore

    return GrantStore(Layout(Path(data_dir)).grants, storage=storage(data_dir))


def write_receipt_keyset(data_dir: Path, ring: keys.KeyRing | None = None) -> Path:
    """keys/receipt-keys.json: every published receipt key, for `receipt verify --key-file`."""
    if ring is None:
        ring = keys.load(keys.keyring_path(data_dir))
    keyset = Path(data_dir) / "keys" / "receipt-keys.json"
    signer = ReceiptSigner(ring.receipt_key, ring.receipt_verify_only)
    replace_atomically(keyset, json.dumps(keyset_document(signer.public_keys()), indent=2).encode())
    return keyset


DEMO_ISSUER = "demo-idp"


def demo_subject_issuer(data_dir: Path) -> Path:
    """A demo identity provider (standing in for 统一身份认证平台): its private key,
    generated here and kept in the data directory only (mode 0600, never committed),
    signs subject tokens with `govgw subjects token`; its public key is registered.
    A deployment removes it (`govgw subjects issuers remove demo-idp`) once the
    province's platform is registered."""
    from gateway.access.subject_tokens import IssuerRegistry, new_issuer_key

    layout = Layout(Path(data_dir))
    path = layout.data_dir / "keys" / "demo-subject-issuer.pem"
    if not path.exists():
        private, public = new_issuer_key()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(private)
        # With a database URL the registry is the database's, shared by every node.
        registry = IssuerRegistry(layout.subject_issuers, shared_storage(data_dir))
        if not any(i["name"] == DEMO_ISSUER for i in registry.list()):
            registry.add(DEMO_ISSUER, public, description="demo identity provider (synthetic)")
    return path


def issuer_registry(data_dir: Path) -> Any:
    """The subject-token issuers of this data directory's verbs (or of the database)."""
    from gateway.access.subject_tokens import IssuerRegistry

    return IssuerRegistry(Layout(Path(data_dir)).subject_issuers, shared_storage(data_dir))


def data_dir_catalog(data_dir: Path):
    """The catalog a gateway on `data_dir` serves: the active policy version's (R1)."""
    from gateway.policy.serving import data_dir_catalog as served

    # With a database URL the active version is the shared database's.
    return served(Path(data_dir), storage=storage(data_dir) if database_url() else None)


def _pool(data_dir: Path):
    from gateway.pool import Pool

    layout = Layout(Path(data_dir))
    init(data_dir)
    catalog = data_dir_catalog(data_dir)
    ring = keys.load(keys.keyring_path(layout.data_dir))
    return Pool(layout.pool, ring, catalog, shared_storage(data_dir))


def pool_import(
    data_dir: Path,
    dataset: str,
    path: Path,
    *,
    fmt: str | None,
    replace_all: bool,
    strict: bool,
    progress: Callable[[int], None] | None = None,
):
    from gateway.pool.ingest import ingest_file

    pool = _pool(data_dir)
    try:
        return ingest_file(
            pool, dataset, path, fmt=fmt, replace_all=replace_all, strict=strict, progress=progress
        )
    finally:
        pool.close()


def pool_seed(data_dir: Path, *, persons: int, entities: int, seed: int) -> dict[str, Any]:
    from gateway.pool.seed import seed_demo

    pool = _pool(data_dir)
    try:
        demo = dataclasses.asdict(seed_demo(pool, persons=persons, entities=entities, seed=seed))
    finally:
        pool.close()
    replace_atomically(
        Path(data_dir) / "demo.json", json.dumps(demo, ensure_ascii=False, indent=2).encode()
    )
    return demo


def pool_stats(data_dir: Path) -> dict[str, dict[str, Any]]:
    pool = _pool(data_dir)
    try:
        return {
            name: {"rows": pool.count(name), "version": pool.dataset_version(name)}
            for name in pool.catalog.datasets
        }
    finally:
        pool.close()


def _known_provider_ids(data_dir: Path, provider_ids: Sequence[str]) -> None:
    """Refuse a provider id the served catalog does not name: a typo would leave
    the department unable to act as provider, with nothing to say why."""
    if not provider_ids:
        return
    known = data_dir_catalog(data_dir).provider_ids()
    unknown = [p for p in provider_ids if p not in known]
    if unknown:
        listed = ", ".join(f"{pid} ({name})" for pid, name in sorted(known.items()))
        raise CallerError(
            f"provider-id: {', '.join(unknown)} names no provider in the catalog; known: {listed}"
        )


def recorded_text(value: str, field_name: str, what: str = "") -> str:
    """What the gateway's RPCs do to text people type that is kept, offline: the
    one check (validation.recorded_text), its refusal as a ValueError naming the
    field and reason, e.g. `reason: must not contain an ID number or phone number
    (REASON_CONTAINS_PERSONAL_DATA)`."""
    from gateway.errors import GovgwError
    from gateway.validation import recorded_text as check

    try:
        return check(value, field_name, what)
    except GovgwError as e:
        v = e.violations[0]
        raise ValueError(f"{v.field}: {v.description} ({v.reason})") from None


def callers_add(
    data_dir: Path,
    caller_id: str,
    kind: str,
    department: str,
    region: str,
    cert_out: Path | None = None,
    provider_ids: Sequence[str] = (),
) -> dict[str, Any]:
    _known_provider_ids(data_dir, provider_ids)
    # The department is in every audit record and report of the caller's calls.
    department = recorded_text(department, "department", "name the caller's department")
    caller, api_key = caller_registry(data_dir).add(
        caller_id, kind, department, region, provider_ids
    )
    doc: dict[str, Any] = {"caller": caller.to_json(), "api_key": api_key}
    if cert_out is not None:
        from gateway.tls import write_client_cert

        cert, key = write_client_cert(Path(data_dir), caller_id, cert_out)
        doc["certificate"], doc["certificate_key"] = str(cert), str(key)
    return doc


def callers_list(data_dir: Path, redis_url: str | None = None) -> list[dict[str, Any]]:
    """Every caller; with shared state, a suspension's reason (and one not yet persisted)."""
    registry = caller_registry(data_dir)
    callers = [c.to_json() for c in registry.list()]
    held: dict[str, list[dict[str, Any]]] = {}
    for o in registry.operators():
        if o.status == "suspended":
            held.setdefault(o.caller, []).append(o.to_json())
    for c in callers:  # one clerk of a hall suspended, the hall working on
        c["suspended_operators"] = held.get(c["id"], [])
    url = state_url(redis_url)
    if url:
        shared = _run_state(url, lambda s: s.suspended())
        for c in callers:
            if c["id"] in shared:
                c["status"], c["suspension_reason"] = "suspended", shared[c["id"]]
    return callers


def state_url(redis_url: str | None = None) -> str:
    from gateway.state import redis_url as resolve

    return resolve(redis_url)


def _run_state(url: str, op: Any) -> Any:
    """One operation on the shared state from the CLI (its own short event loop)."""
    import asyncio

    from gateway.errors import GovgwError
    from gateway.state import open_state

    async def main() -> Any:
        state = open_state(url)
        try:
            return await op(state)
        finally:
            await state.aclose()

    try:
        return asyncio.run(main())
    except GovgwError as e:
        raise OSError(f"{e.reason}: {e.message}") from None


def _audit_admin(data_dir: Path, event: dict[str, Any]) -> None:
    """Administrators' transitions go to their own chain, audit/audit-admin.log:
    a running server holds its own file's lock, and `audit verify` checks
    every chain in audit/."""
    from gateway.audit import AuditLog

    layout = Layout(Path(data_dir))
    private_dir(layout.audit_dir)
    with AuditLog(layout.admin_audit) as log:
        log.append(event)


def callers_bind(data_dir: Path, caller_id: str, provider_ids: Sequence[str]) -> dict[str, Any]:
    """Bind a registered caller to exactly these providers (none: unbind it).

    The way a registry made before provider ids gets its providers back; audited
    like a suspension, since it gives or takes away a provider's powers."""
    _known_provider_ids(data_dir, provider_ids)
    caller = caller_registry(data_dir).set_provider_ids(caller_id, provider_ids)
    _audit_admin(
        data_dir,
        {
            "action": "caller.providers",
            "caller": caller_id,
            "reason": "",
            "detail": ",".join(caller.provider_ids),
            "by": "administrator",
            "outcome": "OK",
            "subject": "",
        },
    )
    return caller.to_json()


def callers_suspend(
    data_dir: Path,
    caller_id: str,
    reason: str,
    redis_url: str | None = None,
    operator: str = "",
) -> dict[str, Any]:
    """Suspend a caller (R10): shared state first (every process at once), then
    the registry (kept across restarts); a failure of the first changes nothing.
    With `operator`, one clerk of the caller only (the registry; the hall works on)."""
    return _set_suspension(data_dir, caller_id, reason, redis_url, operator, suspend=True)


def callers_reinstate(
    data_dir: Path,
    caller_id: str,
    reason: str,
    redis_url: str | None = None,
    operator: str = "",
) -> dict[str, Any]:
    """Only an administrator lifts a suspension, automatic or not: of the caller, or
    of one of its operators."""
    return _set_suspension(data_dir, caller_id, reason, redis_url, operator, suspend=False)


def _set_suspension(
    data_dir: Path, caller_id: str, reason: str, redis_url: str | None, operator: str, *,
    suspend: bool,
) -> dict[str, Any]:  # fmt: skip
    from gateway.oracle import REINSTATE_ACTION, SUSPEND_ACTION, Suspension

    what = "suspended" if suspend else "reinstated"
    reason = recorded_text(reason, "reason", f"say why the caller is {what}")
    layout = Layout(Path(data_dir))
    registry = CallerRegistry(storage(layout.data_dir))
    if registry.get(caller_id) is None:
        raise ValueError(f"id: no caller {caller_id!r}")
    event = Suspension(caller_id, "ADMINISTRATOR", reason, operator).audit_event(
        by="administrator", action=SUSPEND_ACTION if suspend else REINSTATE_ACTION
    )
    if operator:  # operator suspensions live in the registry only (gateway.oracle)
        if not OPERATOR_PATTERN.fullmatch(operator):
            raise ValueError("operator: 1-64 characters of letters, digits and . _ @ -")
        status = registry.set_operator_status(
            caller_id, operator, "suspended" if suspend else "active", "ADMINISTRATOR"
        )
        _audit_admin(data_dir, event)
        return status.to_json()
    url = state_url(redis_url)
    if url:
        _run_state(
            url,
            (lambda s: s.suspend(caller_id, "ADMINISTRATOR"))
            if suspend
            else (lambda s: s.reinstate(caller_id)),
        )
        write_private(layout.shared_state_marker, b"redis\n")
    elif not suspend and layout.shared_state_marker.exists():
        # The suspension (the monitor's, or one made with a URL) is in shared state:
        # changing only the registry would report a reinstatement no gateway sees.
        raise ValueError(
            "redis-url: the gateways of this data directory keep suspensions in shared state;"
            " give --redis-url or GOVGW_REDIS_URL (the one `govgw serve` uses)"
        )
    caller = registry.set_status(caller_id, "suspended" if suspend else "active")
    _audit_admin(data_dir, event)
    return caller.to_json()


def _expiry(text: str) -> str:
    m = re.fullmatch(r"(\d+)([dh])", text.strip())
    if m:
        n, unit = int(m.group(1)), m.group(2)
        when = datetime.now(UTC) + (timedelta(days=n) if unit == "d" else timedelta(hours=n))
    else:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if when.tzinfo is None:
            raise ValueError("expires: give a time zone, e.g. 2027-01-01T00:00:00+08:00")
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def grants_add(
    data_dir: Path, caller: str, dataset: str, fields: list[str], purpose: str, expires: str
) -> dict[str, Any]:

    ds = data_dir_catalog(data_dir).get(dataset)
    if ds is None:
        raise ValueError(f"dataset: no dataset {dataset!r} in the catalog")
    unknown = [f for f in fields if ds.field(f) is None]
    if unknown:
        raise ValueError(f"fields: not fields of {dataset}: {', '.join(unknown)}")
    if caller_registry(data_dir).get(caller) is None:
        raise ValueError(f"caller: no caller {caller!r}")
    # Bound to the purpose's stored form, the same string the calls it serves record.
    purpose = recorded_text(purpose, "purpose")
    grant = grant_store(data_dir).add(caller, dataset, fields, purpose, _expiry(expires))
    announce_grants_change()
    return grant


def grants_list(data_dir: Path) -> list[dict[str, Any]]:

    return grant_store(data_dir).list()


def grants_revoke(data_dir: Path, grant_id: str, reason: str) -> Any:

    reason = recorded_text(reason, "reason", "say why the grant is revoked")
    revoked = grant_store(data_dir).revoke(grant_id, reason)
    announce_grants_change()
    return revoked


def announce_grants_change(redis_url: str | None = None) -> bool:
    """Tell every gateway process sharing Redis to drop its cached plans now.

    Best effort: the grants file is the record, and each process re-reads it
    within its refresh interval anyway; the announcement makes it immediate
    (well under 1 s) across processes and hosts. False if not announced.
    """
    url = state_url(redis_url)
    if not url:
        return False
    try:
        _run_state(url, lambda s: s.bump_grants_version())
    except OSError:
        print("govgw: shared state unreachable; processes pick the change up from the file",
              file=sys.stderr)  # fmt: skip
        return False
    return True


def audit_verify(data_dir: Path, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Check every chain in audit/ (one per worker, one for administrators).

    The top-level fields sum up (ok only if every chain is); `files` has each one.
    `progress(bytes)` as the chains are read (their total: `audit_bytes`).
    """
    from gateway.audit import verify_chain
    from gateway.audit.verify import summary

    if database_url():  # a shared database: every node's chains it can reach
        from gateway.audit.nodes import Node, node_id, register
        from gateway.audit.verify_nodes import verify_nodes

        layout = Layout(Path(data_dir))
        _audit_index(data_dir)  # a directory without audit/ is refused, not given a node id
        shared = storage(data_dir)
        this = Node(node_id(layout.data_dir), "", str(layout.audit_dir.resolve()), "")
        with shared.transaction() as db:  # a directory never served yet is known from now
            register(db, this.node, layout.audit_dir)
        return verify_nodes(shared, this, progress)
    files = []
    for path in Layout(Path(data_dir)).audit_files():
        r = verify_chain(path, progress)
        files.append(
            {
                "file": path.name,
                "ok": r.ok,
                "records": r.records,
                "first_broken_seq": r.first_broken_seq,
                "first_broken_line": r.first_broken_line,
                "problem": r.problem,
                "torn_tail": r.torn_tail,
            }
        )
    return summary(files, lambda f: str(f["file"]))


def conflicts_report(data_dir: Path, attribute: str = "") -> list[dict[str, Any]]:
    """The conflicts report (R16) read from the pool directly, for the administrator
    on the machine; audited to the administrators' chain, counts only."""
    from gateway.pool import Pool
    from gateway.pool.conflicts import ConflictFinder
    from gateway.services.conflicts import PURPOSE

    layout = Layout(Path(data_dir))
    if not database_url() and not layout.pool.is_file():
        raise ValueError(f"data-dir: no pool at {layout.pool}; run `govgw init` and import data")
    try:
        ring = keys.load(keys.keyring_path(layout.data_dir))
    except keys.KeyRingError as e:
        raise ValueError(f"data-dir: {e}") from None
    catalog = data_dir_catalog(data_dir)
    with Pool(layout.pool, ring, catalog, shared_storage(data_dir)) as pool:
        finder = ConflictFinder(pool, catalog, ring)
        finder.check_attribute(attribute)
        today = datetime.now(UTC).date()
        found = [
            c.to_json() for c in finder.all(attribute=attribute, caller_id=LOCAL_ADMIN, today=today)
        ]
    _audit_admin(
        data_dir,
        {
            "action": "conflicts.read",
            "caller": LOCAL_ADMIN,
            "caller_kind": "admin",
            "purpose": PURPOSE,
            "outcome": "OK",
            "subject": "",
            "details": {"attribute": attribute or "*", "conflicts": len(found), "offline": True},
        },
    )
    return found


def serve(config: ServeConfig, *, banner: str = "") -> int:
    from gateway.app import attach, build_parts
    from gateway.audit import AuditUnavailable
    from gateway.server import GatewayServer

    config.validate()  # a bad flag is refused before anything is opened or loaded
    init(config.data_dir)
    try:
        parts = build_parts(config)
    except AuditUnavailable as e:  # its audit file held: another process serves this directory
        raise OSError(str(e)) from None
    server = GatewayServer(config, attach(parts, config))
    port = server.start()
    server.install_signal_handlers()
    host, _ = config.host_port()
    print(f"govgw serving on {host}:{port}", flush=True)
    if server.metrics_port:
        print(f"metrics on {metrics_url(config, server.metrics_port)}", flush=True)
    if banner:
        print(banner, flush=True)
    server.wait()
    return 0


def metrics_url(config: ServeConfig, port: int) -> str:
    host = config.metrics_host_port()[0]
    host = f"[{host}]" if ":" in host else host
    return f"{'https' if config.tls else 'http'}://{host}:{port}/metrics"


def serve_workers(config: ServeConfig, workers: int) -> int:
    """`govgw serve --workers N`: N processes on one port, sharing state through Redis.

    The kernel (SO_REUSEPORT) balances connections, not calls, among them.
    Each worker keeps its own audit chain (audit/audit-<n>.log). Processes
    are spawned, not forked: gRPC's threads do not survive a fork.

    With --metrics-listen the supervisor serves the one /metrics endpoint: the
    workers write their values to files in a private directory of the
    supervisor's (prometheus_client's multiprocess mode), summed at each scrape.
    """
    import dataclasses
    import multiprocessing
    import multiprocessing.connection
    import shutil
    import signal
    import tempfile

    from gateway.config import ConfigError

    if not state_url(config.redis_url):
        raise ConfigError(
            "--workers needs shared state: give --redis-url or GOVGW_REDIS_URL"
            " (limits and suspensions must hold across the processes)"
        )
    if config.host_port()[1] == 0:
        raise ConfigError("--workers needs a fixed port in --listen")
    config.validate()
    init(config.data_dir)
    endpoint = None
    worker_config = dataclasses.replace(config, reuse_port=True, metrics_listen="")
    if config.metrics_listen:
        from gateway.metrics import MULTIPROC_ENV, MultiprocessEndpoint
        from gateway.server import metrics_tls

        # mkdtemp makes it 0700: only this user's processes read or write the values.
        directory = Path(tempfile.mkdtemp(prefix="govgw-metrics-"))
        # Read by prometheus_client when a worker imports it: set before they are spawned.
        os.environ[MULTIPROC_ENV] = str(directory)
        worker_config = dataclasses.replace(worker_config, metrics_dir=str(directory))
        host, port = config.metrics_host_port()
        try:
            endpoint = MultiprocessEndpoint(host, port, directory, metrics_tls(config))
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(
            target=_worker_main,
            args=(dataclasses.replace(worker_config, worker=i),),
            name=f"govgw-worker-{i}",
        )
        for i in range(workers)
    ]
    for proc in procs:
        proc.start()

    def forward(signum: int, _frame: object) -> None:
        for proc in procs:
            if proc.pid is not None and proc.is_alive():
                os.kill(proc.pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    where = "" if endpoint is None else f"; metrics on {metrics_url(config, endpoint.port)}"
    print(f"govgw: {workers} workers on {config.listen}{where}", flush=True)
    try:
        running = list(procs)
        while running:
            ended = multiprocessing.connection.wait([p.sentinel for p in running])
            for proc in [p for p in running if p.sentinel in ended]:
                proc.join()
                running.remove(proc)
                if endpoint is not None and proc.pid is not None:
                    # Its queue depth and policy version leave the sums; its counters stay.
                    endpoint.worker_gone(proc.pid)
    finally:
        if endpoint is not None:
            endpoint.close()
            shutil.rmtree(endpoint.directory, ignore_errors=True)
    return max((proc.exitcode or 0) for proc in procs)


def _worker_main(config: ServeConfig) -> None:
    import logging
    import signal
    import threading
    import time

    from gateway.logs import configure

    configure(logging.INFO, config.log_format, worker=config.worker)
    parent = os.getppid()

    def orphaned() -> None:
        # A supervisor killed outright (SIGKILL, OOM) cannot forward SIGTERM: a
        # worker left behind would keep serving the port unsupervised. When the
        # parent is gone the worker drains and exits as on SIGTERM.
        while os.getppid() == parent:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=orphaned, name="govgw-orphan-watch", daemon=True).start()
    sys.exit(serve(config))


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use the govgw command")


def _audit_index(data_dir: Path) -> Any:
    from gateway.audit.index import AuditIndex
    from gateway.audit.shared_index import index_for

    layout = Layout(Path(data_dir))
    if not layout.audit_dir.is_dir():
        raise ValueError(f"{data_dir}: no audit/ directory here; is this a govgw data directory?")
    if database_url():  # the shared index: this node's chains, every node's records
        return index_for(layout, storage(layout.data_dir))
    return AuditIndex(layout.audit_index, layout.audit_files)


def audit_bytes(data_dir: Path) -> int:
    """The size of every audit chain: the total of audit verify's and reindex's progress."""
    files = Layout(Path(data_dir)).audit_files()
    if database_url() and Layout(Path(data_dir)).audit_dir.is_dir():
        # verify reads every reachable node's chains too
        from gateway.audit.nodes import node_id, nodes

        this = node_id(data_dir, create=False)
        with storage(data_dir).transaction() as db:
            others = [n for n in nodes(db) if n.node != this]
        files += [p for n in others if n.reachable() for p in n.chains()]
    return sum(p.stat().st_size for p in files)


def audit_reindex(data_dir: Path, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Rebuild the audit index from the chains (it is derived data)."""
    index = _audit_index(data_dir)
    stats = index.rebuild(progress)
    doc = audit_index_status(data_dir)
    return {**doc, "indexed_records": stats.records, "seconds": round(stats.seconds, 3)}


def audit_index_status(data_dir: Path) -> dict[str, Any]:
    """How far each chain is indexed, without refreshing (the readers refresh)."""
    from gateway.audit.index import FileStatus
    from gateway.audit.shared_index import SharedAuditIndex
    from gateway.storage import redact

    index = _audit_index(data_dir)
    if isinstance(index, SharedAuditIndex):  # this node's chains in the shared index
        files = index.status()
        where, exists, size, node = redact(database_url()), True, 0, index.node
    else:
        exists = index.path.exists()
        files = (
            index.status()
            if exists
            else [FileStatus(str(p), 0, 0, 0, p.stat().st_size, "", 0) for p in index.audit_files()]
        )
        where, size, node = str(index.path), index.size_bytes(), ""
    return {
        "index": where,
        **({"node": node} if node else {}),
        "exists": exists,
        "size_bytes": size,
        "records": sum(f.records for f in files),
        "pending_bytes": sum(f.pending_bytes for f in files),
        "ok": not any(f.broken for f in files),
        "files": [f.to_json() for f in files],
    }
