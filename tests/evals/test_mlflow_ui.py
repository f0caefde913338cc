"""The MLflow UI shows what `factory eval` logs, read in a real browser (Debian's Chromium): the golden dataset
version on the experiment's Datasets page; champion and challenger on the Evaluation runs page, on that
dataset; the two compared side by side, case by case (Evaluation runs, Compare) and metric by metric (Runs,
Compare); a case's assessments on its trace; the gate's verdict rendered from the comparison run's
`comparison.md`.

The store is made as `factory eval` makes it (its resources, `register_cases`, `evaluate_logged` for both sides,
`log_comparison`), over the two small cases of tests/lib/evals with the scripted provider: the challenger
replies where the champion refunds (case-2), so the gate refuses it. The UI is `factory mlflow-ui`, what
`make mlflow-ui` runs, on a free loopback port. Each test opens its own fresh browser profile, so each sees the
first-visit panels a person sees (the MLflow Assistant, the Traces page's "Detect Issues" hint) and closes them.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from factory_pipelines.lib.evals.datasets import content_version
from factory_pipelines.settings import REPO_ROOT, Settings, get_settings
from tests.browser import cell_text, chromium, free_port, require_chromium, row_texts
from tests.conftest import use_home
from tests.lib.evals.conftest import AGENTS, CASES, POLICIES, answer, world_of

pytestmark = pytest.mark.slow

SUITE = "support_triage_golden"
ENUMS = {"category": ["refund", "shipping"], "priority": ["low", "medium", "high", "urgent"],
         "action": ["reply", "refund", "lookup_order", "escalate"]}
GATE = {"thresholds": {"action_accuracy": 0.9}, "tolerances": {"action_accuracy": 0.02}, "budgets": {}}
REFUND_CASE = "case-2"  # the case the challenger gets wrong
REFUND_TICKET = next(c["inputs"]["ticket"]["ticket_id"] for c in CASES if c["id"] == REFUND_CASE)
SERVER_START_S = 180  # `mlflow server` takes 30 s to answer on a busy 2-core machine


@dataclass(frozen=True)
class Logged:
    """What the store holds, as the UI should show it."""

    experiment_id: str
    dataset: str  # <suite>@<version>
    digest: str  # of the dataset version, as both evaluation runs recorded it
    run_names: dict[str, str]  # champion / challenger -> run name
    run_ids: dict[str, str]
    comparison_run: str  # its name
    failures: list[str]  # the gate's reasons, in comparison.md
    refund_traces: dict[str, str]  # side -> trace id of REFUND_CASE
    refund_scores: dict[str, float]  # scorer -> the challenger's value on REFUND_CASE
    refund_expectations: list[str]  # the names of the expectations on the challenger's trace of REFUND_CASE


def replies_instead_of_refunding(messages: list[dict[str, str]]) -> str:
    """The challenger's model: as the champion's, except that the broken earbuds (case-2) get a reply."""
    decided = json.loads(answer(messages))
    return json.dumps({**decided, "action": "reply"} if decided["action"] == "refund" else decided)


def log_evaluations(settings: Settings) -> Logged:
    """Champion and challenger of the support agent evaluated, logged and compared as `factory eval` does."""
    import mlflow

    from factory_pipelines.defs.resources import build_resources
    from factory_pipelines.lib.agents.manifests import load_manifest
    from factory_pipelines.lib.agents.models.prompts import ResolvedPrompt, load_prompt_file
    from factory_pipelines.lib.agents.models.providers import ScriptedProvider
    from factory_pipelines.lib.evals.evaluate import compare_evaluations, evaluate_logged, register_cases
    from factory_pipelines.lib.evals.harness import AgentConfiguration, Governance
    from factory_pipelines.lib.evals.scorers import case_scorers
    from factory_pipelines.lib.evals.tracking import log_comparison
    from factory_pipelines.lib.governance.gate_config import load_gate_config
    from factory_pipelines.lib.governance.policy import PolicyEngine
    from factory_pipelines.settings import PACKAGE_DIR

    manifest = load_manifest(AGENTS / "manifests" / "support_triage.yaml")
    spec = load_prompt_file(PACKAGE_DIR / "defs" / "registry" / "prompts" / "support_triage.yaml")
    rules, replies = manifest.load_config(AGENTS)
    sides = [AgentConfiguration(label, manifest, ResolvedPrompt(spec.name, version, spec.template, spec.response_schema),
                                ScriptedProvider([model] * 10), "scripted", rules=rules, replies=replies)
             for label, version, model in (("champion", 1, answer), ("challenger", 2, replies_instead_of_refunding))]
    governance = Governance(PolicyEngine.load(POLICIES, "support"), load_gate_config(POLICIES))
    scorers = case_scorers(ENUMS)

    experiment_id = build_resources(settings)["tracking"].activate(f"evals/{manifest.name}")
    version = content_version(json.dumps(CASES, sort_keys=True).encode())
    dataset = register_cases(SUITE, version, CASES, experiment_id)
    tags = {"agent": manifest.name, "suite": SUITE, "dataset_version": version}
    evaluations, run_ids = {}, {}
    for side in sides:
        evaluations[side.label], run_ids[side.label] = evaluate_logged(
            CASES, side, governance, world_of(CASES), scorers, trials=1, dataset=dataset,
            experiment_id=experiment_id, tags=tags)
    gate = compare_evaluations(evaluations["champion"], evaluations["challenger"], **GATE)
    assert not gate.passed and gate.failures  # the page must show a refusal and its reasons
    comparison = log_comparison(f"{manifest.name} champion vs challenger", run_ids["champion"],
                                run_ids["challenger"], gate.summary(), experiment_id=experiment_id, tags=tags)
    client = mlflow.MlflowClient()
    refund = [str(c["id"]) for c in CASES].index(REFUND_CASE)
    challenger = evaluations["challenger"]
    [digest] = {i.dataset.digest for run in run_ids.values() for i in client.get_run(run).inputs.dataset_inputs}
    traces = {side: next(o.trace_id for o in e.outcomes if o.case_id == REFUND_CASE) for side, e in evaluations.items()}
    expected = [a.name for a in mlflow.get_trace(traces["challenger"]).info.assessments if a.expectation is not None]
    return Logged(
        experiment_id, dataset.name, digest, {side: client.get_run(run).info.run_name for side, run in run_ids.items()},
        run_ids, client.get_run(comparison).info.run_name, list(gate.failures),
        traces, {name: values[refund] for name, values in challenger.scores.items() if values[refund] is not None},
        expected)


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Logged]:
    require_chromium()  # no browser, no need for a store
    import mlflow

    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")
        settings = use_home(patch, tmp_path_factory.mktemp("mlflow_ui") / "home")
        try:
            yield log_evaluations(settings)
        finally:
            mlflow.set_tracking_uri(previous[0])
            mlflow.set_registry_uri(previous[1])
            get_settings.cache_clear()


@pytest.fixture(scope="module")
def mlflow_ui(logged: Logged, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`factory mlflow-ui` on the store, on a free loopback port; its URL once /health answers."""
    import psutil

    port = free_port()
    log = tmp_path_factory.mktemp("mlflow_ui_server") / "server.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [str(Path(sys.executable).with_name("factory")), "mlflow-ui", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO_ROOT, env=os.environ.copy(), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            assert server.poll() is None, f"factory mlflow-ui exited {server.returncode}:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"no answer on {url} in {SERVER_START_S} s:\n{log.read_text()}"
            try:
                if requests.get(f"{url}/health", timeout=5).text == "OK":
                    break
            except (requests.ConnectionError, requests.Timeout):
                pass
            time.sleep(0.5)
        yield url
    finally:
        children = psutil.Process(server.pid).children(recursive=True) if server.poll() is None else []
        server.send_signal(signal.SIGTERM)  # `factory` stops the server's process group and waits for it
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        for child in children:  # anything the stop left behind
            if child.is_running():
                child.kill()


