"""The SDK's key-kind guess on the all-digit keys stdnum's ric.is_valid raises on."""

from __future__ import annotations

from stdnum.cn import ric

from clients.sdk import guess_kind
from gateway.subjects import LEGAL_ENTITY, PERSON
from tests.gateway.test_subjects import ID_440909, USCC_440909


def test_guess_kind_does_not_raise_on_a_usccs_that_breaks_stdnum() -> None:
    assert guess_kind(USCC_440909) == LEGAL_ENTITY
    # Not a valid ID number by stdnum's table either: sent as a USCC, answered precisely.
    assert guess_kind(ID_440909) == LEGAL_ENTITY
    assert guess_kind(" 51322119850315001" + ric.calc_check_digit("513221198503150010")) == PERSON
