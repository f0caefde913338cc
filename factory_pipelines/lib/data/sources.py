"""Declared source schemas: one YAML file per landing source, validated at load.

A source file names the table, the file format and pattern, the Great Expectations suite that is its
contract, the primary key, the quarantine-rate bound and every column with its type and row rules.
Ingestion reads files against this declaration (schema on read); the raw table `raw.<name>` has these
columns plus lineage columns. Errors name the file and the field, so a user bringing their own data
learns what to fix before anything runs.
"""

from __future__ import annotations

import difflib
import re
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

import duckdb
from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator

from factory_pipelines.lib.config_files import ConfigError, SnakeName, read_mapping, validate_named

SUPPORTED_TYPES = {"VARCHAR", "BIGINT", "INTEGER", "DOUBLE", "BOOLEAN", "DATE", "TIMESTAMP", "VARCHAR[]"}
NUMERIC_TYPES = {"BIGINT", "INTEGER", "DOUBLE"}
# What other tools call the supported types: named in the error, never accepted silently.
TYPE_HINTS = {"STRING": "VARCHAR", "TEXT": "VARCHAR", "STR": "VARCHAR", "CHAR": "VARCHAR", "INT": "INTEGER",
              "LONG": "BIGINT", "FLOAT": "DOUBLE", "NUMBER": "DOUBLE", "DECIMAL": "DOUBLE", "BOOL": "BOOLEAN",
              "DATETIME": "TIMESTAMP", "TIMESTAMPTZ": "TIMESTAMP", "LIST": "VARCHAR[]", "ARRAY": "VARCHAR[]"}
# Declared encoding -> the one the loader uses, by the name written without case, '-', '_' or spaces (so
# `windows1252`, `Windows_1252` and `ISO 8859-1` all read). DuckDB reads utf-8, utf-16 and latin-1 itself;
# windows-1252 (what Windows calls "ANSI") is transcoded to UTF-8 by Python before DuckDB reads it. ASCII is
# read as UTF-8 (a subset), and so is UTF-8 with a byte-order mark (`utf-8-sig`: the mark is skipped).
ENCODINGS = {
    "utf8": "utf-8", "utf8sig": "utf-8", "ascii": "utf-8", "usascii": "utf-8", "utf16": "utf-16",
    "latin1": "latin-1", "iso88591": "latin-1", "l1": "latin-1",
    "windows1252": "windows-1252", "cp1252": "windows-1252", "win1252": "windows-1252",
}
ENCODING_NAMES = sorted(set(ENCODINGS.values()))
ENCODING_HINTS = {"ansi": "Windows' \"ANSI\" is windows-1252", "mbcs": "Windows' \"ANSI\" is windows-1252",
                  "iso885915": "ISO-8859-15 (Latin-9) is not read: convert the files to UTF-8, or export them as "
                  "windows-1252, which also has the euro sign"}


class SourceSpecError(ConfigError):
    """A source declaration is missing or invalid; the message names the file."""


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _known_keys(model: type[BaseModel], data: Any, what: str) -> Any:
    """Refuse a key the model does not have, naming the closest one (`requried` -> `required`) and all of them;
    pydantic alone says only "Extra inputs are not permitted"."""
    if not isinstance(data, dict):
        return data
    known = sorted({f.alias or name for name, f in model.model_fields.items()})
    unknown = [str(k) for k in data if str(k) not in known]
    if unknown:
        key = unknown[0]
        raise ValueError(f"{what}unknown key {key!r}{_did_you_mean(key, known)} (the keys are {', '.join(known)})")
    return data


class FromColumn(BaseModel):
    """A default taken from another declared column of the same row (`default: {from: body}`)."""

    model_config = {"extra": "forbid", "populate_by_name": True}

    column: SnakeName = Field(alias="from", description="The declared column whose value is copied.")


