"""The route table: every RPC is one row, run by the one pipeline.

A row names the gRPC method (its descriptor gives the request and response
types and whether the answer streams), the policy action, `parse` (protobuf
message -> typed `Request`, or INVALID_ARGUMENT naming the field) and
`handle` (the RPC's own domain step), and declares what the pipeline must
do around it:

- `state_changing`: idempotency keys and signed-request replay protection;
- `in_thread`: `handle` does blocking I/O (files, SQLite scans, child
  processes) and runs in a worker thread, never on the event loop;
- `subject_keys`: the request's subjects are keys someone could sweep
  (ID numbers, USCCs): per-subject limits and the enumeration monitor apply;
- `answer`: what kind of answer the enumeration monitor watches.

From the table the server (`gateway.server`) builds its generic handlers
and the list of services it advertises (health, reflection), so nothing is advertised that
is not served and no RPC body repeats the pipeline's plumbing. A new RPC is
a row and two functions.

The handlers take the request as a stream of raw bytes: the pipeline
authenticates on the headers, only then reads and decodes the message, so
bytes that do not decode are an audited INVALID_ARGUMENT for a known caller
(or UNAUTHENTICATED for anyone else), never a framework error with a
traceback.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Generic, Protocol, TypeVar

from google.protobuf import message_factory
from google.protobuf.descriptor import FileDescriptor, MethodDescriptor
from google.protobuf.message import Message

from gateway.call import Exec, Incoming, Outcome, Request
from gateway.errors import GovgwError

M = TypeVar("M", bound=Message)
P = TypeVar("P")


class Answer(Enum):
    """What an RPC's answer tells about a subject, for the enumeration monitor."""

    NONE = "none"  # no subject key is answered about
    MATCH = "match"  # MATCH / NO_MATCH (identity verification)
    PREDICATE = "predicate"  # yes/no predicates; a miss is "no record in the base dataset"
    RECORD = "record"  # records released; a miss is "no record"


class BatchSteps(Protocol):
    """What a batch row (items streamed in, results streamed out) does of its own;
    the pipeline's batch mode (`gateway.batch`) runs the steps around them."""

    max_items: int

    def header(self, message: Any, incoming: Incoming) -> Request[Any]:
        """The call's purpose and datasets, from its first message (no subjects)."""

    def items(self, message: Any) -> Sequence[Message]:
        """The items one request message carries."""

    def parse_item(self, item: Any, index: int, header: Request[Any]) -> Request[Any]:
        """One item -> its typed request, or INVALID_ARGUMENT naming `items[index].field`."""

    def begin(self, ex: Exec[Any]) -> Any:
        """The call's scope: what the steps read once per call and keep between its
        items (`ex` is the call's header, no subject)."""

    def ahead(self, scope: Any, requests: Sequence[Request[Any]]) -> None:
        """The parsed items about to go through admission, in order: their data may be
        read in one go once the first of them is admitted (`answer`)."""

    def answer(self, ex: Exec[Any], scope: Any) -> Outcome[Any]:
        """One admitted item's answer; `response` is its result message, unsigned."""

    def seal(self, ex: Exec[Any], answered: Sequence[Outcome[Any]]) -> None:
        """Sign the answered items' receipts, once for the batch; sets `receipt_id`."""

    def refused(self, index: int, error: GovgwError) -> Message:
        """The result message of an item that was not answered."""

    def respond(self, results: Sequence[Any], request_id: str, policy_version: str) -> Message:
        """One response message carrying a chunk of results in its repeated field
        `results` (the runner makes them empty and adds each result in place)."""


@dataclass(frozen=True)
class Route(Generic[M, P]):
    method: MethodDescriptor
    action: str
    parse: Callable[[M, Incoming], Request[P]]
    handle: Callable[[Exec[P]], Outcome[Any] | Awaitable[Outcome[Any]]]
    state_changing: bool = False
    in_thread: bool = False
    subject_keys: bool = False
    answer: Answer = Answer.NONE
    # Set for a batch row: many items in, a result per item out (gateway.batch).
    batch: BatchSteps | None = None
    request_type: type[Message] = field(init=False)
    response_type: type[Message] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "request_type", message_factory.GetMessageClass(self.method.input_type)
        )
        object.__setattr__(
            self, "response_type", message_factory.GetMessageClass(self.method.output_type)
        )

    @property
    def service(self) -> str:
        return self.method.containing_service.full_name

    @property
    def path(self) -> str:
        return f"/{self.service}/{self.method.name}"

    @property
    def streams(self) -> bool:
        return self.method.server_streaming


def method(file: FileDescriptor, service: str, name: str) -> MethodDescriptor:
    """A method's descriptor from a generated module's DESCRIPTOR, e.g.
    `method(verification_pb2.DESCRIPTOR, "VerificationService", "VerifyIdentity")`."""
    return file.services_by_name[service].methods_by_name[name]


def rows_of(file: FileDescriptor, service: str) -> Callable[..., Route[Any, Any]]:
    """A row maker for one service: `row("VerifyIdentity", action, parse, handle, **props)`."""

    def row(name: str, action: str, parse: Any, handle: Any, **props: Any) -> Route[Any, Any]:
        return Route(method(file, service, name), action, parse, handle, **props)

    return row


def check_table(routes: Sequence[Route[Any, Any]]) -> None:
    """Every method of every service named in the table is served exactly once:
    a service is advertised whole or not at all."""
    paths = [r.path for r in routes]
    dupes = sorted({p for p in paths if paths.count(p) > 1})
    if dupes:
        raise ValueError(f"routes served twice: {', '.join(dupes)}")
    served = set(paths)
    for service in {r.method.containing_service for r in routes}:
        missing = [
            m.name for m in service.methods if f"/{service.full_name}/{m.name}" not in served
        ]
        if missing:
            raise ValueError(f"{service.full_name} has no route for {', '.join(missing)}")


def services(routes: Iterable[Route[Any, Any]]) -> tuple[str, ...]:
    """Full names of the services the table serves, in table order."""
    return tuple(dict.fromkeys(r.service for r in routes))
