"""How `GovgwClient` (blocking) and `AsyncGovgwClient` (grpc.aio) make a call.

The methods and their results come from one table (clients.sdk.calls*, bound in
clients.sdk.methods); this module only moves a prepared request over a channel,
reads the request id from the trailers, fetches receipt keys when an answer is
signed with one not known yet, and turns a refusal into GovgwClientError.
"""

from __future__ import annotations

import asyncio
import copy
import importlib
import itertools
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Self

import grpc
import grpc.aio

from clients.receipts import public_keys_from_keyset
from clients.sdk import batch as b
from clients.sdk.call import Call, Ctx, Prepared, exchange, receipt_key_id
from clients.sdk.errors import REQUEST_ID_TRAILER, GovgwClientError
from contract.metadata import OPERATOR_HEADER, OPERATOR_PATTERN

# The stub of each service, by the name a Call gives: (module, stub class).
STUBS = {
    "verification": ("verification", "VerificationService"),
    "lookup": ("lookup", "LookupService"),
    "catalog": ("catalog", "CatalogService"),
    "receipts": ("receipt", "ReceiptService"),
    "access": ("access", "AccessService"),
    "usage": ("usage", "UsageService"),
    "emergency": ("emergency", "EmergencyService"),
    "conflicts": ("conflicts", "ConflictService"),
    "subjects": ("subject", "SubjectService"),
    "opening": ("opening", "OpeningService"),
    "deadlines": ("deadlines", "DeadlineService"),
    "policy_admin": ("policy_admin", "PolicyAdminService"),
}


def _with_operator(
    metadata: tuple[tuple[str, str], ...], operator: str
) -> tuple[tuple[str, str], ...]:
    """The metadata naming this operator (and no other), checked as the gateway will."""
    if not OPERATOR_PATTERN.fullmatch(operator):
        raise ValueError("operator: 1-64 characters of letters, digits and . _ @ -")
    return (*(m for m in metadata if m[0] != OPERATOR_HEADER), (OPERATOR_HEADER, operator))


def _request_id(trailers: Any) -> str:
    for key, value in trailers or ():
        if key == REQUEST_ID_TRAILER:
            return str(value)
    return ""


class _Base:
    """Connection settings and the per-service stubs, for both clients."""

    _channel: Any
    _grpc: Any  # grpc or grpc.aio: where the channel comes from

    def __init__(
        self,
        target: str,
        *,
        api_key: str | None = None,
        ca_cert: Path | None = None,
        client_cert: Path | None = None,
        client_key: Path | None = None,
        timeout_s: float = 10.0,
        verify_receipts: bool = True,
        options: Sequence[tuple[str, Any]] = (),
        operator: str = "",
    ) -> None:
        """`operator`: who at the caller makes the calls (a hall's signed-in clerk),
        written in every audit record and watched by the enumeration monitor on its own."""
        self._metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {api_key}"),) if api_key else ()
        )
        if operator:
            self._metadata = _with_operator(self._metadata, operator)
        self.timeout_s = timeout_s
        self.verify_receipts = verify_receipts
        self._keys: dict[str, Any] = {}
        self._stubs: dict[str, Any] = {}
        creds = self._credentials(ca_cert, client_cert, client_key)
        opts = list(options)
        self._channel = (
            self._grpc.secure_channel(target, creds, options=opts)
            if creds is not None
            else self._grpc.insecure_channel(target, options=opts)
        )

    @staticmethod
    def _credentials(
        ca_cert: Path | None, client_cert: Path | None, client_key: Path | None
    ) -> grpc.ChannelCredentials | None:
        if ca_cert is None:
            return None
        return grpc.ssl_channel_credentials(
            root_certificates=Path(ca_cert).read_bytes(),
            private_key=Path(client_key).read_bytes() if client_key else None,
            certificate_chain=Path(client_cert).read_bytes() if client_cert else None,
        )

    def as_operator(self, operator: str) -> Self:
        """This client acting for one operator (a hall's signed-in clerk): the same
        channel and key, the operator in every call's metadata. For a web server that
        holds one hall's key and serves many clerks."""
        client = copy.copy(self)
        client._metadata = _with_operator(self._metadata, operator)
        return client

    def stub(self, service: str) -> Any:
        """The raw gRPC stub of a service (tests and tools that send odd requests)."""
        if service not in self._stubs:
            module, name = STUBS[service]
            grpc_module = importlib.import_module(f"govgw.v1.{module}_pb2_grpc")
            self._stubs[service] = getattr(grpc_module, f"{name}Stub")(self._channel)
        return self._stubs[service]

    def _method(self, call: Call[Any, Any]) -> Any:
        return getattr(self.stub(call.service), call.rpc)

    def _md(self, prepared: Prepared) -> tuple[tuple[str, str], ...]:
        return self._metadata + prepared.metadata

    def _ctx(self, request_id: str) -> Ctx:
        return Ctx(request_id, self._keys if self.verify_receipts else None)

    def _needs_keys(self, answer: Any) -> bool:
        kid = receipt_key_id(answer) if self.verify_receipts else None
        return kid is not None and kid not in self._keys

    def _learn_keys(self, keyset: Any) -> None:
        self._keys = public_keys_from_keyset(keyset.document(), "gateway keyset")


