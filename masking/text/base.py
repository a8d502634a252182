"""What the Chinese recognizers share: text normalization, digit boundaries, context scoring.

Patterns here must work inside Chinese text, where `\\b` does not separate a
CJK character from a digit (both are word characters). Numbers are delimited
by lookarounds on ASCII letters and digits instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from presidio_analyzer import EntityRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

LANGUAGE = "zh"

# Not preceded / followed by an ASCII letter or digit.
NUM_START = r"(?<![0-9A-Za-z])"
NUM_END = r"(?![0-9A-Za-z])"

# Full-width forms (０-９, Ａ-Ｚ, ＠, －, ．) and the ideographic space map one
# character to one, so offsets in the normalized text are offsets in the
# original: detection runs on the normalized copy, masking on the original.
_FULLWIDTH = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)}
_FULLWIDTH[0x3000] = 0x20
_FULLWIDTH_TABLE = str.maketrans(_FULLWIDTH)


def normalize(text: str) -> str:
    """Same length as `text`; full-width ASCII folded to ASCII."""
    return text.translate(_FULLWIDTH_TABLE)


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


class ChineseRecognizer(EntityRecognizer):
    """A presidio recognizer for one entity type in Chinese text.

    Subclasses implement `find(text)` yielding (start, end, score); the
    text is already normalized. Context words are scored by the recognizer
    itself: with a no-op NLP engine presidio has no tokens to look them up.
    """

    entity: ClassVar[str]
    min_score: ClassVar[float] = 0.5

    def __init__(self) -> None:
        super().__init__(
            supported_entities=[self.entity],
            supported_language=LANGUAGE,
            name=type(self).__name__,
        )

    def load(self) -> None:
        """Nothing to load: patterns and tables are built at import."""

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        if entities and self.entity not in entities:
            return []
        return [
            RecognizerResult(self.entity, start, end, round(score, 3))
            for start, end, score in self.find(normalize(text))
            if score >= self.min_score
        ]

    def find(self, text: str) -> Iterable[tuple[int, int, float]]:
        raise NotImplementedError


def compile_words(words: Iterable[str]) -> re.Pattern[str]:
    """An alternation of literal words, longest first (so 法定代表人 beats 代表)."""
    return re.compile("|".join(re.escape(w) for w in sorted(set(words), key=len, reverse=True)))
