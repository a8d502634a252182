"""The `pii_text` operator: find personal data in a free-text field and mask each entity
with the operator the plan names for its type.

    {"operator": "pii_text",
     "params": {"entities": {"ID_NUMBER": {"operator": "mask", "params": {"keep_first": 6}},
                             "PERSON": {"operator": "mask", "params": {"keep_first": 1}},
                             "ADDRESS": {"operator": "generalize",
                                         "params": {"kind": "address", "level": "district"}}},
                "default": {"operator": "mask"}}}

A detected entity whose type the plan does not name gets `default` (without
one, its type's own treatment from the registry: a full mask), so nothing detected leaves raw unless the plan
says `keep` for that type. Text between entities is kept: what is not
detected is not masked, which is why the catalog marks free-text fields and
why `make eval-masking` measures recall.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from gateway.catalog import Treatment
from masking.base import MaskingContext, ParamReader
from masking.operators import Operator, apply_treatment, register
from masking.text.entities import DEFAULT_TREATMENTS, ENTITY_TYPES

NAME = "pii_text"
# For validating nested treatments only (apply_treatment of None masks nothing).
_CHECK_CTX = MaskingContext("check", b"\0" * 32, datetime.date(2000, 1, 1))
_FALLBACK = Treatment("mask")
_TYPE_DEFAULTS = {
    t: Treatment(d["operator"], dict(d.get("params") or {})) for t, d in DEFAULT_TREATMENTS.items()
}


def _treatment(reader: ParamReader, where: str, doc: Any) -> Treatment:
    if not isinstance(doc, Mapping) or not isinstance(doc.get("operator"), str):
        raise reader.error(where, "must be a treatment {operator, params}")
    extra = set(doc) - {"operator", "params"}
    if extra:
        raise reader.error(where, f"has unknown keys: {', '.join(sorted(map(str, extra)))}")
    if doc["operator"] == NAME:
        raise reader.error(where, f"cannot be {NAME} itself")
    params = doc.get("params") or {}
    if not isinstance(params, Mapping):
        raise reader.error(where, "params must be a mapping")
    treatment = Treatment(doc["operator"], dict(params))
    # Validate the nested operator now (unknown operator or bad params).
    apply_treatment(treatment, None, _CHECK_CTX)
    return treatment


class _Spec:
    def __init__(self, params: Mapping[str, Any]) -> None:
        reader = ParamReader(NAME, params, ("entities", "default"))
        entities = params.get("entities", {})
        if not isinstance(entities, Mapping):
            raise reader.error("entities", "must be a mapping of entity type to treatment")
        unknown = [str(t) for t in entities if t not in ENTITY_TYPES]
        if unknown:
            raise reader.error(
                "entities",
                f"names unknown entity types {', '.join(sorted(unknown))}"
                f" (known: {', '.join(ENTITY_TYPES)})",
            )
        # Without a plan-wide `default`, a type the plan does not name gets its own
        # (masking.text.registry: a full mask unless its recognizer says otherwise).
        self.default = (
            _treatment(reader, "default", params["default"]) if "default" in params else None
        )
        self.by_type = {t: _treatment(reader, f"entities.{t}", doc) for t, doc in entities.items()}

    def treatment(self, entity_type: str) -> Treatment:
        return self.by_type.get(entity_type) or self.default or _TYPE_DEFAULTS[entity_type]


def _keep_line_breaks(value: str, masked: str) -> str:
    """A number split across lines is masked whole; its line breaks stay where they were
    (when the operator kept the length, as mask does), so the text keeps its lines."""
    if len(masked) != len(value) or not any(c in value for c in "\r\n"):
        return masked
    return "".join(v if v in "\r\n" else m for v, m in zip(value, masked, strict=True))


def desensitize(
    text: str, params: Mapping[str, Any], ctx: MaskingContext
) -> tuple[str, list[dict[str, Any]]]:
    """(masked text, the entities found: type, start, end, score, operator) for one text.

    Spans are offsets in the input text.
    """
    from masking.text.analyzer import text_analyzer  # presidio: loaded on first use

    spec = _Spec(params)
    found = text_analyzer().analyze(text)
    parts: list[str] = []
    at = 0
    report = []
    for e in found:
        t = spec.treatment(e.type)
        parts.append(text[at : e.start])
        masked = apply_treatment(t, text[e.start : e.end], ctx)
        if not masked and t.operator == "generalize":
            # The generalizer could not place it (a bare, ambiguous county):
            # mask it instead of dropping words out of the sentence.
            t = _FALLBACK
            masked = apply_treatment(t, text[e.start : e.end], ctx)
        parts.append(_keep_line_breaks(text[e.start : e.end], masked))
        at = e.end
        report.append({**e.to_json(), "operator": t.operator})
    parts.append(text[at:])
    return "".join(parts), report


@register
class PiiText(Operator):
    """Free-text desensitization; see the module doc."""

    name = NAME

    def check_params(self, params: Mapping[str, Any]) -> None:
        _Spec(params)

    def apply(self, value: str, params: Mapping[str, Any], ctx: MaskingContext) -> str:
        return desensitize(value, params, ctx)[0]
