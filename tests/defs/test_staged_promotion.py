"""Staged promotion on real agent days: a demo day through the real data plane (DuckDB, GX, Feast), prompts in
the real MLflow registry, the real runtime, Cedar gate, outbox and audit log, and Dagster runs of `agents_job`
and `live_evals_job`. Only the model is scripted: it answers from the ticket (a challenger marked REFUND-ALL
refunds every order). A shadow day executes nothing the challenger wanted; the canary's tickets are the same on
every re-run; a challenger goes offline gate -> shadow -> canary -> champion through `factory promote`."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from factory_pipelines.definitions import build_definitions
from factory_pipelines.demo import write_demo_data
from factory_pipelines.instance import prepare_instance
from factory_pipelines.lib.agents.models.providers import ChatResult
from factory_pipelines.lib.evals.rollout import in_canary
from factory_pipelines.resources.llm import LLMResource
from factory_pipelines.runs import run_partitions
from factory_pipelines.settings import Settings, get_settings
from tests.conftest import use_home
from tests.evals.test_eval_cli import agents_without_classifier, mlflow_client
from tests.evals.test_promotion_cli import answer as golden_answer
from tests.evals.test_promotion_cli import challenger_file, invoke
from tests.evals.test_promotion_cli import suite as golden_suite

pytestmark = pytest.mark.slow
DAY = "2026-11-03"
REFUND_ALL = "REFUND-ALL"
STAGES = {"shadow_days": 1, "canary_days": 1, "canary_share": 0.4,
          "live": {"agreement_at_least": 0.9, "min_tickets": 5}}


class ScheduledModel:
    """Answers every open field as the golden cases want (`test_promotion_cli.answer`) within the schema, pinned
    fields as pinned; a prompt marked REFUND-ALL asks for a refund whatever the ticket says."""

    name, model = "scripted", "schema-aware"

    def chat(self, messages: list[dict[str, str]], *, schema: dict[str, Any] | None = None, **_: Any) -> ChatResult:
        text = " ".join(m["content"] for m in messages)
        wanted = json.loads(golden_answer(messages)) | ({"action": "refund"} if REFUND_ALL in text else {})
        answer = {}
        for name, prop in (schema or {}).get("properties", {}).items():
            allowed = prop.get("enum", [wanted.get(name, "")])
            answer[name] = wanted[name] if wanted.get(name) in allowed else allowed[0]
        content = json.dumps(answer)
        return ChatResult(content=content, data=answer, provider=self.name, model=self.model, prompt_tokens=100,
                          completion_tokens=10, latency_s=0.0, cost_usd=0.0001)


@pytest.fixture(scope="module")
def factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    from factory_pipelines.lib.agents.models.prompts import load_prompts, sync_prompts
    from factory_pipelines.settings import PACKAGE_DIR

    root = tmp_path_factory.mktemp("staged")
    golden_suite(root / "evals")
    suite_file = root / "evals" / "suites" / "support_triage_golden.yaml"
    suite_file.write_text(yaml.safe_dump({**yaml.safe_load(suite_file.read_text()), "stages": STAGES}))
    manifests = agents_without_classifier(root / "agents")
    (manifests / "knowledge_gap.yaml").unlink()
    with pytest.MonkeyPatch.context() as monkeypatch:
        settings = use_home(monkeypatch, root / "home", start_date=DAY, end_date=DAY, evals_dir=str(root / "evals"),
                            manifests_dir=str(manifests), operator="ana")
        monkeypatch.setattr(LLMResource, "provider", lambda self, model: ScheduledModel())
        write_demo_data(Path(settings.landing_dir), date(2026, 11, 3), date(2026, 11, 3), tickets_per_day=40,
                        customers=60, defect_rate=0.0, truth_dir=Path(settings.home) / "demo_truth")
        prepare_instance(settings)
        plane = run_partitions("data_plane_job", [DAY], definitions=build_definitions(settings))[0]
        assert plane.success, (plane.failed_steps, plane.error)
        sync_prompts(mlflow_client(settings), load_prompts(PACKAGE_DIR / "defs" / "registry" / "prompts"))
        yield settings
    get_settings.cache_clear()
    shutil.rmtree(root, ignore_errors=True)


def day(settings: Settings, job: str = "agents_job") -> Any:
    outcome = run_partitions(job, [DAY], definitions=build_definitions(settings))[0]
    assert outcome.success or job == "live_evals_job", (outcome.failed_steps, outcome.error)
    return outcome


def query(settings: Settings, sql: str) -> list[tuple]:
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        return con.execute(sql).fetchall()


def live_check(outcome: Any) -> tuple[bool, str]:
    (name,) = [n for n in outcome.checks if n.endswith("live_gate_support_triage")]
    return outcome.checks[name], outcome.check_descriptions.get(name, "")


def register(settings: Settings, marker: str) -> int:
    from factory_pipelines.lib.agents.models.prompts import load_prompt_file, sync_prompts

    spec = load_prompt_file(challenger_file(Path(settings.home) / marker.lower(), marker))
    return int(sync_prompts(mlflow_client(settings), {"support_triage": spec})["support_triage"]["version"])


def test_a_shadow_day_judges_the_challengers_calls_and_executes_none(factory: Settings) -> None:
    version = register(factory, f"{REFUND_ALL}: refund every order.")
    mlflow_client(factory).set_prompt_alias("support_triage", "shadow", version)
    outcome = day(factory)
    assert outcome.materialized["agents/support_triage"]["rollout"]["stage"] == "shadow"
    tickets = query(factory, f"SELECT count(*) FROM staging.tickets WHERE _partition = '{DAY}'")[0][0]
    acting = query(factory, "SELECT DISTINCT prompt_version FROM agents.decisions")
    assert acting == [(1,)]  # the champion alone acted
    shadow = query(factory, "SELECT count(*), min(prompt_version), min(role), min(stage) FROM agents.shadow_decisions")
    assert shadow == [(tickets, version, "challenger", "shadow")]
    wanted = query(factory, "SELECT verdict, executed, count(*) FROM agents.shadow_tool_calls "
                            "WHERE tool = 'issue_refund' GROUP BY ALL ORDER BY 1")
    assert sum(n for *_, n in wanted) > 0 and all(not executed for _, executed, _ in wanted), wanted
    assert "allow" in {v for v, _, _ in wanted}  # refunds the gate would have let through: none ran
    refunds = query(factory, "SELECT count(*) FROM agents.tool_calls WHERE tool = 'issue_refund' AND executed")[0][0]
    effects = query(factory, "SELECT count(*) FROM agents.outbox WHERE tool = 'issue_refund'")[0][0]
    assert effects == refunds < sum(n for *_, n in wanted)
    reviews = query(factory, "SELECT count(DISTINCT run_id), count(*) FROM governance.review_queue")
    assert reviews[0][1] == query(factory, "SELECT count(*) FROM agents.tool_calls WHERE status = 'escalated'")[0][0]

    live = day(factory, "live_evals_job")
    passed, why = live_check(live)
    assert not passed and "agreement action" in why, why
    assert query(factory, "SELECT stage, passed FROM evals.live_days") == [("shadow", False)]
    withdrawn = invoke("rollback", "support_triage")
    assert withdrawn.exit_code == 0 and f"withdrawn support_triage: prompt support_triage v{version} (shadow)" \
        in withdrawn.text, withdrawn.output


def test_a_challenger_goes_shadow_canary_champion_on_live_days(factory: Settings, tmp_path: Path) -> None:
    staged = invoke("eval", "support_triage", "--prompt-file",
                    str(challenger_file(tmp_path / "good", "Be precise.")), "--promote")
    assert staged.exit_code == 0 and "staged support_triage: prompt support_triage v" in staged.text, staged.output
    assert "in shadow from the next agent day" in staged.text
    early = invoke("promote", "support_triage")
    assert early.exit_code == 1 and "0 of the 1 passing shadow day(s)" in early.text, early.output

    day(factory)
    assert live_check(day(factory, "live_evals_job"))[0]
    assert "in canary" in invoke("promote", "support_triage").text

    version = int(mlflow_client(factory).get_prompt_version_by_alias("support_triage", "canary").version)
    runs = []
    for _ in range(2):  # a re-run of the day picks the same canary tickets
        day(factory)
        runs.append(query(factory, f"SELECT ticket_id FROM agents.decisions WHERE prompt_version = {version} "
                                   "ORDER BY ticket_id"))
    tickets = [t for (t,) in query(factory, f"SELECT ticket_id FROM staging.tickets WHERE _partition = '{DAY}'")]
    expected = sorted((t,) for t in tickets if in_canary("support_triage", t, STAGES["canary_share"]))
    assert runs[0] == runs[1] == expected and 0 < len(expected) < len(tickets)
    shadow = query(factory, "SELECT role, stage, count(*) FROM agents.shadow_decisions GROUP BY ALL")
    assert shadow == [("champion", "canary", len(expected))]
    assert live_check(day(factory, "live_evals_job"))[0]

    promoted = invoke("promote", "support_triage")
    assert promoted.exit_code == 0 and f"champion v1 -> v{version}" in promoted.text, promoted.output
    client = mlflow_client(factory)
    assert int(client.get_prompt_version_by_alias("support_triage", "champion").version) == version
    for alias in ("challenger", "shadow", "canary"):  # the stage aliases are gone with the promotion
        with pytest.raises(Exception, match="(?i)not found"):
            client.get_prompt_version_by_alias("support_triage", alias)
