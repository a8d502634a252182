"""Replay protection for state-changing calls.

Two mechanisms, both held in the state backend so every process agrees:

- Idempotency keys (`idempotency-key` metadata): the first call with a key
  runs; a retry with the same key and the same request gets the first
  call's stored response instead of running again; the same key with a
  different request is refused. A call that failed releases its key, so it
  may be retried.
- Signed requests carry a nonce and a timestamp (`x-govgw-nonce`,
  `x-govgw-timestamp`): a timestamp outside the window is refused, and a
  nonce is accepted once per caller within twice the window (after that the
  timestamp check alone refuses it).
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from gateway.errors import GovgwError, invalid
from gateway.state.base import StateBackend

IDEMPOTENCY_HEADER = "idempotency-key"
NONCE_HEADER = "x-govgw-nonce"
TIMESTAMP_HEADER = "x-govgw-timestamp"
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
_PENDING = "pending"


@dataclass(frozen=True)
class Replay:
    """A retry of a call that already succeeded: its stored response bytes."""

    response: bytes


def fingerprint(caller_id: str, action: str, request_bytes: bytes) -> str:
    return hashlib.sha256(
        caller_id.encode() + b"\0" + action.encode() + b"\0" + request_bytes
    ).hexdigest()


class ReplayGuard:
    def __init__(
        self,
        state: StateBackend,
        *,
        window_s: float = 300.0,
        idempotency_ttl_s: float = 86_400.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.state = state
        self.window_s = window_s
        self.idempotency_ttl_s = idempotency_ttl_s
        self.clock = clock

    async def check_nonce(self, caller_id: str, nonce: str, timestamp: str) -> None:
        """Refuse a signed request that is stale, from the future, or seen before."""
        if not _TOKEN_RE.match(nonce):
            raise invalid(NONCE_HEADER, "16-128 characters of A-Z, a-z, 0-9, _ and -",
                          "NONCE_INVALID")  # fmt: skip
        try:
            ts = float(timestamp)
        except ValueError:
            raise invalid(
                TIMESTAMP_HEADER, "seconds since the epoch", "TIMESTAMP_INVALID"
            ) from None
        if abs(self.clock() - ts) > self.window_s:
            raise GovgwError(
                grpc.StatusCode.FAILED_PRECONDITION,
                "REQUEST_EXPIRED",
                f"the request's timestamp is more than {self.window_s:g} s from the server's clock",
            )
        if not await self.state.claim(f"nonce:{caller_id}:{_digest(nonce)}", 2 * self.window_s):
            raise GovgwError(
                grpc.StatusCode.ALREADY_EXISTS,
                "NONCE_REPLAYED",
                "this nonce was already used; sign each request with a fresh one",
            )

    async def begin(self, caller_id: str, key: str, fp: str) -> Replay | None:
        """Claim an idempotency key; a Replay if the same call already succeeded."""
        if not _TOKEN_RE.match(key):
            raise invalid(IDEMPOTENCY_HEADER, "16-128 characters of A-Z, a-z, 0-9, _ and -",
                          "IDEMPOTENCY_KEY_INVALID")  # fmt: skip
        held = await self.state.put_if_absent(
            self._key(caller_id, key), f"{_PENDING}:{fp}", self.idempotency_ttl_s
        )
        if held is None:
            return None
        status, _, rest = held.partition(":")
        held_fp, _, body = rest.partition(":")
        if held_fp != fp:
            raise GovgwError(
                grpc.StatusCode.FAILED_PRECONDITION,
                "IDEMPOTENCY_KEY_REUSED",
                "this idempotency key was used for a different request",
            )
        if status == _PENDING:
            raise GovgwError(
                grpc.StatusCode.ABORTED,
                "IDEMPOTENCY_IN_PROGRESS",
                "a call with this idempotency key is still running; retry shortly",
                retry_after_s=0.5,
            )
        return Replay(base64.b64decode(body))

    async def succeed(self, caller_id: str, key: str, fp: str, response: bytes) -> None:
        value = f"done:{fp}:{base64.b64encode(response).decode()}"
        await self.state.put(self._key(caller_id, key), value, self.idempotency_ttl_s)

    async def fail(self, caller_id: str, key: str) -> None:
        """The call did not happen: free the key for a retry."""
        await self.state.forget(self._key(caller_id, key))

    @staticmethod
    def _key(caller_id: str, key: str) -> str:
        return f"idem:{caller_id}:{_digest(key)}"


def _digest(token: str) -> str:
    """A caller's token as the state keeps it (state.sqlite, Redis): its hash. A key or
    nonce is the caller's free choice, and 513221198604120890 is a valid one."""
    return hashlib.sha256(token.encode()).hexdigest()[:32]
