"""PII masking: emails, phone numbers, card numbers (Luhn) and IBANs (mod 97) become typed placeholders.

Why: ticket text goes to remote model providers and into trace payloads, neither of which needs to know who
the customer is. Masking is deterministic (the same text always masks the same way, so cache keys and
replays stay stable) and conservative about the factory's own identifiers: order ids (`O-1234567`), ticket
ids (`T-20261101-00001`), customer ids (`C-00012`), money amounts and dates are never touched. Card numbers
and IBANs are masked only when their checksum holds, so a random long number stays as it is.

`mask_traces` scopes trace masking to a block: `span_processor` (registered with MLflow once) masks a span's
inputs and outputs as it ends, only inside such a block, so one process can trace raw and masked runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

EMAIL, PHONE, CARD, IBAN = "[email]", "[phone]", "[card]", "[iban]"

# Not glued to a word or an id prefix (`O-`, `T-2026...-`), not followed by a word or decimals.
_START, _END = r"(?<![\w-])", r"(?![\w]|-\w|[.,]\d)"
# One pass, most specific first: an IBAN-shaped run that fails mod 97 is consumed and kept as it is, so its
# digits are never read as a card or a phone number.
_PII = re.compile(
    r"(?P<iban>(?<![\w-])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}(?![a-z0-9]))"
    r"|(?P<email>(?<![\w.+-])[A-Za-z0-9][\w.+-]*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})"
    r"|(?P<card>" + _START + r"(?:\d{13,19}|\d{4}(?:[ -]\d{4}){2}[ -]\d{1,4}(?:[ -]\d{3})?|\d{4}[ -]\d{6}[ -]\d{4,5})"
    + _END + r")"
    r"|(?P<phone>" + _START + r"(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,12}(?:[ .-]\d{1,12}){0,5}" + _END + r")")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}|\d{2}[./-]\d{2}[./-]\d{4}")


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum of a card number (digits only)."""
    total = 0
    for k, ch in enumerate(reversed(digits)):
        d = int(ch)
        if k % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_ok(text: str) -> bool:
    """ISO 13616 mod-97 check of an IBAN (spaces allowed): country letters, check digits, BBAN."""
    compact = text.replace(" ", "")
    if not 15 <= len(compact) <= 34 or not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]+", compact):
        return False
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in moved)) % 97 == 1


def _iban(text: str) -> str:
    for end in range(len(text), 14, -1):  # a trailing capitalised word may have been swallowed
        if text[end - 1] != " " and iban_ok(text[:end]):
            return IBAN + text[end:]
    return text


def _card(text: str) -> str:
    digits = re.sub(r"\D", "", text)
    if luhn_ok(digits):
        return CARD
    return _phone(text)


def _phone(text: str) -> str:
    digits = sum(ch.isdigit() for ch in text)
    if _DATE.search(text):
        return text
    if text.startswith("+") and 8 <= digits <= 15:
        return PHONE
    return PHONE if 10 <= digits <= 15 else text


def _replace(match: re.Match[str]) -> str:
    kind, text = match.lastgroup, match.group(0)
    if kind == "iban":
        return _iban(text)
    if kind == "email":
        return EMAIL
    return _card(text) if kind == "card" else _phone(text)


def mask(text: str) -> str:
    """`text` with emails, phone numbers, Luhn-valid card numbers and mod-97-valid IBANs replaced by
    `[email]`, `[phone]`, `[card]`, `[iban]`; everything else unchanged."""
    return _PII.sub(_replace, text) if text else text


def mask_value(value: Any) -> Any:
    """Strings masked anywhere inside dicts, lists and tuples (keys kept); other values unchanged."""
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, dict):
        return {k: mask_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_value(v) for v in value]
    return value


def mask_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat messages with their `content` masked (new dicts; role and other keys kept)."""
    return [{**m, "content": mask_value(m["content"])} if "content" in m else dict(m) for m in messages]


# --- trace payloads -----------------------------------------------------------------------------------------

_MASKING: ContextVar[bool] = ContextVar("factory_mask_traces", default=False)


def span_processor(span: Any) -> None:
    """MLflow span processor: masks the span's inputs and outputs when ended inside `mask_traces(True)`."""
    if not _MASKING.get():
        return
    if span.inputs is not None:
        span.set_inputs(mask_value(span.inputs))
    if span.outputs is not None:
        span.set_outputs(mask_value(span.outputs))


@contextmanager
def mask_traces(enabled: bool = True) -> Iterator[None]:
    """Mask the payloads of spans that end inside this block (this thread or task only)."""
    if not enabled:
        yield
        return
    import mlflow
    from mlflow.tracing.config import get_config

    current = list(get_config().span_processors)
    if span_processor not in current:
        mlflow.tracing.configure(span_processors=[*current, span_processor])
    token = _MASKING.set(True)
    try:
        yield
    finally:
        _MASKING.reset(token)
