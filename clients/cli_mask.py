"""`govgw mask text`: try the desensitization rules on free text, one line in, one line out.

Administrators paste remarks to see what the rules catch; checks pipe whole
corpora through it in one process (the analyzer is built once). Lines keep
their order and count: an empty line gives an empty line.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from collections.abc import Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from clients.cli_common import CliHelpers


def _params(args: argparse.Namespace) -> Mapping[str, Any]:
    """The pii_text params: --params JSON, or a catalog field's treatment, or the defaults."""
    if args.params:
        params = json.loads(args.params)
        if not isinstance(params, dict):
            raise ValueError("params: must be a JSON object")
        return params
    if args.field:
        from gateway.catalog import load as load_catalog

        dataset, _, field = args.field.rpartition(".")
        ds = load_catalog().get(dataset)
        f = ds.field(field) if ds else None
        if f is None:
            raise ValueError(f"field: no field {args.field!r} in the catalog")
        treatment = f.share if args.release == "share" else f.open
        if treatment.operator != "pii_text":
            raise ValueError(
                f"field: {args.field} is released by {treatment.operator} for {args.release},"
                " not pii_text"
            )
        return treatment.params
    return {}


def mask_lines(
    lines: TextIO, out: TextIO, params: Mapping[str, Any], *, as_json: bool, caller: str
) -> int:
    from masking import MaskingContext
    from masking.operators import get_operator
    from masking.text.operator import NAME, desensitize

    get_operator(NAME).check_params(params)  # a bad rule fails before any input is read
    # Pseudonyms made here are for trying rules: an ephemeral key, stable for the run.
    ctx = MaskingContext(caller, os.urandom(32), datetime.date.today())
    count = 0
    for raw in lines:
        line = raw[:-1] if raw.endswith("\n") else raw
        line = line[:-1] if line.endswith("\r") else line
        masked, entities = desensitize(line, params, ctx)
        if as_json:
            out.write(json.dumps({"text": masked, "entities": entities}, ensure_ascii=False))
        else:
            out.write(masked)
        out.write("\n")
        out.flush()
        count += 1
    return count


def cmd_mask_text(args: argparse.Namespace, h: CliHelpers) -> int:
    mask_lines(sys.stdin, sys.stdout, _params(args), as_json=args.json, caller=args.caller)
    return 0


def register(sub: Any, h: CliHelpers) -> None:
    """Add `mask text`."""
    group = sub.add_parser("mask", help="try desensitization (脱敏) rules").add_subparsers(
        dest="sub", required=True
    )
    sp = h.cmd(
        group,
        "text",
        partial(cmd_mask_text, h=h),
        "desensitize free text: one line in from standard input, one line out"
        " (--json: the entities found, their types, spans and operators)",
    )
    sp.add_argument("--params", help='pii_text params as JSON, e.g. {"entities": {"PERSON": ...}}')
    sp.add_argument("--field", help="use a catalog field's treatment, e.g. credit.record.content")
    sp.add_argument("--release", choices=["share", "open"], default="share")
    sp.add_argument("--caller", default="cli", help="caller id that pseudonyms are scoped to")