@pytest.fixture
def page(mlflow_ui: str, tmp_path: Path) -> Iterator[Any]:
    """A page of a fresh Chromium profile; each page of the test is screenshot into tmp_path at the end."""
    from playwright.sync_api import Error

    with chromium(tmp_path / "profile") as context:
        page = context.pages[0] if context.pages else context.new_page()  # a profile opens with one tab
        try:
            yield page
        finally:
            for n, shown in enumerate(context.pages):
                try:
                    shown.screenshot(path=tmp_path / f"page-{n}.png")
                except Error:
                    pass  # a screenshot is a help to read a failure, not part of the test


def visit(page: Any, url: str) -> None:
    """Open `url` and close what a first visit shows: the MLflow Assistant panel (it opens by itself) and, on
    the Traces page, the "Detect Issues" hint, a modal that may come before or after the panel."""
    page.add_locator_handler(page.get_by_role("button", name="Got it"), lambda hint: hint.click())
    page.goto(url)
    page.locator('[data-component-id="mlflow.assistant.chat_panel.close"]').click()


def test_the_datasets_page_lists_the_dataset_version(page: Any, mlflow_ui: str, logged: Logged) -> None:
    """Datasets: the golden dataset, named `<suite>@<version>`."""
    from playwright.sync_api import expect

    visit(page, f"{mlflow_ui}/#/experiments/{logged.experiment_id}/datasets")
    expect(page.get_by_role("heading", name="Datasets")).to_be_visible()
    row = page.get_by_role("row").filter(has_text=logged.dataset)
    expect(row).to_have_count(1)
    assert row_texts(row.get_by_text(logged.dataset, exact=True))[0] == "root"  # Created by


