"""The policy one gateway process serves, and how it follows the active pointer.

Every gateway process sharing a data directory polls <data-dir>/policy/active
(one stat every `poll_s`, in a thread of its own, never on the request path).
On PostgreSQL (nodes sharing one database) the watcher is woken by the store's
announcement instead and compares the storage's stamp, so every node follows an
activation made anywhere within a second. When the pointer names another
version, the watcher reads it (integrity and signature checked by the
VersionStore), builds its engine, and hands the
engine to the event loop, which prepares it and swaps the Decider's one
reference, and the served catalog (the version's data/catalog.json) in the
same step. Requests run on that same loop and pin the engine and catalog
served when they start (Decider.pinned), so a request decides all its plans
on the old engine or all on the new one, reads the catalog of that same
version, and none waits for or fails on the swap.

A version that cannot be loaded (corrupt, badly signed, does not compile)
is logged and skipped: the process keeps serving the last good version until
the pointer moves again.

A node on a shared database also checks a version in a child process (as the
gateway does at start) before serving it: the version may have been stored by
another node, and policy is untrusted input that could crash the engine. The
check takes seconds, so it runs when the version is stored (announced too),
before an administrator's activation names it; a version this node has not
checked yet (say, a rollback to one stored before the node started) is checked
when the pointer names it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from gateway.catalog import Catalog, CatalogMismatch
from gateway.policy.bundle import PolicyBundle
from gateway.policy.check import check_in_subprocess
from gateway.policy.decider import Decider, engine_catalog
from gateway.policy.engine import PolicyEngine, rego_error_text
from gateway.policy.versions import VersionError, VersionStore

log = logging.getLogger("govgw.policy")

POLL_S = 0.25
SWAP_WAIT_S = 5.0

EngineFactory = Callable[[PolicyBundle], PolicyEngine]


@dataclass(frozen=True)
class RuntimeStatus:
    serving: str  # the version this process decides with
    active: str  # the version the pointer names ("" before the first activation)
    seq: int  # the history entry of the version served (0: not from the store)
    last_error: str  # why the pointer's version is not served, if it is not
    swapped_at: float  # time.time() of the last swap (0: none yet)


class PolicyRuntime:
    def __init__(
        self,
        decider: Decider,
        store: VersionStore,
        build: EngineFactory,
        *,
        seq: int = 0,
        note: str = "",
        poll_s: float = POLL_S,
    ) -> None:
        self.decider = decider
        self.store = store
        self.build = build
        self.poll_s = poll_s
        self._seq = seq  # pointer seq of what is served; only rises
        self._stamp: Hashable = self.store.stamp()
        self._wake = threading.Event()  # set by the store's announcement (shared stores)
        # Versions this node has checked in a child (problem text, "" when it passed),
        # and those it knew at start, which it checks only once the pointer names one.
        self._checked: dict[str, str] = {decider.serving.version: ""}
        self._known: set[str] = set(store.version_ids()) if store.shared else set()
        self._build_lock = threading.Lock()
        self._last_error = note
        self._failed_seq = -1
        self._swapped_at = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle --
    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Watch the pointer; swaps run on `loop` (the requests' loop) when given."""
        self._loop = loop
        if loop is not None:
            self._loop_thread = _loop_thread_id(loop)
        self.store.subscribe(self._wake.set)  # called in the storage's listener thread
        self._thread = threading.Thread(target=self._watch, name="policy-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def status(self) -> RuntimeStatus:
        pointer = self.store.active() or {}
        return RuntimeStatus(
            serving=self.decider.serving.version,
            active=str(pointer.get("version", "")),
            seq=self._seq,
            last_error=self._last_error,
            swapped_at=self._swapped_at,
        )

    # -- following the pointer --
    def expect(self, version: str) -> None:
        """This process checks `version` itself (PolicyAdministration): no second check."""
        self._known.add(version)

    def _watch(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.poll_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            stamp = self.store.stamp()  # before reading: a later change moves it again
            if stamp == self._stamp or stamp is None:
                continue
            self._stamp = stamp
            try:
                self.sync()
                if self.store.shared:
                    self._check_new_versions()
            except Exception as e:  # the watcher must outlive any one bad version
                log.error("policy watcher: %s", type(e).__name__)

    def _check_new_versions(self) -> None:
        for version in self.store.version_ids():
            if version not in self._known and not self._stop.is_set():
                self._known.add(version)
                self._child_check(version)

    def _child_check(self, version: str) -> str:
        """Why `version` may not be served here ("" when its child check passed)."""
        if version not in self._checked:
            try:
                with self.store.checkable(version) as directory:
                    problems = check_in_subprocess(directory)
                self._checked[version] = "; ".join(str(p) for p in problems)[:500]
            except VersionError as e:
                return e.message  # unreadable now: checked again once it is named
        return self._checked[version]

    def sync(self) -> str:
        """Serve what the pointer names, if it is newer and loads; returns the version served."""
        prepared = self._build_pointed()
        if prepared is None:
            return self.decider.serving.version
        return self.adopt(*prepared)

    def adopt(self, seq: int, engine: PolicyEngine, catalog: Catalog | None = None) -> str:
        """Serve `engine`, built for the pointer's entry `seq`, unless something newer is served.

        PolicyAdminService builds the engine off the loop and adopts it right after
        moving the pointer, so its own process has switched when the call returns.
        """
        if self._loop is None or threading.get_ident() == self._loop_thread:
            self._apply(seq, engine, catalog)
        else:
            done = threading.Event()

            def apply() -> None:
                try:
                    self._apply(seq, engine, catalog)
                finally:
                    done.set()

            try:
                self._loop.call_soon_threadsafe(apply)
            except RuntimeError:  # the loop is closed: the server is stopping
                return self.decider.serving.version
            if not done.wait(SWAP_WAIT_S):
                log.error("policy %s: the event loop did not take the swap", engine.version)
        return self.decider.serving.version

    def _build_pointed(self) -> tuple[int, PolicyEngine, Catalog | None] | None:
        with self._build_lock:
            pointer = self.store.active()
            if not pointer:
                return None
            seq = int(pointer.get("seq", 0) or 0)
            version = str(pointer.get("version", ""))
            if seq <= self._seq or seq == self._failed_seq:
                return None
            if version == self.decider.serving.version:
                self._seq, self._last_error = seq, ""
                return None
            try:
                _, bundle = self.store.load(version)
                problems = self._child_check(version) if self.store.shared else ""
                if problems:
                    self._fail(seq, version, problems)
                    return None
                engine = self.build(bundle)
                # The catalog goes with the engine: a version whose catalog cannot
                # be served is not served at all (checked here, off the loop).
                return seq, engine, self._catalog_for(engine)
            except VersionError as e:
                self._fail(seq, version, e.message)
            except CatalogMismatch as e:
                self._fail(seq, version, str(e)[:500])
            except Exception as e:  # BundleError, engine errors: never take the process down
                self._fail(seq, version, rego_error_text(e)[:500])
            return None

    def _fail(self, seq: int, version: str, why: str) -> None:
        self._failed_seq = seq
        self._last_error = f"{version}: {why}"
        log.error(
            "policy %s not loaded (%s); still serving %s",
            version,
            why,
            self.decider.serving.version,
        )

    def _catalog_for(self, engine: PolicyEngine) -> Catalog | None:
        served = self.decider.catalog
        return None if served is None else engine_catalog(engine, served.pool_structure)

    def _apply(self, seq: int, engine: PolicyEngine, catalog: Catalog | None = None) -> None:
        if seq <= self._seq:
            return  # a newer version was applied meanwhile
        old = self.decider.serving
        try:
            if catalog is None:
                catalog = self._catalog_for(engine)
            engine.prepare()
        except CatalogMismatch as e:
            self._fail(seq, engine.version, str(e)[:500])
            return
        except Exception as e:
            self._fail(seq, engine.version, rego_error_text(e)[:500])
            _restore(old)
            return
        self.decider.swap(engine, catalog)
        self._seq, self._last_error, self._swapped_at = seq, "", time.time()
        log.info("policy %s now served (was %s)", engine.version, old.version)


def _restore(engine: PolicyEngine) -> None:
    # A backend that holds state of its own (an OPA server) may have been left
    # half-updated by the failed prepare: put the served version back.
    try:
        engine.prepare()
    except Exception as e:
        log.error("policy %s could not be restored: %s", engine.version, type(e).__name__)


def _loop_thread_id(loop: asyncio.AbstractEventLoop) -> int:
    try:
        if asyncio.get_running_loop() is loop:
            return threading.get_ident()
    except RuntimeError:
        pass
    found = threading.Event()
    ident = [0]

    def note() -> None:
        ident[0] = threading.get_ident()
        found.set()

    loop.call_soon_threadsafe(note)
    found.wait(SWAP_WAIT_S)
    return ident[0]
