"""Reading the factory's YAML configuration files (sources, agents, prompts) with errors a user can act on."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import AfterValidator, BaseModel, ValidationError

Model = TypeVar("Model", bound=BaseModel)


class ConfigError(ValueError):
    """A configuration file (source declaration, manifest, rules, prompt, policy set, suite) is missing or
    invalid; the message names the file, the field and the reason, so the CLI prints it without a traceback."""

_SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")


def _snake_case(value: str) -> str:
    if not _SNAKE.match(value):
        raise ValueError(f"{value!r} must be lower snake case (a-z, 0-9, _)")
    return value


SnakeName = Annotated[str, AfterValidator(_snake_case)]
"""A name that becomes a table, column, asset or file name: lower snake case."""


def known_names(values: list[str], known: Iterable[str], what: str) -> list[str]:
    """`values` when each is one of `known` and none repeats (a pydantic validator's body); else a ValueError
    naming the unknown ones and what is known."""
    choices = sorted(known)
    unknown = [v for v in values if v not in choices]
    if unknown:
        raise ValueError(f"unknown {what}(s) {unknown}; known: {choices}")
    if len(set(values)) != len(values):
        raise ValueError(f"a {what} is listed twice: {values}")
    return values


def problems(exc: ValidationError) -> str:
    """A pydantic error as one line a user can act on: `field.path: reason; ...`."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or '(top)'}: {e['msg']}" for e in exc.errors())


def read_mapping(path: Path, kind: str, error: type[Exception]) -> dict[str, Any]:
    """The YAML mapping in `path`; `error` names the file when it cannot be read or is not a mapping."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise error(f"{path}: cannot read {kind}: {exc}") from exc
    if not isinstance(data, dict):
        raise error(f"{path}: expected a mapping at the top level")
    return data


def validate_file(path: Path, model: type[Model], kind: str, error: type[Exception]) -> Model:
    """The YAML mapping in `path` as `model`; `error` names the file, field and reason."""
    try:
        return model.model_validate(read_mapping(path, kind, error))
    except ValidationError as exc:
        raise error(f"{path}: {problems(exc)}") from exc


def validate_named(path: Path, data: dict[str, Any], model: type[Model], kind: str, error: type[Exception]) -> Model:
    """`data` as `model`, whose `name` must match the file name; errors name the file, field and reason."""
    try:
        value = model.model_validate(data)
    except ValidationError as exc:
        raise error(f"{path}: {problems(exc)}") from exc
    name = getattr(value, "name", None)
    if name != Path(path).stem:
        raise error(f"{path}: {kind} name {name!r} must match the file name {Path(path).stem!r}")
    return value
