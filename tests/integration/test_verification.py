"""VerifyIdentity and VerifyAttributes through a real server."""

from __future__ import annotations

import grpc
import pytest
from govgw.v1 import verification_pb2
from stdnum.cn import ric

from clients.receipts import load_public_keys, open_commitment, verify_receipt
from tests.support import Harness, expect_error

PURPOSE = "户籍业务办理"
INVALID = grpc.StatusCode.INVALID_ARGUMENT
DENIED = grpc.StatusCode.PERMISSION_DENIED


def absent_id_number(h: Harness) -> str:
    """A valid ID number that is not in the pool."""
    body = "51322119990101" + "999"
    return body + ric.calc_check_digit(body + "0")


def test_matching_name_and_id_number_answer_match_with_a_verifiable_receipt(
    gateway: Harness,
) -> None:
    adult = gateway.demo["adult_resident"]
    with gateway.client("counter-wenchuan") as gw:
        r = gw.verify_identity(adult["name"], adult["id_number"], purpose=PURPOSE)
    assert r.matched
    assert r.receipt is not None and r.receipt.verified  # checked by the SDK on arrival
    claims = verify_receipt(  # and again offline, as a counter would
        r.receipt.signed, load_public_keys(gateway.data_dir / "keys" / "receipt-keys.json")
    )
    assert claims == r.receipt.claims.as_dict()
    assert claims["outcome"] == "MATCH"
    assert claims["caller"] == "counter-wenchuan"
    assert claims["action"] == "verify.identity"
    # The commitment opens with the ID number and the salt only the caller was given.
    assert open_commitment(r.receipt.signed, adult["id_number"], r.receipt.signed.salt)
    assert claims["subject_commitment"] != gateway.parts.keyring.subject_hash(adult["id_number"])
    payload = r.receipt.signed.payload.decode()
    assert adult["id_number"] not in payload and adult["name"] not in payload


@pytest.mark.requirement("R14")
def test_the_id_document_suffices_and_shared_data_is_not_asked_again(gateway: Harness) -> None:
    """R14: a person is verified by the name and number on their ID document, with no place
    for a biometric in the request; the counter then takes the data it needs from sharing
    directly (unconditional share, no application), not from the citizen again."""
    adult = gateway.demo["adult_resident"]
    asked = {f.name for f in verification_pb2.VerifyIdentityRequest.DESCRIPTOR.fields}
    assert asked == {"name", "id_number", "purpose"}
    with gateway.client("counter-wenchuan") as gw:
        r = gw.verify_identity(adult["name"], adult["id_number"], purpose=PURPOSE)
        assert r.matched and r.receipt.claims.outcome == "MATCH"
        shared = gw.lookup(
            "population.basic", adult["id_number"], ["name", "household_address"], purpose=PURPOSE
        )
    (rec,) = shared.records
    assert rec["name"].value == adult["name"]
    assert adult["household_address"].startswith(rec["household_address"].value)
    assert shared.provenance.source_department == "县公安局"


def test_wrong_name_and_absent_person_answer_alike(gateway: Harness) -> None:
    adult = gateway.demo["adult_resident"]
    with gateway.client("agency-civil") as gw:
        wrong = gw.verify_identity(adult["name"] + "某", adult["id_number"], purpose=PURPOSE)
        absent = gw.verify_identity(adult["name"], absent_id_number(gateway), purpose=PURPOSE)
    assert not wrong.matched and not absent.matched
    assert wrong.receipt.claims.outcome == absent.receipt.claims.outcome == "NO_MATCH"


def test_name_comparison_folds_width_and_spaces(gateway: Harness) -> None:
    adult = gateway.demo["adult_resident"]
    spaced = " ".join(adult["name"])
    with gateway.client("agency-civil") as gw:
        assert gw.verify_identity(spaced, adult["id_number"].lower(), purpose=PURPOSE).matched


