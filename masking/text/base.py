"""What the Chinese recognizers share: the declaration of one, text normalization, digit
boundaries, numbers written in groups, context words, named scores.

A recognizer is data, as presidio's are: its entity type and Chinese title,
its patterns, its context words, its scores by name, and a `validate` that
turns a pattern's hit into a score (or rejects it). It is registered once
(masking.text.registry); the analyzer, the entity list, the titles and the
default treatments are derived from there. Nothing here imports presidio, so
that validating a plan (which needs the entity list) does not load it; the
analyzer wraps each recognizer in a presidio EntityRecognizer.

Patterns must work inside Chinese text, where `\\b` does not separate a CJK
character from a digit (both are word characters). Numbers are delimited by
lookarounds on ASCII letters and digits instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import Any, ClassVar

LANGUAGE = "zh"

# Not preceded / followed by an ASCII letter or digit; not followed by decimals either
# (13800138000.00元 is an amount).
NUM_START = r"(?<![0-9A-Za-z])"
NUM_END = r"(?![0-9A-Za-z]|\.[0-9])"

# Full-width forms (０-９, Ａ-Ｚ, ＠, －, ．), the ideographic space and the dash
# variants people paste map one character to one, so offsets in the normalized
# text are offsets in the original: detection runs on the normalized copy,
# masking on the original.
_FOLD = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)}
_FOLD[0x3000] = 0x20
_FOLD.update({cp: 0x2D for cp in (0x2010, 0x2011, 0x2012, 0x2013, 0x2014, 0x2015, 0x2212)})
_FOLD_TABLE = str.maketrans(_FOLD)


@lru_cache(maxsize=64)
def normalize(text: str) -> str:
    """Same length as `text`; full-width ASCII and dashes folded to ASCII.

    Cached: every recognizer of one analysis asks for the same text.
    """
    return text.translate(_FOLD_TABLE)


# What people put between the groups of a number they copy by hand or paste:
# spaces, a hyphen or a dot (with a space around), or a line break.
SEPARATOR = r"(?:[ \t]*\r?\n[ \t]*|[ \t]{1,2}|[ \t]?[.\-][ \t]?)"
_RUN = re.compile(NUM_START + r"[0-9A-Za-z]+(?:" + SEPARATOR + r"[0-9A-Za-z]+)+" + NUM_END)
_GROUP = re.compile(r"[0-9A-Za-z]+")


@dataclass(frozen=True)
class Hit:
    """One match of a pattern: its span in the text and its characters without separators."""

    start: int
    end: int
    value: str
    pattern: str  # the pattern's name: validators tell forms apart by it


@dataclass(frozen=True)
class Pattern:
    """A regular expression; `group` names the part that is the entity (after a label)."""

    name: str
    regex: re.Pattern[str]
    group: int | str = 0

    def hits(self, text: str) -> Iterator[Hit]:
        for m in self.regex.finditer(text):
            yield Hit(m.start(self.group), m.end(self.group), m.group(self.group), self.name)


@dataclass(frozen=True)
class _Run:
    """Two or more letter/digit groups joined by separators."""

    starts: tuple[int, ...]  # of each group in the text
    ends: tuple[int, ...]
    offsets: tuple[int, ...]  # of each group in `compact`, and its length at the end
    compact: str  # the groups without separators


@lru_cache(maxsize=64)
def _runs(text: str) -> tuple[_Run, ...]:
    runs = []
    for m in _RUN.finditer(text):
        groups = [(m.start() + g.start(), m.start() + g.end()) for g in _GROUP.finditer(m.group())]
        offsets = [0]
        for a, b in groups:
            offsets.append(offsets[-1] + b - a)
        runs.append(
            _Run(
                tuple(a for a, _ in groups),
                tuple(b for _, b in groups),
                tuple(offsets),
                "".join(text[a:b] for a, b in groups),
            )
        )
    return tuple(runs)


@dataclass(frozen=True)
class Grouped:
    """A number written in groups (5132 2119 8604 1208 90, 138-0013-8000, split by a line
    break): any run of consecutive groups whose characters, separators removed, have one of
    `lengths` and match `shape`. Hits start and end on group boundaries, so a number is not
    cut out of the middle of a longer one, and a neighbour after a space is not swallowed.
    """

    name: str
    lengths: frozenset[int]
    shape: re.Pattern[str]
    first: str = "0123456789"  # what such a number can start with: most runs are skipped

    def hits(self, text: str) -> Iterator[Hit]:
        longest = max(self.lengths)
        for run in _runs(text):
            offsets, compact = run.offsets, run.compact
            for i in range(len(run.starts)):
                if compact[offsets[i]] not in self.first:
                    continue
                # j > i: one group alone is the plain pattern's.
                for j in range(i + 1, len(run.starts)):
                    size = offsets[j + 1] - offsets[i]
                    if size > longest:
                        break
                    if size in self.lengths:
                        value = compact[offsets[i] : offsets[j + 1]]
                        if self.shape.fullmatch(value):
                            yield Hit(run.starts[i], run.ends[j], value, self.name)


class Scores(Mapping[str, float]):
    """A recognizer's confidence levels, by name: `scores.valid`, not 1.0 in code."""

    def __init__(self, **levels: float) -> None:
        for name, level in levels.items():
            if not 0.0 < level <= 1.0:
                raise ValueError(f"score {name} must be in (0, 1], not {level}")
        self._levels = dict(levels)

    def __getattr__(self, name: str) -> float:
        try:
            return self._levels[name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, name: str) -> float:
        return self._levels[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._levels)

    def __len__(self) -> int:
        return len(self._levels)


