"""`drift/<agent>.yaml`: the shipped file loads, windows move with the night, and a malformed file fails
naming the file and the field."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
import yaml

from factory_pipelines.lib.drift.config import DriftConfig, DriftConfigError, config_path, load_config
from factory_pipelines.lib.drift.config import windows as drift_windows
from factory_pipelines.settings import REPO_ROOT


def _write(tmp_path: Path, data: object, name: str = "support_triage") -> Path:
    path = tmp_path / "drift" / f"{name}.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    return path


def test_the_shipped_configuration_loads_and_covers_every_family() -> None:
    cfg = load_config(config_path(REPO_ROOT / "drift", "support_triage"))
    assert cfg.agent == "support_triage" and cfg.features and cfg.text and cfg.decisions and cfg.quality
    assert "day_of_week" not in cfg.features.numeric + cfg.features.categorical
    assert cfg.bound("psi").warn == 0.4 and cfg.bound("hellinger").warn == 0.1  # file's, then the default
    assert (cfg.features.numeric_method, cfg.features.categorical_method, cfg.decisions.method) == (
        "wasserstein", "jensenshannon", "jensenshannon")


def test_windows_roll_with_the_night_or_stay_fixed() -> None:
    rolling = DriftConfig.model_validate({"agent": "a", "windows": {"current": {"days": 3},
                                                                     "reference": {"days": 7, "gap_days": 1}}})
    ref, cur = drift_windows(rolling, date(2026, 11, 10))
    assert (str(ref), str(cur)) == ("2026-10-31..2026-11-06", "2026-11-08..2026-11-10")
    fixed = DriftConfig.model_validate({"agent": "a", "windows": {"reference": {"start": "2026-10-01",
                                                                                 "end": "2026-10-14"}}})
    assert str(drift_windows(fixed, date(2026, 11, 10))[0]) == "2026-10-01..2026-10-14"
    with pytest.raises(DriftConfigError, match="reference 2026-10-01..2026-10-14 must end before"):
        drift_windows(fixed, date(2026, 10, 14))


@pytest.mark.parametrize(("data", "field"), [
    ({"agent": "support_triage", "bounds": {"psi": {"warn": "high", "error": 0.25}}}, "bounds.psi.warn"),
    ({"agent": "support_triage", "bounds": {"psi": {"warn": 0.3, "error": 0.2}}}, "bounds.psi: error 0.2 must be >= warn"),
    ({"agent": "support_triage", "bounds": {"ks": {"warn": 0.01, "error": 0.05}}}, "bounds.ks: error 0.05 must be <= warn"),
    ({"agent": "support_triage", "bounds": {"magic": {"warn": 0.1, "error": 0.2}}}, "bounds.magic"),
    ({"agent": "support_triage", "windows": {"reference": {"days": 14, "start": "2026-10-01"}}}, "windows.reference"),
    ({"agent": "support_triage", "windows": {"current": {"days": 0}}}, "windows.current.days"),
    ({"agent": "support_triage", "features": {"table": "t", "numeric": ["x"], "columns": {"y": {}}}}, "features"),
    ({"agent": "support_triage", "text": {"table": "t", "columns": []}}, "text.columns"),
    ({"agent": "support_triage", "extra": 1}, "extra"),
    ({"agent": "other_agent"}, "agent: 'other_agent' must match the file name 'support_triage'"),
    (["not", "a", "mapping"], "expected a mapping"),
])
def test_a_malformed_file_names_the_file_and_the_field(tmp_path: Path, data: object, field: str) -> None:
    path = _write(tmp_path, data)
    with pytest.raises(DriftConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith(str(path)) and field in str(caught.value), caught.value


def test_a_missing_file_says_where_it_was_expected(tmp_path: Path) -> None:
    with pytest.raises(DriftConfigError, match=r"no drift configuration \(expected <drift_config_dir>/<agent>.yaml\)"):
        load_config(config_path(tmp_path, "support_triage"))
