"""`govgw backup` and `govgw restore` (R12): an encrypted copy of a node and its database.

The keyring is never in a backup: it is distributed separately (see README "Running
several nodes"), and restoring needs it (--keyring, or GOVGW_KEYRING_FILE).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clients.cli_common import CliHelpers


def cmd_backup(args: argparse.Namespace, h: CliHelpers) -> int:
    from gateway.backup import backup
    from gateway.storage import database_url

    doc = backup(args.data_dir, args.out, database_url())
    schema = ", ".join(f"{k} {v}" for k, v in sorted(doc["schema"].items())) or "none"
    h.emit(
        args,
        doc,
        lambda: (
            f"backup written: {doc['out']} ({doc['bytes']} bytes, {doc['files']} files,"
            f" {doc['backend']}; schema {schema})\n"
            f"encrypted under the keyring of fingerprint {doc['keyring']}\n"
            f"note: {doc['note']}"
        ),
    )
    return 0


def cmd_restore(args: argparse.Namespace, h: CliHelpers) -> int:
    from gateway.backup import restore
    from gateway.storage import database_url

    doc = restore(args.in_path, args.data_dir, database_url(), args.keyring)
    audit = doc["audit"]
    h.emit(
        args,
        doc,
        lambda: (
            f"restored into {doc['data_dir']}"
            + (f" and {doc['database']}" if doc["database"] else "")
            + f": {doc['files']} files checked against the manifest; backup of"
            f" {doc['made_at']} from node {doc['node']} (govgw {doc['made_by']})\n"
            f"audit chains: {audit['records']} records, "
            + ("verified" if audit["ok"] else "BROKEN: " + "; ".join(audit["problems"]))
            + f"\nkeyring: {doc['keyring']}; a backup never holds it"
        ),
    )
    return 0 if audit["ok"] else 1


def register(sub: Any, h: CliHelpers) -> None:
    from functools import partial

    sp = h.cmd(
        sub,
        "backup",
        partial(cmd_backup, h=h),
        "write an encrypted, consistent backup of the data directory (and its database)"
        " while the gateway serves; the keyring is not in it",
    )
    h.data_dir(sp)
    sp.add_argument("--out", type=Path, required=True, help="the backup file (must not exist)")
    sp = h.cmd(
        sub,
        "restore",
        partial(cmd_restore, h=h),
        "restore a backup into an empty data directory (and an empty database)",
    )
    sp.add_argument("--in", dest="in_path", type=Path, required=True, help="the backup file")
    sp.add_argument("--data-dir", type=Path, required=True, help="an empty or new directory")
    sp.add_argument("--database-url", help="an empty PostgreSQL database (or GOVGW_DATABASE_URL)")
    sp.add_argument(
        "--keyring",
        type=Path,
        help="the deployment's keyring the backup was made with (default: GOVGW_KEYRING_FILE)",
    )
