"""Declared source schemas: one YAML file per landing source, validated at load.

A source file names the table, the file format and pattern, the Great Expectations suite that is its
contract, the primary key, the quarantine-rate bound and every column with its type and row rules.
Ingestion reads files against this declaration (schema on read); the raw table `raw.<name>` has these
columns plus lineage columns. Errors name the file and the field, so a user bringing their own data
learns what to fix before anything runs.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from factory_pipelines.lib.config_files import SnakeName, read_mapping, validate_named

SUPPORTED_TYPES = {"VARCHAR", "BIGINT", "INTEGER", "DOUBLE", "BOOLEAN", "DATE", "TIMESTAMP", "VARCHAR[]"}


class SourceSpecError(ValueError):
    """A source declaration is missing or invalid; the message names the file."""


class ColumnSpec(BaseModel):
    """One declared column and the row-level rules a value must satisfy."""

    model_config = {"extra": "forbid"}

    name: SnakeName = Field(description="Column name in the raw table (lower snake case).")
    type: str = Field(description=f"DuckDB type, one of {sorted(SUPPORTED_TYPES)}.")
    required: bool = Field(False, description="Null or missing values are quarantined.")
    description: str = ""
    source_name: str | None = Field(None, description="Header or field name in the files, if it differs.")
    enum: list[str] | None = Field(None, description="Allowed values.")
    value_map: dict[str, str] | None = Field(
        None, description="Values as your files write them -> declared values (e.g. 'E-mail': email), applied on read."
    )
    min: float | None = Field(None, description="Smallest allowed value (numbers).")
    max: float | None = Field(None, description="Largest allowed value (numbers).")
    pattern: str | None = Field(None, description="Regular expression the whole value must match.")
    max_length: int | None = Field(None, ge=1, description="Longest allowed text, in characters.")

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        value = value.upper()
        if value not in SUPPORTED_TYPES:
            raise ValueError(f"type {value!r} is not one of {sorted(SUPPORTED_TYPES)}")
        return value

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            re.compile(value)
        return value

    @property
    def file_name(self) -> str:
        return self.source_name or self.name


class CsvOptions(BaseModel):
    """How the CSV files of a source are written."""

    model_config = {"extra": "forbid"}

    delimiter: str = ","
    quote: str = '"'
    escape: str = '"'
    timestamp_format: str | None = Field(None, description="strptime format, when not ISO 8601.")
    date_format: str | None = Field(None, description="strptime format, when not ISO 8601.")


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
    owner: str = "data-platform"
    csv: CsvOptions = CsvOptions()
    columns: list[ColumnSpec] = Field(min_length=1)

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
        return self

    @property
    def table(self) -> str:
        return f"raw.{self.name}"

    def column(self, name: str) -> ColumnSpec:
        return next(c for c in self.columns if c.name == name)

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
