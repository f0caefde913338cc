"""The JSON schema an agent's model answers in: the prompt's, narrowed per ticket to what is left to decide,
with the labels the first pass learned from the user's data."""

from __future__ import annotations

import copy
from typing import Any


def schema_fields(schema: dict[str, Any]) -> list[str]:
    return list(schema.get("properties", {}))


def field_enums(schema: dict[str, Any]) -> dict[str, list[str]]:
    return {k: list(v["enum"]) for k, v in schema.get("properties", {}).items() if "enum" in v}


def narrowed(schema: dict[str, Any], fixed: dict[str, Any], choices: dict[str, list[str]]) -> dict[str, Any]:
    """The answer schema with decided fields pinned and open ones limited to the first pass's likeliest labels."""
    out = copy.deepcopy(schema)
    props = out.get("properties", {})
    for name, value in fixed.items():
        if name in props:
            props[name] = {**props[name], "enum": [value]}
    for name, labels in choices.items():
        allowed = [v for v in props.get(name, {}).get("enum", []) if v in labels]
        if allowed:
            props[name] = {**props[name], "enum": allowed}
    return out


def labelled(schema: dict[str, Any], classes: dict[str, list[str]]) -> dict[str, Any]:
    """The answer schema with each field the first pass labels enumerating the classifier's classes, which come
    from the user's labels: a shop whose categories are its own gets answers in them, not the demo's. A field
    whose labels the schema already lists keeps its enum and its order (rules `raise` along it, low to high)."""
    out = copy.deepcopy(schema)
    for name, labels in classes.items():
        listed = out.get("properties", {}).get(name, {}).get("enum")
        if listed is None or not labels or set(labels) <= set(listed):
            continue
        out["properties"][name] = {**out["properties"][name],
                                   "enum": [v for v in listed if v in labels] + [v for v in labels if v not in listed]}
    return out
