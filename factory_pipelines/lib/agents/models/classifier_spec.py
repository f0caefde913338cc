"""A classifier's configuration file: what it predicts, how it is measured, and the settings it may choose.

The shipped file is `defs/models/ticket_classifier.yaml`; a file of the same name in the user's folder
(FACTORY_USER_MODELS_DIR) replaces it, another name adds a classifier. The targets are label columns of
the user's labels, and their classes are whatever those labels hold. Every mistake is one ConfigError that
names the file, the field and the reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from factory_pipelines.lib.config_files import ConfigError, SnakeName, read_mapping, validate_named


class Holdout(BaseModel):
    """Which labelled tickets are held out to measure the model: the last days, or a stratified share."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    last_days: int | None = Field(None, ge=1, description="Hold out the last N labelled days (as the model is used).")
    fraction: float | None = Field(None, gt=0, lt=1, description="Hold out this share, stratified by the target "
                                   "with the rarest class (for data that arrives in one day).")
    seed: int = Field(7, description="Seed of the stratified split.")

    @model_validator(mode="after")
    def _one_way(self) -> Holdout:
        if (self.last_days is None) == (self.fraction is None):
            raise ValueError("give exactly one of last_days (e.g. 3) or fraction (e.g. 0.2)")
        return self


class FeatureSet(BaseModel):
    """One way of turning a ticket into numbers: TF-IDF n-grams, money amounts in the text, Feast features."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    word_ngrams: tuple[int, int] = Field((1, 2), description="Word n-gram range of the TF-IDF.")
    char_ngrams: tuple[int, int] | None = Field(None, description="Character n-gram range (typos, shouting); "
                                                "null: none.")
    amount_edges: tuple[float, ...] = Field((), description="Money thresholds: indicators 'the text names an "
                                            "amount >= edge' (limits your labels follow).")
    feast_weight: float = Field(0.0, ge=0, description="Weight of the Feast features (binned, one-hot); 0: unused.")

    @field_validator("word_ngrams", "char_ngrams")
    @classmethod
    def _ordered(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and not 1 <= value[0] <= value[1]:
            raise ValueError(f"an n-gram range is [low, high] with 1 <= low <= high, not {list(value)}")
        return value


class ModelChoice(BaseModel):
    """One model tried on the chosen features: logistic regression, a calibrated linear SVM, or boosted trees."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["logistic", "calibrated_svm", "boosted_trees"]
    C: float = Field(1.0, gt=0, description="Inverse regularization (linear models).")
    class_weight: Literal["none", "balanced"] = Field("balanced", description="balanced: classes weigh alike.")
    max_iter: int = Field(40, ge=10, description="Boosting rounds (boosted trees).")

    def label(self) -> str:
        if self.kind == "boosted_trees":
            return f"boosted_trees(max_iter={self.max_iter}, class_weight={self.class_weight})"
        return f"{self.kind}(C={self.C:g}, class_weight={self.class_weight})"


DEFAULT_FEATURES = (FeatureSet(), FeatureSet(char_ngrams=(3, 5)), FeatureSet(char_ngrams=(3, 5), feast_weight=0.3))
DEFAULT_MODELS = (
    ModelChoice(kind="calibrated_svm", C=0.5), ModelChoice(kind="calibrated_svm", C=0.5, class_weight="none"),
    ModelChoice(kind="calibrated_svm", C=0.1), ModelChoice(kind="logistic", C=16.0),
    ModelChoice(kind="logistic", C=16.0, class_weight="none"), ModelChoice(kind="boosted_trees", max_iter=20),
)


class Search(BaseModel):
    """The settings cross-validation chooses from, on the training rows only: first a feature set (each scored
    with the first model), then a model on that feature set, per target, by mean macro-F1 over the folds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    folds: int = Field(3, ge=2, le=10, description="Folds: whole days when the training rows span days, else "
                       "stratified with the seed.")
    features: tuple[FeatureSet, ...] = Field(DEFAULT_FEATURES, min_length=1)
    models: tuple[ModelChoice, ...] = Field(DEFAULT_MODELS, min_length=1)


class ClassifierSpec(BaseModel):
    """A classifier file (`<name>.yaml`): model name, targets, feature service, holdout, search, seed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: SnakeName
    description: str = Field(min_length=10)
    feature_service: str = "support_agent_v1"
    targets: dict[SnakeName, str] = Field(min_length=1, description="Model output -> label column.")
    holdout: Holdout = Holdout(last_days=3)
    explained_by_rules: str | None = Field(None, description="Rules (agents/rules/<name>.yaml) whose labels are "
                                           "policy: left out of training and scoring of that target.")
    search: Search = Search()
    goal_vs_baseline: float = Field(1.1, gt=0, description="Macro-F1 ratio to the TF-IDF baseline to reach.")
    seed: int = 7


def load_spec(path: Path) -> ClassifierSpec:
    """The classifier file at `path`; a ConfigError names the file, field and reason."""
    return validate_named(path, read_mapping(path, "classifier", ConfigError), ClassifierSpec, "classifier",
                          ConfigError)


def spec_files(folders: Iterable[Path | None]) -> list[Path]:
    """The classifier files (`*.yaml`) of the folders, a later folder's file replacing an earlier one's."""
    found: dict[str, Path] = {}
    for folder in folders:
        if folder is None:
            continue
        if not Path(folder).is_dir():
            raise ConfigError(f"{folder}: the classifier folder does not exist (FACTORY_USER_MODELS_DIR)")
        for path in sorted(Path(folder).glob("*.yaml")):
            found[path.stem] = path
    return [found[name] for name in sorted(found)]


def check_labels(spec: ClassifierSpec, path: Path, labels: dict[str, dict[str, Any]], where: Path) -> None:
    """Every target's label column is in the labels and has at least two classes; else one ConfigError."""
    columns = sorted({k for row in labels.values() for k in row if not k.startswith("_")} - {"ticket_id"})
    for target, column in spec.targets.items():
        classes = {str(row[column]) for row in labels.values() if row.get(column) not in (None, "")}
        if not classes:
            raise ConfigError(f"{path}: targets.{target}: label column {column!r} is in no labelled ticket of "
                              f"{where} (label columns there: {columns})")
        if len(classes) < 2:
            raise ConfigError(f"{path}: targets.{target}: the labels in {where} give {target} ({column}) the single "
                              f"class {sorted(classes)[0]!r}; a classifier needs at least two classes")
