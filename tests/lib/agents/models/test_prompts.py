"""Prompts: files validated at load; synced to the real MLflow Prompt Registry without duplicate versions."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from factory_pipelines.lib.agents.models.prompts import (
    PromptError,
    load_prompt_file,
    load_prompts,
    sync_prompts,
)
from factory_pipelines.settings import PACKAGE_DIR, turn_off_telemetry

PROMPTS = PACKAGE_DIR / "defs" / "registry" / "prompts"


def test_shipped_prompts_load_and_render() -> None:
    prompts = load_prompts(PROMPTS)
    assert set(prompts) == {"support_triage", "support_reply", "knowledge_gap"}
    text = prompts["knowledge_gap"].render(text="Do you ship to Mars?", passages="KB-001#1: shipping zones")
    assert "Do you ship to Mars?" in text and "{{" not in text
    with pytest.raises(PromptError, match=r"missing input variable\(s\) \['passages'\]"):
        prompts["knowledge_gap"].render(text="hi")


def test_undeclared_variable_names_file_and_variable(tmp_path: Path) -> None:
    data = yaml.safe_load((PROMPTS / "knowledge_gap.yaml").read_text())
    data["template"] += "\nLocale: {{locale}}"
    path = tmp_path / "knowledge_gap.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(PromptError, match=r"knowledge_gap\.yaml: .*undeclared variable\(s\) \['locale'\]"):
        load_prompt_file(path)


@pytest.mark.slow
def test_sync_creates_a_version_only_when_content_changes(tmp_path: Path) -> None:
    turn_off_telemetry()
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    prompts = load_prompts(PROMPTS)
    first = sync_prompts(client, prompts)
    assert first == {name: {"version": 1, "created": True, "alias": "champion"}
                     for name in ("knowledge_gap", "support_reply", "support_triage")}
    assert sync_prompts(client, prompts) == {k: {"version": 1, "created": False} for k in prompts}

    changed = dict(prompts)
    changed["support_triage"] = prompts["support_triage"].model_copy(
        update={"template": prompts["support_triage"].template + "\nBe brief."})
    third = sync_prompts(client, changed)
    assert third["support_triage"] == {"version": 2, "created": True, "alias": "challenger"}
    assert third["knowledge_gap"] == {"version": 1, "created": False}
    assert client.get_prompt_version_by_alias("support_triage", "champion").version in (1, "1")
    assert client.get_prompt_version_by_alias("support_triage", "challenger").version in (2, "2")
    assert "Be brief." in client.get_prompt_version("support_triage", 2).template
