"""What every `govgw` verb shares: output, connecting, and one call to the gateway.

A verb that calls the gateway is `remote(args, call, human)` (or, added to
the parser in one step, `CliHelpers.verb`): connect with the
global flags (--target, --api-key, --ca-cert, --client-cert, --client-key,
--timeout), make the call, print the answer as text or, with --json, as JSON,
and turn a refused call into the error output and exit status 1. The verb
itself says only which call and how its answer reads.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from clients.sdk import GovgwClient, GovgwClientError, PolicyAdminClient

T = TypeVar("T")


# -- output ------------------------------------------------------------------
def emit(args: argparse.Namespace, doc: Any, human: Callable[[], str]) -> None:
    if args.json:
        print(json.dumps(doc, ensure_ascii=False, indent=2))
    else:
        print(human())


def fail(args: argparse.Namespace, doc: dict[str, Any], text: str) -> int:
    if getattr(args, "json", False):
        print(json.dumps({"error": doc}, ensure_ascii=False, indent=2))
    print(f"govgw: {text}", file=sys.stderr)
    return 1


def table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(_width(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c + " " * (w - _width(c)) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in rows
    )


def _width(s: str) -> int:
    # CJK characters take two terminal columns.
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in s)


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """CSV with a header line, lines ending in "\\n" whatever the platform."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return out.getvalue()


def as_json(result: Any) -> Any:
    """The --json form of an answer: an SDK result's own `to_json`, a protobuf
    message with its proto field names, a list item by item."""
    if isinstance(result, Message):
        return MessageToDict(result, preserving_proto_field_name=True)
    if hasattr(result, "to_json"):
        return result.to_json()
    if isinstance(result, Sequence) and not isinstance(result, str | bytes):
        return [as_json(item) for item in result]
    return result


# -- the gateway -------------------------------------------------------------
def _connection(args: argparse.Namespace) -> dict[str, Any]:
    """The global flags as a client's keyword arguments, for every client class."""
    return {
        "api_key": args.api_key,
        "ca_cert": args.ca_cert,
        "client_cert": args.client_cert,
        "client_key": args.client_key,
        "timeout_s": args.timeout,
    }


def client(args: argparse.Namespace) -> GovgwClient:
    return GovgwClient(args.target, **_connection(args))


def admin_client(args: argparse.Namespace) -> PolicyAdminClient:
    """A client with PolicyAdminService too (`govgw policy` server verbs)."""
    return PolicyAdminClient(args.target, **_connection(args))


def remote(
    args: argparse.Namespace,
    call: Callable[[Any], T],
    human: Callable[[T], str],
    *,
    doc: Callable[[T], Any] = as_json,
    csv: Callable[[T], str] | None = None,
    connect: Callable[[argparse.Namespace], GovgwClient] = client,
) -> int:
    """Connect, `call(client)`, print the answer; the verb's exit status.

    `human` renders the answer as text, `doc` as JSON (--json); with `csv`, the
    verb's --csv flag prints that instead of either. A refused call prints the
    gateway's code, reason and fields at fault (as JSON too with --json) and
    exits 1. Rendering happens after the connection is closed: nothing in it
    may call the gateway.
    """
    try:
        with connect(args) as gw:
            result = call(gw)
    except GovgwClientError as e:
        return fail(args, e.to_json(), str(e))
    if csv is not None and args.csv:
        print(csv(result), end="")
    else:
        emit(args, doc(result), lambda: human(result))
    return 0


@dataclass(frozen=True)
class CliHelpers:
    """What a command group module needs from `clients.cli` to add its verbs."""

    cmd: Callable[..., Any]  # cmd(parent_subparsers, name, fn, help) -> parser
    data_dir: Callable[[Any], None]  # adds --data-dir to a parser
    emit: Callable[[argparse.Namespace, Any, Callable[[], str]], None] = emit
    fail: Callable[[argparse.Namespace, dict[str, Any], str], int] = fail
    table: Callable[[Sequence[Sequence[str]]], str] = table
    remote: Callable[..., int] = remote
    admin_client: Callable[[argparse.Namespace], PolicyAdminClient] = admin_client

    def verb(
        self,
        parent: Any,
        name: str,
        help: str,
        call: Callable[[Any, argparse.Namespace], T],
        human: Callable[[T], str],
        **how: Any,
    ) -> argparse.ArgumentParser:
        """Add a verb that is one call: `call(client, args)`, its answer read by
        `human` (and `how`: doc, csv, connect, as `remote` takes them). Returns
        the verb's parser, for its arguments."""

        def run(args: argparse.Namespace) -> int:
            return remote(args, lambda gw: call(gw, args), human, **how)

        return self.cmd(parent, name, run, help)
