"""`govgw emergency` argument parsing: scope items and end times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from clients.cli import build_parser
from clients.cli_emergency import parse_end, parse_scope


def test_scope_items_group_fields_per_dataset() -> None:
    assert parse_scope(["a.ds:x, y", "b.ds:z", "a.ds:w"]) == {
        "a.ds": ["x", "y", "w"],
        "b.ds": ["z"],
    }
    for bad in ("a.ds", ":x", ""):
        with pytest.raises(ValueError, match="--scope"):
            parse_scope([bad])


def test_end_is_a_zoned_time_or_a_duration() -> None:
    assert parse_end("2026-12-01T08:00:00+08:00") == datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
    soon = parse_end("36h") - datetime.now(UTC)
    assert timedelta(hours=35, minutes=59) < soon <= timedelta(hours=36)
    assert timedelta(days=6, hours=23) < parse_end("7d") - datetime.now(UTC)
    with pytest.raises(ValueError, match="time zone"):
        parse_end("2026-12-01T08:00:00")


def test_every_verb_is_registered_with_json() -> None:
    p = build_parser()
    for argv in (
        ["emergency", "list", "--status", "ended", "--json"],
        ["emergency", "show", "em-1", "--json"],
        ["emergency", "sealing", "em-1", "--csv"],
        ["emergency", "seal", "em-1", "--json"],
        ["emergency", "end", "em-1", "--reason", "r", "--json"],
        ["emergency", "declare", "--title", "t", "--legal-basis", "b", "--purpose", "p",
         "--ends-at", "7d", "--scope", "a:x", "--agency", "a1", "--json"],
    ):  # fmt: skip
        args = p.parse_args(argv)
        assert args.command == "emergency" and callable(args.fn)
