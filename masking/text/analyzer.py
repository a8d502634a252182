"""The free-text analyzer: presidio's AnalyzerEngine with a no-op NLP engine and our recognizers.

No model is loaded and nothing is downloaded: every recognizer is a pattern,
a table or a check digit (masking.text.numbers, .identifiers, .names, .address),
registered in masking.text.registry. The engine
is slow to build (presidio and spaCy imports, about a second), so one is built
per process on first use and shared; analysis itself is thread-safe.

presidio reports every recognizer's matches, overlaps included; `analyze`
keeps, of overlapping matches, the best scored (then the longest), so that a
valid ID number inside a longer digit run, or a surname inside an address,
is masked once and by the right operator.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cache
from typing import Any

from masking.text import offline
from masking.text.base import LANGUAGE, ChineseRecognizer
from masking.text.entities import ENTITY_TYPES
from masking.text.entity_names import ADDRESS, BANK_CARD, ID_NUMBER, PHONE_NUMBER, USCC
from masking.text.registry import RECOGNIZERS as _REGISTERED

offline.ensure_offline()

# presidio is imported after the tldextract guard.
from presidio_analyzer import (  # noqa: E402
    AnalyzerEngine,
    EntityRecognizer,
    RecognizerRegistry,
    RecognizerResult,
)
from presidio_analyzer.context_aware_enhancers import ContextAwareEnhancer  # noqa: E402
from presidio_analyzer.nlp_engine import NlpArtifacts, NoOpNlpEngine  # noqa: E402

# Recognizers by entity type, as registered (masking.text.registry).
RECOGNIZERS: dict[str, type[ChineseRecognizer]] = {cls.entity: cls for cls in _REGISTERED}

# On equal scores, the type that wins an overlap: identifiers before names.
_PRIORITY = {name: i for i, name in enumerate(ENTITY_TYPES)}


class PresidioRecognizer(EntityRecognizer):
    """One of our recognizers as presidio sees it (named after our class)."""

    def __init__(self, recognizer: ChineseRecognizer) -> None:
        self.recognizer = recognizer
        super().__init__(
            supported_entities=[recognizer.entity],
            supported_language=LANGUAGE,
            name=type(recognizer).__name__,
        )

    def load(self) -> None:
        """Nothing to load: patterns and tables are built at import."""

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        entity = self.recognizer.entity
        if entities and entity not in entities:
            return []
        return [
            RecognizerResult(entity, start, end, score)
            for start, end, score in self.recognizer.detect(text)
        ]


class OwnContext(ContextAwareEnhancer):
    """No engine-level context enhancement: our recognizers score their own context words.

    presidio's default (lemma) enhancer needs tokens, which a no-op NLP engine
    does not make, and deep-copies every result on the way: it was most of
    the analysis time while changing no score.
    """

    def __init__(self) -> None:
        super().__init__(
            context_similarity_factor=0.0,
            min_score_with_context_similarity=0.0,
            context_prefix_count=0,
            context_suffix_count=0,
        )

    def enhance_using_context(self, text, raw_results, nlp_artifacts, recognizers, context=None):  # type: ignore[no-untyped-def]
        return raw_results


@dataclass(frozen=True)
class Entity:
    type: str
    start: int
    end: int
    score: float

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "start": self.start, "end": self.end, "score": self.score}


class TextAnalyzer:
    """presidio AnalyzerEngine for Chinese text, built from RECOGNIZERS."""

    def __init__(self) -> None:
        registry = RecognizerRegistry(supported_languages=[LANGUAGE])
        for cls in RECOGNIZERS.values():
            registry.add_recognizer(PresidioRecognizer(cls()))
        nlp = NoOpNlpEngine(models=[{"lang_code": LANGUAGE, "model_name": "noop"}])
        nlp.load()
        self.engine = AnalyzerEngine(
            registry=registry,
            nlp_engine=nlp,
            supported_languages=[LANGUAGE],
            context_aware_enhancer=OwnContext(),
        )
        self.entity_types = ENTITY_TYPES

    def analyze(self, text: str, entities: list[str] | None = None) -> list[Entity]:
        """Non-overlapping entities in `text`, in order of position."""
        if not text:
            return []
        found = self.engine.analyze(text=text, language=LANGUAGE, entities=entities)
        # Of two numbers of one type, one inside the other, the outer is the value: a
        # mistyped card number next to 银行卡 is masked whole, not a Luhn-valid run in it.
        # (Not for names and addresses: there the longer span may have swallowed words.)
        found = [r for r in found if not any(_inside(r, o) for o in found)]
        # An address whose free-form tail runs into a number (新区银行卡号6222…: 号 and
        # the first digits read as a house number) ends where the number starts, so
        # that neither hides the other: the number's own recognizer validated it.
        found = [r for r in found if _before_numbers(r, found)]
        ranked = sorted(
            found,
            key=lambda r: (-r.score, -(r.end - r.start), _PRIORITY.get(r.entity_type, 99), r.start),
        )
        taken: list[Entity] = []
        for r in ranked:
            if all(r.end <= e.start or r.start >= e.end for e in taken):
                taken.append(Entity(r.entity_type, r.start, r.end, float(r.score)))
        return sorted(taken, key=lambda e: e.start)


_NUMBERS = frozenset({ID_NUMBER, PHONE_NUMBER, BANK_CARD, USCC})


def _inside(r: RecognizerResult, o: RecognizerResult) -> bool:
    """Is the number `r` strictly inside `o`, a number of the same type?"""
    return (
        r.entity_type in _NUMBERS
        and o.entity_type == r.entity_type
        and o.start <= r.start
        and r.end <= o.end
        and o.end - o.start > r.end - r.start
    )


def _before_numbers(r: RecognizerResult, found: list[RecognizerResult]) -> bool:
    """Cut the address `r` at the first number that starts inside it and runs past
    its end; whether anything (two characters or more) is left of it."""
    if r.entity_type != ADDRESS:
        return True
    for o in found:
        if o.entity_type in _NUMBERS and r.start < o.start < r.end < o.end:
            r.end = o.start
    return r.end - r.start >= 2


_lock = threading.Lock()


@cache
def _build() -> TextAnalyzer:
    return TextAnalyzer()


def text_analyzer() -> TextAnalyzer:
    """The process's analyzer, built on first use."""
    with _lock:  # two threads asking at once build it once
        return _build()
