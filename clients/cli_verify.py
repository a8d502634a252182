"""`govgw verify ...` and `govgw receipt ...`: verification (核验) and its signed receipts.

govgw verify identity --name N --id-number ID --purpose P [--receipt-out FILE]
govgw verify attributes --subject KEY --predicate age_at_least:18 [...] --purpose P
govgw verify batch --input FILE --purpose P --out OUT.jsonl  (clients.cli_batch)
govgw receipt keys [--out keys.json]
govgw receipt verify --key-file keys.json receipt.json      (offline)
govgw receipt verify --key-file keys.json OUT.jsonl         (every line of a batch's output)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clients import cli_batch
from clients.receipts import (
    ReceiptInvalid,
    SignedReceipt,
    load_public_keys,
    open_commitment,
    verify_receipt,
)
from clients.sdk import (
    AttributesResult,
    GovgwClient,
    IdentityResult,
    Keyset,
    VerifiedReceipt,
    disputed_notice,
)

if TYPE_CHECKING:
    from clients.cli_common import CliHelpers


def write_receipt(path: Path | None, receipt: VerifiedReceipt | None) -> None:
    if path is not None and receipt is not None:
        path.write_text(json.dumps(receipt.to_json(), indent=2))


def parse_predicate(text: str) -> tuple[str, list[str]]:
    name, _, rest = text.partition(":")
    return name.strip(), [a for a in rest.split(",") if a] if rest else []


def _receipt_line(r: IdentityResult | AttributesResult) -> str:
    if r.receipt is None:
        return "receipt  -"
    checked = "signature verified" if r.receipt.verified else "signature NOT checked"
    return f"receipt  {r.receipt.receipt_id} ({checked})"


def identity_text(r: IdentityResult) -> str:
    return (
        f"{'MATCH 一致' if r.matched else 'NO_MATCH 不一致'}\n"
        f"{disputed_notice(r.disputed_fields)}"
        f"{_receipt_line(r)}\n"
        f"request  {r.request_id}  policy {r.policy_version}"
    )


def attributes_text(r: AttributesResult, table: Any) -> str:
    return (
        table([["predicate", "answer"]] + [[k, str(v).lower()] for k, v in r.results.items()])
        + f"\n{disputed_notice(r.disputed_fields)}{_receipt_line(r)}\n"
        f"request  {r.request_id}  policy {r.policy_version}"
    )


def register(sub: Any, h: CliHelpers) -> None:
    verify = sub.add_parser("verify", help="verification (核验)").add_subparsers(
        dest="sub", required=True
    )

    def identity(gw: GovgwClient, a: argparse.Namespace) -> IdentityResult:
        r = gw.verify_identity(a.name, a.id_number, purpose=a.purpose)
        write_receipt(a.receipt_out, r.receipt)  # saved first: the answer is printed after
        return r

    sp = h.verb(verify, "identity", "does this name match this ID number?", identity, identity_text)
    sp.add_argument("--name", required=True)
    sp.add_argument("--id-number", required=True)
    sp.add_argument("--purpose", required=True)
    sp.add_argument("--receipt-out", type=Path, help="save the signed receipt here")

    def attributes(gw: GovgwClient, a: argparse.Namespace) -> AttributesResult:
        predicates = [parse_predicate(p) for p in a.predicate]
        r = gw.verify_attributes(a.subject, predicates, purpose=a.purpose, kind=a.kind)
        write_receipt(a.receipt_out, r.receipt)
        return r

    sp = h.verb(
        verify,
        "attributes",
        "answer predicates about a subject",
        attributes,
        lambda r: attributes_text(r, h.table),
    )
    sp.add_argument("--subject", required=True, help="ID number or USCC")
    sp.add_argument("--kind", choices=["person", "legal_entity"])
    sp.add_argument(
        "--predicate",
        action="append",
        required=True,
        help="NAME or NAME:ARG[,ARG], e.g. age_at_least:18",
    )
    sp.add_argument("--purpose", required=True)
    sp.add_argument("--receipt-out", type=Path)
    cli_batch.register(verify, h)

    receipt = sub.add_parser("receipt", help="signed receipts").add_subparsers(
        dest="sub", required=True
    )

    def keys(gw: GovgwClient, a: argparse.Namespace) -> Keyset:
        keyset = gw.receipt_keys()
        if a.out:
            a.out.write_text(json.dumps(keyset.document(), indent=2))
        return keyset

    sp = h.verb(
        receipt,
        "keys",
        "fetch the gateway's receipt keys",
        keys,
        lambda ks: "\n".join(f"{k.key_id}  {k.algorithm}" for k in ks),
        # The keyset file format (what --out writes and `receipt verify` reads).
        doc=lambda ks: {**ks.document(), "request_id": ks.request_id},
    )
    sp.add_argument("--out", type=Path, help="save the keyset for offline verification")

    def verify_offline(args: argparse.Namespace) -> int:
        if cli_batch.is_jsonl(args.receipt_file):  # a `verify batch` output: every line
            return cli_batch.verify_file(args, h)
        doc = json.loads(args.receipt_file.read_text())
        # Accept a receipt file, or the whole `verify ... --json` output that holds one.
        if "receipt" in doc and isinstance(doc["receipt"], dict):
            doc = doc["receipt"]
        try:
            receipt = SignedReceipt.from_json(doc)
            claims = verify_receipt(receipt, load_public_keys(args.key_file))
            opened = _opening(args, receipt)
        except (ReceiptInvalid, KeyError, ValueError) as e:
            return h.fail(
                args, {"reason": "RECEIPT_INVALID", "message": str(e)}, f"receipt INVALID: {e}"
            )
        if opened is False:
            message = "the ID number and salt do not open the subject commitment"
            return h.fail(
                args,
                {"reason": "OPENING_INVALID", "message": message},
                f"opening INVALID: {message}",
            )
        result: dict[str, Any] = {"valid": True, "claims": claims}
        if opened:
            result["opened"] = True
        h.emit(
            args,
            result,
            lambda: (
                "receipt VALID\n"
                + ("subject commitment OPENS with the given ID number\n" if opened else "")
                + h.table([[k, str(v)] for k, v in sorted(claims.items())])
            ),
        )
        return 0

    sp = h.cmd(receipt, "verify", verify_offline, "verify a receipt offline")
    sp.add_argument("--key-file", type=Path, required=True, help="JWK Set, keyset JSON or PEM")
    sp.add_argument("--open", action="store_true", help="check an opening of the commitment")
    sp.add_argument("--id-number", help="with --open: the subject's ID number")
    sp.add_argument("--salt", help="with --open: the commitment salt (hex); default: the file's")
    sp.add_argument("receipt_file", type=Path, help="a receipt file or a `verify batch` JSONL")


def _opening(args: argparse.Namespace, receipt: SignedReceipt) -> bool | None:
    """None without --open; else whether --id-number and --salt (or the receipt
    file's commitment_salt) open the receipt's subject commitment."""
    if not args.open:
        return None
    if not args.id_number:
        raise ValueError("--open needs --id-number")
    salt = args.salt or receipt.salt.hex()
    if not salt:
        raise ValueError("--open needs --salt (the receipt file holds no commitment_salt)")
    return open_commitment(receipt, args.id_number, salt)
