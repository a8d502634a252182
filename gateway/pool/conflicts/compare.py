"""How two held values differ, told without revealing them: a verdict, the steps, distance, positions.

What the coordinator gets for a pair of values (both normalized strictly,
normalize.py): whether they are equal after the lenient steps too, and which
steps that took (verdict `format only`); otherwise the Levenshtein distance
(rapidfuzz) and the verdict `small difference` (distance at most 2: a typo,
a variant character no table knows, a day off) or `different`; the lengths;
and which character positions differ. Distance and positions are always
between the strict forms, so for a format-only pair they show what the
lenient steps looked past (马尔康县 / 马尔康市: distance 1, at 4).

The disclosure rule. No character of either value leaves: the pair is
numbers into the normalized forms and the names of normalization steps.
Distance and lengths are always shown: a masked name shows its length
already (张** is three characters), and a distance says how much, not what.
Positions say *which* characters agree, and whoever already knows one of the
two values (a clerk of one provider) learns that the other has the same
characters there. In a value of two or three characters, where the mask
keeps one, that leaves one unknown character, narrowed further by a list of
common given names (张伟强 / 张玮强, "differs at 2 of 3": the other is 张?强),
while it tells the coordinator nothing to act on (a short name that differs
differs in its given name). From four characters on (long names, dates,
addresses) positions say which part differs (the day, the house number),
which is what decides whom to ask. So positions are shown only when both
normalized values have at least MIN_POSITIONS_LENGTH characters; otherwise
the pair says `positions_withheld`. What is left is what the verdict itself
says (`format only`: the same up to formatting; distance 1: one character
differs; with the masks' kept characters differing too, that one is the kept
one), which is the point of the report.
"""

from __future__ import annotations

from dataclasses import dataclass

from rapidfuzz.distance import Levenshtein

from gateway.pool.conflicts.normalize import equal_after, lenient

FORMAT_ONLY = "format only"
SMALL_DIFFERENCE = "small difference"
DIFFERENT = "different"
VERDICTS = (FORMAT_ONLY, SMALL_DIFFERENCE, DIFFERENT)
# At most this many edits is a small difference.
SMALL_DISTANCE = 2
# Positions are shown only when both values have at least this many characters.
MIN_POSITIONS_LENGTH = 4


@dataclass(frozen=True)
class Difference:
    """How values `first_value` and `second_value` (1-based, into the conflict's values) differ."""

    first_value: int
    second_value: int
    verdict: str
    # The normalization steps the two needed to be equal (format only); else empty.
    equal_after: tuple[str, ...]
    edit_distance: int  # Levenshtein, between the strictly normalized forms
    first_length: int
    second_length: int
    # 1-based positions in each normalized form of the characters an edit
    # touches (replaced, or only in that value); empty when withheld.
    first_positions: tuple[int, ...]
    second_positions: tuple[int, ...]
    positions_withheld: bool


def compare(
    kind: str, first: int, raw_a: str, norm_a: str, second: int, raw_b: str, norm_b: str
) -> Difference:
    """The pair's difference; `norm_x` is `raw_x` normalized strictly for `kind`."""
    distance = Levenshtein.distance(norm_a, norm_b)
    if norm_a == norm_b or lenient(kind, raw_a) == lenient(kind, raw_b):
        verdict, steps = FORMAT_ONLY, equal_after(kind, raw_a, raw_b)
    else:
        verdict = SMALL_DIFFERENCE if distance <= SMALL_DISTANCE else DIFFERENT
        steps = ()
    withheld = distance > 0 and min(len(norm_a), len(norm_b)) < MIN_POSITIONS_LENGTH
    pos_a: tuple[int, ...] = ()
    pos_b: tuple[int, ...] = ()
    if distance and not withheld:
        pos_a, pos_b = _positions(norm_a, norm_b, distance)
    return Difference(
        first_value=first,
        second_value=second,
        verdict=verdict,
        equal_after=steps,
        edit_distance=distance,
        first_length=len(norm_a),
        second_length=len(norm_b),
        first_positions=pos_a,
        second_positions=pos_b,
        positions_withheld=withheld,
    )


def _positions(a: str, b: str, distance: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """1-based positions an optimal edit touches in `a` and in `b`.

    Where replacing characters in place is optimal (equal lengths, as many
    differing places as the distance) those places are given: 1958-09-30 and
    1958-10-30 differ at 6, 7, not "delete 6, insert 7", which is also optimal.
    """
    if len(a) == len(b):
        same_place = tuple(i + 1 for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y)
        if len(same_place) == distance:
            return same_place, same_place
    pos_a: set[int] = set()
    pos_b: set[int] = set()
    for op in Levenshtein.editops(a, b):
        if op.tag in ("replace", "delete"):
            pos_a.add(op.src_pos + 1)
        if op.tag in ("replace", "insert"):
            pos_b.add(op.dest_pos + 1)
    return tuple(sorted(pos_a)), tuple(sorted(pos_b))