class _SyncTransport(_Base):
    """A blocking channel under GovgwClient's methods (clients.sdk.methods)."""

    _grpc = grpc

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def _call(self, method: Any, request: Any, metadata: Sequence[tuple[str, str]] = ()) -> Any:
        """One raw call, its refusal as GovgwClientError (the raw answer: for tests)."""
        try:
            return method(
                request, metadata=self._metadata + tuple(metadata), timeout=self.timeout_s
            )
        except grpc.RpcError as err:
            raise GovgwClientError.from_rpc_error(err) from None

    def _once(self, call: Call[Any, Any], prepared: Prepared) -> tuple[Any, str]:
        try:
            answer, rpc = self._method(call).with_call(
                prepared.request, metadata=self._md(prepared), timeout=self.timeout_s
            )
        except grpc.RpcError as err:
            raise GovgwClientError.from_rpc_error(err) from None
        if self._needs_keys(answer):
            self._learn_keys(self.receipt_keys())
        return answer, _request_id(rpc.trailing_metadata())

    def _invoke(self, call: Call[Any, Any], prepared: Prepared) -> Any:
        if call.stream:
            return self._stream(call, prepared)
        talk = exchange(call, prepared, self._ctx)
        send = next(talk)
        while True:
            try:
                send = talk.send(self._once(call, send))
            except StopIteration as done:
                return done.value

    def _stream(self, call: Call[Any, Any], prepared: Prepared) -> Iterator[Any]:
        items = self._method(call)(
            prepared.request, metadata=self._md(prepared), timeout=self.timeout_s
        )
        try:
            for item in items:
                yield call.convert(item, self._ctx(""))
        except grpc.RpcError as err:
            raise GovgwClientError.from_rpc_error(err) from None

    def verify_identity_batch(
        self,
        items: Iterable[b.Item],
        *,
        purpose: str,
        batch_size: int = b.CALL_ITEMS,
        in_flight: int = b.IN_FLIGHT,
    ) -> Iterator[b.BatchItemResult]:
        """VerifyIdentity for every (name, id_number) of `items` (pairs or mappings), in
        calls of at most `batch_size`: results in input order (clients.sdk.batch).

        Up to `in_flight` calls at once: while the oldest call's receipts are checked
        and its results handed out, the gateway works on the next ones, so neither
        side waits for the other. The input is read at most `in_flight` calls ahead
        of the results."""
        b.check_size(batch_size)
        if in_flight < 1:
            raise ValueError("in_flight: at least 1")
        source, base = iter(items), 0
        timeout = b.timeout_for(self.timeout_s, batch_size)
        pending: deque[tuple[int, Any]] = deque()  # (items of the call, its responses)

        def send() -> None:
            # A call's items are taken from the input before it is sent, so calls in
            # flight never share the input iterator.
            taken = list(itertools.islice(source, batch_size))
            if taken:
                stub = self.stub("verification")
                pending.append(
                    (len(taken), stub.VerifyIdentityBatch(
                        b.messages(taken, purpose), metadata=self._metadata, timeout=timeout
                    ))
                )  # fmt: skip

        try:
            for _ in range(in_flight):
                send()
            while pending:
                count, responses = pending.popleft()
                try:
                    # The whole call (at most batch_size results): its receipts are
                    # checked together, the batch's tree rebuilt once.
                    answers = list(responses)
                except grpc.RpcError as err:
                    raise GovgwClientError.from_rpc_error(err) from None
                send()  # the next call goes out while this one's results are checked
                if self.verify_receipts and any(b.unknown_key(a, self._keys) for a in answers):
                    self._learn_keys(self.receipt_keys())
                request_id = answers[0].request_id if answers else ""
                yield from b.convert_call(answers, base, self._ctx(request_id))
                base += count
        finally:
            # A caller that stops reading (or a failure) ends the calls in flight.
            for _, responses in pending:
                responses.cancel()