class ColumnSpec(BaseModel):
    """One declared column and the row-level rules a value must satisfy."""

    model_config = {"extra": "forbid"}

    name: SnakeName = Field(description="Column name in the raw table (lower snake case).")
    type: str = Field(description=f"DuckDB type, one of {sorted(SUPPORTED_TYPES)}.")
    required: bool = Field(False, description="Null or missing values are quarantined.")
    description: str = ""
    source_name: str | None = Field(None, description="Header or field name in the files, if it differs.")
    default: Any = Field(
        None, description="Value for files that lack the column: a constant, or {from: <column>} to copy another "
        "declared column. Files that have the column keep their values (nulls included)."
    )
    enum: list[str] | None = Field(None, description="Allowed values.")
    value_map: dict[str, str] | None = Field(
        None, description="Values as your files write them -> declared values (e.g. 'E-mail': email), applied on read."
    )
    min: float | None = Field(None, description="Smallest allowed value (numbers).")
    max: float | None = Field(None, description="Largest allowed value (numbers).")
    pattern: str | None = Field(None, description="Regular expression the whole value must match.")
    max_length: int | None = Field(None, ge=1, description="Longest allowed text, in characters.")

    @model_validator(mode="before")
    @classmethod
    def _keys(cls, data: Any) -> Any:
        name = data.get("name") if isinstance(data, dict) else None
        return _known_keys(cls, data, f"column {name!r}: " if name else "")

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str, info: ValidationInfo) -> str:
        value = value.strip().upper()
        if value not in SUPPORTED_TYPES:
            column = f"column {info.data['name']!r}: " if info.data.get("name") else ""
            hint = (f"; did you mean {TYPE_HINTS[value]!r}?" if value in TYPE_HINTS
                    else _did_you_mean(value, sorted(SUPPORTED_TYPES)))
            raise ValueError(f"{column}type {value!r} is not one of {sorted(SUPPORTED_TYPES)}{hint}")
        return value

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        """Python checks the rules of a default, DuckDB (RE2) those of every row: the pattern must suit both."""
        if value is not None:
            re.compile(value)
            try:
                duckdb.execute("SELECT regexp_full_match('', ?)", [value])
            except duckdb.Error as exc:
                raise ValueError(f"pattern {value!r} is not a regular expression DuckDB runs (RE2 syntax: no "
                                 f"look-around or back-references): {str(exc).splitlines()[0]}") from None
        return value

    @field_validator("default", mode="before")
    @classmethod
    def _copied(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        if set(value) != {"from"}:
            raise ValueError(f"a default that is a mapping must be {{from: <column>}}, not {value!r}")
        return FromColumn.model_validate(value)

    @model_validator(mode="after")
    def _default_fits(self) -> ColumnSpec:
        if (self.min is not None or self.max is not None) and self.type not in NUMERIC_TYPES:
            raise ValueError(f"column {self.name!r} ({self.type}): min and max apply to numbers "
                             f"({', '.join(sorted(NUMERIC_TYPES))}); for text use max_length or pattern")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"column {self.name!r}: min {self.min} is above max {self.max}")
        if self.value_map and self.enum is not None:
            outside = {k: v for k, v in self.value_map.items() if v not in self.enum}
            if outside:
                raise ValueError(f"column {self.name!r}: value_map gives values outside its enum {self.enum}: "
                                 f"{outside} (every such row would be quarantined as enum)")
        if self.default is not None and not isinstance(self.default, FromColumn):
            self.default = _constant(self.default, self)
        return self

    @property
    def file_name(self) -> str:
        return self.source_name or self.name

    @property
    def default_from(self) -> str | None:
        """The column a `{from: ...}` default copies, if that is the default."""
        return self.default.column if isinstance(self.default, FromColumn) else None


def _constant(value: Any, column: ColumnSpec) -> Any:
    """A constant default converted to the column's type and checked against its rules."""
    kind = column.type
    try:
        if kind == "VARCHAR" and not isinstance(value, (dict, list, bool)):
            value = str(value)
        elif kind in ("BIGINT", "INTEGER") and isinstance(value, int) and not isinstance(value, bool):
            pass
        elif kind == "DOUBLE" and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = float(value)
        elif kind == "BOOLEAN" and isinstance(value, bool):
            pass
        elif kind == "DATE" and isinstance(value, (date, str)) and not isinstance(value, datetime):
            value = value if isinstance(value, date) else date.fromisoformat(value)
        elif kind == "TIMESTAMP" and isinstance(value, (date, str)):
            value = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        elif kind == "VARCHAR[]" and isinstance(value, list):
            value = [str(v) for v in value]
        else:
            raise ValueError
    except ValueError:
        raise ValueError(f"default {value!r} is not a {kind} value (column {column.name!r})") from None
    broken = _broken_rule(value, column)
    if broken:
        raise ValueError(f"default {value!r} breaks the column's own rule: {broken} (column {column.name!r})")
    return value


