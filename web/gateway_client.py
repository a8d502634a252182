"""The page's one door to the gateway: the SDK (clients.sdk), as any agency system uses it.

Everything the page needs from the SDK goes through here, so that a change in
the SDK's result types touches this module only. The page gets plain values:
Answer (the verdict and the receipt as its JSON file), or CallFailed (which
field is wrong, or that the service is unavailable).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from clients.receipts import (
    KeySetError,
    ReceiptInvalid,
    SignedReceipt,
    public_keys_from_keyset,
    verify_receipt,
)
from clients.sdk import GovgwClient, GovgwClientError

# The gateway's field paths, mapped to the page's input names.
_FIELDS = {
    "name": "name",
    "id_number": "id_number",
    "purpose": "purpose",
    "subject.key": "subject",
    "subject": "subject",
}
_UNAVAILABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
UNAVAILABLE_MESSAGE = "核验服务暂时不可用，请稍后再试；如持续出现请联系系统管理员。"


@dataclass(frozen=True)
class Answer:
    kind: str  # "identity" or "attributes"
    matched: bool  # identity: the pair matched; attributes: every predicate held
    results: dict[str, bool]  # attributes: label -> value
    receipt: dict[str, str] | None  # the receipt file `govgw receipt verify` reads
    receipt_id: str
    request_id: str
    disputed: list[str] = field(default_factory=list)


@dataclass
class CallFailed(Exception):
    """A refused call, said for the page: field errors, or one message for the form."""

    message: str
    fields: dict[str, str] = field(default_factory=dict)
    reason: str = ""
    request_id: str = ""
    unavailable: bool = False


def _failed(err: GovgwClientError) -> CallFailed:
    if err.code in _UNAVAILABLE:
        return CallFailed(UNAVAILABLE_MESSAGE, reason=err.code.name, unavailable=True)
    fields: dict[str, str] = {}
    for v in err.violations:
        # predicates[0].args and the like: the attribute part of the form.
        name = _FIELDS.get(v.field, "predicates" if v.field.startswith("predicates") else "")
        if name:
            fields.setdefault(name, f"{v.description}（{v.reason}）")
    message = _SUSPENDED.get(err.reason, "核验被拒绝：{message}（{reason}）").format(
        message=err.message,
        reason=err.reason or err.code.name,
        contact=err.metadata.get("contact") or "本服务大厅",
    )
    return CallFailed(message, fields, err.reason, err.request_id)


# Suspensions by the enumeration monitor (or an administrator), said so a clerk knows
# what happened and whom to ask: one clerk's, or the whole hall's.
_SUSPENDED = {
    "OPERATOR_SUSPENDED": (
        "您的核验权限已被暂停（短时间内未匹配的核验过多，或由管理员暂停）。"
        "请联系{contact}的管理员，由其向数据主管部门申请恢复。（{reason}）"
    ),
    "CALLER_SUSPENDED": (
        "本服务大厅的核验权限已被暂停，全体窗口暂不能核验。请联系{contact}的管理员，"
        "由其向数据主管部门申请恢复。（{reason}）"
    ),
}


class GatewayClient:
    """One channel to the gateway for the whole hall, the clerk named on each call."""

    def __init__(self, target: str, api_key: str, keys_file: Path, timeout_s: float = 10.0) -> None:
        # The page checks receipts itself, with its cached keys (also for offline checks).
        self._client = GovgwClient(
            target, api_key=api_key, timeout_s=timeout_s, verify_receipts=False
        )
        self._keys_file = keys_file
        self._keys_lock = threading.Lock()
        self._keys: dict[str, Any] | None = None

    def close(self) -> None:
        self._client.close()

    def _as_operator(self, operator: str) -> GovgwClient:
        """The one place the clerk (operator) is attached to calls: the gateway writes
        it in the audit trail and watches each clerk's checks on their own."""
        return self._client.as_operator(operator)

    def verify_identity(self, operator: str, name: str, id_number: str, purpose: str) -> Answer:
        try:
            r = self._as_operator(operator).verify_identity(name, id_number, purpose=purpose)
        except GovgwClientError as err:
            raise _failed(err) from None
        doc = self._checked(r.receipt)
        return Answer(
            "identity",
            r.matched,
            {},
            doc,
            doc["receipt_id"] if doc else "",
            r.request_id,
            [str(d) for d in r.disputed],
        )

    def verify_attributes(
        self,
        operator: str,
        subject: str,
        predicates: Sequence[tuple[str, Sequence[str]]],
        purpose: str,
    ) -> Answer:
        try:
            r = self._as_operator(operator).verify_attributes(subject, predicates, purpose=purpose)
        except GovgwClientError as err:
            raise _failed(err) from None
        doc = self._checked(r.receipt)
        return Answer(
            "attributes",
            all(r.results.values()),
            dict(r.results),
            doc,
            doc["receipt_id"] if doc else "",
            r.request_id,
            [str(d) for d in r.disputed],
        )

    # -- receipts ----------------------------------------------------------------
    def _checked(self, receipt: SignedReceipt | None) -> dict[str, str] | None:
        """The receipt as its file, its signature checked against the gateway's keys."""
        if receipt is None:
            return None
        doc = receipt.to_json()
        result = self.check_receipt(json.dumps(doc))
        if not result.valid:
            raise CallFailed(
                f"网关返回的回执未通过验签：{result.problem}", reason="RECEIPT_INVALID"
            )
        return doc

    def _public_keys(self, refresh: bool) -> dict[str, Any]:
        """The published receipt keys: cached in memory and in the data directory, so
        that receipts are still checked (offline) while the gateway is unreachable."""
        with self._keys_lock:
            if self._keys is not None and not refresh:
                return self._keys
            try:
                keyset = self._client.keyset()
                data = json.dumps(keyset, sort_keys=True, indent=2)
                tmp = self._keys_file.with_suffix(".tmp")
                fd = os.open(tmp, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
                with os.fdopen(fd, "w") as f:
                    f.write(data)
                tmp.replace(self._keys_file)
            except GovgwClientError:
                if not self._keys_file.exists():
                    raise
                keyset = json.loads(self._keys_file.read_text())
            self._keys = public_keys_from_keyset(keyset, "the gateway's receipt keys")
            return self._keys

    def check_receipt(self, text: str) -> ReceiptCheck:
        """A pasted receipt (its file, or a `verify --json` output holding one): valid or why not."""
        try:
            doc = json.loads(text)
        except ValueError:
            return ReceiptCheck(False, "不是 JSON 格式的回执")
        if isinstance(doc, dict) and isinstance(doc.get("receipt"), dict):
            doc = doc["receipt"]
        try:
            receipt = SignedReceipt.from_json(doc)
            keys = self._public_keys(refresh=False)
            if receipt.key_id not in keys:
                keys = self._public_keys(refresh=True)
            claims = verify_receipt(receipt, keys)
        except (ReceiptInvalid, KeySetError) as e:
            return ReceiptCheck(False, str(e))
        except GovgwClientError:
            return ReceiptCheck(False, "无法获取网关公布的回执公钥：" + UNAVAILABLE_MESSAGE)
        return ReceiptCheck(True, "", claims)


@dataclass(frozen=True)
class ReceiptCheck:
    valid: bool
    problem: str = ""
    claims: dict[str, str] = field(default_factory=dict)
