"""Subject keys: stdnum's validators never turn a key into a crash.

python-stdnum 2.2's ric.is_valid raises KeyError (not False) for an 18-digit
number whose first six digits name a region its table holds without a county
(440909...): a valid all-digit USCC and an ID-number-shaped value both hit it.
"""

from __future__ import annotations

import pytest
from stdnum.cn import ric, uscc

from gateway.errors import GovgwError
from gateway.subjects import (
    is_person_key,
    normalize_id_number,
    normalize_uscc,
    stdnum_valid,
)

# A valid USCC, all digits, starting 440909: ric.is_valid raises KeyError on it.
USCC_440909 = "44090900020605238" + uscc.calc_check_digit("44090900020605238")
# An ID number's shape (check digit, birth date) in that region: ric.is_valid raises too.
ID_440909 = "44090919900101123" + ric.calc_check_digit("440909199001011230")


def test_the_values_do_make_stdnum_raise() -> None:
    # The precondition of every regression test here: if stdnum is fixed, this says so.
    for value in (USCC_440909, ID_440909):
        with pytest.raises(KeyError):
            ric.is_valid(value)
    assert uscc.is_valid(USCC_440909)


def test_stdnum_valid_treats_any_exception_as_invalid() -> None:
    assert stdnum_valid(ric.is_valid, USCC_440909) is False
    assert stdnum_valid(uscc.is_valid, USCC_440909) is True
    assert stdnum_valid(ric.validate, "not a number") is False


@pytest.mark.requirement("R13")
def test_is_person_key_on_the_values_that_raise() -> None:
    assert is_person_key(USCC_440909) is False
    assert is_person_key(ID_440909) is False
    assert is_person_key("51322119850315001" + ric.calc_check_digit("513221198503150010"))


@pytest.mark.requirement("R13")
def test_normalizers_answer_on_the_values_that_raise() -> None:
    assert normalize_uscc(USCC_440909) == USCC_440909
    # The gateway checks check digit, date and province (not stdnum's county table).
    assert normalize_id_number(ID_440909) == ID_440909
    with pytest.raises(GovgwError) as e:
        normalize_id_number(USCC_440909)  # year 0002: not a birth date the gateway accepts
    assert e.value.reason == "ID_NUMBER_COMPONENT"
