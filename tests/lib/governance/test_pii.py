"""PII masking: what is masked (emails, phones, Luhn cards, mod-97 IBANs) and what never is (the factory's ids,
money, dates, numbers that fail their checksum)."""

from __future__ import annotations

import pytest

from factory_pipelines.lib.governance.pii import iban_ok, luhn_ok, mask, mask_messages, mask_value

MASKED = [
    ("write to jane.doe+shop@example.co.uk please", "write to [email] please"),
    ("mail: J_Smith@mail.example.com.", "mail: [email]."),
    ("call +1 415 555 0132 today", "call [phone] today"),
    ("call +44 20 7946 0958.", "call [phone]."),
    ("my number is (415) 555-0132", "my number is [phone]"),
    ("my number is 415-555-0132, thanks", "my number is [phone], thanks"),
    ("tel 0049 30 1234567", "tel [phone]"),
    ("ring 4155550132", "ring [phone]"),
    ("+33612345678", "[phone]"),
    ("card 4111 1111 1111 1111 was charged", "card [card] was charged"),
    ("card 4111-1111-1111-1111.", "card [card]."),
    ("amex 378282246310005", "amex [card]"),
    ("visa13 4222222222222", "visa13 [card]"),
    ("pay to DE89 3704 0044 0532 0130 00 now", "pay to [iban] now"),
    ("IBAN GB82WEST12345698765432", "IBAN [iban]"),
    ("FR1420041010050500013M02606 OK", "[iban] OK"),
    ("a@b.io and 4111111111111111 and +49 30 901820", "[email] and [card] and [phone]"),
]
KEPT = [
    "order O-1234567 arrived broken",
    "ticket T-20261101-00042 follows T-20261031-00007",
    "customer C-00012 asked",
    "refund 129.99 USD please, or $1,234.56, or 1 234,50 EUR",
    "ordered on 2026-11-01 and again 01/11/2026, 2026-11-01T12:30:00Z",
    "between 2026-11-01 and 2026-11-07",
    "card 4111 1111 1111 1112 (fails Luhn)",
    "DE89 3704 0044 0532 0130 01 (fails mod 97)",
    "call me at 12345",  # too short for a phone
    "version 3.17.2, 42 items, 1234567 units",
    "no pii here at all",
    "",
]


@pytest.mark.parametrize(("text", "expected"), MASKED)
def test_pii_is_masked_with_typed_placeholders(text: str, expected: str) -> None:
    assert mask(text) == expected
    assert mask(mask(text)) == expected  # idempotent and deterministic


@pytest.mark.parametrize("text", KEPT)
def test_ids_amounts_dates_and_bad_checksums_are_kept(text: str) -> None:
    assert mask(text) == text


def test_checksums() -> None:
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert iban_ok("DE89 3704 0044 0532 0130 00") and not iban_ok("DE89 3704 0044 0532 0130 01")
    assert not iban_ok("DE89")


def test_messages_and_nested_values() -> None:
    messages = [{"role": "system", "content": "You triage."},
                {"role": "user", "content": "I am bob@example.com, order O-1234567"}]
    masked = mask_messages(messages)
    assert masked == [{"role": "system", "content": "You triage."},
                      {"role": "user", "content": "I am [email], order O-1234567"}]
    assert messages[1]["content"].startswith("I am bob@")  # the caller's list is not changed
    assert mask_value({"a": ["x@y.org", 3, None], "b": {"c": "+1 415 555 0132"}}) == {
        "a": ["[email]", 3, None], "b": {"c": "[phone]"}}