def _broken_rule(value: Any, column: ColumnSpec) -> str | None:
    """Which declared row rule a constant breaks (it would quarantine every row), or None."""
    text = str(value)
    if column.enum is not None and text not in column.enum:
        return f"enum {column.enum}"
    if column.pattern is not None and not re.fullmatch(column.pattern, text):
        return f"pattern {column.pattern}"
    if column.max_length is not None and len(text) > column.max_length:
        return f"max_length {column.max_length}"
    if isinstance(value, (int, float)) and column.min is not None and value < column.min:
        return f"min {column.min}"
    if isinstance(value, (int, float)) and column.max is not None and value > column.max:
        return f"max {column.max}"
    if column.required and text == "":
        return "required (an empty default)"
    return None


class CsvOptions(BaseModel):
    """How the CSV files of a source are written."""

    model_config = {"extra": "forbid"}

    delimiter: str = ","
    quote: str = '"'
    escape: str = '"'
    encoding: str = Field("utf-8", description=f"Character encoding of the files, one of {sorted(set(ENCODINGS))}.")
    null_values: list[str] = Field(
        default_factory=list, description="Field values that mean 'no value' besides an empty field, e.g. "
        "[None, NULL, N/A]; matched exactly (case-sensitive), quoted or not."
    )
    timestamp_format: str | None = Field(None, description="strptime format, when not ISO 8601.")
    date_format: str | None = Field(None, description="strptime format, when not ISO 8601.")

    @model_validator(mode="before")
    @classmethod
    def _keys(cls, data: Any) -> Any:
        return _known_keys(cls, data, "")

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        key = re.sub(r"[\s_-]", "", value.lower())
        if key not in ENCODINGS:
            hint = f" ({ENCODING_HINTS[key]})" if key in ENCODING_HINTS else ""
            raise ValueError(f"encoding {value!r} is not one of {ENCODING_NAMES}{hint}")
        return ENCODINGS[key]

    @field_validator("delimiter", "quote", "escape")
    @classmethod
    def _one_character(cls, value: str, info: ValidationInfo) -> str:
        if len(value) != 1:
            raise ValueError(f"{info.field_name} {value!r} must be exactly one character")
        return value

    @field_validator("timestamp_format", "date_format")
    @classmethod
    def _strptime(cls, value: str | None, info: ValidationInfo) -> str | None:
        """A format without a %-code matches no value, so every row would be quarantined as `type`."""
        if value is None:
            return value
        if not re.search(r"%[A-Za-z]", value):
            raise ValueError(f"{info.field_name} {value!r} has no %-code: write it in strptime codes, e.g. "
                             f"'%d/%m/%Y %H:%M' for 03/11/2026 14:05")
        try:
            duckdb.execute("SELECT try_strptime('', ?)", [value])
        except duckdb.Error as exc:
            raise ValueError(f"{info.field_name} {value!r} is not a format DuckDB reads: "
                             f"{str(exc).splitlines()[0]}") from None
        return value

    @model_validator(mode="after")
    def _distinct(self) -> CsvOptions:
        if self.delimiter == self.quote:
            raise ValueError(f"delimiter and quote are both {self.delimiter!r}")
        return self

    @property
    def null_strings(self) -> list[str]:
        """What DuckDB reads as NULL: the empty field plus the declared tokens."""
        return ["", *(v for v in self.null_values if v != "")]


class PartitionTime(BaseModel):
    """Which timestamp says the day a row belongs to, and what happens to rows of other days."""

    model_config = {"extra": "forbid"}

    column: SnakeName = Field(description="A declared TIMESTAMP or DATE column.")
    out_of_partition: Literal["error", "warn"] = Field(
        "error", description="error: such a row is quarantined (rule out_of_partition), so it counts against "
        "max_quarantine_rate; warn: it is loaded and the warning check timestamps_in_partition reports it."
    )
    lag_days: int = Field(
        0, ge=0, description="Rows dated up to this many days before the folder's day still belong to it (late "
        "deliveries, re-deliveries); rows dated after the day never do."
    )

    @model_validator(mode="before")
    @classmethod
    def _keys(cls, data: Any) -> Any:
        return _known_keys(cls, data, "")


