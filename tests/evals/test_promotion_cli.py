"""An ML engineer's day, through the `factory` command: a challenger prompt file evaluated against the champion,
promoted when the gate passes, rolled back; a regressing challenger refused, nothing moved; and the
`evals/<agent>` asset's blocking gate. Real MLflow registries and runs, real runtime, Cedar gate and audit log;
the model is scripted (it answers from the ticket, and badly when the prompt says so)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from factory_pipelines.cli import app
from factory_pipelines.lib.agents.models.providers import ScriptedProvider
from factory_pipelines.resources.llm import LLMResource
from factory_pipelines.settings import PACKAGE_DIR, REPO_ROOT, get_settings
from tests.conftest import use_home
from tests.evals.test_eval_cli import agents_without_classifier, mlflow_client
from tests.lib.evals.conftest import case

PROMPT = PACKAGE_DIR / "defs" / "registry" / "prompts" / "support_triage.yaml"
BROKEN = "BROKEN-CHALLENGER"


def cases() -> list[dict[str, Any]]:
    """Three parcels to look up and three refunds to issue, with the gate's verdict on each side effect."""
    out = []
    for n in range(1, 7):
        order = f"O-100000{n}"
        if n % 2:
            c = case(n, "Where is my parcel?", f"My order {order} has not arrived yet, where is it?",
                     {"order_id": order, "amount": 80.0, "status": "shipped"},
                     {"category": "shipping", "priority": "medium", "action": "lookup_order"})
            c["expectations"]["tool_outcomes"] = {"send_reply": "allow"}
        else:
            c = case(n, "Refund please", f"The earbuds from order {order} are broken, I want a refund of my money.",
                     {"order_id": order, "amount": 60.0}, {"category": "refund", "priority": "medium", "action": "refund"})
            c["expectations"]["tool_outcomes"] = {"issue_refund": "allow", "send_reply": "allow"}
        c["inputs"]["as_of"] = c["inputs"]["ticket"]["created_at"].replace(" ", "T") + "+00:00"
        for o in c["inputs"]["orders"]:
            o["amount_usd"] = o["amount"]
        out.append(c)
    return out


def suite(root: Path) -> None:
    (root / "suites").mkdir(parents=True)
    (root / "datasets").mkdir()
    shipped = yaml.safe_load((REPO_ROOT / "evals" / "suites" / "support_triage_golden.yaml").read_text())
    shipped["kb"] = str(PACKAGE_DIR / "demo" / "data" / "kb_articles.yaml")
    shipped.pop("stages")  # a passed gate promotes at once (the staged path: tests/defs/test_staged_promotion.py)
    (root / "suites" / "support_triage_golden.yaml").write_text(yaml.safe_dump(shipped))
    (root / "datasets" / "support_triage_golden.jsonl").write_text("".join(json.dumps(c) + "\n" for c in cases()))


def answer(messages: list[dict[str, str]]) -> str:
    """The right labels, except a prompt marked broken answers every refund with a plain reply."""
    text = " ".join(m["content"] for m in messages)
    if "broken, I want a refund" in text:
        action = "reply" if BROKEN in text else "refund"
        return json.dumps({"category": "refund", "priority": "medium", "action": action})
    return json.dumps({"category": "shipping", "priority": "medium", "action": "lookup_order"})