class _AsyncTransport(_Base):
    """A grpc.aio channel under AsyncGovgwClient's methods (clients.sdk.methods)."""

    _grpc = grpc.aio

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    async def _once(self, call: Call[Any, Any], prepared: Prepared) -> tuple[Any, str]:
        rpc = self._method(call)(
            prepared.request, metadata=self._md(prepared), timeout=self.timeout_s
        )
        try:
            answer = await rpc
            request_id = _request_id(await rpc.trailing_metadata())
        except grpc.RpcError as err:
            raise GovgwClientError.from_rpc_error(err) from None
        if self._needs_keys(answer):
            self._learn_keys(await self.receipt_keys())
        return answer, request_id

    def _invoke(self, call: Call[Any, Any], prepared: Prepared) -> Any:
        # Not async itself: a streaming call is an async iterator, not a coroutine.
        return self._stream(call, prepared) if call.stream else self._talk(call, prepared)

    async def _talk(self, call: Call[Any, Any], prepared: Prepared) -> Any:
        talk = exchange(call, prepared, self._ctx)
        send = next(talk)
        while True:
            try:
                send = talk.send(await self._once(call, send))
            except StopIteration as done:
                return done.value

    async def _stream(self, call: Call[Any, Any], prepared: Prepared) -> AsyncIterator[Any]:
        items = self._method(call)(
            prepared.request, metadata=self._md(prepared), timeout=self.timeout_s
        )
        try:
            async for item in items:
                yield call.convert(item, self._ctx(""))
        except grpc.RpcError as err:
            raise GovgwClientError.from_rpc_error(err) from None

    async def verify_identity_batch(
        self,
        items: Iterable[b.Item] | AsyncIterable[b.Item],
        *,
        purpose: str,
        batch_size: int = b.CALL_ITEMS,
        in_flight: int = b.IN_FLIGHT,
    ) -> AsyncIterator[b.BatchItemResult]:
        """As GovgwClient.verify_identity_batch; `items` may be an async iterable."""
        b.check_size(batch_size)
        if in_flight < 1:
            raise ValueError("in_flight: at least 1")
        source, base = b.aiter_of(items), 0
        timeout = b.timeout_for(self.timeout_s, batch_size)
        pending: deque[tuple[int, asyncio.Task[list[Any]]]] = deque()

        async def call(taken: list[b.Item]) -> list[Any]:
            responses = self.stub("verification").VerifyIdentityBatch(
                b.messages(taken, purpose),
                metadata=self._metadata,
                timeout=timeout,
            )
            try:
                return [a async for a in responses]  # the whole call, as above
            finally:
                responses.cancel()  # no-op once done

        async def send() -> None:
            # Taken from the input before the call is made: calls never share it.
            taken = [i async for i in _take(source, batch_size)]
            if taken:
                pending.append((len(taken), asyncio.ensure_future(call(taken))))

        try:
            for _ in range(in_flight):
                await send()
            while pending:
                count, task = pending.popleft()
                try:
                    answers = await task
                except grpc.RpcError as err:
                    raise GovgwClientError.from_rpc_error(err) from None
                await send()
                if self.verify_receipts and any(b.unknown_key(a, self._keys) for a in answers):
                    self._learn_keys(await self.receipt_keys())
                request_id = answers[0].request_id if answers else ""
                for result in b.convert_call(answers, base, self._ctx(request_id)):
                    yield result
                base += count
        finally:
            for _, task in pending:
                task.cancel()


async def _take(source: AsyncIterator[b.Item], n: int) -> AsyncIterator[b.Item]:
    """The next `n` items of `source` (fewer at its end)."""
    for _ in range(n):
        item = await anext(source, None)
        if item is None:
            return
        yield item
