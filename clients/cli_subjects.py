"""`govgw subjects ...`: data-subject rights (R8, R9).

The data subject (a subject token from the identity platform in
--subject-token or GOVGW_SUBJECT_TOKEN, carried by a public or counter caller):

    govgw subjects usage [--since T] [--until T] [--page-size N] [--page-token P]
    govgw subjects correct --dataset D --field F --statement S [--evidence REF]
    govgw subjects corrections
    govgw subjects withdraw --dataset D --reason R
    govgw subjects withdrawals
    govgw subjects records [--dataset D]     (what the pool holds about me; a fresh token)

The provider (an agency of the dataset's providing department):

    govgw subjects corrections --provider [--dataset D] [--status pending] [--overdue]
    govgw subjects extend CORRECTION_ID --reason R
    govgw subjects answer CORRECTION_ID --corrected --note N
    govgw subjects answer CORRECTION_ID --rejected --note N --legal-basis B
    govgw subjects withdrawals --provider [--dataset D] [--status suspended]
    govgw subjects review WITHDRAWAL_ID --uphold|--reinstate|--reprocess --reason R

The provider (or an administrator), a whole dataset's opening on a security risk:

    govgw subjects suspend-opening DATASET --reason R
    govgw subjects openings [--dataset D] [--status suspended|withdrawn|reopened]
    govgw subjects withdraw-opening SUSPENSION_ID --reason R
    govgw subjects reopen SUSPENSION_ID --reason R [--reprocessed]

The data directory (no server):

    govgw subjects issuers add NAME --public-key PEM_FILE [--description TEXT]
    govgw subjects issuers list | remove NAME
    govgw subjects token --subject ID [--issuer-key PEM] [--issuer demo-idp] [--ttl 10m]
                         [--azp CALLER]      (demos and tests: the platform mints real ones)
"""

from __future__ import annotations

import argparse
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clients.cli_access import _when
from clients.cli_common import name, when
from clients.cli_opening import add_opening

if TYPE_CHECKING:
    from clients.cli_common import CliHelpers

TOKEN_ENV = "GOVGW_SUBJECT_TOKEN"
_TTL_RE = re.compile(r"^(\d+)([smh])$")
_CORRECTION_STATUS = ("pending", "corrected", "rejected")
_WITHDRAWAL_STATUS = ("suspended", "withdrawn", "reinstated", "reprocessed")


def _ttl(text: str) -> timedelta:
    m = _TTL_RE.match(text or "")
    if not m:
        raise ValueError("ttl: a number and s, m or h, e.g. 10m")
    n, unit = int(m.group(1)), m.group(2)
    return timedelta(seconds=n * {"s": 1, "m": 60, "h": 3600}[unit])


def _token(args: argparse.Namespace) -> str:
    tok = args.subject_token or os.environ.get(TOKEN_ENV, "")
    if not tok:
        raise ValueError(f"subject token: give --subject-token or set {TOKEN_ENV}")
    return str(tok)


_day = when


def _correction_rows(items: list[Any], provider: bool) -> list[list[str]]:
    head = ["id", "dataset", "field", "status", "due", "overdue", "answer"]
    rows = [[*head, "subject"] if provider else head]
    for c in items:
        row = [
            c.id,
            c.dataset,
            c.field,
            name(c.status),
            c.due_date + (" (extended)" if c.extended else ""),
            "OVERDUE" if c.overdue else "",
            c.answer_note,
        ]
        rows.append([*row, c.subject_key] if provider else row)
    return rows


def _corrections_text(items: list[Any], provider: bool, h: Any) -> str:
    """The table, then what the citizen stated for each: the provider answers that."""
    lines = [h.table(_correction_rows(items, provider))]
    for c in items:
        evidence = f" (evidence: {c.evidence_ref})" if c.evidence_ref else ""
        lines.append(f"{c.id} statement: {c.statement}{evidence}")
    return "\n".join(lines)