@dataclass(frozen=True)
class Context:
    """Words that make a match more (or less) likely to be the entity, looked for nearby."""

    positive: Sequence[str] = ()
    negative: Sequence[str] = ()
    window: int = 12  # characters before the match to look in

    def before(self, text: str, start: int) -> str:
        return text[max(0, start - self.window) : start]

    def has_positive(self, text: str, start: int) -> bool:
        near = self.before(text, start)
        return any(w in near for w in self.positive)

    def has_negative(self, text: str, start: int) -> bool:
        near = self.before(text, start)
        return any(w in near for w in self.negative)


# When a plan names no operator for a detected type: mask every character.
# Length survives (it tells little), the value does not; a plan may loosen it.
MASK: Mapping[str, Any] = MappingProxyType({"operator": "mask"})


class ChineseRecognizer:
    """One entity type in Chinese text, declared as data.

    A subclass sets `entity`, `title`, `scores` and `patterns` (and `context`,
    `treatment` if not the defaults) and overrides `validate`; a recognizer
    whose logic is not a list of patterns (names, addresses) overrides `find`.
    Context words are scored by the recognizer itself: with a no-op NLP engine
    presidio has no tokens to look them up.
    """

    entity: ClassVar[str]
    title: ClassVar[str]  # Chinese label, for people reading `govgw mask text` output
    treatment: ClassVar[Mapping[str, Any]] = MASK  # when a plan names none for the type
    scores: ClassVar[Scores] = Scores()
    patterns: ClassVar[tuple[Pattern | Grouped, ...]] = ()
    context: ClassVar[Context] = Context()
    min_score: ClassVar[float] = 0.5

    def detect(self, text: str) -> list[tuple[int, int, float]]:
        """(start, end, score) of each entity in `text`, offsets into `text` as given."""
        return [
            (start, end, round(score, 3))
            for start, end, score in self.find(normalize(text))
            if score >= self.min_score
        ]

    def find(self, text: str) -> Iterable[tuple[int, int, float]]:
        """On normalized text: each pattern's hits that `validate` scores."""
        for pattern in self.patterns:
            for hit in pattern.hits(text):
                score = self.validate(hit, text)
                if score is not None:
                    yield hit.start, hit.end, score

    def validate(self, hit: Hit, text: str) -> float | None:
        """A hit's score (one of `scores`), or None when it is not the entity."""
        return self.scores[hit.pattern]


def compile_words(words: Iterable[str]) -> re.Pattern[str]:
    """An alternation of literal words, longest first (so 法定代表人 beats 代表)."""
    return re.compile("|".join(re.escape(w) for w in sorted(set(words), key=len, reverse=True)))