class SourceSpec(BaseModel):
    """A landing source: its files, contract and columns. Raw table: `raw.<name>`."""

    model_config = {"extra": "forbid"}

    name: SnakeName
    description: str
    format: Literal["csv", "parquet", "jsonl"]
    file_pattern: str = Field(description="Glob of the files inside one partition folder, e.g. '*.csv'.")
    contract: str = Field(description="Great Expectations suite name (file <suites_dir>/<contract>.json).")
    primary_key: list[str] = Field(min_length=1)
    max_quarantine_rate: float = Field(0.05, ge=0, le=1, description="Share of a partition's rows.")
    quarantine_rate_min_rows: int = Field(
        100, ge=1, description="A day with fewer rows is judged as if it had this many (one bad row in ten "
        "is noise, not a broken feed)."
    )
    allow_empty_days: bool = Field(
        False, description="A day whose files hold no rows passes the contracts (a quiet day); false: it fails "
        "them, so a feed that broke never looks like a quiet day."
    )
    partition_time: PartitionTime | None = Field(None, description="The row timestamp checked against the day.")
    owner: str = "data-platform"
    csv: CsvOptions = CsvOptions()
    columns: list[ColumnSpec] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _keys(cls, data: Any) -> Any:
        return _known_keys(cls, data, "")

    @model_validator(mode="after")
    def _keys_are_columns(self) -> SourceSpec:
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ValueError("column names must be unique")
        missing = [k for k in self.primary_key if k not in names]
        if missing:
            raise ValueError(f"primary_key names undeclared columns {missing}")
        optional = [k for k in self.primary_key if not self.column(k).required]
        if optional:
            raise ValueError(f"primary_key columns must be required: {optional}")
        defaulted = [k for k in self.primary_key if self.column(k).default is not None]
        if defaulted:
            raise ValueError(f"primary_key columns cannot have a default (every row would share it): {defaulted}")
        self._check_defaults(names)
        if self.partition_time is not None:
            column = self.partition_time.column
            if column not in names or self.column(column).type not in ("TIMESTAMP", "DATE"):
                raise ValueError(f"partition_time.column {column!r} must be a declared TIMESTAMP or DATE column")
        return self

    def _check_defaults(self, names: list[str]) -> None:
        for c in self.columns:
            origin = c.default_from
            if origin is None:
                continue
            if origin == c.name or origin not in names:
                raise ValueError(f"column {c.name!r}: default from {origin!r} must name another declared column")
            source = self.column(origin)
            if source.default_from is not None:
                raise ValueError(f"column {c.name!r}: default from {origin!r}, whose own default is another column")
            if c.type not in (source.type, "VARCHAR"):
                raise ValueError(f"column {c.name!r} ({c.type}): default from {origin!r} ({source.type}) needs the "
                                 "same type, or VARCHAR")

    @property
    def table(self) -> str:
        return f"raw.{self.name}"

    def column(self, name: str) -> ColumnSpec:
        return next(c for c in self.columns if c.name == name)

    def has_column(self, name: str) -> bool:
        return any(c.name == name for c in self.columns)

    def allowed_quarantined(self, rows_read: int) -> float:
        """How many quarantined rows a day of `rows_read` rows may have and still pass."""
        return self.max_quarantine_rate * max(rows_read, self.quarantine_rate_min_rows)


def load_source(path: Path) -> SourceSpec | None:
    """Read and validate one source file (None when it says `enabled: false`); errors name file and field."""
    data = read_mapping(path, "source declaration", SourceSpecError)
    if data.get("enabled", True) is False:  # "I have no such feed": the source and what needs it are left out
        return None
    return validate_named(path, {k: v for k, v in data.items() if k != "enabled"}, SourceSpec, "source",
                          SourceSpecError)


def find_suite(name: str, suite_dirs: list[Path]) -> Path:
    """The suite file `<name>.json` from the last folder that has it; an error names every folder tried."""
    for folder in reversed(suite_dirs):
        if (Path(folder) / f"{name}.json").exists():
            return Path(folder) / f"{name}.json"
    raise SourceSpecError(f"no suite file {name}.json in {', '.join(map(str, suite_dirs))}")


def load_sources(directories: Path | list[Path], suite_dirs: list[Path] | None = None) -> dict[str, SourceSpec]:
    """All sources by name; a file in a later folder replaces one of the same name in an earlier one.

    With `suite_dirs`, each source's contract suite must exist, or the error names the source file.
    """
    folders = [directories] if isinstance(directories, Path) else list(directories)
    files = {path.stem: path for folder in folders for path in sorted(Path(folder).glob("*.yaml"))}
    if not files:
        raise SourceSpecError(f"{', '.join(map(str, folders))}: no source declarations (*.yaml)")
    loaded = {name: load_source(path) for name, path in sorted(files.items())}
    specs = {name: spec for name, spec in loaded.items() if spec is not None}
    if not specs:
        raise SourceSpecError(f"{', '.join(map(str, folders))}: every source is disabled")
    for name, spec in specs.items():
        if suite_dirs is not None:
            try:
                find_suite(spec.contract, suite_dirs)
            except SourceSpecError as exc:
                raise SourceSpecError(f"{files[name]}: contract {spec.contract!r}: {exc}") from None
    return specs
