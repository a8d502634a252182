"""Nodes of one deployment: who wrote which audit chain, and where it lies.

Each data directory has a stable node id (the file `node-id`, made at `govgw init`,
or by the first serve of a directory made before it). On a shared database a node
records in `audit_nodes` its id, host name and audit directory, and the shared index
(shared_index.py) keys every chain file by (node id, file name), so nodes' chains
named alike stay apart. Another node's chain is *reachable* from here when its audit
directory is readable here (a shared mount, or the same host) and the data directory
around it holds that node's id — a directory of the same path on another host (or a
copy) is never taken for it.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.files import private_dir, write_private

NODE_FILE = "node-id"
_NODE_ID = re.compile(r"^node-[0-9a-f]{12}$")


def node_id(data_dir: Path, *, create: bool = True) -> str:
    """This data directory's node id; made (once) when missing and `create`."""
    path = Path(data_dir) / NODE_FILE
    try:
        value = path.read_text().strip()
    except FileNotFoundError:
        if not create:
            return ""
        private_dir(path.parent)
        value = f"node-{secrets.token_hex(6)}"
        try:  # O_EXCL: two processes starting at once agree on one id
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return node_id(data_dir, create=False)
        with os.fdopen(fd, "w") as f:
            f.write(value + "\n")
        return value
    if not _NODE_ID.match(value):
        raise ValueError(f"{path}: not a node id ({len(value)} characters); remove it to make one")
    return value


def reset_node_id(data_dir: Path) -> str:
    """A new id for a directory copied from another node (two nodes must not share one)."""
    value = f"node-{secrets.token_hex(6)}"
    write_private(Path(data_dir) / NODE_FILE, (value + "\n").encode())
    return value


@dataclass(frozen=True)
class Node:
    node: str
    host: str
    audit_dir: str
    seen_at: str

    def reachable(self) -> bool:
        """Are this node's chains readable from here (and truly its own)?"""
        audit_dir = Path(self.audit_dir)
        try:
            return audit_dir.is_dir() and node_id(audit_dir.parent, create=False) == self.node
        except (OSError, ValueError):
            return False

    def chains(self) -> list[Path]:
        """Its chain files, as Layout.audit_files lists them (call when reachable)."""
        return sorted(p for p in Path(self.audit_dir).glob("audit*.log") if p.is_file())


def register(db: Any, node: str, audit_dir: Path) -> None:
    """Record (in the caller's transaction) where this node's chains are."""
    db.execute(
        "INSERT INTO audit_nodes (node, host, audit_dir, seen_at) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (node) DO UPDATE SET host=excluded.host, audit_dir=excluded.audit_dir, "
        "seen_at=excluded.seen_at",
        (node, socket.gethostname(), str(Path(audit_dir).resolve()), _now()),
    )


def nodes(db: Any) -> list[Node]:
    rows = db.execute("SELECT node, host, audit_dir, seen_at FROM audit_nodes ORDER BY node")
    return [Node(*row) for row in rows.fetchall()]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
