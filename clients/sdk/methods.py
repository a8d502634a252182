"""The SDK's methods: one line per method and client, each naming its table row.

`sync(row)` and `aio(row)` turn a row into a method whose signature is the row's
builder's (so type checkers and editors see real arguments) and whose result is the
row's converted result, directly or awaited.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, Concatenate, ParamSpec, TypeVar

from clients.sdk import calls as c
from clients.sdk import calls_admin as ca
from clients.sdk import calls_policy as cp
from clients.sdk import calls_subjects as cs
from clients.sdk.call import Call
from clients.sdk.client import _AsyncTransport, _SyncTransport

P = ParamSpec("P")
R = TypeVar("R")


def _named(call: Call[Any, Any], method: Any) -> Any:
    """The method as help() and editors show it: the builder's name, doc and arguments."""
    method.__doc__ = call.build.__doc__
    sig = inspect.signature(call.build)
    this = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    method.__signature__ = sig.replace(
        parameters=[this, *sig.parameters.values()], return_annotation=inspect.Signature.empty
    )
    method.__name__ = method.__qualname__ = call.build.__name__.lstrip("_") or call.rpc
    return method


def sync(call: Call[P, R]) -> Callable[Concatenate[Any, P], R]:
    def method(self: Any, *args: P.args, **kw: P.kwargs) -> R:
        return self._invoke(call, call.build(*args, **kw))  # type: ignore[no-any-return]

    return _named(call, method)  # type: ignore[no-any-return]


def sync_stream(call: Call[P, R]) -> Callable[Concatenate[Any, P], Iterator[R]]:
    return sync(call)  # type: ignore[return-value]  # the transport streams `stream` rows


def aio(call: Call[P, R]) -> Callable[Concatenate[Any, P], Awaitable[R]]:
    def method(self: Any, *args: P.args, **kw: P.kwargs) -> Awaitable[R]:
        return self._invoke(call, call.build(*args, **kw))  # type: ignore[no-any-return]

    return _named(call, method)  # type: ignore[no-any-return]


def aio_stream(call: Call[P, R]) -> Callable[Concatenate[Any, P], AsyncIterator[R]]:
    return aio(call)  # type: ignore[return-value]


class GovgwClient(_SyncTransport):
    """The blocking client: every method returns a typed result (clients.sdk.results,
    clients.sdk.types) and raises GovgwClientError when the gateway refuses.

        with GovgwClient("127.0.0.1:50051", api_key=KEY) as gw:
            r = gw.verify_identity("张三", "11010519491231002X", purpose="户籍业务办理")
            r.result, r.receipt.claims.outcome   # the receipt verified on arrival
    """

    verify_identity = sync(c.VERIFY_IDENTITY)
    verify_attributes = sync(c.VERIFY_ATTRIBUTES)
    lookup = sync(c.LOOKUP)
    batch_lookup = sync_stream(c.BATCH_LOOKUP)
    list_datasets = sync(c.LIST_DATASETS)
    get_dataset = sync(c.GET_DATASET)
    receipt_keys = sync(c.RECEIPT_KEYS)
    apply = sync(c.APPLY)
    list_applications = sync(c.LIST_APPLICATIONS)
    get_application = sync(c.GET_APPLICATION)
    decide_application = sync(c.DECIDE_APPLICATION)
    change_grant = sync(c.CHANGE_GRANT)
    sweep_unused_grants = sync(c.SWEEP_UNUSED_GRANTS)
    usage_report = sync(c.USAGE_REPORT)
    declare_emergency = sync(ca.DECLARE_EMERGENCY)
    end_emergency = sync(ca.END_EMERGENCY)
    list_emergencies = sync(ca.LIST_EMERGENCIES)
    get_emergency = sync(ca.GET_EMERGENCY)
    sealing_list = sync(ca.SEALING_LIST)
    seal_emergency = sync(ca.SEAL_EMERGENCY)
    list_conflicts = sync(ca.LIST_CONFLICTS)
    conflicts_report = sync(ca.CONFLICTS_REPORT)
    my_usage = sync(cs.MY_USAGE)
    all_my_usage = sync(cs.ALL_MY_USAGE)
    file_correction = sync(cs.FILE_CORRECTION)
    my_corrections = sync(cs.MY_CORRECTIONS)
    request_withdrawal = sync(cs.REQUEST_WITHDRAWAL)
    my_withdrawals = sync(cs.MY_WITHDRAWALS)
    my_records = sync(cs.MY_RECORDS)
    list_corrections = sync(cs.LIST_CORRECTIONS)
    extend_correction = sync(cs.EXTEND_CORRECTION)
    answer_correction = sync(cs.ANSWER_CORRECTION)
    list_withdrawals = sync(cs.LIST_WITHDRAWALS)
    review_withdrawal = sync(cs.REVIEW_WITHDRAWAL)
    suspend_opening = sync(cs.SUSPEND_OPENING)
    list_opening_suspensions = sync(cs.LIST_OPENING_SUSPENSIONS)
    withdraw_opening = sync(cs.WITHDRAW_OPENING)
    reopen_opening = sync(cs.REOPEN_OPENING)
    deadlines = sync(cs.DEADLINES)
    validate_policy = sync(cp.VALIDATE_POLICY)
    test_policy = sync(cp.TEST_POLICY)
    policy_impact = sync(cp.POLICY_IMPACT)
    activate_policy = sync(cp.ACTIVATE_POLICY)
    rollback_policy = sync(cp.ROLLBACK_POLICY)
    list_policy_versions = sync(cp.LIST_POLICY_VERSIONS)

    def keyset(self) -> dict[str, Any]:
        """The gateway's receipt keys in the keyset file format `receipt verify` reads."""
        return self.receipt_keys().document()


