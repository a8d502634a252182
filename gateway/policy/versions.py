"""Policy versions: content-addressed bundles, signatures, the active pointer, history.

Everything lives under <data-dir>/policy:

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

Signatures (Ed25519 or SM2 with SM3, GB/T 32918: contract.signing; by an
administrator key listed in trust.json) cover
the bundle's full digest and its file list. OPA once accepted a bundle
whose signature file had been stripped while verification was configured:
here, when signing is required, a version without a signature, with an
empty one, by an unknown key or over other content is refused, and a
signature that is present but wrong is refused even when signing is not
required.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from contract import signing
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
    canonical_json,
    files_digest,
    is_bundle_path,
    version_of,
)

SIGNATURE_TYPE = "govgw.policy.v1"
BASELINE_AUTHOR = "govgw"
_VERSION_RE = re.compile(r"^pv-[0-9a-f]{12}$")
_KEY_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class VersionError(Exception):
    """A version operation was refused; `reason` is an UPPER_SNAKE code for the caller."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def is_version_id(text: str) -> bool:
    return bool(_VERSION_RE.match(text))


# ----- signatures ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Signature:
    key_id: str
    value: str  # base64 of the signature: 64 bytes (Ed25519) or DER (r, s) (SM2)

    def to_json(self) -> dict[str, str]:
        return {"key_id": self.key_id, "value": self.value}


def file_hashes(files: Mapping[str, bytes]) -> dict[str, str]:
    return {p: hashlib.sha256(b).hexdigest() for p, b in sorted(files.items())}


def signing_payload(version: str, digest: str, hashes: Mapping[str, str], key_id: str) -> bytes:
    """The bytes an administrator signs: the content, never its metadata (author, reason)."""
    return canonical_json(
        {
            "type": SIGNATURE_TYPE,
            "version": version,
            "digest": digest,
            "files": dict(sorted(hashes.items())),
            "key_id": key_id,
        }
    )


def sign_files(files: Mapping[str, bytes], key: signing.PrivateKey, key_id: str) -> Signature:
    digest = files_digest(files)
    payload = signing_payload(version_of(digest), digest, file_hashes(files), key_id)
    return Signature(key_id, base64.b64encode(key.sign(payload)).decode())


