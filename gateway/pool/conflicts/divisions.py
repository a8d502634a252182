"""Renamed county-level divisions: an old and a new name of one place, for the conflicts report.

A household address is written as it was registered, so one provider may
still hold 马尔康县 where another holds 马尔康市 (the county became a
county-level city in 2015). To the coordinator that is a format difference,
not a wrong address, and the report says so (verdict `format only`, equal
after `renamed division`).

Two sources:

* The gazetteer (python-stdnum's GB/T 2260 table) knows renames that kept
  their code: "[-1986]茂汶羌族自治县,[1987-]茂县" under 513223
  (`Gazetteer.renamed_counties`, derived, nationwide).
* A county upgraded to a district or a city usually gets a *new* code
  (513229 马尔康县 -> 513201 马尔康市), and the table has nothing that links
  the two codes. Those links are kept here, by hand, as data: each row names
  both codes and the year, and tests/gateway/pool/test_conflicts_compare.py
  checks every row against the GB/T 2260 table (the old code held the old
  name until the year, the new code holds the new name from it). The rows are
  the changes in Sichuan since 2000, the province the demo pool is in; a
  deployment elsewhere adds its own.

Only the start of an address is renamed: after normalization an address
begins with its county (normalize.py), so a street or village that happens to
contain a county's old name is untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from masking.gazetteer import gazetteer


@dataclass(frozen=True)
class Renamed:
    old: str
    old_code: str
    new: str
    new_code: str
    year: int  # the year of the State Council's approval, as GB/T 2260 dates it


RENAMED_WITH_NEW_CODE: tuple[Renamed, ...] = (
    Renamed("新都县", "510125", "新都区", "510114", 2001),
    Renamed("温江县", "510123", "温江区", "510115", 2002),
    Renamed("南溪县", "511522", "南溪区", "511503", 2011),
    Renamed("名山县", "511821", "名山区", "511803", 2012),
    Renamed("双流县", "510122", "双流区", "510116", 2015),
    Renamed("马尔康县", "513229", "马尔康市", "513201", 2015),
    Renamed("康定县", "513321", "康定市", "513301", 2015),
    Renamed("郫县", "510124", "郫都区", "510117", 2016),
    Renamed("隆昌县", "511028", "隆昌市", "511083", 2017),
    Renamed("射洪县", "510922", "射洪市", "510981", 2019),
)


@cache
def current_names() -> dict[str, str]:
    """Old county name -> its current name, both sources, chains followed."""
    step = dict(gazetteer().renamed_counties)
    step.update({r.old: r.new for r in RENAMED_WITH_NEW_CODE})
    out = {}
    for old in step:
        new, seen = step[old], {old}
        while new in step and new not in seen:  # 北镇县 -> 北镇满族自治县 -> ...
            seen.add(new)
            new = step[new]
        out[old] = new
    return out


@cache
def _longest() -> int:
    return max(map(len, current_names()))


def rename_leading_county(text: str) -> str:
    """`text` with a leading old county name replaced by the current one."""
    names = current_names()
    for end in range(min(len(text), _longest()), 1, -1):
        new = names.get(text[:end])
        if new is not None:
            return new + text[end:]
    return text
