"""Free-text desensitization: Chinese personal data found in remarks and case descriptions.

Recognizers are declared as data and registered once (`masking.text.registry`);
`masking.text.entities` (entity types, titles, defaults, derived from the
registry) imports no presidio; the analyzer
(`masking.text.analyzer`, presidio) is imported on first use. The `pii_text`
operator (masking.text.operator) runs it for fields the catalog marks
`free_text`.
"""

from masking.text.entities import DEFAULT_TREATMENT, ENTITY_TYPES, TITLES

__all__ = ["DEFAULT_TREATMENT", "ENTITY_TYPES", "TITLES"]
