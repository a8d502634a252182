"""Policy versions: content-addressed bundles, signatures, the active pointer, history.

Without a database URL everything lives under <data-dir>/policy:

    versions/<pv-…>/manifest.json   version, digest, files {path: sha256}, author,
                                     created_at, reason, parent, signature?
    versions/<pv-…>/bundle/…        the bundle's files, byte for byte
    active                           {"version", "seq", "at", "actor", "reason"}
    history.jsonl                    one line per activation or rollback
    trust.json                       administrator keys and whether signing is required
    lock                             flock taken by every writer

A version directory is written under a temporary name and renamed into
place, and the `active` pointer is replaced with rename(2), so a reader (a
gateway process polling the pointer) sees the old version or the new one,
never half of either. Reading a version checks every file against the
manifest and the manifest's digest against the files: a file changed, added
or removed after the fact makes the version unreadable.

With a database URL the same records live in PostgreSQL, shared by every node
(gateway.policy.versions_pg): `VersionStore` holds what both keep alike (what a
version is, how it is checked on read, how a rollback target is found) and the
file backend; the PostgreSQL store replaces only the primitive reads and writes.

What a manifest, a history entry, a signature and the trust are:
gateway.policy.version_records (re-exported here).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Hashable, Iterator, Mapping
from pathlib import Path
from typing import Any

from gateway.files import (
    fsync_dir,
    open_private,
    private_dir,
    replace_atomically,
    write_private,
)
from gateway.policy.bundle import (
    BundleError,
    PolicyBundle,
    bundle_from_files,
    files_digest,
    is_bundle_path,
    version_of,
)
from gateway.policy.version_records import (
    BASELINE_AUTHOR,
    KEY_ID_RE,
    SIGNATURE_TYPE,
    HistoryEntry,
    Signature,
    Trust,
    VersionError,
    VersionInfo,
    file_hashes,
    generate_key,
    is_version_id,
    load_private_key,
    now_text,
    public_key,
    sign_files,
    signing_payload,
)

# Re-exported: what a version is was defined here before the split.
__all__ = ["BASELINE_AUTHOR", "SIGNATURE_TYPE", "generate_key", "load_private_key"]
__all__ += ["VersionStore", "materialized", "sign_files", "signing_payload"]


@contextlib.contextmanager
def materialized(files: Mapping[str, bytes]) -> Iterator[Path]:
    """The files in a private temporary directory, for a child process to read."""
    root = Path(tempfile.mkdtemp(prefix="govgw-policy-"))
    try:
        for rel, blob in files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(blob)
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


class VersionStore:
    """The versions of one deployment; this class keeps them in files (see the module doc)."""

    shared = False  # do other nodes see these versions? (PostgreSQL: yes)

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.versions_dir = self.root / "versions"
        self.pointer = self.root / "active"
        self.history_path = self.root / "history.jsonl"
        self.trust_path = self.root / "trust.json"

    # ----- the backend's primitives (files here; PostgreSQL overrides them) -----------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer at a time; the primitives called inside write together."""
        private_dir(self.versions_dir)
        fd = open_private(self.root / "lock", os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _read_trust(self) -> bytes | None:
        try:
            return self.trust_path.read_bytes()
        except FileNotFoundError:
            return None

    def _write_trust(self, blob: bytes) -> None:
        replace_atomically(self.trust_path, blob)

    def _read_manifest(self, version: str) -> bytes | None:
        try:
            return (self._dir(version) / "manifest.json").read_bytes()
        except FileNotFoundError:
            return None

    def _replace_manifest(self, version: str, blob: bytes) -> None:
        replace_atomically(self._dir(version) / "manifest.json", blob)

    def _write_version(self, version: str, manifest: bytes, files: Mapping[str, bytes]) -> None:
        tmp = Path(tempfile.mkdtemp(dir=self.versions_dir, prefix=".new-"))
        try:
            for rel, blob in files.items():
                path = tmp / "bundle" / rel
                private_dir(path.parent)
                write_private(path, blob)
            write_private(tmp / "manifest.json", manifest)
            for path in tmp.rglob("*"):
                if path.is_file():
                    with open(path, "rb") as f:
                        os.fsync(f.fileno())
            os.rename(tmp, self._dir(version))
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        fsync_dir(self.versions_dir)

    def _read_bundle(self, version: str) -> dict[str, bytes]:
        root = self.bundle_dir(version)
        files: dict[str, bytes] = {}
        for path in sorted(root.rglob("*")) if root.is_dir() else ():
            if path.is_file():
                files[path.relative_to(root).as_posix()] = path.read_bytes()
        return files

    def _manifests(self) -> list[tuple[str, bytes]]:
        out = []
        for d in sorted(self.versions_dir.glob("pv-*")) if self.versions_dir.is_dir() else ():
            with contextlib.suppress(OSError):
                out.append((d.name, (d / "manifest.json").read_bytes()))
        return out

    def _read_pointer(self) -> bytes | None:
        try:
            return self.pointer.read_bytes()
        except FileNotFoundError:
            return None

    def _history_lines(self) -> list[str]:
        try:
            return self.history_path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []

    def _switch(self, entry: HistoryEntry, pointer: bytes) -> None:
        # History first: a crash between the two leaves a recorded intent whose seq
        # the pointer never reached, never a switch nobody can account for.
        fd = open_private(self.history_path, os.O_WRONLY | os.O_APPEND)
        with os.fdopen(fd, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry.to_json(), ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
        replace_atomically(self.pointer, pointer)

    def stamp(self) -> Hashable:
        """A cheap token that differs once the pointer (or, shared, anything) changed."""
        try:
            st = os.stat(self.pointer)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def subscribe(self, wake: Callable[[], None]) -> None:
        """Call `wake` (from another thread) once something changed; files are polled."""

    @contextlib.contextmanager
    def checkable(self, version: str) -> Iterator[Path]:
        """A directory holding the version's files, for the child-process check."""
        self.read_files(version)  # intact, or VersionError
        yield self.bundle_dir(version)

    def bundle_dir(self, version: str) -> Path:
        return self._dir(version) / "bundle"

    def _dir(self, version: str) -> Path:
        if not is_version_id(version):
            raise VersionError("VERSION_INVALID", "a version looks like pv-<12 hex digits>")
        return self.versions_dir / version

    # ----- trust -------------------------------------------------------------------------

    def _trust_doc(self) -> dict[str, Any] | None:
        blob = self._read_trust()
        return None if blob is None else dict(json.loads(blob))

    def trust(self) -> Trust:
        try:
            doc = self._trust_doc()
            if doc is None:
                return Trust()
            return Trust(
                require_signature=bool(doc.get("require_signature", False)),
                keys={str(k): str(v["public_key_pem"]) for k, v in (doc.get("keys") or {}).items()},
            )
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            # Unreadable trust: fail closed, nothing verifies.
            return Trust(require_signature=True, keys={})

    def set_trust(
        self,
        *,
        key_id: str | None = None,
        public_key_pem: str | None = None,
        require_signature: bool | None = None,
        remove_key: str | None = None,
    ) -> Trust:
        with self._locked():
            try:
                doc = self._trust_doc() or {"require_signature": False, "keys": {}}
            except (ValueError, TypeError) as e:  # never overwrite what nobody can read
                raise VersionError(
                    "TRUST_CORRUPT", f"the stored trust is unreadable ({type(e).__name__})"
                ) from None
            keys = doc.setdefault("keys", {})
            if key_id is not None and public_key_pem is not None:
                if not KEY_ID_RE.match(key_id):
                    raise VersionError("KEY_ID_INVALID", "key id: 1-64 of A-Z a-z 0-9 . _ -")
                try:
                    public_key(public_key_pem)
                except ValueError as e:
                    raise VersionError("KEY_INVALID", f"public key: {e}") from None
                keys[key_id] = {"public_key_pem": public_key_pem, "added_at": now_text()}
            if remove_key is not None:
                keys.pop(remove_key, None)
            if require_signature is not None:
                doc["require_signature"] = require_signature
            self._write_trust(json.dumps(doc, indent=2).encode())
        return self.trust()

    # ----- versions ----------------------------------------------------------------------

    def exists(self, version: str) -> bool:
        self._dir(version)  # a well-formed id, or VersionError
        return self._read_manifest(version) is not None

    def create(
        self,
        bundle: PolicyBundle,
        *,
        author: str,
        reason: str,
        parent: str = "",
        signature: Signature | None = None,
    ) -> VersionInfo:
        """Store a bundle as a version (idempotent: the same files are the same version).

        A signature given for a version stored unsigned is added, once it verifies.
        """
        files = bundle.files
        if not files or not all(is_bundle_path(p) for p in files):
            raise VersionError("BUNDLE_INVALID", "a version needs the bundle's files")
        digest = files_digest(files)
        version = version_of(digest)
        self._dir(version)
        with self._locked():
            if self._read_manifest(version) is not None:
                info = self.get(version)
                if signature is not None and info.signature is None:
                    info = VersionInfo(**{**info.__dict__, "signature": signature})
                    self._replace_manifest(version, _manifest(info))
                return info
            info = VersionInfo(
                version=version,
                digest=digest,
                files=file_hashes(files),
                author=author,
                created_at=now_text(),
                reason=reason,
                parent=parent,
                signature=signature,
            )
            self._write_version(version, _manifest(info), files)
            return info

    def get(self, version: str) -> VersionInfo:
        self._dir(version)
        try:
            blob = self._read_manifest(version)
            if blob is None:
                raise VersionError("VERSION_NOT_FOUND", f"no policy version {version}")
            return VersionInfo.from_json(json.loads(blob))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise VersionError(
                "VERSION_CORRUPT", f"manifest of {version} unreadable: {type(e).__name__}"
            ) from None

    def list(self) -> list[VersionInfo]:
        out = []
        for _version, blob in self._manifests():
            with contextlib.suppress(ValueError, KeyError, TypeError):
                out.append(VersionInfo.from_json(json.loads(blob)))
        return sorted(out, key=lambda v: (v.created_at, v.version))

    def version_ids(self) -> list[str]:
        return [version for version, _ in self._manifests()]

    def read_files(self, version: str) -> tuple[VersionInfo, dict[str, bytes]]:
        """The version's files, checked against its manifest (integrity, not trust)."""
        info = self.get(version)
        files = self._read_bundle(version)
        if file_hashes(files) != info.files or files_digest(files) != info.digest:
            raise VersionError(
                "VERSION_CORRUPT", f"the files of {version} do not match its manifest"
            )
        if version_of(info.digest) != version:
            raise VersionError("VERSION_CORRUPT", f"manifest of {version} names another digest")
        return info, files

    def load(
        self, version: str, *, include_tests: bool = False
    ) -> tuple[VersionInfo, PolicyBundle]:
        """A version ready to serve: intact, and signed as the trust requires."""
        info, files = self.read_files(version)
        problem = self.trust().check(info.signature, version, files)
        if problem:
            raise VersionError(problem[0], f"{version}: {problem[1]}")
        try:
            return info, bundle_from_files(files, include_tests=include_tests)
        except BundleError as e:
            raise VersionError("VERSION_CORRUPT", f"{version}: {e}") from None

    # ----- the active pointer and its history ----------------------------------------------

    def active(self) -> dict[str, Any] | None:
        try:
            blob = self._read_pointer()
            if blob is None:
                return None
            doc = json.loads(blob)
        except (OSError, ValueError):
            return {"version": "", "seq": 0, "corrupt": True}
        return doc if isinstance(doc, dict) else {"version": "", "seq": 0, "corrupt": True}

    def active_version(self) -> str:
        doc = self.active()
        return str(doc.get("version", "")) if doc else ""

    def history(self) -> list[HistoryEntry]:
        out = []
        for line in self._history_lines():
            with contextlib.suppress(ValueError, TypeError):
                out.append(HistoryEntry(**json.loads(line)))
        return out

    def set_active(
        self, version: str, *, actor: str, action: str, reason: str, request_id: str = ""
    ) -> HistoryEntry:
        """Record why and switch the pointer (a crash leaves the intent, never an
        unrecorded switch)."""
        with self._locked():
            if not self.exists(version):
                raise VersionError("VERSION_NOT_FOUND", f"no policy version {version}")
            history = self.history()
            entry = HistoryEntry(
                seq=(history[-1].seq if history else 0) + 1,
                at=now_text(),
                actor=actor,
                action=action,
                version=version,
                previous=self.active_version(),
                reason=reason,
                request_id=request_id,
            )
            pointer = {
                "version": version,
                "seq": entry.seq,
                "at": entry.at,
                "actor": actor,
                "reason": reason,
            }
            self._switch(entry, json.dumps(pointer, ensure_ascii=False).encode())
            return entry

    def rollback_target(self, version: str = "") -> str:
        """The version a rollback returns to: `version` if it was ever active, else the previous one."""
        history = self.history()
        current = self.active_version()
        if version:
            if not any(h.version == version for h in history):
                raise VersionError(
                    "VERSION_NEVER_ACTIVE",
                    f"{version} was never active; activate it instead of rolling back to it",
                )
            if version == current:
                raise VersionError("VERSION_ALREADY_ACTIVE", f"{version} is already active")
            return version
        for h in reversed(history):
            if h.version == current and h.previous and h.previous != current:
                return h.previous
        raise VersionError("NO_EARLIER_VERSION", "there is no earlier version to roll back to")


def _manifest(info: VersionInfo) -> bytes:
    return json.dumps(info.to_json(), indent=2).encode()