def test_the_evaluation_runs_page_shows_both_runs_on_that_dataset(page: Any, mlflow_ui: str, logged: Logged) -> None:
    """Evaluation runs: champion and challenger, each an Eval run on that dataset version."""
    from playwright.sync_api import expect

    visit(page, f"{mlflow_ui}/#/experiments/{logged.experiment_id}/evaluation-runs")
    for side in ("champion", "challenger"):
        row = page.get_by_role("row").filter(has_text=logged.run_names[side])
        expect(row).to_have_count(1)
        expect(row).to_contain_text("Eval")
        expect(row.locator('[data-component-id="mlflow.eval-runs.dataset-cell"]').first).to_have_text(logged.dataset)


def test_compare_shows_champion_and_challenger_case_by_case(page: Any, mlflow_ui: str, logged: Logged) -> None:
    """Evaluation runs, tick both, Actions > Compare: the two runs side by side, each case's traces in line."""
    from playwright.sync_api import expect

    visit(page, f"{mlflow_ui}/#/experiments/{logged.experiment_id}/evaluation-runs")
    for side in ("champion", "challenger"):
        page.get_by_role("row").filter(has_text=logged.run_names[side]).locator(
            '[data-component-id="mlflow.eval-runs.checkbox-cell"]').click()
    page.locator('[data-component-id="mlflow.eval-runs.actions-button"]').click()
    page.get_by_role("menuitem", name="Compare").click()

    heading = page.get_by_text("Comparing", exact=True).locator("..")
    expect(heading).to_have_text(re.compile(
        rf"Comparing.*{re.escape(logged.run_names['champion'])}.*to.*{re.escape(logged.run_names['challenger'])}", re.S))
    traces = {side: page.get_by_text(trace, exact=True) for side, trace in logged.refund_traces.items()}
    comparison = page.locator("div").filter(has=heading).filter(has=traces["champion"]).last  # the right pane
    column = comparison.get_by_text("action_accuracy", exact=True)
    for side, value in (("champion", "1"), ("challenger", "0")):
        expect(traces[side]).to_be_visible()
        assert cell_text(traces[side], column) == value, f"action_accuracy of the {side} on {REFUND_CASE}"

    comparison.get_by_text(f'"ticket_id": "{REFUND_TICKET}"').click()  # the case's request: its two traces
    expect(page.get_by_text("Comparing 2 traces", exact=True)).to_be_visible()
    compared = page.get_by_text("Compared IDs:").locator("..")
    expect(compared).to_have_text(re.compile(
        rf"{logged.refund_traces['champion']}.*{logged.refund_traces['challenger']}", re.S))