class AsyncGovgwClient(_AsyncTransport):
    """The asyncio client (grpc.aio), for agency systems that batch:

        async with AsyncGovgwClient("127.0.0.1:50051", api_key=KEY) as gw:
            results = await asyncio.gather(*(gw.lookup(DS, k, purpose=P) for k in keys))

    Same methods, arguments, results and errors as GovgwClient; `batch_lookup` is an
    async iterator."""

    verify_identity = aio(c.VERIFY_IDENTITY)
    verify_attributes = aio(c.VERIFY_ATTRIBUTES)
    lookup = aio(c.LOOKUP)
    batch_lookup = aio_stream(c.BATCH_LOOKUP)
    list_datasets = aio(c.LIST_DATASETS)
    get_dataset = aio(c.GET_DATASET)
    receipt_keys = aio(c.RECEIPT_KEYS)
    apply = aio(c.APPLY)
    list_applications = aio(c.LIST_APPLICATIONS)
    get_application = aio(c.GET_APPLICATION)
    decide_application = aio(c.DECIDE_APPLICATION)
    change_grant = aio(c.CHANGE_GRANT)
    sweep_unused_grants = aio(c.SWEEP_UNUSED_GRANTS)
    usage_report = aio(c.USAGE_REPORT)
    declare_emergency = aio(ca.DECLARE_EMERGENCY)
    end_emergency = aio(ca.END_EMERGENCY)
    list_emergencies = aio(ca.LIST_EMERGENCIES)
    get_emergency = aio(ca.GET_EMERGENCY)
    sealing_list = aio(ca.SEALING_LIST)
    seal_emergency = aio(ca.SEAL_EMERGENCY)
    list_conflicts = aio(ca.LIST_CONFLICTS)
    conflicts_report = aio(ca.CONFLICTS_REPORT)
    my_usage = aio(cs.MY_USAGE)
    all_my_usage = aio(cs.ALL_MY_USAGE)
    file_correction = aio(cs.FILE_CORRECTION)
    my_corrections = aio(cs.MY_CORRECTIONS)
    request_withdrawal = aio(cs.REQUEST_WITHDRAWAL)
    my_withdrawals = aio(cs.MY_WITHDRAWALS)
    my_records = aio(cs.MY_RECORDS)
    list_corrections = aio(cs.LIST_CORRECTIONS)
    extend_correction = aio(cs.EXTEND_CORRECTION)
    answer_correction = aio(cs.ANSWER_CORRECTION)
    list_withdrawals = aio(cs.LIST_WITHDRAWALS)
    review_withdrawal = aio(cs.REVIEW_WITHDRAWAL)
    suspend_opening = aio(cs.SUSPEND_OPENING)
    list_opening_suspensions = aio(cs.LIST_OPENING_SUSPENSIONS)
    withdraw_opening = aio(cs.WITHDRAW_OPENING)
    reopen_opening = aio(cs.REOPEN_OPENING)
    deadlines = aio(cs.DEADLINES)
    validate_policy = aio(cp.VALIDATE_POLICY)
    test_policy = aio(cp.TEST_POLICY)
    policy_impact = aio(cp.POLICY_IMPACT)
    activate_policy = aio(cp.ACTIVATE_POLICY)
    rollback_policy = aio(cp.ROLLBACK_POLICY)
    list_policy_versions = aio(cp.LIST_POLICY_VERSIONS)

    async def keyset(self) -> dict[str, Any]:
        """The gateway's receipt keys in the keyset file format `receipt verify` reads."""
        return (await self.receipt_keys()).document()


# Policy administration used to need a client of its own; every client has it now.
PolicyAdminClient = GovgwClient
