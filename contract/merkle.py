"""The Merkle tree batch receipts are proven in: RFC 6962 / RFC 9162 shape and proofs.

Leaves and interior nodes are hashed with different prefixes (0x00 and 0x01,
RFC 6962 §2.1), so a node can never pass for a leaf. The tree is RFC 6962's:
over n leaves, the left subtree holds the largest power of two below n. Built
level by level, that is pairing neighbours and carrying an odd last node up
unchanged. An inclusion proof is the audit path, siblings from the leaf up;
it is checked by RFC 9162 §2.1.3.2, which also binds the leaf index and the
tree size (a proof moved to another index fails).

The hash is SHA-256, or SM3 (GB/T 32905) in deployments of the national
suite; both give 32 bytes. The names are those the signed batch document
carries ("sha-256", "sm3").
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

SHA256 = "sha-256"
SM3 = "sm3"
HASHES = (SHA256, SM3)
_LEAF = b"\x00"
_NODE = b"\x01"


def hasher(name: str) -> Callable[[bytes], bytes]:
    """The digest function a hash name stands for; ValueError for any other name."""
    if name == SHA256:
        return lambda data: hashlib.sha256(data).digest()
    if name == SM3:
        # OpenSSL 3 has SM3 in its default provider; hashlib reaches it by name.
        return lambda data: hashlib.new("sm3", data).digest()
    raise ValueError(f"unknown hash {name!r} (use {' or '.join(HASHES)})")


def leaf_hash(h: Callable[[bytes], bytes], leaf: bytes) -> bytes:
    return h(_LEAF + leaf)


def node_hash(h: Callable[[bytes], bytes], left: bytes, right: bytes) -> bytes:
    return h(_NODE + left + right)


def build(h: Callable[[bytes], bytes], leaves: Sequence[bytes]) -> tuple[bytes, list[list[bytes]]]:
    """The root over the leaves and each leaf's audit path (siblings, leaf to root).

    Hashing only: 2n - 1 hashes for n leaves, and the paths share the levels.
    """
    if not leaves:
        raise ValueError("a Merkle tree needs at least one leaf")
    levels = [[leaf_hash(h, leaf) for leaf in leaves]]
    while len(levels[-1]) > 1:
        below = levels[-1]
        above = [node_hash(h, below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)]
        if len(below) % 2:
            above.append(below[-1])  # carried up unchanged (RFC 6962's unbalanced right edge)
        levels.append(above)
    paths: list[list[bytes]] = []
    for index in range(len(leaves)):
        path = []
        i = index
        for level in levels[:-1]:
            sibling = i ^ 1
            if sibling < len(level):
                path.append(level[sibling])
            i >>= 1
        paths.append(path)
    return levels[-1][0], paths


def root_from_path(
    h: Callable[[bytes], bytes], leaf: bytes, index: int, size: int, path: Sequence[bytes]
) -> bytes | None:
    """The root an inclusion proof leads to (RFC 9162 §2.1.3.2), or None if the proof
    cannot belong to leaf `index` of a tree of `size` leaves."""
    if not 0 <= index < size:
        return None
    fn, sn = index, size - 1
    r = leaf_hash(h, leaf)
    for p in path:
        if sn == 0:
            return None  # more siblings than the tree has levels
        if fn & 1 or fn == sn:
            r = node_hash(h, p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(h, r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None
