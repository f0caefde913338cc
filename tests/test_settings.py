"""Settings: one typed object; environment over settings file over defaults; every path under home."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from pydantic import ValidationError

from factory_pipelines.instance import instance_config
from factory_pipelines.settings import PACKAGE_DIR, Settings


def test_every_embedded_path_derives_from_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACTORY_HOME", str(tmp_path))
    monkeypatch.setenv("FACTORY_SETTINGS_FILE", str(tmp_path / "none.yaml"))
    settings = Settings()
    for path in (settings.warehouse, settings.landing_dir, settings.feature_data_dir, settings.feast_registry,
                 settings.feast_online_path, settings.dagster_home):
        assert str(path).startswith(str(tmp_path)), path
    assert settings.mlflow_tracking_uri == f"sqlite:///{tmp_path}/mlflow/mlflow.db"


def test_environment_beats_settings_file_beats_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "factory.yaml"
    file.write_text("home: /srv/factory\ndemo_seed: 11\nend_date: 2026-11-03\n")
    monkeypatch.setenv("FACTORY_SETTINGS_FILE", str(file))
    monkeypatch.setenv("FACTORY_DEMO_SEED", "12")
    monkeypatch.setenv("FACTORY_WAREHOUSE", "")  # empty means default
    settings = Settings()
    assert settings.demo_seed == 12
    assert str(settings.home) == "/srv/factory" and settings.warehouse == "/srv/factory/warehouse.duckdb"
    assert str(settings.end_date) == "2026-11-03"


def test_production_profile_is_configuration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACTORY_SETTINGS_FILE", str(tmp_path / "none.yaml"))
    monkeypatch.setenv("FACTORY_FEAST_ONLINE_STORE", "redis")
    with pytest.raises(ValidationError, match="FACTORY_FEAST_REDIS_URL"):
        Settings()
    monkeypatch.setenv("FACTORY_FEAST_REDIS_URL", "redis:6379")
    monkeypatch.setenv("FACTORY_DAGSTER_POSTGRES_URL", "postgresql://dagster@db/dagster")
    settings = Settings()
    assert instance_config(settings)["storage"] == {"postgres": {"postgres_url": "postgresql://dagster@db/dagster"}}
    assert instance_config(settings)["telemetry"] == {"enabled": False}


def test_bad_values_are_refused_with_the_setting_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACTORY_SETTINGS_FILE", str(tmp_path / "none.yaml"))
    monkeypatch.setenv("FACTORY_START_DATE", "2026-12-01")
    with pytest.raises(ValidationError, match="start_date 2026-12-01 is after end_date"):
        Settings()
    monkeypatch.setenv("FACTORY_START_DATE", "2026-11-01")
    monkeypatch.setenv("FACTORY_DEMO_DEFECT_RATE", "1.5")
    with pytest.raises(ValidationError, match="demo_defect_rate"):
        Settings()


def test_secrets_are_read_when_asked_and_print_masked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACTORY_SETTINGS_FILE", str(tmp_path / "none.yaml"))
    settings = Settings()
    monkeypatch.delenv("SUPPORT_LLM_KEY", raising=False)
    assert settings.secret("SUPPORT_LLM_KEY") is None
    monkeypatch.setenv("SUPPORT_LLM_KEY", "sk-later")  # after the settings were built: read when asked
    secret = settings.secret("SUPPORT_LLM_KEY")
    assert secret is not None and secret.get_secret_value() == "sk-later"
    assert "sk-later" not in f"{secret} {secret!r}"
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("OTHER_LLM_KEY=sk-from-dotenv\n")  # the .env of the working directory
    from_file = settings.secret("OTHER_LLM_KEY")
    assert from_file is not None and from_file.get_secret_value() == "sk-from-dotenv"


def _environment_reads(path: Path) -> list[str]:
    """Lines of `path` that read the environment: os.getenv, os.environ other than setdefault or an assignment."""
    tree = ast.parse(path.read_text())
    allowed: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "setdefault":
            allowed.add(id(node.value))
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store):
            allowed.add(id(node.value))
    reads = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "os" \
                and node.attr in ("environ", "getenv", "environb") and id(node) not in allowed:
            reads.append(f"{path.relative_to(PACKAGE_DIR.parent)}:{node.lineno}")
    return reads


def test_only_settings_reads_the_environment() -> None:
    """settings.py is the one reader of the environment (modules may still set libraries' opt-out variables)."""
    reads = [line for path in sorted(PACKAGE_DIR.rglob("*.py")) if path.name != "settings.py" or
             path.parent != PACKAGE_DIR for line in _environment_reads(path)]
    assert reads == []


def test_every_setting_is_documented_and_in_env_example() -> None:
    """docs/settings.md names every setting (`name` in its table) and .env.example has its FACTORY_ variable."""
    docs = (PACKAGE_DIR.parent / "docs" / "settings.md").read_text()
    example = (PACKAGE_DIR.parent / ".env.example").read_text().splitlines()
    names = set(Settings.model_fields)
    assert {n for n in names if f"`{n}`" not in docs} == set()
    assert {n for n in names if f"FACTORY_{n.upper()}=" not in example} == set()
    assert "`FACTORY_END_DATE`" in docs and "`FACTORY_START_DATE`" in docs