def test_compare_runs_shows_a_metric_row_with_both_values(page: Any, mlflow_ui: str, logged: Logged) -> None:
    """Runs (the same dataset version on both, digest and all), tick both, Compare: a table with one column per
    run and one row per metric, param and tag."""
    from playwright.sync_api import expect

    visit(page, f"{mlflow_ui}/#/experiments/{logged.experiment_id}/runs")
    for side in ("champion", "challenger"):
        row = page.locator(f'[role=row][row-id="{logged.run_ids[side]}"]')
        expect(row.filter(has_text=logged.dataset)).to_contain_text(f"{logged.dataset} ({logged.digest})")
        row.locator("input[type=checkbox]").first.check()
    page.get_by_role("button", name="Compare").click()

    expect(page.get_by_text("Comparing 2 Runs from 1 Experiment")).to_be_visible()
    both = [logged.run_names["champion"], logged.run_names["challenger"]]
    assert row_texts(page.get_by_text("Run Name:", exact=True)) == both
    assert row_texts(page.get_by_text("action_accuracy", exact=True)) == ["1", "0.5"]
    assert row_texts(page.get_by_text("eval.dataset", exact=True)) == [logged.dataset, logged.dataset]


def test_a_trace_shows_its_assessments(page: Any, mlflow_ui: str, logged: Logged) -> None:
    """Traces, the case the challenger replied to, Assess: one value per scorer, and the expectations."""
    from playwright.sync_api import expect

    visit(page, f"{mlflow_ui}/#/experiments/{logged.experiment_id}/traces")
    page.get_by_text(re.compile(r'"action": "reply"')).click()
    expect(page).to_have_url(re.compile(rf"traceId={logged.refund_traces['challenger']}"))
    page.get_by_role("button", name="Assess").click()

    drawer = page.locator('[data-component-id="mlflow.evaluations_review.modal"]')
    expect(drawer.get_by_text(f"Feedback ({len(logged.refund_scores)})", exact=True)).to_be_visible()
    for scorer, value in logged.refund_scores.items():
        tag = drawer.get_by_text(scorer, exact=True).locator(
            "xpath=following::*[@data-component-id='shared.model-trace-explorer.assesment-value-tag'][1]")
        shown = tag.inner_text().strip()
        assert float(shown) == pytest.approx(value, rel=1e-5), f"{scorer}: shown {shown}, logged {value}"
    assert logged.refund_scores["action_accuracy"] == 0.0
    assert logged.refund_expectations, "the trace holds the case's expectations"
    expect(drawer.get_by_text(f"Expectations ({len(logged.refund_expectations)})", exact=True)).to_be_visible()
    for name in logged.refund_expectations:
        expect(drawer.get_by_text(name, exact=True)).to_be_visible()


def test_the_comparison_run_renders_the_verdict(page: Any, mlflow_ui: str, logged: Logged) -> None:
    """Evaluation runs, the comparison run's open-run icon, Artifacts, comparison.md: rendered markdown."""
    from playwright.sync_api import expect

    visit(page, f"{mlflow_ui}/#/experiments/{logged.experiment_id}/evaluation-runs")
    row = page.get_by_role("row").filter(has_text=logged.comparison_run)
    row.hover()
    with page.context.expect_page() as opened:
        row.locator('[data-component-id="mlflow.eval-runs.run-name-cell.open-run-page"]').click()
    run_page = opened.value
    run_page.get_by_role("tab", name="Artifacts").click()
    run_page.get_by_text("comparison.md", exact=True).click()

    expect(run_page.locator("strong").filter(has_text=re.compile(r"^Gate: refused$"))).to_be_visible()
    for failure in logged.failures:
        expect(run_page.locator("li").filter(has_text=failure)).to_have_count(1)
    metric = run_page.get_by_role("cell", name="action_accuracy", exact=True)
    assert row_texts(metric) == ["1", "0.5", "-0.5", "[-1, 0]", "no", "-", REFUND_CASE]
