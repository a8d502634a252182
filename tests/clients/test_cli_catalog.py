"""`govgw catalog list|show`: the policy version the catalog is from, each field's
attribute concept (R16), whether it is derived from the subject key, and its masking."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.policy.bundle import load_bundle
from tests.clients.test_cli import govgw
from tests.support import Harness, make_data_dir, start

POLICIES = Path(__file__).resolve().parents[2] / "policies"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    data_dir = tmp_path_factory.mktemp("cli-catalog") / "data"
    keys, demo = make_data_dir(data_dir, persons=10, entities=5)
    h = start(data_dir, keys, demo)
    yield h
    h.stop()


def catalog(h: Harness, *args: str) -> str:
    return govgw(
        "--target", h.target, "--api-key", h.keys["agency-civil"], "catalog", *args
    ).stdout  # fmt: skip


def test_show_json_publishes_attribute_derivation_masking_and_policy_version(gw: Harness) -> None:
    shipped = load_bundle(POLICIES).version
    doc = json.loads(catalog(gw, "show", "population.basic", "--json"))
    assert doc["policy_version"] == shipped
    fields = {f["name"]: f for f in doc["fields"]}
    assert fields["name"]["attribute"] == "person.name"
    assert fields["household_address"]["attribute"] == "person.address"
    assert (fields["birth_date"]["attribute"], fields["birth_date"]["derived_from_subject"]) == (
        "person.birth_date",
        True,
    )
    # A field without them says so rather than leaving the keys out.
    assert (fields["phone"]["attribute"], fields["phone"]["derived_from_subject"]) == ("", False)
    assert fields["phone"]["share_masking"] == {
        "operator": "mask",
        "params": {"keep_first": 3.0, "keep_last": 4.0},
    }
    assert fields["id_number"]["open_masking"]["operator"] == "redact"


def test_show_and_list_in_human_form(gw: Harness) -> None:
    shipped = load_bundle(POLICIES).version
    text = catalog(gw, "show", "population.basic")
    assert f"catalog of policy version {shipped}" in text
    lines = {line.split()[0]: line.split() for line in text.splitlines() if line.strip()}
    assert lines["field"][-3:] == ["attribute", "share", "open"]
    assert lines["name"][-3:] == ["person.name", "keep", "mask"]
    assert "(from subject key)" in " ".join(lines["birth_date"])
    assert lines["birth_date"][-3:] == ["person.birth_date", "keep", "generalize"]
    assert lines["phone"][-3:] == ["-", "mask", "redact"]
    listing = catalog(gw, "list")
    assert listing.splitlines()[0] == f"policy version {shipped}"
    doc = json.loads(catalog(gw, "list", "--json"))  # the DatasetList result as an object
    assert {d["policy_version"] for d in doc["items"]} == {doc["policy_version"]} == {shipped}
    assert doc["items"][0]["share_class"] in ("UNCONDITIONAL", "CONDITIONAL", "NONE")
    assert doc["request_id"].startswith("req_")
