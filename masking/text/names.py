"""Chinese person names: a surname table and context words, no model.

A name is a surname (single, or compound such as 欧阳) and one or two given-name
characters. Almost any character can be a surname or part of a given name, so
a candidate counts only with evidence around it: a role word before it
(当事人、法定代表人、联系人…), a word after it that follows names (先生、
女士、，男，、身份证…), a name just before it in a list (张三、李四), or a
sentence-initial subject followed by a verb-like character. A candidate
followed by a place or organisation suffix (张家口市、黄山风景区、王府井) is
dropped: those are names inside place names.

After a role word or a contact verb (联系人：, 请联系, 委托) and in frames around
the name (受张三委托, 由王小明办理, 王小明的联系方式…) the context, not the stop
list, ends the name, so given names such as 来福 or 自强 are whole. Names in parts
joined by a middle dot (阿依古丽·买买提) need no surname.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from functools import lru_cache

from masking.gazetteer import gazetteer
from masking.text.base import ChineseRecognizer, compile_words
from masking.text.entity_names import PERSON
from masking.text.name_context import (
    AGENCY,
    BENEFICIARY,
    CONTACT_WITH,
    DOTTED,
    DOTTED_CUE,
    DOTTED_END,
    FRAME_AFTER,
    GENERIC_ROLE,
    LIST_JOINERS,
    NAME_DOTS,
    PERSONAL_INFO,
    POSSESSIVE,
    RIGHT_STRONG,
    ROLE_BEFORE,
    ROLE_WORDS,
    VERBISH,
    role_words_at,
)
from masking.text.name_tables import (
    NAME_STOPS,
    NOT_GIVEN,
    NOT_GIVEN_FIRST,
    NOT_NAMES,
    PLACE_END_SURNAMES,
    PLACE_LAST,
    PLACE_SUFFIX,
    STOP,
    SURNAME,
)

_CJK = re.compile(r"[\u4e00-\u9fff]")
# An item of a list: where it ends is left to the candidate (李自强、梁楠).
# Its last character is no stop character (not 管委会、…), the one before may be (李自强).
_LAST_GIVEN = "(?:(?![" + re.escape("".join(sorted(STOP))) + "])[\u4e00-\u9fff])"
_ITEM = f"(?:{SURNAME})(?:(?![和与及的])[\u4e00-\u9fff])?{_LAST_GIVEN}"
_ITEM_DOTTED = f"(?:{_ITEM}|[\u4e00-\u9fff]{{2,6}}[{NAME_DOTS}][\u4e00-\u9fff]{{2,6}})"
_JOINER = re.compile("[、和与及]")
_BARE = re.compile(f"(?:{SURNAME})[\u4e00-\u9fff]{{1,2}}")


_ROLES = frozenset(ROLE_WORDS)


def _not_a_name(word: str) -> bool:
    return (
        word in NOT_NAMES
        or word[:2] in NOT_NAMES
        or word in _ROLES
        or any(word[i : i + 2] in NOT_GIVEN for i in (1, 2))
    )


def bare_name(text: str) -> bool:
    """Is the whole text shaped like a name alone (陈凯, 欧阳建平)? For short fields such
    as a purpose, where a name with no context around it is still a name."""
    return _BARE.fullmatch(text) is not None and not _not_a_name(text)


# The frames, each with what it cannot match without (a cheap search before its scan).
_FRAMES = (
    (BENEFICIARY, re.compile("[为给替帮代助陪通联]")),
    (AGENCY, re.compile("[受由]")),
    (POSSESSIVE, re.compile("的(?:" + compile_words(PERSONAL_INFO).pattern + ")")),
    (CONTACT_WITH, re.compile("[与和跟同]")),
)


_DOTS = frozenset(NAME_DOTS)


@lru_cache(maxsize=4096)
def _is_place(word: str) -> bool:
    gz = gazetteer()
    return (
        word == "中国"
        or word in gz.province_names
        or word in gz.province_short
        or gz.parse(word) is not None
    )


_SENTENCE_START = "。；！？\n，,;!?：:"


class CnPersonNameRecognizer(ChineseRecognizer):
    title = "姓名"
    entity = PERSON
    _surname = re.compile(SURNAME)
    # Not a list of places: 张家村和李家庄.
    _list = re.compile(f"{_ITEM}(?:[、和与及]{_ITEM})+")
    _list_dotted = re.compile(f"{_ITEM_DOTTED}(?:[、和与及]{_ITEM_DOTTED})+")

    def find(self, text: str) -> Iterable[tuple[int, int, float]]:
        # Frames and dotted names first: they know where a name ends. The scan
        # below skips what they found and continues lists from their ends.
        framed = sorted(self._framed(text))
        yield from framed
        taken = {start: end for start, end, _ in framed}
        ends = set(taken.values())
        listed = self._listed(text)
        pos = 0
        while True:
            m = self._surname.search(text, pos)
            if m is None:
                return
            start = m.start()
            inside = taken and [end for s, end in taken.items() if s <= start < end]
            if inside:
                pos = max(inside)
                continue
            joined = start > 0 and (start - 1) in ends and text[start - 1] in LIST_JOINERS
            found = self._candidate(text, start, m.end(), joined, start in listed)
            if found is None:
                pos = start + 1
                continue
            end, score = found
            if taken and any(start < s < end for s in taken):
                pos = start + 1  # 由李娜 over 李娜 of 由李娜、王伟共同办理
                continue
            yield start, end, score
            ends.add(end)
            pos = end

    def _framed(self, text: str) -> Iterator[tuple[int, int, float]]:
        """Names whose frame ends them: for whom (为陈凯办理), acting for whom (受李四委托,
        由王小明办理), whose (王小明的联系方式), and dotted names."""
        # Each frame is tried only if its fixed characters are in the text: these are
        # the hot path of every remark, and a regex scan per frame is most of the time.
        for frame, hint in _FRAMES:
            if not hint.search(text):
                continue
            for m in frame.finditer(text):
                name = m.group("name")
                if not _not_a_name(name) and name[-1] not in PLACE_LAST:
                    yield m.start("name"), m.end("name"), 0.85
        if not _DOTS.isdisjoint(text):
            for m in DOTTED.finditer(text):
                yield from self._dotted(text, m.start(), m.end())

    def _dotted(self, text: str, run_start: int, run_end: int) -> Iterator[tuple[int, int, float]]:
        """阿依古丽·买买提 inside a run of CJK characters and dots: where it starts is
        where a role word or verb before it ends (申请人阿依古丽·…), or the run's start;
        where it ends, the first stop character or frame verb of its last part."""
        first_dot = min(i for i in range(run_start, run_end) if text[i] in NAME_DOTS)
        start = None
        for p in range(max(run_start, first_dot - 8), first_dot - 1):
            if p == run_start or DOTTED_CUE.search(text, max(0, p - 12), p):
                start = p  # the last cue wins: 致电 over 致, 受 over 本人
        if start is None or first_dot - start > 6:
            start = max(run_start, first_dot - 4)
        last_dot = max(i for i in range(run_start, run_end) if text[i] in NAME_DOTS)
        end = last_dot + 1
        # Not the stop list: transliterations are full of 不、都、则 (阿不都拉, 艾则孜).
        while end < run_end and end - last_dot <= 6 and text[end] not in DOTTED_END:
            if end - last_dot > 2 and (
                FRAME_AFTER.match(text, end) or RIGHT_STRONG.match(text, end)
            ):
                break
            end += 1
        if text[end - 1] in PLACE_LAST or _is_place(text[start:first_dot]):
            return  # 中国·成都, 四川·汶川, 某某·广场: a place written with a dot
        cue = start > run_start or start == 0 or text[start - 1] in _SENTENCE_START
        yield start, end, 0.85 if cue else 0.6

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

    def _cued(self, text: str, s_end: int) -> tuple[float, int]:
        """After a role word, a contact verb or a name in a list: the name's length
        (1-2 given characters, stop characters allowed) is the one the right side
        ends best: a word that follows names, then a frame verb or punctuation, then
        a stop character; on a tie, a given name without stop characters, the longer."""
        options = []
        for n in (1, 2):
            end = s_end + n
            if end > len(text) or not _CJK.match(text[end - 1]):
                break
            if text[end - 1] in STOP and text[end - 1] not in NAME_STOPS:
                break  # 应于: 于 is in no given name
            if text[end - 1] in PLACE_LAST:
                right: float = -1
            elif end == len(text) or FRAME_AFTER.match(text, end):
                right = 1.5
            else:
                right = self._right(text, end)
                if right >= 0 and not _CJK.match(text[end]) and not text[end].isalnum():
                    right = 1.5  # punctuation
            clean = not any(c in STOP for c in text[s_end:end])
            options.append((right > 0, clean, right, n))
        if not options:
            return -1, 0
        if len(options) == 2 and options[1][2] < 0 and options[0][2] == 0:
            return -1, 0  # 周口 of 周口店: the longer word is a place
        good, clean, right, n = max(options)
        if not good:
            return -1, 0  # 当事人权利义务, 华为客服: nothing after it ends a name
        return right, n

    def _listed(self, text: str) -> set[int]:
        """Starts of the items of a list of two or more surname-led words (李四、王五和赵六)."""
        starts: set[int] = set()
        plain = _DOTS.isdisjoint(text)
        for m in (self._list if plain else self._list_dotted).finditer(text):
            items = _JOINER.split(m.group())
            if any(_not_a_name(w) or _is_place(w) for w in items):
                continue  # 安全、文明: a list of words; 甘肃、宁夏: of places
            starts.add(m.start())
            starts.update(m.start() + j.end() for j in _JOINER.finditer(m.group()))
        return starts

    def _candidate(
        self, text: str, start: int, s_end: int, joined: bool, listed: bool
    ) -> tuple[int, float] | None:
        if s_end >= len(text) or not _CJK.match(text[s_end]):
            return None  # no given name can follow (most surname characters in a text)
        if RIGHT_STRONG.match(text, start):
            return None  # 陈述、表示…: the word after a name, not a name
        if any(text.startswith(w, start) for w in role_words_at(text[start])):
            return None  # 车主、来访人: a role word, not 车/来 + a given name
        if text[start : start + 2] in NOT_NAMES or text[s_end : s_end + 2] in NOT_GIVEN:
            return None  # 马上、黄金; 区政府、原单位
        if start > 0 and text[start - 1 : start + 1] in NOT_NAMES and text[start - 1] in _ROLES:
            return None  # 经常联系: the surname character ends the cue word before
        if start > 1 and text[start - 2 : start + 1] in NOT_NAMES and text[s_end] in "为是":
            return None  # 委托方为…: the cue and the surname are one word (not 委托方林瑜)
        before = text[max(0, start - 12) : start]
        role_before = bool(ROLE_BEFORE.search(before) or GENERIC_ROLE.search(before))
        if role_before or joined or listed:
            right, n = self._cued(text, s_end)
        else:
            given = self._given(text, s_end)
            if given == 0 or text[s_end : s_end + 2] in NOT_NAMES:
                return None  # no context, and 由程序自动生成: the rest is a common word
            if (
                not listed
                and start > 0
                and text[start] in PLACE_END_SURNAMES
                and _CJK.match(text[start - 1])
            ):
                return None
            options = [
                (-1 if text[s_end + k - 1] in PLACE_LAST else self._right(text, s_end + k), k)
                for k in range(given, 0, -1)
            ]
            right, n = max(options)  # best right context; on a tie, the longer name
        end = s_end + n
        if right < 0 or text[start:end] in NOT_NAMES:
            return None
        score = 0.0
        if role_before or joined:
            score += 0.6  # 当事人张三 / 张三、李四 (after a name already found)
        elif listed:
            score += 0.45
        if right == 2:
            score += 0.5
        elif right > 0:
            score += 0.1
        sentence_start = start == 0 or text[start - 1] in _SENTENCE_START
        if score < 0.5 and right == 1 and sentence_start and text[end : end + 1] in VERBISH:
            score += 0.45  # a sentence-initial subject: 王小明于2023年…
        if start > 0 and text[start - 1].isascii() and text[start - 1].isalnum():
            score -= 0.3
        return (end, min(score, 1.0)) if score >= self.min_score else None