def challenger_file(folder: Path, extra: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "support_triage.yaml"
    path.write_text(PROMPT.read_text().replace("Answer with the category", f"{extra}\n  Answer with the category"))
    return path


@pytest.fixture
def factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    from factory_pipelines.lib.agents.models.prompts import load_prompts, sync_prompts

    suite(tmp_path / "evals")
    settings = use_home(monkeypatch, tmp_path / "home", evals_dir=str(tmp_path / "evals"),
                        manifests_dir=str(agents_without_classifier(tmp_path / "agents")), operator="ana")
    monkeypatch.setattr(LLMResource, "provider", lambda self, model: ScriptedProvider([answer] * 1000))
    sync_prompts(mlflow_client(settings), load_prompts(PROMPT.parent))  # v1: champion
    yield settings
    get_settings.cache_clear()


def invoke(*args: str) -> Any:
    result = CliRunner().invoke(app, list(args))
    result.text = " ".join(result.output.split())  # rich wraps long lines
    return result


def champion(settings: Any) -> int:
    return int(mlflow_client(settings).get_prompt_version_by_alias("support_triage", "champion").version)


def audit_kinds(settings: Any) -> list[str]:
    import duckdb

    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        return [k for (k,) in con.execute("SELECT kind FROM governance.audit_log ORDER BY seq").fetchall()]


def test_a_passing_challenger_is_promoted_and_rolled_back(factory: Any, tmp_path: Path) -> None:
    good = challenger_file(tmp_path / "good", "Be precise.")
    result = invoke("eval", "support_triage", "--prompt-file", str(good), "--promote")
    assert result.exit_code == 0, result.output
    assert "promotion gate passed" in result.text
    assert "promoted support_triage: prompt support_triage champion v1 -> v2" in result.text
    assert champion(factory) == 2
    again = invoke("promote", "support_triage")
    assert again.exit_code == 1 and "nothing to promote" in again.text

    back = invoke("rollback", "support_triage")
    assert back.exit_code == 0, back.output
    assert "rolled back support_triage: prompt support_triage champion v2 -> v1" in back.text
    assert champion(factory) == 1
    none = invoke("rollback", "support_triage")
    assert none.exit_code == 1 and "no earlier champion to restore" in none.text
    assert audit_kinds(factory) == ["alias_moved", "promoted", "rolled_back"]


def test_a_regressing_challenger_is_refused_and_its_gate_fails_the_asset(factory: Any, tmp_path: Path) -> None:
    import dagster as dg

    from factory_pipelines.defs.evals.assets import build_eval_assets
    from factory_pipelines.defs.resources import build_resources
    from factory_pipelines.lib.agents.manifests import load_manifest

    bad = challenger_file(tmp_path / "bad", f"{BROKEN}: never refund.")
    result = invoke("eval", "support_triage", "--prompt-file", str(bad), "--check")
    assert result.exit_code == 1, result.output
    assert "promotion gate failed" in result.text and "action_accuracy is 0.5, the suite requires at least 0.9" in result.text
    refused = invoke("promote", "support_triage")
    assert refused.exit_code == 1, refused.output
    assert "promotion refused, no alias moved" in refused.text and "the latest promotion gate for prompt " \
        "support_triage/1 -> support_triage/2 failed" in refused.text
    assert "action_accuracy regressed: " in refused.text and "[-" in refused.text  # the interval is printed
    assert champion(factory) == 1

    manifest = load_manifest(factory.manifests_dir / "support_triage.yaml")
    resources = {k: v for k, v in build_resources(factory).items() if k in ("tracking", "llm")}
    run = dg.materialize(build_eval_assets(factory, [manifest], []), resources=resources, raise_on_error=False)
    (check,) = run.get_asset_check_evaluations()
    assert check.check_name == "promotion_gate_support_triage" and not check.passed
    assert "action_accuracy is 0.5" in check.description
    assert champion(factory) == 1
    assert audit_kinds(factory) == ["alias_moved", "promotion_refused"]

    missing = invoke("eval", "support_triage", "--prompt-version", "9")
    assert missing.exit_code == 2 and "support_triage/9 is not in the MLflow Prompt Registry" in missing.text


def test_an_unacknowledged_drift_alert_blocks_promotion_until_it_is_acked(factory: Any, tmp_path: Path) -> None:
    import duckdb

    from factory_pipelines.lib.alerts.store import CheckFailure, ack, record

    with duckdb.connect(str(factory.warehouse)) as con:
        (alert,) = record(con, [CheckFailure("feature_drift", "drift/support_triage", "drift-run",
                                             partition="2026-11-06")], deliver=False)
        record(con, [CheckFailure("text_drift", "drift/support_triage", "drift-run", severity="warn",
                                  partition="2026-11-06")], deliver=False)
    good = challenger_file(tmp_path / "good", "Be precise.")
    refused = invoke("eval", "support_triage", "--prompt-file", str(good), "--promote")
    assert refused.exit_code == 0, refused.output  # `eval --promote` evaluates; a refusal says why
    assert "promotion gate passed" in refused.text
    assert "operations/promote_needs_no_open_drift" in refused.text and "factory alerts ack" in refused.text
    assert champion(factory) == 1, "no alias moved"
    with duckdb.connect(str(factory.warehouse)) as con:
        ack(con, alert, by="oncall", note="new pricing page, expected")  # a warn alert never blocks
    promoted = invoke("promote", "support_triage")
    assert promoted.exit_code == 0, promoted.output
    assert champion(factory) == 2
    kinds = audit_kinds(factory)
    assert kinds.count("promotion_refused") == 1 and kinds[-1] == "promoted", kinds
