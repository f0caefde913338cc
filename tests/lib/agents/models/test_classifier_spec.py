"""A user's classifier file: every mistake is one ConfigError naming the file, the field and the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from factory_pipelines.defs.models.assets import SHIPPED_DIR
from factory_pipelines.lib.agents.models.classifier_spec import check_labels, load_spec, spec_files
from factory_pipelines.lib.config_files import ConfigError

GOOD = "name: triage\ndescription: Which team takes a ticket.\ntargets: {team: team}\n"


def write(folder: Path, text: str, name: str = "triage") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


def test_the_shipped_file_loads_with_its_grid() -> None:
    spec = load_spec(SHIPPED_DIR / "ticket_classifier.yaml")
    assert list(spec.targets) == ["category", "priority", "action", "tone"] and spec.holdout.last_days == 3
    assert {m.kind for m in spec.search.models} == {"logistic", "calibrated_svm", "boosted_trees"}
    assert {m.class_weight for m in spec.search.models} == {"none", "balanced"}
    assert not hasattr(spec, "promote_on"), "a version is promoted by the gate, not by its own holdout number"


def test_defaults_for_a_minimal_file(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, GOOD))
    assert spec.holdout.last_days == 3 and spec.feature_service == "support_agent_v1" and spec.goal_vs_baseline == 1.1
    assert len(spec.search.features) >= 2 and len(spec.search.models) >= 3


@pytest.mark.parametrize(("text", "message"), [
    (GOOD + "promote_on: action_accuracy\n", r"triage.yaml: promote_on: Extra inputs are not permitted"),
    (GOOD + "holdout: {last_days: 2, fraction: 0.2}\n", r"triage.yaml: holdout: .*exactly one of last_days"),
    (GOOD + "holdout: {fraction: 1.5}\n", r"triage.yaml: holdout.fraction: Input should be less than 1"),
    (GOOD + "search: {models: [{kind: forest}]}\n", r"triage.yaml: search.models.0.kind: Input should be"),
    (GOOD + "search: {features: [{word_ngrams: [2, 1]}]}\n", r"search.features.0.word_ngrams: .*1 <= low <= high"),
    (GOOD + "search: {folds: 3, model: []}\n", r"triage.yaml: search.model: Extra inputs are not permitted"),
    (GOOD.replace("name: triage", "name: other"), r"triage.yaml: classifier name 'other' must match the file name"),
])
def test_a_mistake_names_file_field_and_reason(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_spec(write(tmp_path, text))


def test_labels_must_have_the_column_and_two_classes(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("{team: team}", "{team: team, urgent: is_urgent}"))
    spec = load_spec(path)
    labels = {"T-1": {"ticket_id": "T-1", "team": "money", "_day": "d"}, "T-2": {"ticket_id": "T-2", "team": "delivery"}}
    with pytest.raises(ConfigError, match=r"triage.yaml: targets.urgent: label column 'is_urgent' is in no labelled "
                                          r"ticket of .*labels \(label columns there: \['team'\]\)"):
        check_labels(spec, path, labels, tmp_path / "labels")
    one = {t: {**row, "is_urgent": "no"} for t, row in labels.items()}
    with pytest.raises(ConfigError, match=r"triage.yaml: targets.urgent: the labels in .* give urgent \(is_urgent\) "
                                          r"the single class 'no'; a classifier needs at least two classes"):
        check_labels(spec, path, one, tmp_path / "labels")
    check_labels(spec, path, {**one, "T-3": {"ticket_id": "T-3", "team": "money", "is_urgent": "yes"}}, tmp_path)


def test_a_users_file_replaces_the_shipped_one_of_its_name(tmp_path: Path) -> None:
    mine = write(tmp_path / "mine", GOOD.replace("triage", "ticket_classifier"), "ticket_classifier")
    extra = write(tmp_path / "mine", GOOD)
    assert spec_files([SHIPPED_DIR, tmp_path / "mine"]) == [mine, extra]
    assert spec_files([SHIPPED_DIR, None]) == [SHIPPED_DIR / "ticket_classifier.yaml"]
    with pytest.raises(ConfigError, match="does not exist"):
        spec_files([SHIPPED_DIR, tmp_path / "missing"])
