"""The backup file's encryption: an authenticated stream of chunks under a key from the keyring.

Layout of a backup file:

    GOVGWBAK1\\n                   magic
    u32 length, header JSON        clear: format, cipher, salt, keyring fingerprint
    frames                         u32 (bit 31: last frame; bits 0-30: length) + ciphertext

Each frame seals up to CHUNK bytes of the plaintext (a tar stream, gateway/backup.py)
with the deployment suite's AEAD (AES-256-GCM, or SM4-GCM for a keyring made for the
national suite). The key is the suite's MAC under the keyring's audit key of a label and
a fresh 32-byte salt: a new key per backup, so the nonce can be the frame counter. The
audit key is used because it never rotates (keys rotate moves the pool keys only): a
backup stays readable with the deployment's keyring after a rotation. The associated
data binds each frame to the header (its SHA-256), its position and whether it is the
last: a frame changed, dropped, reordered, or a file cut short is refused, and a wrong
keyring is named before anything is decrypted (the header's fingerprint). The key ring
itself is never in the file.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from typing import IO, Any

from gateway.crypto import Aead
from gateway.keycheck import deployment_fingerprint
from gateway.keys import KeyRing

MAGIC = b"GOVGWBAK1\n"
FORMAT = 1
CHUNK = 1 << 20
_LAST = 1 << 31
_LABEL = b"govgw backup key v1\x00"
_MAX_HEADER = 1 << 16


class BackupError(ValueError):
    """The backup cannot be read: wrong keyring, tampered, truncated or not a backup."""


def _aead(ring: KeyRing, salt: bytes) -> Aead:
    suite = ring.mac_suite
    key = suite.mac(ring.audit_key, _LABEL + salt)[: suite.data_key_bytes]
    return suite.aead(key)


def _aad(header_digest: bytes, counter: int, last: bool) -> bytes:
    return header_digest + struct.pack(">QB", counter, 1 if last else 0)


def _nonce(counter: int) -> bytes:
    return b"\0\0\0\0" + struct.pack(">Q", counter)


class EncryptingWriter:
    """A write-only file object: what is written is sealed, CHUNK by CHUNK, to `out`."""

    def __init__(self, out: IO[bytes], ring: KeyRing) -> None:
        salt = os.urandom(32)
        header = json.dumps(
            {
                "format": FORMAT,
                "cipher": ring.mac_suite.name,
                "kdf": "mac(audit key, label || salt)",
                "salt": base64.b64encode(salt).decode(),
                "keyring": deployment_fingerprint(ring),
                "chunk": CHUNK,
            },
            sort_keys=True,
        ).encode()
        out.write(MAGIC + struct.pack(">I", len(header)) + header)
        self._out = out
        self._aead = _aead(ring, salt)
        self._digest = hashlib.sha256(MAGIC + header).digest()
        self._buffer = bytearray()
        self._counter = 0
        self.closed = False

    def write(self, data: bytes) -> int:
        self._buffer += data
        while len(self._buffer) > CHUNK:  # keep one: the last frame must be marked so
            self._frame(bytes(self._buffer[:CHUNK]), last=False)
            del self._buffer[:CHUNK]
        return len(data)

    def _frame(self, plain: bytes, *, last: bool) -> None:
        sealed = self._aead.encrypt(
            _nonce(self._counter), plain, _aad(self._digest, self._counter, last)
        )
        self._out.write(struct.pack(">I", len(sealed) | (_LAST if last else 0)) + sealed)
        self._counter += 1

    def close(self) -> None:
        if not self.closed:
            self._frame(bytes(self._buffer), last=True)
            self._buffer.clear()
            self.closed = True


def read_header(src: IO[bytes]) -> dict[str, Any]:
    """The clear header (format, cipher, keyring fingerprint); BackupError if none."""
    if src.read(len(MAGIC)) != MAGIC:
        raise BackupError("not a govgw backup (no GOVGWBAK1 header)")
    raw_len = src.read(4)
    if len(raw_len) != 4 or struct.unpack(">I", raw_len)[0] > _MAX_HEADER:
        raise BackupError("the backup's header is damaged")
    raw = src.read(struct.unpack(">I", raw_len)[0])
    try:
        header = json.loads(raw)
        header["_raw"] = raw
        if header["format"] != FORMAT:
            raise BackupError(f"backup format {header['format']} is not {FORMAT}: a newer govgw")
        base64.b64decode(header["salt"], validate=True)
    except (ValueError, KeyError, TypeError) as e:
        raise BackupError(f"the backup's header is damaged ({type(e).__name__})") from None
    return header


class DecryptingReader:
    """A read-only file object over a backup's frames; BackupError on any tampering."""

    def __init__(self, src: IO[bytes], ring: KeyRing) -> None:
        header = read_header(src)
        mine = deployment_fingerprint(ring)
        if header.get("keyring") != mine:
            raise BackupError(
                f"this backup was made with the keyring of fingerprint {header.get('keyring')};"
                f" the keyring given is {mine}: pass the deployment's keyring (--keyring or"
                " GOVGW_KEYRING_FILE)"
            )
        if header.get("cipher") != ring.mac_suite.name:
            raise BackupError(f"the backup's cipher {header.get('cipher')!r} is not the keyring's")
        self._src = src
        self._aead = _aead(ring, base64.b64decode(header["salt"]))
        self._digest = hashlib.sha256(MAGIC + header["_raw"]).digest()
        self._buffer = b""
        self._pos = 0  # read offset in _buffer (slicing the front off would copy it)
        self._counter = 0
        self._done = False

    def _next(self) -> None:
        raw = self._src.read(4)
        if len(raw) != 4:
            raise BackupError("the backup is truncated (its last frame is missing)")
        (word,) = struct.unpack(">I", raw)
        last, size = bool(word & _LAST), word & ~_LAST
        if size > CHUNK + 64:
            raise BackupError(f"the backup is damaged at frame {self._counter}")
        sealed = self._src.read(size)
        try:
            plain = self._aead.decrypt(
                _nonce(self._counter), sealed, _aad(self._digest, self._counter, last)
            )
        except Exception:  # InvalidTag (AES) or the SM4 binding's own: the same refusal
            raise BackupError(
                f"the backup fails authentication at frame {self._counter}: it was altered"
                " or damaged"
            ) from None
        self._counter += 1
        if last:
            if self._src.read(1):
                raise BackupError("the backup has data after its last frame: it was altered")
            self._done = True
        self._buffer = self._buffer[self._pos :] + plain
        self._pos = 0

    def read(self, n: int = -1) -> bytes:
        while not self._done and (n < 0 or len(self._buffer) - self._pos < n):
            self._next()
        end = len(self._buffer) if n < 0 else self._pos + n
        out = self._buffer[self._pos : end]
        self._pos += len(out)
        return out

    def drain(self) -> None:
        """Read to the end: the last frame authenticated (nothing cut off)."""
        while not self._done:
            self._buffer, self._pos = b"", 0
            self._next()
