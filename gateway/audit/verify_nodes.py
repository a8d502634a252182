"""`govgw audit verify` on a shared database: every node's chains it can reach.

For each node the database knows (audit_nodes), and this one:

- reachable (nodes.py: its audit directory is readable here and holds that node's
  id): every chain is verified record by record (verify.py), and the head the index
  recorded for it must still be in it — a chain cut short or rewritten after it was
  indexed verifies by itself, but not against its recorded head. A head the index
  lost (the chain changed under it; shared_index.py keeps it in `lost`) is a break,
  and so is a chain the index knows whose file is gone;
- not reachable from this host: what the index holds is checked (no lost head, no
  recorded break, its records numbered 1..head without gap) and the result says
  plainly that the chain itself was not read.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.audit.chain import FileState, anchor_holds
from gateway.audit.nodes import Node, nodes
from gateway.audit.shared_index import database
from gateway.audit.verify import summary, verify_chain
from gateway.storage import Storage

NOT_REACHABLE = "not reachable from this host"


def verify_nodes(
    storage: Storage,
    this: Node,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """The report of every node's chains (this node's first)."""
    with database(storage) as db:
        known = [n for n in nodes(db) if n.node != this.node]
        rows = db.execute(
            'SELECT node, name, id, "offset", last_start, seq, hash, broken, records, lost '
            "FROM audit_files ORDER BY node, name"
        ).fetchall()
        counts = {
            fid: (int(n), int(top))
            for fid, n, top in db.execute(
                "SELECT file_id, count(*), max(seq) FROM audit_records GROUP BY file_id"
            ).fetchall()
        }
    index: dict[str, dict[str, tuple[Any, ...]]] = {}
    for node, name, *rest in rows:
        index.setdefault(node, {})[name] = tuple(rest)
    files: list[dict[str, Any]] = []
    report_nodes = []
    for node in [this, *known]:
        reachable = node is this or node.reachable()
        report_nodes.append(
            {"node": node.node, "host": node.host, "audit_dir": node.audit_dir,
             "reachable": reachable, "this": node is this}
        )  # fmt: skip
        indexed = index.get(node.node, {})
        if reachable:
            chains = node.chains()
            for path in chains:
                files.append(_verify_file(node.node, path, indexed.get(path.name), progress))
            for name in sorted(set(indexed) - {p.name for p in chains}):
                seq, lost = indexed[name][3], indexed[name][7]
                problem = (
                    f"the index lost its head: {lost}" if lost
                    else f"the chain file is gone, yet the index holds it up to seq {seq}"
                )  # fmt: skip
                files.append(_entry(node.node, name, False, 0, seq + 1, problem))
        else:
            for name, row in sorted(indexed.items()):
                files.append(_from_index(node.node, name, row, counts.get(row[0], (0, 0))))
    return {
        **summary(files, lambda f: f"{f['node']} {f['file']}"),
        "nodes": report_nodes,
    }


def _entry(node: str, name: str, ok: bool, records: int, seq: int | None, problem: str,
           **more: Any) -> dict[str, Any]:  # fmt: skip
    return {
        "node": node, "file": name, "ok": ok, "records": records, "first_broken_seq": seq,
        "first_broken_line": more.pop("line", None), "problem": problem,
        "torn_tail": more.pop("torn_tail", False), "reachable": more.pop("reachable", True),
        **more,
    }  # fmt: skip


def _verify_file(
    node: str, path: Path, row: tuple[Any, ...] | None, progress: Callable[[int], None] | None
) -> dict[str, Any]:
    r = verify_chain(path, progress)
    head = {"head_seq": r.head_seq, "head_hash": r.head_hash}
    if not r.ok:
        return _entry(node, path.name, False, r.records, r.first_broken_seq, r.problem,
                      line=r.first_broken_line, torn_tail=r.torn_tail, **head)  # fmt: skip
    if row is not None:
        fid, offset, last_start, seq, digest, _broken, _records, lost = row
        if lost:
            return _entry(node, path.name, False, r.records, r.records + 1,
                          f"the index lost its head: {lost}", torn_tail=r.torn_tail, **head)  # fmt: skip
        if offset:
            with open(path, "rb") as f:
                size = f.seek(0, 2)
                held = anchor_holds(f, FileState(fid, offset, last_start, seq, digest, ""), size)
            if not held:
                cut = size < offset or r.head_seq < seq
                return _entry(
                    node, path.name, False, r.records, r.records + 1 if cut else seq,
                    f"the index recorded head seq {seq} (hash {digest[:16]}…) but the chain "
                    + ("ends before it: records were cut off the end" if cut
                       else "no longer holds it: the chain was rewritten"),
                    torn_tail=r.torn_tail, **head,
                )  # fmt: skip
    return _entry(node, path.name, True, r.records, None, "", torn_tail=r.torn_tail, **head)


def _from_index(
    node: str, name: str, row: tuple[Any, ...], counted: tuple[int, int]
) -> dict[str, Any]:
    _fid, _offset, _start, seq, digest, broken, records, lost = row
    head = {"head_seq": seq, "head_hash": digest, "reachable": False}
    if lost:
        return _entry(node, name, False, records, seq + 1, f"the index lost its head: {lost}",
                      **head)  # fmt: skip
    if broken:
        return _entry(node, name, False, records, int(broken.split()[1].rstrip(":")),
                      f"indexing stopped at a break: {broken}", **head)  # fmt: skip
    if counted != (seq, seq) or records != seq:
        return _entry(node, name, False, records, None,
                      f"the index is inconsistent: head seq {seq}, {counted[0]} records indexed",
                      **head)  # fmt: skip
    return _entry(node, name, True, records, None, NOT_REACHABLE, **head)
