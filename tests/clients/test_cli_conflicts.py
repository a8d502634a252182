"""`govgw conflicts report`: the parser and the CSV form (the calls are tested end to end
in tests/integration/test_conflicts.py)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from clients.cli import build_parser
from clients.cli_conflicts import CSV_COLUMNS, describe, to_csv

CONFLICT = {
    "subject_hash": "ab" * 32,
    "subject_masked": "513221********1234",
    "subject_kind": "person",
    "attribute": "person.name",
    "values": [
        {"provider": "县公安局", "dataset": "population.basic", "field": "name",
         "masked_value": "泽***", "value_group": "A", "dataset_version": "v1",
         "imported_at": "2026-11-21T00:00:00Z", "imported_last": True,
         "written_at_import": True},
        {"provider": "县民政局", "dataset": "social_assistance.recipient", "field": "name",
         "masked_value": "泽***", "value_group": "B", "dataset_version": "v3",
         "imported_at": "2026-11-20T00:00:00Z", "imported_last": False,
         "written_at_import": False},
    ],
    "differences": [
        {"first_value": 1, "second_value": 2, "verdict": "format only",
         "equal_after": ["variant characters"], "edit_distance": 1, "first_length": 4,
         "second_length": 4, "first_positions": [4], "second_positions": [4],
         "positions_withheld": False},
    ],
}  # fmt: skip


def pair(**over: object) -> dict[str, object]:
    return {**CONFLICT["differences"][0], **over}  # type: ignore[index]


@pytest.mark.requirement("R16")
def test_csv_has_one_line_per_value_held() -> None:
    rows = list(csv.DictReader(io.StringIO(to_csv([CONFLICT, CONFLICT]))))
    assert len(rows) == 4
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [r["value_group"] for r in rows[:2]] == ["A", "B"]
    assert {r["subject_masked"] for r in rows} == {"513221********1234"}
    assert to_csv([]) == ",".join(CSV_COLUMNS) + "\n"
    # The pair is on the line of its second value, compared with the first.
    first, second = rows[:2]
    assert (first["value"], first["compared_with"], first["verdict"]) == ("1", "", "")
    assert (first["imported_last"], first["written_at_import"], first["length"]) == (
        "True", "True", "4"
    )  # fmt: skip
    assert (second["value"], second["compared_with"], second["verdict"]) == (
        "2", "1", "format only"
    )  # fmt: skip
    assert (second["equal_after"], second["edit_distance"], second["positions"]) == (
        "variant characters", "1", "4"
    )  # fmt: skip
    assert (second["compared_positions"], second["positions_withheld"]) == ("4", "False")


def test_csv_joins_the_pairs_of_a_third_value() -> None:
    third = {**CONFLICT["values"][1], "dataset": "health.resident"}  # type: ignore[index]
    conflict = {
        **CONFLICT,
        "values": [*CONFLICT["values"], third],  # type: ignore[misc]
        "differences": [
            pair(),
            pair(second_value=3, verdict="small difference", equal_after=[],
                 first_positions=[2, 4], second_positions=[2, 4], edit_distance=2),
            pair(first_value=2, second_value=3, verdict="different", equal_after=[],
                 edit_distance=3, first_positions=[2, 3, 4], second_positions=[2, 3, 4]),
        ],
    }  # fmt: skip
    rows = list(csv.DictReader(io.StringIO(to_csv([conflict]))))
    assert rows[2]["compared_with"] == "1;2"
    assert rows[2]["verdict"] == "small difference;different"
    assert rows[2]["positions"] == "2 4;2 3 4"
    assert rows[2]["equal_after"] == ";"


@pytest.mark.parametrize(
    ("difference", "line"),
    [
        (pair(), "1 vs 2: format only (variant characters): distance 1, differs at 4 of 4"),
        (pair(edit_distance=0, first_positions=[], second_positions=[], equal_after=["blanks"]),
         "1 vs 2: format only (blanks)"),
        (pair(verdict="small difference", equal_after=[], first_length=2, second_length=2,
              first_positions=[], second_positions=[], positions_withheld=True),
         "1 vs 2: small difference: distance 1, positions withheld (a value under 4 characters)"),
        (pair(verdict="small difference", equal_after=[], edit_distance=2, first_length=12,
              second_length=14, first_positions=[], second_positions=[12, 13]),
         "1 vs 2: small difference: distance 2, differs at - of 12 / 12, 13 of 14"),
        (pair(verdict="different", equal_after=[], edit_distance=2, first_length=6,
              second_length=6, first_positions=[3, 5], second_positions=[3, 5]),
         "1 vs 2: different: distance 2, differs at 3, 5 of 6"),
    ],
)  # fmt: skip
def test_a_pair_in_one_line(difference: dict[str, object], line: str) -> None:
    assert describe(difference) == line


def test_parser_takes_attribute_format_and_data_dir() -> None:
    args = build_parser().parse_args(
        ["conflicts", "report", "--attribute", "person.address", "--csv", "--data-dir", "/d"]
    )
    assert (args.attribute, args.csv, args.data_dir) == ("person.address", True, Path("/d"))
    args = build_parser().parse_args(["conflicts", "report", "--json"])
    assert (args.attribute, args.csv, args.data_dir, args.json) == (None, False, None, True)