@pytest.mark.requirement("R13")
@pytest.mark.parametrize(
    ("id_number", "reason"),
    [
        ("", "ID_NUMBER_MISSING"),
        ("51322119900101123", "ID_NUMBER_LENGTH"),
        ("513221199001011230", "ID_NUMBER_CHECK_DIGIT"),
        ("51322119901301123X", "ID_NUMBER_COMPONENT"),
    ],
)
def test_bad_id_numbers_are_invalid_argument_naming_the_field(
    gateway: Harness, id_number: str, reason: str
) -> None:
    if reason == "ID_NUMBER_CHECK_DIGIT":
        good = ric.calc_check_digit(id_number[:17] + "0")
        id_number = id_number[:17] + ("1" if good != "1" else "2")
    if reason == "ID_NUMBER_COMPONENT":  # a right check digit over a month 13
        id_number = id_number[:17] + ric.calc_check_digit(id_number[:17] + "0")
    with gateway.client("agency-civil") as gw:
        e = expect_error(
            lambda: gw.verify_identity("张三", id_number, purpose=PURPOSE),
            INVALID,
            reason,
            ["id_number"],
        )
    assert id_number not in str(e) or not id_number


def test_every_bad_field_is_reported_at_once(gateway: Harness) -> None:
    with gateway.client("agency-civil") as gw:
        e = expect_error(
            lambda: gw.verify_identity("", "123", purpose=""), INVALID, "PURPOSE_MISSING"
        )
    assert sorted(v.field for v in e.violations) == ["id_number", "name", "purpose"]


def test_purpose_carrying_an_id_number_is_refused(gateway: Harness) -> None:
    adult = gateway.demo["adult_resident"]
    with gateway.client("agency-civil") as gw:
        expect_error(
            lambda: gw.verify_identity(
                adult["name"], adult["id_number"], purpose=f"核验{adult['id_number']}"
            ),
            INVALID,
            "PURPOSE_CONTAINS_PERSONAL_DATA",
            ["purpose"],
        )


def test_public_callers_may_not_verify_identity(gateway: Harness) -> None:
    adult = gateway.demo["adult_resident"]
    with gateway.client("public-portal") as gw:
        expect_error(
            lambda: gw.verify_identity(adult["name"], adult["id_number"], purpose=PURPOSE),
            DENIED,
            "VERIFICATION_NOT_ALLOWED",
        )


def test_age_and_residence_predicates(gateway: Harness) -> None:
    adult, minor = gateway.demo["adult_resident"], gateway.demo["minor"]
    preds = [("age_at_least", ["18"]), ("resident_in", [adult["region_code"][:4]])]
    with gateway.client("counter-wenchuan") as gw, gateway.client("agency-civil") as ag:
        a = gw.verify_attributes(adult["id_number"], preds, purpose=PURPOSE)
        m = ag.verify_attributes(minor["id_number"], [("age_at_least", ["18"])], purpose=PURPOSE)
    assert a.results == {"age_at_least(18)": True, f"resident_in({adult['region_code'][:4]})": True}
    assert m.results == {"age_at_least(18)": False}
    assert a.receipt is not None and m.receipt is not None


@pytest.mark.requirement("R4")
def test_social_assistance_is_verifiable_though_it_cannot_be_looked_up(gateway: Harness) -> None:
    """R4: verification works on data whose share class forbids lookup without a grant."""
    recipient, adult = gateway.demo["assistance_recipient"], gateway.demo["adult_resident"]
    with gateway.client("agency-civil") as gw:
        yes = gw.verify_attributes(
            recipient["id_number"], [("receives_social_assistance", [])], purpose="救助审核"
        )
        no = gw.verify_attributes(
            adult["id_number"], [("receives_social_assistance", [])], purpose="救助审核"
        )
        expect_error(
            lambda: gw.lookup(
                "social_assistance.recipient", recipient["id_number"], purpose="救助审核"
            ),
            DENIED,
            "GRANT_REQUIRED",
        )
    assert yes.results == {"receives_social_assistance": True}
    assert no.results == {"receives_social_assistance": False}


