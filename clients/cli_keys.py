"""`govgw keys ...` and `govgw init --crypto`: the key ring's suite, status and rotation."""

from __future__ import annotations

import argparse
from functools import partial
from typing import TYPE_CHECKING, Any

from clients.progress import Progress

if TYPE_CHECKING:
    from clients.cli_common import CliHelpers

CRYPTO_CHOICES = ("aes", "sm")


def _suite(alias: str | None) -> str | None:
    from gateway.crypto import suite_for_alias

    return suite_for_alias(alias).name if alias else None


def cmd_init(args: argparse.Namespace, h: CliHelpers) -> int:
    from gateway.admin import init

    info = init(args.data_dir, suite=_suite(args.crypto))
    shared = ""
    if "keyring_fingerprint" in info:
        from gateway.storage import database_url, redact

        shared = (
            f"\ndatabase: {redact(database_url())} ({info['storage']}), node {info['node']};"
            f" it holds this keyring's fingerprint {info['keyring_fingerprint']}"
        )
    h.emit(
        args,
        info,
        lambda: (
            f"data directory ready: {args.data_dir}\nreceipt keys: {info['keyset']}\n"
            f"keyring: {info['keyring']}{shared}\n"
            f"crypto suite: {info['suite']}\n"
            f"receipts signed with {info['receipt_key']['algorithm']}"
            f" key {info['receipt_key']['key_id']}"
        ),
    )
    return 0


def _status(data_dir: Any) -> dict[str, Any]:
    import json

    from gateway import keys

    path = keys.keyring_path(data_dir)
    ring = keys.load(path)
    retired = json.loads(path.read_text()).get("retired", [])
    return {
        "suite": ring.suite,
        "active_version": ring.version,
        "pool_keys": [
            {"version": k.version, "suite": k.suite, "state": k.state, "created_at": k.created_at}
            for k in ring.pool_keys
        ],
        "retired": retired,
        "receipt_key": {"key_id": ring.receipt_key.key_id, "algorithm": ring.receipt_key.algorithm},
        "receipt_verify_only": [k.key_id for k in ring.receipt_verify_only],
    }


def cmd_keys_status(args: argparse.Namespace, h: CliHelpers) -> int:
    doc = _status(args.data_dir)
    h.emit(
        args,
        doc,
        lambda: (
            f"deployment suite {doc['suite']} (pseudonyms, audit subject hashes)\n"
            f"receipt key {doc['receipt_key']['key_id']} ({doc['receipt_key']['algorithm']})"
            + "".join(f", former {k} (verify only)" for k in doc["receipt_verify_only"])
            + "\n"
            + h.table(
                [["pool key", "suite", "state", "created"]]
                + [
                    [str(k["version"]), k["suite"], k["state"], k["created_at"]]
                    for k in doc["pool_keys"]
                ]
                + [[str(r["version"]), "-", "retired", r["retired_at"]] for r in doc["retired"]]
            )
        ),
    )
    return 0


def cmd_keys_rotate(args: argparse.Namespace, h: CliHelpers) -> int:
    from gateway import keys
    from gateway.admin import (
        data_dir_catalog,
        pool_stats,
        shared_storage,
        storage,
        write_receipt_keyset,
    )
    from gateway.config import Layout
    from gateway.keycheck import check_keyring
    from gateway.pool.rotate import rotate
    from gateway.storage import database_url

    layout = Layout(args.data_dir)
    rows = sum(s["rows"] for s in pool_stats(args.data_dir).values())
    with Progress("keys rotate", total=rows, unit="rows", quiet=args.json) as bar:
        report = rotate(
            layout.pool,
            keys.keyring_path(layout.data_dir),
            data_dir_catalog(args.data_dir),
            suite=_suite(args.crypto),
            subjects_per_step=args.batch,
            pause_s=args.pause_ms / 1000,
            progress=lambda dataset, moved: bar(moved),
            storage=shared_storage(args.data_dir),
            # The new version is the database's before any row moves: a node on the old
            # keyring then fails closed (KEYRING_STALE) rather than miss a moved record.
            added=(lambda ring: check_keyring(storage(args.data_dir), ring))
            if database_url()
            else None,
        )
    doc = report.to_json()
    # A move to the SM suite makes an SM2 receipt key: the published keyset follows.
    ring = keys.load(keys.keyring_path(layout.data_dir))
    doc["receipt_keyset"] = str(write_receipt_keyset(layout.data_dir, ring))
    doc["receipt_key"] = {
        "key_id": ring.receipt_key.key_id,
        "algorithm": ring.receipt_key.algorithm,
    }
    h.emit(
        args,
        doc,
        lambda: (
            f"pool keys rotated to version {doc['new_version']} ({doc['suite']}): "
            f"{doc['rows_moved_total']} rows re-encrypted and re-indexed in {doc['seconds']} s; "
            f"retired version(s) {', '.join(map(str, doc['old_versions']))}\n"
            f"receipts signed with {doc['receipt_key']['algorithm']} key"
            f" {doc['receipt_key']['key_id']}; keyset: {doc['receipt_keyset']}"
        ),
    )
    return 0


def register(sub: Any, h: CliHelpers) -> None:
    """Add `keys status|rotate` and the --crypto option of `init`."""
    # `init` is defined in clients.cli; the suite choice belongs with the keys.
    init = sub.choices["init"]
    init.add_argument(
        "--crypto",
        choices=CRYPTO_CHOICES,
        help="cipher suite of new keys: aes (AES-256-GCM, HMAC-SHA256; default) or"
        " sm (SM4-GCM, HMAC-SM3: national commercial cryptography)",
    )
    init.set_defaults(fn=partial(cmd_init, h=h))

    group = sub.add_parser("keys", help="the key ring").add_subparsers(dest="sub", required=True)
    sp = h.cmd(
        group, "status", partial(cmd_keys_status, h=h), "the key ring's suite and pool key versions"
    )
    h.data_dir(sp)
    sp = h.cmd(
        group,
        "rotate",
        partial(cmd_keys_rotate, h=h),
        "re-encrypt and re-index the pool under a new key version, then retire the old keys"
        " (safe for gateways that read the keyring file it rotates; a node on another copy"
        " answers NO_MATCH until it has the new one: README 'Running several nodes')",
    )
    h.data_dir(sp)
    sp.add_argument("--crypto", choices=CRYPTO_CHOICES, help="move the pool keys to this suite")
    sp.add_argument("--batch", type=int, default=256, help="subjects per transaction")
    sp.add_argument("--pause-ms", type=float, default=0.0, help="sleep between batches (throttle)")
