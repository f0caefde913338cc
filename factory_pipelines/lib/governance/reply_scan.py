"""What a reply body gives away: secrets, and other customers' emails, ids and orders (`replies/*` policies).

The body is normalized first, so look-alike letters, invisible characters and odd dashes hide nothing.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from factory_pipelines.lib.agents.tools import order_refs
from factory_pipelines.lib.governance.gate_config import GateConfig

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
CUSTOMER_REF = re.compile(r"\b[Cc]-[0-9]{3,}\b")
DASHES = re.compile("[\u2010-\u2015\u2212\ufe58\ufe63\uff0d]")
SPELLED_AT = re.compile(r"\s*(?:\[at\]|\(at\)|\bat\b)\s*", re.IGNORECASE)
SPELLED_AT_ONLY = re.compile(r"\[at\]|\(at\)", re.IGNORECASE)
SPELLED_DOT = re.compile(r"\s*(?:\[dot\]|\(dot\)|\bdot\b)\s*", re.IGNORECASE)


@dataclass(frozen=True)
class ReplyScan:
    secrets: list[str]
    other_customer_refs: list[str]


def scan_reply(body: str, customer_id: str, own_email: str | None, order_owner: Callable[[str], str | None],
               config: GateConfig) -> ReplyScan:
    """Secrets and other customers' emails, ids and orders in a reply body."""
    text = normalized(body)
    secrets = [name for name, rx in config.compiled_secrets() if rx.search(text)
               and (name != "card_number" or any(luhn(m.group(0)) for m in rx.finditer(text)))]
    others: list[str] = []
    emails = set(EMAIL.findall(text))
    if SPELLED_DOT.search(text) or SPELLED_AT_ONLY.search(text):  # "jane dot doe at mail dot example"
        emails |= set(EMAIL.findall(SPELLED_DOT.sub(".", SPELLED_AT.sub("@", text))))
    for email in emails:
        domain = email.rsplit("@", 1)[1].lower()
        ours = any(domain == d or domain.endswith(f".{d}") for d in config.allowed_email_domains)
        if email.lower() != (own_email or "").lower() and not ours:
            others.append(email)
    others += [c.upper() for c in CUSTOMER_REF.findall(text) if c.upper() != customer_id]
    for order_id in order_refs(text):
        owner = order_owner(order_id)
        if owner is not None and owner != customer_id:
            others.append(order_id)
    return ReplyScan(secrets, sorted(set(others)))


def normalized(text: str) -> str:
    """NFKC (full-width and compatibility forms), invisible format characters dropped, dashes made '-'."""
    if text.isascii():
        return text
    folded = unicodedata.normalize("NFKC", text)
    return DASHES.sub("-", "".join(ch for ch in folded if unicodedata.category(ch) != "Cf"))


def luhn(number: str) -> bool:
    """Whether a card-like number passes the Luhn check (tracking numbers and references mostly do not)."""
    digits = [int(d) for d in number if d.isdigit()][::-1]
    total = sum(d if i % 2 == 0 else (d * 2 - 9 if d > 4 else d * 2) for i, d in enumerate(digits))
    return len(digits) >= 13 and total % 10 == 0