def test_entity_predicates(gateway: Harness) -> None:
    active, gone = gateway.demo["active_entity"], gateway.demo["deregistered_entity"]
    with gateway.client("agency-civil") as gw:
        a = gw.verify_attributes(
            active["uscc"],
            [("entity_active", []), ("holds_valid_licence", [active["licence_type"]])],
            purpose="市场主体资格核验",
        )
        g = gw.verify_attributes(gone["uscc"], [("entity_active", [])], purpose="市场主体资格核验")
    assert a.results == {
        "entity_active": True,
        f"holds_valid_licence({active['licence_type']})": True,
    }
    assert g.results == {"entity_active": False}


def test_public_may_check_that_an_entity_is_active(gateway: Harness) -> None:
    active = gateway.demo["active_entity"]
    with gateway.client("public-portal") as gw:
        r = gw.verify_attributes(active["uscc"], [("entity_active", [])], purpose="核实交易对象")
        expect_error(
            lambda: gw.verify_attributes(
                active["uscc"],
                [("holds_valid_licence", ["食品经营许可证"])],
                purpose="核实交易对象",
            ),
            DENIED,
            "VERIFICATION_NOT_ALLOWED",
        )
    assert r.results == {"entity_active": True}


def test_unknown_subject_is_not_found_where_existence_may_be_revealed(gateway: Harness) -> None:
    with gateway.client("agency-civil") as gw:
        expect_error(
            lambda: gw.verify_attributes(
                absent_id_number(gateway), [("age_at_least", ["18"])], purpose=PURPOSE
            ),
            grpc.StatusCode.NOT_FOUND,
            "SUBJECT_NOT_FOUND",
        )


@pytest.mark.parametrize(
    ("predicates", "reason", "fields"),
    [
        ([("no_such_thing", [])], "UNKNOWN_PREDICATE", ["predicates[0].name"]),
        ([("age_at_least", ["adult"])], "PREDICATE_ARGS_INVALID", ["predicates[0].args"]),
        ([("age_at_least", [])], "PREDICATE_ARGS_INVALID", ["predicates[0].args"]),
        ([("resident_in", ["51x"])], "PREDICATE_ARGS_INVALID", ["predicates[0].args"]),
        ([("entity_active", [])], "PREDICATE_SUBJECT_KIND", ["predicates[0].name"]),
        ([], "PREDICATES_MISSING", ["predicates"]),
    ],
)
def test_bad_predicates_name_the_predicate(
    gateway: Harness, predicates, reason: str, fields: list[str]
) -> None:
    adult = gateway.demo["adult_resident"]
    with gateway.client("agency-civil") as gw:
        expect_error(
            lambda: gw.verify_attributes(
                adult["id_number"], predicates, purpose=PURPOSE, kind="person"
            ),
            INVALID,
            reason,
            fields,
        )


@pytest.mark.requirement("R5")
def test_a_counters_attribute_checks_follow_its_region_as_lookups_do(gateway: Harness) -> None:
    """A person outside the counter's region answers exactly as an absent person, for
    attribute checks as for lookups; identity verification stays national."""
    minor = gateway.demo["minor"]  # seeded in another county than counter-wenchuan's
    assert not minor["region_code"].startswith("513221")
    absent = "110101199003076632"  # valid check digit, not in the pool
    with gateway.client("counter-wenchuan") as gw:
        for key in (minor["id_number"], absent):
            expect_error(
                lambda k=key: gw.verify_attributes(
                    k, [("resident_in", [minor["region_code"][:4]])], purpose=PURPOSE
                ),
                grpc.StatusCode.NOT_FOUND,
                "SUBJECT_NOT_FOUND",
            )
            expect_error(
                lambda k=key: gw.lookup("population.basic", k, ["gender"], purpose=PURPOSE),
                grpc.StatusCode.NOT_FOUND,
                "SUBJECT_NOT_FOUND",
            )
        assert gw.verify_identity(minor["name"], minor["id_number"], purpose=PURPOSE).matched
    with gateway.client("counter-songpan") as other:  # the minor's own county's counter
        if minor["region_code"].startswith("513224"):
            r = other.verify_attributes(
                minor["id_number"], [("age_at_least", ["18"])], purpose=PURPOSE
            )
            assert r.results == {"age_at_least(18)": False}
