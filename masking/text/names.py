"""Chinese person names: a surname table and context words, no model.

A name is a surname (single, or compound such as 欧阳) and one or two given-name
characters. Almost any character can be a surname or part of a given name, so
a candidate counts only with evidence around it: a role word before it
(当事人、法定代表人、联系人…), a word after it that follows names (先生、
女士、，男，、身份证…), a name just before it in a list (张三、李四), or a
sentence-initial subject followed by a verb-like character. A candidate
followed by a place or organisation suffix (张家口市、黄山风景区、王府井) is
dropped: those are names inside place names.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from masking.text.base import ChineseRecognizer
from masking.text.entities import PERSON
from masking.text.name_context import (
    BENEFICIARY,
    GENERIC_ROLE,
    LIST_JOINERS,
    RIGHT_STRONG,
    ROLE_BEFORE,
    ROLE_WORDS,
    VERBISH,
    role_words_at,
)
from masking.text.name_tables import (
    NOT_GIVEN_FIRST,
    NOT_NAMES,
    PLACE_END_SURNAMES,
    PLACE_LAST,
    PLACE_SUFFIX,
    STOP,
    SURNAME,
)

_CJK = re.compile(r"[\u4e00-\u9fff]")
_GIVEN_CHAR = "(?:(?![" + re.escape("".join(sorted(STOP))) + "])[\u4e00-\u9fff])"
_ITEM = f"(?:{SURNAME}){_GIVEN_CHAR}{{1,2}}"
_JOINER = re.compile("[、和与及]")
_BARE = re.compile(f"(?:{SURNAME})[\u4e00-\u9fff]{{1,2}}")


def _not_a_name(word: str) -> bool:
    return word in NOT_NAMES or word[:2] in NOT_NAMES or word in ROLE_WORDS


def bare_name(text: str) -> bool:
    """Is the whole text shaped like a name alone (陈凯, 欧阳建平)? For short fields such
    as a purpose, where a name with no context around it is still a name."""
    return _BARE.fullmatch(text) is not None and not _not_a_name(text)


class CnPersonNameRecognizer(ChineseRecognizer):
    entity = PERSON
    _surname = re.compile(SURNAME)
    # Not a list of places: 张家村和李家庄.
    _list = re.compile(f"{_ITEM}(?:[、和与及]{_ITEM})+")

    def find(self, text: str) -> Iterable[tuple[int, int, float]]:
        for m in BENEFICIARY.finditer(text):
            name = m.group("name")
            if not _not_a_name(name) and name[-1] not in PLACE_LAST:
                yield m.start("name"), m.end("name"), 0.85
        listed = self._listed(text)
        last_end = -10
        pos = 0
        while True:
            m = self._surname.search(text, pos)
            if m is None:
                return
            found = self._candidate(text, m.start(), m.end(), last_end, m.start() in listed)
            if found is None:
                pos = m.start() + 1
                continue
            end, score = found
            yield m.start(), end, score
            last_end = end
            pos = end

    def _given(self, text: str, at: int) -> int:
        """How many given-name characters (0-2) follow a surname ending at `at`."""
        n = 0
        while n < 2 and at + n < len(text):
            ch = text[at + n]
            if ch in STOP or not _CJK.match(ch):
                break
            n += 1
        if n and text[at] in NOT_GIVEN_FIRST:
            return 0
        return n

    def _right(self, text: str, end: int) -> int:
        """2: a word that follows names; 1: a boundary (end, punctuation, stop); 0: more text."""
        if end >= len(text):
            return 1
        if RIGHT_STRONG.match(text, end):
            return 2
        if PLACE_SUFFIX.match(text, end):
            return -1
        return 1 if text[end] in STOP else 0

    def _listed(self, text: str) -> set[int]:
        """Starts of the items of a list of two or more surname-led words (李四、王五和赵六)."""
        starts: set[int] = set()
        for m in self._list.finditer(text):
            starts.add(m.start())
            starts.update(m.start() + j.end() for j in _JOINER.finditer(m.group()))
        return starts

    def _candidate(
        self, text: str, start: int, s_end: int, last_end: int, listed: bool = False
    ) -> tuple[int, float] | None:
        given = self._given(text, s_end)
        if given == 0:
            return None
        if RIGHT_STRONG.match(text, start):
            return None  # 陈述、表示…: the word after a name, not a name
        before = text[max(0, start - 12) : start]
        role_before = bool(ROLE_BEFORE.search(before) or GENERIC_ROLE.search(before))
        joined = start > last_end and text[last_end:start] in LIST_JOINERS
        if (
            not (role_before or listed or joined)
            and start > 0
            and text[start] in PLACE_END_SURNAMES
            and _CJK.match(text[start - 1])
        ):
            return None
        if any(text.startswith(w, start) for w in role_words_at(text[start])):
            return None  # 车主、来访人: a role word, not 车/来 + a given name
        options = [
            (-1 if text[s_end + n - 1] in PLACE_LAST else self._right(text, s_end + n), n)
            for n in range(given, 0, -1)
        ]
        right, n = max(options)  # best right context; on a tie, the longer name
        if text[start : s_end + n] in NOT_NAMES or text[start : s_end + 2] in NOT_NAMES:
            return None
        if right < 0:
            return None
        end = s_end + n
        score = 0.0
        if role_before or joined:
            score += 0.6  # 当事人张三 / 张三、李四 (after a name already found)
        elif listed:
            score += 0.45
        if right == 2:
            score += 0.5
        elif right == 1:
            score += 0.1
        sentence_start = start == 0 or text[start - 1] in "。；！？\n，,;!?：:"
        if score < 0.5 and right == 1 and sentence_start and text[end : end + 1] in VERBISH:
            score += 0.45  # a sentence-initial subject: 王小明于2023年…
        if start > 0 and text[start - 1].isascii() and text[start - 1].isalnum():
            score -= 0.3
        return (end, min(score, 1.0)) if score >= self.min_score else None
