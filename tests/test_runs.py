"""Runs left behind by a killed `factory` process must not block the model pool forever."""

from __future__ import annotations

import socket
import subprocess

import dagster as dg

from factory_pipelines.instance import prepare_instance
from factory_pipelines.runs import HOST_TAG, PID_TAG, models_table, release_abandoned_runs
from factory_pipelines.settings import Settings


def test_a_killed_run_releases_its_model_slot(settings: Settings) -> None:
    prepare_instance(settings)
    gone = subprocess.Popen(["true"])
    gone.wait()
    job = dg.define_asset_job("agents_job").resolve(asset_graph=dg.Definitions(assets=[]).resolve_asset_graph())
    with dg.DagsterInstance.get() as instance:
        runs = {name: instance.create_run_for_job(job, status=dg.DagsterRunStatus.STARTED, tags={
            PID_TAG: str(pid), HOST_TAG: socket.gethostname()}) for name, pid in (("dead", gone.pid), ("alive", 1))}
        storage = instance.event_log_storage
        storage.set_concurrency_slots("model_slots", 1)
        assert storage.claim_concurrency_slot("model_slots", runs["dead"].run_id, "agents__support_triage").is_claimed

        assert release_abandoned_runs(instance) == [runs["dead"].run_id]
        assert instance.get_run_by_id(runs["dead"].run_id).status == dg.DagsterRunStatus.FAILURE
        assert instance.get_run_by_id(runs["alive"].run_id).status == dg.DagsterRunStatus.STARTED
        assert storage.get_concurrency_info("model_slots").claimed_slots == []


def test_latest_check_status_per_day_and_lineage_from_the_public_instance_api(settings: Settings) -> None:
    from factory_pipelines.instance import latest_check_statuses
    from factory_pipelines.runs import partition_lineage

    prepare_instance(settings)
    days = dg.StaticPartitionsDefinition(["2026-11-01", "2026-11-02", "2026-11-03"])
    failing = {"2026-11-02"}

    @dg.asset(key=["raw", "tickets"], partitions_def=days)
    def tickets(context) -> dg.MaterializeResult:  # noqa: ANN001 (Dagster reads the annotation)
        return dg.MaterializeResult(data_version=dg.DataVersion(f"v-{context.partition_key}"))

    @dg.asset_check(asset=tickets, name="contract_tickets_v1", partitions_def=days)
    def contract(context) -> dg.AssetCheckResult:  # noqa: ANN001
        return dg.AssetCheckResult(passed=context.partition_key not in failing)

    key = dg.AssetCheckKey(dg.AssetKey(["raw", "tickets"]), "contract_tickets_v1")
    with dg.DagsterInstance.get() as instance:
        for day in ("2026-11-01", "2026-11-02", "2026-11-02"):
            dg.materialize([tickets, contract], partition_key=day, instance=instance)
        failing.clear()  # the latest run of the 1st passes again; the 2nd's latest stays failed
        dg.materialize([tickets, contract], partition_key="2026-11-01", instance=instance)
        for page in (1, 2, 100):  # newest first, paged: older days are found past the first page
            assert latest_check_statuses(instance, key, [*days.get_partition_keys()], page=page) == {
                "2026-11-01": "SUCCEEDED", "2026-11-02": "FAILED"}
        assert partition_lineage(instance, "2026-11-02", [key]) == {
            "data_version": "v-2026-11-02", "contracts": {"raw/tickets:contract_tickets_v1": "FAILED"}}
        assert partition_lineage(instance, "2026-11-03", [key]) == {
            "data_version": None, "contracts": {"raw/tickets:contract_tickets_v1": "NOT RUN"}}


def test_a_signal_that_comes_as_a_run_succeeds_stops_the_loop_and_the_run_is_reported_finished(
        settings: Settings) -> None:
    """The signal is recorded before the run but no handler interrupts it (as when it lands while
    `execute_in_process` builds the result): the day succeeded in Dagster, so it is not `interrupted`, and
    the later days do not run."""
    import signal

    from factory_pipelines.runs import run_partitions
    from factory_pipelines.signals import SignalStop

    prepare_instance(settings)
    days = dg.StaticPartitionsDefinition(["2026-11-01", "2026-11-02"])

    @dg.asset(partitions_def=days)
    def tickets() -> None:
        return None

    defs = dg.Definitions(assets=[tickets], jobs=[dg.define_asset_job("data_plane_job", partitions_def=days)])
    stop = SignalStop()

    def signal_arrives(key: str) -> None:
        stop.signum = signal.SIGTERM

    outcomes = run_partitions("data_plane_job", ["2026-11-01", "2026-11-02"], on_start=signal_arrives,
                              definitions=defs, stop=stop)
    assert [(o.partition, o.success, o.interrupted) for o in outcomes] == [("2026-11-01", True, False)]
    with dg.DagsterInstance.get() as instance:
        assert [r.status for r in instance.get_runs()] == [dg.DagsterRunStatus.SUCCESS]


def test_the_models_table_shows_the_targets_the_classifier_file_names() -> None:
    from types import SimpleNamespace

    from rich.console import Console

    meta = {"model_uri": "models:/ticket_classifier/2", "alias": "challenger", "holdout_days": ["2026-11-07"],
            "macro_f1_vs_baseline": {"team": 0.977, "needs_human": 0.93}, "holdout_team_macro_f1": 0.9771,
            "holdout_needs_human_macro_f1": 0.654}
    console = Console(width=200, record=True)
    console.print(models_table(SimpleNamespace(materialized={"models/ticket_classifier": meta})))
    text = console.export_text()
    assert "team 0.977 (0.98x), needs_human 0.654 (0.93x) on 2026-11-07" in text and "challenger" in text
