"""GB/T 2260 division names and a parser for the administrative part of a Chinese address.

The names come from python-stdnum's GB/T 2260 table (`cn/loc`), the table
that already validates the region part of ID numbers, so the gateway carries
one gazetteer rather than two that drift apart. Historical names are kept:
a household address is stored as registered and may predate a renaming
(阿坝藏族自治州 became 阿坝藏族羌族自治州 in 1987).

The parser only ever recognises names that are in the table. A suffix
heuristic ("anything up to 区") would also accept "春熙路步行街区", and a
wrong parse here discloses the street; an unknown name instead yields a
coarser prefix or nothing, which is the safe direction.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from functools import cache

from stdnum import numdb

PROVINCE = "province"
CITY = "city"
DISTRICT = "district"
LEVELS = (PROVINCE, CITY, DISTRICT)

# Names of prefecture-level and county-level units end with one of these;
# entries that do not (市辖区, 省直辖县级行政单位, 西沙群岛, ...) are
# groupings or oddities that never appear as a token of a postal address.
_PREFECTURE_NAME = re.compile(r"(?:市|自治州|地区|盟)$")
_COUNTY_NAME = re.compile(r"(?:区|县|旗|市)$")
# Placeholder tiers of the municipalities (北京市市辖区朝阳区, 重庆市县城口县):
# some registers write them out.
_MUNICIPAL_FILLERS = ("市辖区", "县")
# Conventional short names of the autonomous regions; the other short names
# are the full name minus 省 / 市 / 特别行政区.
_AUTONOMOUS_REGION_SHORT = {
    "内蒙古自治区": "内蒙古",
    "广西壮族自治区": "广西",
    "西藏自治区": "西藏",
    "宁夏回族自治区": "宁夏",
    "新疆维吾尔自治区": "新疆",
}
_SHORTENABLE_SUFFIXES = ("特别行政区", "特別行政區", "省", "市")
_HISTORY = re.compile(r"^\[[^\]]*\]")


def _names(entry: str) -> list[str]:
    """'[-1986]阿坝藏族自治州,[1987-]阿坝藏族羌族自治州' -> both names."""
    return [_HISTORY.sub("", part).strip() for part in entry.split(",") if part.strip()]


def _longest_prefix(text: str, pos: int, names: Collection[str], max_len: int) -> str | None:
    # Probing slices longest-first costs max_len hash lookups, against one
    # startswith per name (hundreds per province) for a scan.
    for end in range(min(len(text), pos + max_len), pos, -1):
        if text[pos:end] in names:
            return text[pos:end]
    return None


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos


@dataclass(frozen=True)
class ParsedAddress:
    """Where each recognised level of an address ends (absent levels are not keys)."""

    ends: Mapping[str, int]

    @property
    def deepest(self) -> int:
        return max(self.ends.values(), default=0)

    def prefix(self, address: str, level: str) -> str:
        """The address up to and including `level`, or the deepest coarser level found.

        Never anything finer than `level`; "" when no level at or above it was found.
        """
        end = 0
        for lvl in LEVELS[: LEVELS.index(level) + 1]:
            end = self.ends.get(lvl, end)
        return address[:end]


class Gazetteer:
    """Province, prefecture and county names, keyed the way the parser walks them."""

    def __init__(self, table: Iterable[tuple[str, str, str]]) -> None:
        """`table` yields (province code 2 digits, rest 4 digits, name entry).

        The maps are defaultdicts while building; lookups use .get() so that
        the shared instance is never mutated by a parse on a worker thread.
        """
        self.province_names: dict[str, str] = {}  # full name -> province code
        self.province_short: dict[str, str] = {}  # short name -> province code
        self.municipalities: set[str] = set()
        self.prefectures: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        self.all_prefectures: dict[str, set[str]] = defaultdict(set)  # name -> 4-digit prefixes
        self.counties_under: dict[str, set[str]] = defaultdict(set)  # 4-digit prefix -> names
        self.counties_in: dict[str, set[str]] = defaultdict(set)  # province code -> names
        self.max_len = max(len(f) for f in _MUNICIPAL_FILLERS)  # longest name, for matching
        renames: dict[str, set[str]] = defaultdict(set)  # older county name -> later names
        latest: set[str] = set()  # the newest name of every county-level code
        for prov, rest, entry in table:
            names = _names(entry)
            if not rest.endswith("00") and names:
                latest.add(names[-1])
                for old in names[:-1]:
                    renames[old].add(names[-1])
            for name in names:
                if rest == "0000":
                    self._add_province(prov, name)
                elif rest.endswith("00"):
                    if _PREFECTURE_NAME.search(name):
                        self.prefectures[prov][name].add(prov + rest[:2])
                        self.all_prefectures[name].add(prov + rest[:2])
                elif _COUNTY_NAME.search(name):
                    self.counties_under[prov + rest[:2]].add(name)
                    self.counties_in[prov].add(name)
                self.max_len = max(self.max_len, len(name))
        # A county renamed under its code ("[-1986]茂汶羌族自治县,[1987-]茂县"):
        # the old name -> the code's newest, where that is unambiguous (the old
        # name is no other county's current name and was renamed one way only).
        self.renamed_counties: dict[str, str] = {
            old: next(iter(new))
            for old, new in renames.items()
            if len(new) == 1 and old not in latest and _COUNTY_NAME.search(old)
        }

    def _add_province(self, prov: str, name: str) -> None:
        self.province_names[name] = prov
        if name.endswith("市"):
            self.municipalities.add(prov)
        short = _AUTONOMOUS_REGION_SHORT.get(name)
        if short is None:
            short = next((name[: -len(s)] for s in _SHORTENABLE_SUFFIXES if name.endswith(s)), None)
        if short:
            self.province_short[short] = prov

    def is_province_code(self, prov: str) -> bool:
        return prov in self.province_names.values()

    def parse(self, address: str) -> ParsedAddress | None:
        """Recognise the province / city / district tokens at the start of `address`.

        Returns None when not even one level is recognised.
        """
        full = _longest_prefix(address, 0, self.province_names, self.max_len)
        if full is not None:
            return self._below(address, self.province_names[full], len(full))
        short = _longest_prefix(address, 0, self.province_short, self.max_len)
        if short is not None:
            # "吉林" is a province's short name and the start of 吉林市, "北京"
            # the start of 北京大学: accept a short name only if a real token
            # follows it (a municipality's own city level does not count).
            parsed = self._below(address, self.province_short[short], len(short))
            if parsed is not None and parsed.deepest > len(short):
                return parsed
        return self._below(address, None, 0)

    def _below(self, address: str, prov: str | None, pos: int) -> ParsedAddress | None:
        ends: dict[str, int] = {}
        if prov is not None:
            ends[PROVINCE] = pos
        pos = _skip_space(address, pos)
        if prov is not None and prov in self.municipalities:
            # A municipality is its own city level: 北京市 -> city 北京市.
            ends[CITY] = ends[PROVINCE]
            counties = self.counties_in.get(prov, set())
            if _longest_prefix(address, pos, counties, self.max_len) is None:
                filler = _longest_prefix(address, pos, _MUNICIPAL_FILLERS, self.max_len)
                if filler is not None:
                    ends[CITY] = pos + len(filler)
                    pos = _skip_space(address, ends[CITY])
        else:
            cities = self.prefectures.get(prov, {}) if prov is not None else self.all_prefectures
            city = _longest_prefix(address, pos, cities, self.max_len)
            if city is not None:
                ends[CITY] = pos + len(city)
                pos = _skip_space(address, ends[CITY])
                counties = set().union(*(self.counties_under.get(p, set()) for p in cities[city]))
            elif prov is not None:
                # County-level units directly under the province (湖北省仙桃市,
                # 海南省琼海市) have no city tier: look across the province.
                counties = self.counties_in.get(prov, set())
            else:
                counties = set()
        district = _longest_prefix(address, pos, counties, self.max_len)
        if district is not None:
            ends[DISTRICT] = pos + len(district)
        return ParsedAddress(ends) if ends else None


def _stdnum_table() -> Iterable[tuple[str, str, str]]:
    # NumDB.prefixes is documented in stdnum/numdb.py as
    # [(length, low, high, props, children)]; cn/loc is two levels deep
    # (province, then the 4-digit rest) and every range is a single code.
    for _length, prov, _high, props, children in numdb.get("cn/loc").prefixes:
        yield prov, "0000", props.get("province", "")
        for _clen, rest, _chigh, child_props, _grand in children:
            yield prov, rest, child_props.get("county", "")


@cache
def gazetteer() -> Gazetteer:
    """The process-wide gazetteer, built on first use (a few milliseconds)."""
    return Gazetteer(_stdnum_table())
