"""The entity type names some modules spell in code. A new type needs none: its
recognizer's `entity` is its name; masking.text.entities checks each of these is
registered. Imports nothing, so any recognizer module may take a name from here."""

from __future__ import annotations

ID_NUMBER = "ID_NUMBER"
PHONE_NUMBER = "PHONE_NUMBER"
BANK_CARD = "BANK_CARD"
USCC = "USCC"
PASSPORT = "PASSPORT"
EMAIL_ADDRESS = "EMAIL_ADDRESS"
VEHICLE_PLATE = "VEHICLE_PLATE"
PERSON = "PERSON"
ADDRESS = "ADDRESS"
NAMED = (ID_NUMBER, PHONE_NUMBER, BANK_CARD, USCC, PASSPORT, EMAIL_ADDRESS, VEHICLE_PLATE, PERSON, ADDRESS)  # fmt: skip