def _withdrawal_rows(items: list[Any], provider: bool) -> list[list[str]]:
    head = ["id", "dataset", "status", "requested", "review reason"]
    rows = [[*head, "subject"] if provider else head]
    for w in items:
        row = [
            w.id,
            w.dataset,
            name(w.status),
            _day(w.requested_at),
            w.review_reason,
        ]
        rows.append([*row, w.subject_key] if provider else row)
    return rows


def _review(args: argparse.Namespace) -> str:
    return next(d for d in ("uphold", "reinstate", "reprocess") if getattr(args, d))


def _usage_text(r: Any, table: Any) -> str:
    rows = [["at", "caller", "kind", "department", "purpose", "action", "dataset", "outcome"]]
    rows += [
        [_day(u.at), u.caller, u.caller_kind, u.department, u.purpose, u.action, u.dataset,
         u.outcome]
        for u in r.uses
    ]  # fmt: skip
    more = f"\nnext page: --page-token {r.next_page_token}" if r.next_page_token else ""
    return table(rows) + more


DISPUTED_MARK = "*"


def records_text(r: Any, table: Any) -> str:
    """One table per dataset: field, value, and a mark on fields under correction."""
    if not r.datasets:
        return f"the pool holds no record of you\nrequest  {r.request_id}"
    parts = []
    for d in r.datasets:
        p = d.provenance
        head = (
            f"{d.dataset} {d.title}  provider {p.source_department}  version "
            f"{p.dataset_version or '-'}  imported {_day(d.imported_at) or '-'}"
        )
        if d.withdrawn_from_open_data:
            head += "  (withdrawn from open data)"
        lines = [head]
        for i, rec in enumerate(d.records):
            if len(d.records) > 1:
                lines.append(f"record {i + 1} of {len(d.records)}")
            rows = [["", "field", "title", "value"]]
            for f in rec.fields:
                mark = DISPUTED_MARK if f.correction_pending_since else ""
                value = f"withheld: {f.withheld_reason}" if f.withheld_reason else f.value
                if f.correction_pending_since:
                    value += f"  (correction pending since {f.correction_pending_since})"
                rows.append([mark, f.name, f.title, value])
            lines.append(table(rows))
        parts.append("\n".join(lines))
    legend = (
        f"{DISPUTED_MARK} under correction (校核); to dispute another value: "
        "govgw subjects correct --dataset D --field F --statement S"
    )
    return "\n\n".join(parts) + f"\n\n{legend}\nrequest  {r.request_id}"


