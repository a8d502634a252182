"""`govgw lookup`, `govgw lookup-batch` and `govgw catalog ...`: desensitized records
and the catalog (目录) that says what may be asked.

    govgw lookup --dataset D --subject KEY [--fields a,b] --purpose P
    govgw lookup-batch --dataset D --subjects-file KEYS.txt [--fields a,b] --purpose P
    govgw catalog list
    govgw catalog show DATASET
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clients.cli_common import name
from clients.sdk import DatasetList, GovgwClient, LookupResult, disputed_notice
from clients.sdk.types import Dataset

if TYPE_CHECKING:
    from clients.cli_common import CliHelpers


def fields_arg(text: str | None) -> list[str]:
    return [f.strip() for f in (text or "").split(",") if f.strip()]


def lookup_text(result: LookupResult, table: Any) -> str:
    lines = []
    for i, rec in enumerate(result.records):
        if len(result.records) > 1:
            lines.append(f"record {i + 1}")
        lines.append(
            table(
                [["field", "value", "treatment"]]
                + [[k, v.value, v.treatment] for k, v in rec.items()]
            )
        )
    if result.disputed_fields:
        lines.append(disputed_notice(result.disputed_fields).rstrip("\n"))
    p = result.provenance
    lines.append(
        f"source {p.source_department} · {p.dataset} {p.dataset_version} · "
        f"retrieved {p.retrieved_at:%Y-%m-%d %H:%M:%S} UTC"
    )
    lines.append(f"request {result.request_id}")
    return "\n".join(lines)


def dataset_text(d: Dataset, table: Any) -> str:
    head = [
        f"{d.name}  {d.title}",
        f"provider {d.provider} · update {d.update_cycle} · version {d.version or '-'}",
        f"share {name(d.share_class)} · open {name(d.open_class)} · "
        f"sensitivity {name(d.sensitivity)}",
        f"catalog of policy version {d.policy_version or '-'}",
    ]
    if d.class_reason:
        head.append(f"reason {d.class_reason}")
    if d.legal_basis:
        head.append(f"legal basis {d.legal_basis}")
    if d.predicates:
        head.append("predicates " + ", ".join(d.predicates))
    rows = [["field", "title", "type", "sensitivity", "attribute", "share", "open"]] + [
        [
            f.name,
            f.title,
            f.type + (" (from subject key)" if f.derived_from_subject else ""),
            name(f.sensitivity),
            f.attribute or "-",
            f.share_masking.operator if f.share_masking and f.share_masking.operator else "-",
            f.open_masking.operator if f.open_masking and f.open_masking.operator else "-",
        ]
        for f in d.fields
    ]
    return "\n".join(head) + "\n" + table(rows)


def datasets_text(ds: DatasetList, table: Any) -> str:
    rows = [["dataset", "title", "provider", "share", "open", "sensitivity"]] + [
        [d.name, d.title, d.provider, name(d.share_class), name(d.open_class), name(d.sensitivity)]
        for d in ds
    ]
    return f"policy version {ds.policy_version}\n" + table(rows)


def register(sub: Any, h: CliHelpers) -> None:
    sp = h.verb(
        sub,
        "lookup",
        "look up a desensitized record",
        lambda gw, a: gw.lookup(a.dataset, a.subject, fields_arg(a.fields), purpose=a.purpose),
        lambda r: lookup_text(r, h.table),
    )
    sp.add_argument("--dataset", required=True)
    sp.add_argument("--subject", required=True)
    sp.add_argument("--fields", help="comma-separated; default: every field the policy allows")
    sp.add_argument("--purpose", required=True)

    def batch(gw: GovgwClient, a: argparse.Namespace) -> list[LookupResult]:
        keys = [k.strip() for k in a.subjects_file.read_text().splitlines() if k.strip()]
        return list(gw.batch_lookup(a.dataset, keys, fields_arg(a.fields), purpose=a.purpose))

    sp = h.verb(
        sub,
        "lookup-batch",
        "look up many subjects (one key per line)",
        batch,
        lambda items: "\n\n".join(
            f"[{i.index}] " + (lookup_text(i, h.table) if i.found else "not found") for i in items
        ),
    )
    sp.add_argument("--dataset", required=True)
    sp.add_argument("--subjects-file", type=Path, required=True)
    sp.add_argument("--fields")
    sp.add_argument("--purpose", required=True)

    catalog = sub.add_parser("catalog", help="the catalog (目录)").add_subparsers(
        dest="sub", required=True
    )
    h.verb(
        catalog,
        "list",
        "list datasets",
        lambda gw, a: gw.list_datasets(),
        lambda ds: datasets_text(ds, h.table),
    )
    sp = h.verb(
        catalog,
        "show",
        "show one dataset",
        lambda gw, a: gw.get_dataset(a.name),
        lambda d: dataset_text(d, h.table),
    )
    sp.add_argument("name")
