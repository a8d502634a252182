"""How two conflicting values differ (R16): verdict, normalization steps, distance, positions."""

from __future__ import annotations

import pytest
from stdnum import numdb

from gateway.pool.conflicts import (
    DIFFERENT,
    FORMAT_ONLY,
    SMALL_DIFFERENCE,
    Difference,
    compare,
    lenient,
    normalize,
)
from gateway.pool.conflicts.divisions import (
    RENAMED_WITH_NEW_CODE,
    Renamed,
    current_names,
    rename_leading_county,
)
from masking.gazetteer import gazetteer

PREFIX = "四川省阿坝藏族羌族自治州"


def diff(kind: str, a: str, b: str) -> Difference:
    return compare(kind, 1, a, normalize(kind, a), 2, b, normalize(kind, b))


# (kind, value a, value b) -> (verdict, steps that made them equal, distance, positions in a, in b)
CASES = [
    # Formatting the strict form already looks past (pairs inside one value group).
    ("name", "泽仁 卓玛", "泽仁卓玛", FORMAT_ONLY, ("blanks",), 0, (), ()),
    ("name", "ＬＩ Ｍｉｎｇ", "li ming", FORMAT_ONLY, ("width", "case"), 0, (), ()),
    ("name", "阿卜杜·热合曼", "阿卜杜热合曼", FORMAT_ONLY, ("punctuation",), 0, (), ()),
    ("date", "1958年9月30日", "1958-09-30", FORMAT_ONLY, ("date notation",), 0, (), ()),
    ("date", "１９５８－０９－３０", "1958-09-30", FORMAT_ONLY, ("width",), 0, (), ()),
    # Traditional and simplified: a conflict (a register entry differs), but format only.
    ("name", "泽仁卓玛", "泽仁卓瑪", FORMAT_ONLY, ("variant characters",), 1, (4,), (4,)),
    ("name", "李华强", "李華強", FORMAT_ONLY, ("variant characters",), 2, (), ()),
    # Renamed divisions: a county become a city (new code), renamed under its code.
    (
        "address",
        PREFIX + "马尔康县马尔康镇1组8号",
        "马尔康市马尔康镇１组８号",
        FORMAT_ONLY,
        ("width", "province and prefecture", "renamed division"),
        1,
        (4,),
        (4,),
    ),
    (
        "address",
        "四川省阿坝藏族自治州茂汶羌族自治县凤仪镇1号",
        PREFIX + "茂县凤仪镇1号",
        FORMAT_ONLY,
        ("province and prefecture", "renamed division"),
        5,
        (2, 3, 4, 5, 6),
        (),
    ),
    (
        "address",
        "四川省成都市郫县郫筒镇1号",
        "成都市郫都区郫筒镇1号",
        FORMAT_ONLY,
        ("province and prefecture", "renamed division"),
        2,
        (2,),
        (2, 3),
    ),
    # A variant character no table knows, a typo, a day off: small differences.
    ("name", "泽仁卓玛", "泽仁卓珎", SMALL_DIFFERENCE, (), 1, (4,), (4,)),
    ("name", "格桑达瓦", "格桑达娃", SMALL_DIFFERENCE, (), 1, (4,), (4,)),
    ("date", "1958-09-30", "1958-10-30", SMALL_DIFFERENCE, (), 2, (6, 7), (6, 7)),
    ("date", "1958-09-30", "1958-09-03", SMALL_DIFFERENCE, (), 2, (9, 10), (9, 10)),
    (
        "address",
        PREFIX + "汶川县威州镇羌锋村2组8号",
        PREFIX + "汶川县威州镇羌锋村2组108号",
        SMALL_DIFFERENCE,
        (),
        2,
        (),
        (12, 13),
    ),
    # Different: another person, another place, another date.
    ("name", "泽仁卓玛", "格桑拉姆", DIFFERENT, (), 4, (1, 2, 3, 4), (1, 2, 3, 4)),
    ("date", "1958-09-30", "1961-03-02", DIFFERENT, (), 5, (3, 4, 7, 9, 10), (3, 4, 7, 9, 10)),
    (
        "address",
        PREFIX + "汶川县威州镇羌锋村2组8号",
        PREFIX + "理县杂谷脑镇甘堡村1组3号",
        DIFFERENT,
        (),
        9,
        (1, 2, 3, 4, 5, 7, 8, 10, 12),
        (1, 2, 3, 4, 5, 7, 8, 10, 12),
    ),
    # Not renamed: another county whose name merely contains the old one's.
    (
        "address",
        "汶川县郫县路1号",
        "汶川县郫都区路1号",
        SMALL_DIFFERENCE,
        (),
        2,
        (5,),
        (5, 6),
    ),
]


