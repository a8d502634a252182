"""Reading many subjects of one dataset in one query (`Pool.read_many`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from gateway.pool.codec import Codec, KeyState, PoolError, UnknownKeyVersion


def read_many(
    rows: Any,
    ds_id: int,
    codec: Codec,
    key_state: Callable[..., KeyState],
    dataset: str,
    subject_keys: Sequence[str],
) -> dict[str, list[dict[str, str]]]:
    """`Pool.read_many`: subject key (as given) -> its rows ([] if none), following
    key rotations as `Pool.read` does. `key_state` is the pool's (`force=True`
    re-reads the key file)."""
    keys = key_state()
    wanted = list(dict.fromkeys(subject_keys))
    found: dict[str, list[dict[str, str]]] = {}
    unknown = False
    try:
        found = open_many(rows, ds_id, codec, keys, wanted)
    except UnknownKeyVersion:
        unknown = True
    missing = [k for k in wanted if not found.get(k)]
    if missing:
        # A rotation in another process may have moved these subjects to a key
        # this process has not loaded yet: look again with fresh keys.
        fresh = key_state(force=True)
        if fresh is not keys:
            try:
                found.update(open_many(rows, ds_id, codec, fresh, missing))
            except UnknownKeyVersion as e:
                raise PoolError(
                    f"no pool key of version {e.version} for dataset {dataset}"
                ) from None
        elif unknown:  # as `read`: the keys are current, yet a row names one they lack
            raise PoolError(f"a row of dataset {dataset} names a pool key this gateway lacks")
    return {k: found.get(k, []) for k in wanted}


def open_many(
    rows: Any, ds_id: int, codec: Codec, keys: KeyState, subject_keys: Sequence[str]
) -> dict[str, list[dict[str, str]]]:
    """subject key -> its decrypted rows in write order (absent: no rows), read
    with one `select_many` of the rows backend. Raises UnknownKeyVersion for a
    row sealed under a key version `keys` lacks."""
    # bidx -> (key version it was computed under, the subject keys as given: two
    # spellings of one subject share it). Mid-rotation a subject's rows are under
    # its old index or its new one (a rotation moves all rows of a subject in one
    # transaction), so every readable version's index is asked for.
    by_bidx: dict[bytes, tuple[int, list[str]]] = {}
    for subject in subject_keys:
        for key in keys.readable:
            by_bidx.setdefault(codec.blind_index(key, subject), (key.version, []))[1].append(
                subject
            )
    found: dict[str, list[dict[str, str]]] = {}
    for raw_bidx, kv, nonce, ct in rows.select_many(ds_id, list(by_bidx)):
        bidx = bytes(raw_bidx)
        version, subjects = by_bidx[bidx]
        if kv != version:
            # Sealed under another version than its index was computed with: as
            # `Pool.read` does, open it under the index that version gives the
            # subject, so the AAD check decides (a row moved there fails it).
            known = keys.versions.get(kv)
            if known is None:
                raise UnknownKeyVersion(kv)
            bidx = codec.blind_index(known, subjects[0])
        row = codec.open(keys, bidx, kv, nonce, ct)
        for subject in subjects:
            found.setdefault(subject, []).append(dict(row) if subject is not subjects[0] else row)
    return found