def register(sub: Any, h: CliHelpers) -> None:
    subjects = sub.add_parser(
        "subjects", help="data-subject rights: usage, corrections (校核), withdrawals (撤回)"
    ).add_subparsers(dest="sub", required=True)

    def with_token(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sp.add_argument("--subject-token", help=f"the subject token (default: ${TOKEN_ENV})")
        return sp

    # ----- the subject -------------------------------------------------------------------

    sp = with_token(
        h.verb(
            subjects,
            "usage",
            "who used my data (newest first)",
            lambda gw, a: gw.my_usage(
                _token(a),
                since=_when(a.since),
                until=_when(a.until),
                page_size=a.page_size,
                page_token=a.page_token or "",
            ),
            lambda r: _usage_text(r, h.table),
        )
    )
    sp.add_argument("--since", help="RFC 3339 time or Nd (days ago); default 366 days ago")
    sp.add_argument("--until", help="RFC 3339 time or Nd (days ago); default now")
    sp.add_argument("--page-size", type=int, default=0, help="1-200, default 50")
    sp.add_argument("--page-token", help="from the previous page")

    sp = with_token(
        h.verb(
            subjects,
            "correct",
            "ask the provider to correct a value",
            lambda gw, a: gw.file_correction(
                _token(a),
                dataset=a.dataset,
                field=a.field,
                statement=a.statement,
                evidence_ref=a.evidence or "",
            ),
            lambda c: (
                f"correction {c.id} filed with {c.provider}; answer due by {c.due_date} "
                f"({c.working_days} working days)"
            ),
        )
    )
    sp.add_argument("--dataset", required=True)
    sp.add_argument("--field", required=True)
    sp.add_argument("--statement", required=True, help="what the correct value is")
    sp.add_argument("--evidence", help="reference of the evidence (document number)")

    def corrections(args: argparse.Namespace) -> int:
        def call(gw: Any) -> Any:
            if args.provider:
                return gw.list_corrections(
                    dataset=args.dataset or "", status=args.status or "", overdue_only=args.overdue
                )
            return gw.my_corrections(_token(args))

        return h.remote(args, call, lambda items: _corrections_text(items, args.provider, h))

    sp = with_token(
        h.cmd(subjects, "corrections", corrections, "my corrections, or (--provider) to answer")
    )
    sp.add_argument("--provider", action="store_true", help="those your department must answer")
    sp.add_argument("--dataset")
    sp.add_argument("--status", choices=_CORRECTION_STATUS)
    sp.add_argument("--overdue", action="store_true", help="only those past their deadline")

    sp = with_token(
        h.verb(
            subjects,
            "withdraw",
            "withdraw my record from open data",
            lambda gw, a: gw.request_withdrawal(_token(a), dataset=a.dataset, reason=a.reason),
            lambda w: (
                f"withdrawal {w.id}: {w.dataset} no longer opened for you from now on; "
                f"{w.provider} reviews it"
            ),
        )
    )
    sp.add_argument("--dataset", required=True)
    sp.add_argument("--reason", required=True, help="which right the opening infringes")

    def withdrawals(args: argparse.Namespace) -> int:
        def call(gw: Any) -> Any:
            if args.provider:
                return gw.list_withdrawals(dataset=args.dataset or "", status=args.status or "")
            return gw.my_withdrawals(_token(args))

        return h.remote(args, call, lambda items: h.table(_withdrawal_rows(items, args.provider)))

    sp = with_token(
        h.cmd(subjects, "withdrawals", withdrawals, "my withdrawals, or (--provider) to review")
    )
    sp.add_argument("--provider", action="store_true", help="those your department reviews")
    sp.add_argument("--dataset")
    sp.add_argument("--status", choices=_WITHDRAWAL_STATUS)

    sp = with_token(
        h.verb(
            subjects,
            "records",
            "what the pool holds about me (a fresh token)",
            lambda gw, a: gw.my_records(_token(a), dataset=a.dataset or ""),
            lambda r: records_text(r, h.table),
        )
    )
    sp.add_argument("--dataset", help="one dataset of my kind; default: all")

    # ----- the provider ------------------------------------------------------------------

    sp = h.verb(
        subjects,
        "extend",
        "extend a correction once, to 10 working days",
        lambda gw, a: gw.extend_correction(a.correction_id, reason=a.reason),
        lambda c: f"correction {c.id} now due by {c.due_date}",
    )
    sp.add_argument("correction_id")
    sp.add_argument("--reason", required=True)

    sp = h.verb(
        subjects,
        "answer",
        "answer a correction: corrected or rejected",
        lambda gw, a: gw.answer_correction(
            a.correction_id, corrected=a.corrected, note=a.note, legal_basis=a.legal_basis or ""
        ),
        lambda c: f"correction {c.id} {_CORRECTION_STATUS.get(c.status, '?')}",
    )
    sp.add_argument("correction_id")
    which = sp.add_mutually_exclusive_group(required=True)
    which.add_argument("--corrected", action="store_true")
    which.add_argument("--rejected", action="store_true")
    sp.add_argument("--note", required=True, help="what was corrected, or why not")
    sp.add_argument("--legal-basis", help="required to reject: the article relied on")

    sp = h.verb(
        subjects,
        "review",
        "uphold, reinstate or reprocess a withdrawal",
        lambda gw, a: gw.review_withdrawal(a.withdrawal_id, _review(a), reason=a.reason),
        lambda w: f"withdrawal {w.id} {_WITHDRAWAL_STATUS.get(w.status, '?')}",
    )
    sp.add_argument("withdrawal_id")
    which = sp.add_mutually_exclusive_group(required=True)
    which.add_argument("--uphold", action="store_true", help="the record stays withdrawn")
    which.add_argument("--reinstate", action="store_true", help="opened again as it was")
    which.add_argument("--reprocess", action="store_true", help="opened again after reprocessing")
    sp.add_argument("--reason", required=True, help="why, for the subject")

    add_opening(subjects, h)  # a dataset's opening suspended on a security risk (R9)

    # ----- the data directory ------------------------------------------------------------

    issuers = subjects.add_parser(
        "issuers", help="identity providers whose subject tokens are accepted"
    ).add_subparsers(dest="verb", required=True)

    def _registry(args: argparse.Namespace) -> Any:
        from gateway.admin import issuer_registry  # the directory's, or the database's

        return issuer_registry(Path(args.data_dir))

    def issuers_add(args: argparse.Namespace) -> int:
        from gateway.access.subject_tokens import IssuerError

        try:
            doc = _registry(args).add(
                args.name, args.public_key.read_text(), description=args.description or ""
            )
        except IssuerError as e:
            return h.fail(args, {"reason": "ISSUER_REFUSED", "message": str(e)}, str(e))
        h.emit(args, doc, lambda: f"issuer {args.name} registered")
        return 0

    def issuers_list(args: argparse.Namespace) -> int:
        docs = _registry(args).list()
        rows = [["name", "added", "description"]] + [
            [d["name"], d["added_at"], d.get("description", "")] for d in docs
        ]
        h.emit(args, docs, lambda: h.table(rows))
        return 0

    def issuers_remove(args: argparse.Namespace) -> int:
        from gateway.access.subject_tokens import IssuerError

        try:
            _registry(args).remove(args.name)
        except IssuerError as e:
            return h.fail(args, {"reason": "ISSUER_UNKNOWN", "message": str(e)}, str(e))
        h.emit(args, {"removed": args.name}, lambda: f"issuer {args.name} removed")
        return 0

    sp = h.cmd(issuers, "add", issuers_add, "register an identity provider's public key")
    h.data_dir(sp)
    sp.add_argument("name")
    sp.add_argument("--public-key", type=Path, required=True, help="Ed25519 public key (PEM)")
    sp.add_argument("--description")
    h.data_dir(h.cmd(issuers, "list", issuers_list, "registered identity providers"))
    sp = h.cmd(issuers, "remove", issuers_remove, "stop accepting an issuer's tokens")
    h.data_dir(sp)
    sp.add_argument("name")

    def token(args: argparse.Namespace) -> int:
        from gateway.access.subject_tokens import load_private_key, mint
        from gateway.admin import DEMO_ISSUER

        key_path = args.issuer_key or Path(args.data_dir) / "keys" / "demo-subject-issuer.pem"
        tok = mint(
            load_private_key(Path(key_path).read_bytes()),
            issuer=args.issuer or DEMO_ISSUER,
            subject=args.subject,
            ttl=_ttl(args.ttl),
            azp=args.azp or "",
        )
        expires = datetime.now(UTC) + _ttl(args.ttl)
        doc = {"token": tok, "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%SZ")}
        h.emit(args, doc, lambda: tok)
        return 0

    sp = h.cmd(subjects, "token", token, "mint a subject token (demos and tests)")
    h.data_dir(sp)
    sp.add_argument("--subject", required=True, help="ID number or USCC")
    sp.add_argument("--issuer-key", type=Path, help="default: the data directory's demo key")
    sp.add_argument("--issuer", help="default: demo-idp")
    sp.add_argument("--ttl", default="10m", help="lifetime, at most 30m (default 10m)")
    sp.add_argument("--azp", help="bind the token to this caller id")
