"""Property: subject-rights calls leak no raw ID number, USCC, name, statement or token
into logs, errors or the audit trail, whatever the subject writes (real server, real tokens)."""

from __future__ import annotations

import json

import grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clients.sdk import GovgwClientError, to_json
from gateway import admin
from gateway.access.subject_tokens import load_private_key, mint
from tests.integration.test_privacy_properties import id_numbers, leaked, names, phones
from tests.support import CapturedLogs, Harness

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# What a refusal of these calls may be; INTERNAL, UNKNOWN or UNAVAILABLE (an audit
# record refused by the personal-data guard) would be a defect.
REFUSALS = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED,
}
FIELDS = ("name", "household_address", "phone", "ethnicity")


@SETTINGS
@given(
    id_number=id_numbers(),
    name=names,
    phone=phones,
    field=st.sampled_from(FIELDS),
    variant=st.integers(0, 7),
    caller=st.sampled_from(["public-portal", "counter-wenchuan"]),
)
def test_subject_calls_leak_nothing_personal(
    gateway: Harness,
    gateway_logs: CapturedLogs,
    id_number: str,
    name: str,
    phone: str,
    field: str,
    variant: int,
    caller: str,
) -> None:
    key = load_private_key((gateway.data_dir / "keys" / "demo-subject-issuer.pem").read_bytes())
    token = mint(key, issuer=admin.DEMO_ISSUER, subject=id_number, now=gateway.parts.clock())
    # GetMyRecords returns raw values: a subject the pool holds, whose values must
    # reach the response and nowhere else.
    held = gateway.demo["adult_resident"]
    held_token = mint(
        key, issuer=admin.DEMO_ISSUER, subject=held["id_number"], now=gateway.parts.clock()
    )
    statement = f"{name}的{field}应更正，联系电话{phone}，身份证{id_number}"
    calls = [
        lambda gw: gw.file_correction(
            token,
            dataset="population.basic",
            field=field,
            statement=statement,
            evidence_ref=f"{name}户口簿",
        ),
        lambda gw: gw.my_corrections(token),
        lambda gw: gw.all_my_usage(token),
        lambda gw: gw.request_withdrawal(token, dataset="population.basic", reason=statement),
        # A subject key where a dataset name goes, and a statement as the dataset.
        lambda gw: gw.file_correction(token, dataset=id_number, field=name, statement=statement),
        lambda gw: gw.my_records(token),
        lambda gw: gw.my_records(token, dataset=statement),
        lambda gw: gw.my_records(held_token),
    ]
    start = len(gateway_logs.lines)
    audit_before = len(gateway.audit_text())
    errors = []
    with gateway.client(caller) as gw:
        try:
            answer = calls[variant](gw)
        except GovgwClientError as e:
            assert e.code in REFUSALS, e
            errors.append(str(e) + json.dumps(e.to_json(), ensure_ascii=False))
    logs = "\n".join(gateway_logs.lines[start:])
    audit = gateway.audit_text()[audit_before:]
    assert audit, "every call is audited"
    for where, text in (("errors", "\n".join(errors)), ("logs", logs), ("audit", audit)):
        for label, value in (
            ("id_number", id_number),
            ("phone", phone),
            ("name", name),
            ("token", token),
            ("token payload", token.split(".")[0]),
            ("held id_number", held["id_number"]),
            ("held name", held["name"]),
            ("held phone", held["phone"]),
            ("held address", held["household_address"]),
        ):
            assert not leaked(value, text), f"raw {label} in {where}"
        assert statement not in text, f"statement in {where}"
    if not errors:
        # The audit keeps the subject as its keyed hash only.
        subject = held["id_number"] if variant == 7 else id_number
        assert gateway.parts.keyring.subject_hash(subject) in audit
    if variant == 7 and not errors:
        # The values did leave, to their subject: the check above is not vacuous.
        shown = json.dumps(to_json(answer), ensure_ascii=False)
        assert held["name"] in shown and held["household_address"] in shown
