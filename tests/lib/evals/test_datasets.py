"""Golden datasets and suites load only when every line and field is right; every error names the file and the
line or field; a dataset's version is the hash of its bytes."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from factory_pipelines.lib.config_files import ConfigError
from factory_pipelines.lib.evals.datasets import ACTIONS, CATEGORIES, PRIORITIES, DatasetError, load_dataset
from factory_pipelines.lib.evals.suites import KNOWN_SCORERS, LOWER, SuiteError, load_suite
from factory_pipelines.settings import PACKAGE_DIR

FEATURES = {"plan": "pro", "region": "na", "tenure_days": 400, "lifetime_spend": 2500.0, "orders_30d": 1,
            "spend_30d": 80.0, "spend_90d": 300.0, "refunds_90d": 0, "refund_amount_90d": 0.0, "tickets_7d": 1,
            "tickets_30d": 2}
CASE: dict[str, Any] = {
    "id": "refund-small", "tags": ["refund_below_limit"],
    "inputs": {"ticket": {"ticket_id": "T-20270215-90001", "customer_id": "C-70001", "created_at": "2027-02-15 10:00:00",
                          "channel": "email", "subject": "Refund please", "body": "Order O-9900001 is broken.",
                          "order_id": "O-9900001", "in_reply_to": ""},
               "customer": FEATURES, "as_of": "2027-02-15T10:00:00+00:00",
               "orders": [{"order_id": "O-9900001", "customer_id": "C-70001", "product": "Frost Insulated Bottle",
                           "amount": 24.99, "currency": "USD", "amount_usd": 24.99, "status": "delivered",
                           "refund_amount": None, "updated_at": "2027-02-13 10:00:00"}]},
    "expectations": {"category": "refund", "priority": "medium", "action": "refund",
                     "tool_outcomes": {"issue_refund": "allow", "send_reply": "allow"},
                     "reply_must_contain": ["refund"], "reply_must_not_contain": []},
}
GAP_CASE: dict[str, Any] = {
    "id": "gap-gift-wrapping", "tags": [],
    "inputs": {"ticket": {**CASE["inputs"]["ticket"], "subject": "Gift wrapping", "body": "Do you gift-wrap?",
                          "order_id": ""}, "as_of": "2027-02-15T10:00:00Z"},
    "expectations": {"answered": False, "tool_outcomes": {"escalate_to_human": "allow"}},
}


def case(**changes: Any) -> dict[str, Any]:
    """CASE with paths set (`inputs__ticket__channel`), or removed where the value is `...`."""
    out = copy.deepcopy(CASE)
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        node = out
        for key in parents:
            node = node[key]
        if value is ...:
            del node[leaf]
        else:
            node[leaf] = value
    return out


def write(path: Path, *lines: Any) -> Path:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def test_a_valid_dataset_loads_with_a_content_version(tmp_path: Path) -> None:
    path = write(tmp_path / "support_triage_golden.jsonl", case(), case(id="refund-two"))
    dataset = load_dataset(path)
    assert (dataset.name, dataset.agent, len(dataset.cases)) == ("support_triage_golden", "support_triage", 2)
    assert dataset.version == hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    record = dataset.records()[0]
    assert record["inputs"]["orders"][0]["amount"] == 24.99 and record["expectations"]["action"] == "refund"


def test_the_version_is_the_bytes_not_the_place_and_changes_with_one_byte(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    first = write(tmp_path / "a" / "golden.jsonl", case())
    second = tmp_path / "golden.jsonl"
    second.write_bytes(first.read_bytes())
    assert load_dataset(first).version == load_dataset(second).version
    second.write_bytes(first.read_bytes().replace(b"Refund please", b"Refund pleasE"))
    assert load_dataset(first).version != load_dataset(second).version


def test_a_knowledge_gap_dataset_is_told_by_its_expectations(tmp_path: Path) -> None:
    dataset = load_dataset(write(tmp_path / "kg.jsonl", GAP_CASE))
    assert dataset.agent == "knowledge_gap" and dataset.cases[0].expectations.answered is False
    with pytest.raises(DatasetError, match=r"kg\.jsonl:1: case 'gap-gift-wrapping': .*expectations\.category"):
        load_dataset(tmp_path / "kg.jsonl", agent="support_triage")


BAD_LINES = [
    ("not JSON", '{"id": "x", ', r":2: not JSON"),
    ("not an object", "[1, 2]", r":2: expected a JSON object, got list"),
    ("missing case field", case(expectations=...), r":2: case 'refund-small': expectations: Field required"),
    ("missing label", case(expectations__category=...), r":2: case 'refund-small': expectations\.category: Field required"),
    ("missing ticket column", case(inputs__ticket__in_reply_to=...), r"inputs\.ticket\.in_reply_to: Field required"),
    ("missing feature", case(inputs__customer={k: v for k, v in FEATURES.items() if k != "refunds_90d"}),
     r"inputs\.customer\.refunds_90d: Field required"),
    ("wrong priority", case(expectations__priority="critical"), r":2: .*expectations\.priority: Input should be 'low'"),
    ("wrong action", case(expectations__action="close"), r"expectations\.action"),
    ("wrong channel", case(inputs__ticket__channel="fax"), r"inputs\.ticket\.channel"),
    ("wrong verdict", case(expectations__tool_outcomes={"issue_refund": "maybe"}), r"expectations\.tool_outcomes\.issue_refund"),
    ("not a side effect", case(expectations__tool_outcomes={"kb_search": "allow"}),
     r"expectations\.tool_outcomes: .*\['kb_search'\] are not side-effect tools"),
    ("bad time", case(inputs__ticket__created_at="yesterday"), r"inputs\.ticket\.created_at: .*not an ISO time"),
    ("decided before the ticket", case(inputs__as_of="2027-02-15T09:59:59Z"), r"inputs: .*as_of .* is before the ticket"),
    ("unreachable order", case(inputs__ticket__order_id="", inputs__ticket__body="Broken."),
     r"order O-9900001 is neither the ticket's order_id nor named in its text"),
    ("negative amount", case(inputs__orders=[{**CASE["inputs"]["orders"][0], "amount": -1}]), r"inputs\.orders\.0\.amount"),
    ("unknown field", case(expectations__confidence=0.9), r"expectations\.confidence: Extra inputs are not permitted"),
    ("bad tag", case(tags=["Refund Above"]), r"tags\.0: .*lower snake case"),
    ("bad id", case(id="has space"), r"id: String should match pattern"),
]


@pytest.mark.parametrize(("line", "reason"), [pytest.param(line, reason, id=name) for name, line, reason in BAD_LINES])
def test_a_bad_line_names_the_file_the_line_and_the_field(tmp_path: Path, line: Any, reason: str) -> None:
    path = write(tmp_path / "golden.jsonl", case(id="fine"), line)
    with pytest.raises(DatasetError, match=reason) as caught:
        load_dataset(path, agent="support_triage")
    assert str(caught.value).startswith(f"{path}:2: ")
    assert isinstance(caught.value, ConfigError) and isinstance(caught.value, ValueError)


def test_a_duplicate_id_names_both_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "golden.jsonl", case(), "", case(id="other"), case())
    with pytest.raises(DatasetError, match=r"golden\.jsonl:4: duplicate id 'refund-small' \(first on line 1\)"):
        load_dataset(path)


@pytest.mark.parametrize(("content", "reason"), [(None, "cannot read golden dataset"), ("", "no cases"),
                                                 ("\n\n", "no cases")])
def test_a_missing_or_empty_dataset_is_an_error(tmp_path: Path, content: str | None, reason: str) -> None:
    path = tmp_path / "golden.jsonl"
    if content is not None:
        path.write_text(content)
    with pytest.raises(DatasetError, match=reason):
        load_dataset(path)


SUITE: dict[str, Any] = {
    "name": "golden", "agent": "support_triage", "dataset": "datasets/golden.jsonl", "kb": "kb.yaml",
    "scorers": ["action_accuracy", "forbidden_actions", "latency_p95_s"],
    "thresholds": {"action_accuracy": {"at_least": 0.9}, "forbidden_actions": {"at_most": 0}},
    "tolerances": {"action_accuracy": 0.02, "forbidden_actions": 0},
    "trials": 1, "budgets": {"max_cost_per_ticket_usd": 0.01, "max_latency_p95_s": 10.0},
}


def suite_file(root: Path, **changes: Any) -> Path:
    """An evals folder under `root` with a dataset, a KB and suites/golden.yaml (SUITE with `changes`)."""
    (root / "suites").mkdir(parents=True, exist_ok=True)
    (root / "datasets").mkdir(exist_ok=True)
    write(root / "datasets" / "golden.jsonl", case())
    (root / "kb.yaml").write_text("articles: []\n")
    spec = {k: v for k, v in {**SUITE, **changes}.items() if v is not ...}
    path = root / "suites" / "golden.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_a_valid_suite_loads_its_dataset_and_bounds(tmp_path: Path) -> None:
    suite = load_suite(suite_file(tmp_path))
    assert suite.dataset_path == tmp_path / "datasets" / "golden.jsonl" and suite.kb_path == tmp_path / "kb.yaml"
    assert suite.bounds == {"action_accuracy": 0.9, "forbidden_actions": 0.0}
    assert suite.budget_limits == {"max_cost_per_ticket_usd": 0.01, "max_latency_p95_s": 10.0}
    assert suite.thresholds["forbidden_actions"].met(0) and not suite.thresholds["action_accuracy"].met(0.89)
    assert suite.load_dataset().version == load_dataset(suite.dataset_path).version


BAD_SUITES = [
    ("unknown scorer", {"scorers": ["action_accuracy", "vibes"]}, r"scorers: .*unknown scorer\(s\) \['vibes'\]"),
    ("scorer of another agent", {"scorers": ["action_accuracy", "forbidden_actions", "gap_recall"], "tolerances": {},
                                 "thresholds": {}}, r"scorers: \['gap_recall'\] do not apply to agent support_triage"),
    ("missing dataset", {"dataset": "datasets/nope.jsonl"}, r"dataset: 'datasets/nope.jsonl' does not exist"),
    ("missing kb", {"kb": "nope.yaml"}, r"kb: 'nope.yaml' does not exist"),
    ("no dataset field", {"dataset": ...}, r"dataset: Field required"),
    ("threshold not run", {"thresholds": {"groundedness": {"at_least": 0.5}}}, r"thresholds name scorers the suite does not run"),
    ("threshold the wrong way", {"thresholds": {"forbidden_actions": {"at_least": 0}}},
     r"thresholds\.forbidden_actions: lower is better, so its bound is at_most"),
    ("two bounds", {"thresholds": {"action_accuracy": {"at_least": 0.9, "at_most": 1}}}, r"exactly one of at_least"),
    ("negative tolerance", {"tolerances": {"action_accuracy": -0.1}}, r"tolerances must be >= 0"),
    ("no trials", {"trials": 0}, r"trials: Input should be greater than or equal to 1"),
    ("no budgets", {"budgets": ...}, r"budgets: Field required"),
    ("wrong name", {"name": "other"}, r"suite name 'other' must match the file name 'golden'"),
]


@pytest.mark.parametrize(("changes", "reason"), [pytest.param(c, r, id=n) for n, c, r in BAD_SUITES])
def test_a_bad_suite_names_the_file_and_the_field(tmp_path: Path, changes: dict[str, Any], reason: str) -> None:
    path = suite_file(tmp_path, **changes)
    with pytest.raises(SuiteError, match=reason) as caught:
        load_suite(path)
    assert str(caught.value).startswith(f"{path}: ")


def test_a_suite_that_is_not_a_mapping_names_its_file(tmp_path: Path) -> None:
    path = suite_file(tmp_path)
    path.write_text("- just a list\n")
    with pytest.raises(SuiteError, match=rf"{path}: expected a mapping"):
        load_suite(path)


def test_the_label_sets_are_the_support_prompts_schema() -> None:
    schema = yaml.safe_load((PACKAGE_DIR / "defs" / "registry" / "prompts" / "support_triage.yaml").read_text())
    enums = {k: tuple(v["enum"]) for k, v in schema["response_schema"]["properties"].items()}
    assert enums == {"category": CATEGORIES, "priority": PRIORITIES, "action": ACTIONS}


def test_the_scorer_directions_are_the_gates() -> None:
    from factory_pipelines.lib.evals.scorers import LOWER_IS_BETTER

    assert {name for name, direction in KNOWN_SCORERS.items() if direction == LOWER} == LOWER_IS_BETTER & set(KNOWN_SCORERS)
