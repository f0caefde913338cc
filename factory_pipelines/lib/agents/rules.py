"""Decision rules as configuration: conditions on what the agent knows, and the decision fields they set.

Rules carry business policy that must not be learned or guessed (refund limits, legal threats, prompt
injections). A rule file is a YAML list; each rule has an id, a description, a `when` condition and the
fields it `set`s (or `raise`s to at least a value, in the order of that field's enum). Fields a rule
decides are final: the model is never asked about them. Conditions address what the agent knows by
dotted path (`decision.action`, `order.amount`, `retrieval.top_score`, `ticket.body`); a missing value
never matches a comparison.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from factory_pipelines.lib.config_files import ConfigError, problems, read_mapping


class RuleError(ConfigError):
    """A rule file is invalid; the message names the file, the rule and the reason."""


class Condition(BaseModel):
    """Every clause given must hold. Paths are dotted (`order.amount`); values compare as given."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    text_matches: dict[str, str] = Field(default_factory=dict, description="path -> regex (searched, case as written)")
    equals: dict[str, Any] = Field(default_factory=dict)
    not_equals: dict[str, Any] = Field(default_factory=dict)
    one_of: dict[str, list[Any]] = Field(default_factory=dict)
    at_least: dict[str, float] = Field(default_factory=dict)
    greater_than: dict[str, float] = Field(default_factory=dict)
    below: dict[str, float] = Field(default_factory=dict)
    present: list[str] = Field(default_factory=list, description="paths that must hold a non-empty value")
    absent: list[str] = Field(default_factory=list, description="paths that must be missing or empty")

    @field_validator("text_matches")
    @classmethod
    def _compiles(cls, value: dict[str, str]) -> dict[str, str]:
        for path, pattern in value.items():
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"text_matches.{path}: bad regex ({exc})") from exc
        return value

    @property
    def paths(self) -> tuple[str, ...]:
        """Every fact path the condition reads (its outcome depends on these values only)."""
        keyed = (self.text_matches, self.equals, self.not_equals, self.one_of, self.at_least, self.greater_than,
                 self.below)
        return tuple(dict.fromkeys([p for clause in keyed for p in clause] + self.present + self.absent))

    def holds(self, facts: Any, ignore: frozenset[str] = frozenset()) -> bool:
        """Whether every clause holds; clauses on the paths in `ignore` count as holding."""
        def number(path: str) -> float | None:
            value = lookup(facts, path)
            return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None

        def compare(clause: dict[str, float], test: Any) -> bool:
            return all((n := number(p)) is not None and test(n, bound) for p, bound in live(clause))

        def live(clause: dict[str, Any]) -> list[tuple[str, Any]]:
            return [(p, v) for p, v in clause.items() if p not in ignore]

        return (
            all(re.search(rx, str(lookup(facts, p) or "")) for p, rx in live(self.text_matches))
            and all(lookup(facts, p) == v for p, v in live(self.equals))
            and all(lookup(facts, p) != v for p, v in live(self.not_equals))
            and all(lookup(facts, p) in values for p, values in live(self.one_of))
            and compare(self.at_least, lambda n, b: n >= b)
            and compare(self.greater_than, lambda n, b: n > b)
            and compare(self.below, lambda n, b: n < b)
            and all(lookup(facts, p) not in (None, "", []) for p in self.present if p not in ignore)
            and all(lookup(facts, p) in (None, "", []) for p in self.absent if p not in ignore)
        )


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str = Field(min_length=5)
    when: Condition
    set: dict[str, Any] = Field(default_factory=dict, description="decision field -> value ({path} allowed)")
    raise_: dict[str, str] = Field(default_factory=dict, alias="raise",
                                   description="decision field -> at least this value, in the field's enum order")


def lookup(facts: Any, path: str) -> Any:
    """The value at a dotted path, or None when any step is missing; steps go through mappings and the
    fields of objects (a `TicketFacts`), never through methods."""
    value: Any = facts
    for part in path.split("."):
        step = value if isinstance(value, dict) else getattr(value, "__dict__", None)
        if step is None or part not in step:
            return None
        value = step[part]
    return value


def fill(template: Any, facts: Any) -> Any:
    """A value with `{path}` placeholders filled; a value that is exactly one placeholder keeps its type."""
    if not isinstance(template, str):
        return template
    whole = re.fullmatch(r"\{([A-Za-z_][A-Za-z0-9_.]*)\}", template)
    if whole:
        return lookup(facts, whole.group(1))
    return re.sub(r"\{([A-Za-z_][A-Za-z0-9_.]*)\}", lambda m: str(lookup(facts, m.group(1)) or ""), template)


def load_rules(path: Path) -> list[Rule]:
    """The rules of one file, in order; errors name the file and the rule."""
    data = read_mapping(path, "rules", RuleError)
    rules = []
    for n, raw in enumerate(data.get("rules") or [], start=1):
        try:
            rules.append(Rule.model_validate(raw))
        except ValidationError as exc:
            rule_id = raw.get("id", f"#{n}") if isinstance(raw, dict) else f"#{n}"
            raise RuleError(f"{path}: rule {rule_id}: {problems(exc)}") from exc
    ids = [r.id for r in rules]
    if len(set(ids)) != len(ids):
        raise RuleError(f"{path}: rule ids must be unique, got {ids}")
    return rules


def apply_rules(rules: list[Rule], facts: Any, decision: dict[str, Any],
                enums: dict[str, list[str]]) -> tuple[dict[str, Any], list[str]]:
    """The fields the rules decide (final), and the ids of the rules that fired, in order.

    `facts` holds what the agent knows (a `TicketFacts`, or a mapping in training); the rules see the
    decision so far under `decision`, and later rules see what earlier ones set. `enums` gives each
    field's values low to high, for `raise`. `facts` itself is not changed.
    """
    decided: dict[str, Any] = {}
    fired: list[str] = []
    base = facts if isinstance(facts, dict) else vars(facts)
    for rule in rules:
        current = {**base, "decision": {**decision, **decided}}
        if not rule.when.holds(current):
            continue
        fired.append(rule.id)
        for field, value in rule.set.items():
            decided[field] = fill(value, current)
        for field, floor in rule.raise_.items():
            order = enums.get(field, [])
            now = current["decision"].get(field)
            if floor in order and (now not in order or order.index(now) < order.index(floor)):
                decided[field] = floor
    return decided, fired


def explained(rules: list[Rule], facts: dict[str, Any], field: str, value: Any) -> bool:
    """Whether a rule sets `field` to this labelled `value` for these facts, whatever was decided before.

    Used in training: a label a rule explains (an escalation forced by a refund limit) is policy, not
    something a first-pass model should learn from the text.
    """
    ignore = frozenset({f"decision.{field}"})
    return any(rule.set.get(field) == value and rule.when.holds(facts, ignore) for rule in rules)