@pytest.mark.requirement("R16")
@pytest.mark.parametrize(
    ("kind", "a", "b", "verdict", "steps", "distance", "pos_a", "pos_b"),
    CASES,
    ids=[f"{c[0]}-{c[3].replace(' ', '_')}-{i}" for i, c in enumerate(CASES)],
)
def test_pairs_are_graded(
    kind: str,
    a: str,
    b: str,
    verdict: str,
    steps: tuple[str, ...],
    distance: int,
    pos_a: tuple[int, ...],
    pos_b: tuple[int, ...],
) -> None:
    d = diff(kind, a, b)
    assert (d.verdict, d.equal_after, d.edit_distance) == (verdict, steps, distance)
    assert (d.first_length, d.second_length) == (len(normalize(kind, a)), len(normalize(kind, b)))
    if d.positions_withheld:
        assert (d.first_positions, d.second_positions) == ((), ())
        assert pos_a == pos_b == ()
    else:
        assert (d.first_positions, d.second_positions) == (pos_a, pos_b)
    assert (d.first_value, d.second_value) == (1, 2)


@pytest.mark.requirement("R16")
@pytest.mark.parametrize(
    ("a", "b", "verdict"),
    [
        ("张伟强", "张玮强", SMALL_DIFFERENCE),  # "at 2 of 3" would tell whoever knows one: 张?强
        ("张伟", "张玮", SMALL_DIFFERENCE),
        ("李华", "李華", FORMAT_ONLY),
        ("王五", "李四", SMALL_DIFFERENCE),
        ("陈", "陈伟", SMALL_DIFFERENCE),
        ("泽仁卓", "泽仁桌", SMALL_DIFFERENCE),
    ],
)
def test_positions_of_a_short_value_are_withheld(a: str, b: str, verdict: str) -> None:
    d = diff("name", a, b)
    assert d.verdict == verdict and d.positions_withheld
    assert d.first_positions == d.second_positions == ()
    assert d.edit_distance > 0  # the distance is always shown


def test_positions_of_values_from_four_characters_are_shown() -> None:
    d = diff("name", "泽仁卓玛", "泽仁桌玛")
    assert not d.positions_withheld and d.first_positions == (3,)


def test_the_strict_form_still_tells_variants_and_old_names_apart() -> None:
    """They are conflicts (a register to correct), only graded format only."""
    assert normalize("name", "泽仁卓玛") != normalize("name", "泽仁卓瑪")
    old, new = PREFIX + "马尔康县马尔康镇1号", PREFIX + "马尔康市马尔康镇1号"
    assert normalize("address", old) != normalize("address", new)
    assert lenient("address", old) == lenient("address", new) == "马尔康市马尔康镇1"


def _names_at(code: str) -> str:
    """The GB/T 2260 table's entry for a county code, history included."""
    found = numdb.get("cn/loc").info(code)
    return str(found[1][1].get("county", "")) if len(found) > 1 else ""


@pytest.mark.parametrize("row", RENAMED_WITH_NEW_CODE, ids=lambda r: f"{r.old}->{r.new}")
def test_every_row_of_the_renamed_table_is_in_gb_t_2260(row: Renamed) -> None:
    """The old code held the old name until the year, the new code holds the new name from it."""
    old_entry, new_entry = _names_at(row.old_code), _names_at(row.new_code)
    assert row.old in old_entry and f"-{row.year}]" in old_entry
    assert row.new in new_entry and f"[{row.year}-]" in new_entry


def test_renames_the_gazetteer_knows_under_one_code() -> None:
    renamed = gazetteer().renamed_counties
    assert renamed["茂汶羌族自治县"] == "茂县"
    assert renamed["南坪县"] == "九寨沟县"
    assert "汶川县" not in renamed  # never renamed
    # Chains are followed to the current name.
    assert current_names()["马尔康县"] == "马尔康市"
    assert all(new not in current_names() for new in current_names().values())


@pytest.mark.parametrize(
    ("text", "renamed"),
    [
        ("马尔康县马尔康镇1号", "马尔康市马尔康镇1号"),
        ("郫县郫筒镇", "郫都区郫筒镇"),
        ("南坪县永乐镇", "九寨沟县永乐镇"),
        ("汶川县郫县路1号", "汶川县郫县路1号"),  # only the leading county
        ("马尔康市马尔康镇", "马尔康市马尔康镇"),
        ("", ""),
    ],
)
def test_only_a_leading_old_county_name_is_renamed(text: str, renamed: str) -> None:
    assert rename_leading_county(text) == renamed