def generate_key(
    directory: Path, key_id: str, algorithm: str = signing.ED25519
) -> tuple[Path, Path]:
    """A new administrator key pair: <id>.key (PKCS#8 PEM, mode 0600) and <id>.pub."""
    if not _KEY_ID_RE.match(key_id):
        raise VersionError("KEY_ID_INVALID", "key id: 1-64 characters of A-Z, a-z, 0-9, . _ -")
    if algorithm not in signing.ALGORITHMS:
        raise VersionError(
            "KEY_ALGORITHM_INVALID", f"algorithm: one of {', '.join(signing.ALGORITHMS)}"
        )
    directory.mkdir(parents=True, exist_ok=True)
    key = signing.generate(algorithm)
    priv, pub = directory / f"{key_id}.key", directory / f"{key_id}.pub"
    if priv.exists():
        raise VersionError("KEY_EXISTS", f"{priv} exists; not overwriting a key")
    fd = os.open(priv, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(signing.private_pem(key))
    pub.write_text(signing.public_pem(key.public_key()))
    return priv, pub


def load_private_key(path: Path) -> signing.PrivateKey:
    try:
        return signing.load_private_pem(Path(path).read_bytes())
    except ValueError as e:
        raise VersionError("KEY_INVALID", f"{path} is not an Ed25519 or SM2 private key") from e


def _public_key(pem: str) -> signing.PublicKey:
    return signing.load_public_pem(pem.encode())


@dataclass(frozen=True)
class Trust:
    """Which administrator keys may sign, and whether an unsigned version may be activated."""

    require_signature: bool = False
    keys: dict[str, str] = field(default_factory=dict)  # key id -> public key PEM

    def check(
        self, signature: Signature | None, version: str, files: Mapping[str, bytes]
    ) -> tuple[str, str] | None:
        """(reason, message) why `files` may not be activated under this signature, or None.

        A missing signature fails only when signing is required; a signature that
        is present must verify whatever the setting (it is never just ignored).
        """
        if signature is None or not signature.key_id or not signature.value:
            if self.require_signature:
                return "SIGNATURE_REQUIRED", "signing is required and the version is not signed"
            return None
        pem = self.keys.get(signature.key_id)
        if pem is None:
            return (
                "SIGNATURE_KEY_UNTRUSTED",
                f"signed by {signature.key_id}, which is not a trusted administrator key",
            )
        digest = files_digest(files)
        if version_of(digest) != version:
            return "SIGNATURE_INVALID", f"the files are version {version_of(digest)}, not {version}"
        payload = signing_payload(version, digest, file_hashes(files), signature.key_id)
        try:
            raw = base64.b64decode(signature.value, validate=True)
            _public_key(pem).verify(raw, payload)
        except (signing.InvalidSignature, ValueError):
            return (
                "SIGNATURE_INVALID",
                f"the signature by {signature.key_id} does not match the version's content",
            )
        return None


# ----- records ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class VersionInfo:
    version: str
    digest: str
    files: dict[str, str]  # path -> sha256 hex
    author: str
    created_at: str
    reason: str
    parent: str = ""
    signature: Signature | None = None

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["signature"] = self.signature.to_json() if self.signature else None
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> VersionInfo:
        sig = doc.get("signature")
        return cls(
            version=str(doc["version"]),
            digest=str(doc["digest"]),
            files={str(k): str(v) for k, v in dict(doc["files"]).items()},
            author=str(doc.get("author", "")),
            created_at=str(doc.get("created_at", "")),
            reason=str(doc.get("reason", "")),
            parent=str(doc.get("parent") or ""),
            signature=Signature(str(sig.get("key_id", "")), str(sig.get("value", "")))
            if isinstance(sig, dict)
            else None,
        )


@dataclass(frozen=True)
class HistoryEntry:
    seq: int
    at: str
    actor: str
    action: str  # baseline | activate | rollback
    version: str
    previous: str
    reason: str
    request_id: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# ----- the store -------------------------------------------------------------------------------


class VersionStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.versions_dir = self.root / "versions"
        self.pointer = self.root / "active"
        self.history_path = self.root / "history.jsonl"
        self.trust_path = self.root / "trust.json"

    # -- locking and atomic files --
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        private_dir(self.versions_dir)
        fd = open_private(self.root / "lock", os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _replace(self, path: Path, blob: bytes) -> None:
        replace_atomically(path, blob)

    # -- trust --
    def trust(self) -> Trust:
        try:
            doc = json.loads(self.trust_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return Trust()
        except (OSError, ValueError):
            # Unreadable trust: fail closed, nothing verifies.
            return Trust(require_signature=True, keys={})
        return Trust(
            require_signature=bool(doc.get("require_signature", False)),
            keys={str(k): str(v["public_key_pem"]) for k, v in (doc.get("keys") or {}).items()},
        )

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
                doc = json.loads(self.trust_path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                doc = {"require_signature": False, "keys": {}}
            keys = doc.setdefault("keys", {})
            if key_id is not None and public_key_pem is not None:
                if not _KEY_ID_RE.match(key_id):
                    raise VersionError("KEY_ID_INVALID", "key id: 1-64 of A-Z a-z 0-9 . _ -")
                try:
                    _public_key(public_key_pem)
                except ValueError as e:
                    raise VersionError("KEY_INVALID", f"public key: {e}") from None
                keys[key_id] = {"public_key_pem": public_key_pem, "added_at": now_text()}
            if remove_key is not None:
                keys.pop(remove_key, None)
            if require_signature is not None:
                doc["require_signature"] = require_signature
            self._replace(self.trust_path, json.dumps(doc, indent=2).encode())
        return self.trust()

    # -- versions --
    def _dir(self, version: str) -> Path:
        if not is_version_id(version):
            raise VersionError("VERSION_INVALID", "a version looks like pv-<12 hex digits>")
        return self.versions_dir / version

    def exists(self, version: str) -> bool:
        return (self._dir(version) / "manifest.json").is_file()

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
        with self._locked():
            target = self._dir(version)
            if (target / "manifest.json").is_file():
                info = self.get(version)
                if signature is not None and info.signature is None:
                    info = VersionInfo(**{**info.__dict__, "signature": signature})
                    self._replace(
                        target / "manifest.json", json.dumps(info.to_json(), indent=2).encode()
                    )
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
            tmp = Path(tempfile.mkdtemp(dir=self.versions_dir, prefix=".new-"))
            try:
                for rel, blob in files.items():
                    path = tmp / "bundle" / rel
                    private_dir(path.parent)
                    write_private(path, blob)
                manifest = json.dumps(info.to_json(), indent=2).encode()
                write_private(tmp / "manifest.json", manifest)
                for path in tmp.rglob("*"):
                    if path.is_file():
                        with open(path, "rb") as f:
                            os.fsync(f.fileno())
                os.rename(tmp, target)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            fsync_dir(self.versions_dir)
            return info

    def get(self, version: str) -> VersionInfo:
        path = self._dir(version) / "manifest.json"
        try:
            return VersionInfo.from_json(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise VersionError("VERSION_NOT_FOUND", f"no policy version {version}") from None
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise VersionError(
                "VERSION_CORRUPT", f"manifest of {version} unreadable: {e}"
            ) from None

    def list(self) -> list[VersionInfo]:
        out = []
        for d in sorted(self.versions_dir.glob("pv-*")) if self.versions_dir.is_dir() else ():
            with contextlib.suppress(VersionError):
                out.append(self.get(d.name))
        return sorted(out, key=lambda v: (v.created_at, v.version))

    def bundle_dir(self, version: str) -> Path:
        return self._dir(version) / "bundle"

    def read_files(self, version: str) -> tuple[VersionInfo, dict[str, bytes]]:
        """The version's files, checked against its manifest (integrity, not trust)."""
        info = self.get(version)
        root = self.bundle_dir(version)
        files: dict[str, bytes] = {}
        for path in sorted(root.rglob("*")) if root.is_dir() else ():
            if path.is_file():
                files[path.relative_to(root).as_posix()] = path.read_bytes()
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
        """A version ready to serve: intact, and signed as trust.json requires."""
        info, files = self.read_files(version)
        problem = self.trust().check(info.signature, version, files)
        if problem:
            raise VersionError(problem[0], f"{version}: {problem[1]}")
        try:
            return info, bundle_from_files(files, include_tests=include_tests)
        except BundleError as e:
            raise VersionError("VERSION_CORRUPT", f"{version}: {e}") from None

    # -- the active pointer and its history --
    def active(self) -> dict[str, Any] | None:
        try:
            doc = json.loads(self.pointer.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {"version": "", "seq": 0, "corrupt": True}
        return doc if isinstance(doc, dict) else {"version": "", "seq": 0, "corrupt": True}

    def active_version(self) -> str:
        doc = self.active()
        return str(doc.get("version", "")) if doc else ""

    def history(self) -> list[HistoryEntry]:
        try:
            lines = self.history_path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        out = []
        for line in lines:
            with contextlib.suppress(ValueError, TypeError):
                out.append(HistoryEntry(**json.loads(line)))
        return out

    def set_active(
        self, version: str, *, actor: str, action: str, reason: str, request_id: str = ""
    ) -> HistoryEntry:
        """Record why, then switch the pointer with one rename."""
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
            # History first: a crash between the two leaves a recorded intent whose seq
            # the pointer never reached, never a switch nobody can account for.
            fd = open_private(self.history_path, os.O_WRONLY | os.O_APPEND)
            with os.fdopen(fd, "a", encoding="utf-8") as f:
                f.write(json.dumps(entry.to_json(), ensure_ascii=False) + "\n")
                f.flush()
                os.fsync(f.fileno())
            pointer = {
                "version": version,
                "seq": entry.seq,
                "at": entry.at,
                "actor": actor,
                "reason": reason,
            }
            self._replace(self.pointer, json.dumps(pointer, ensure_ascii=False).encode())
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
