"""Runs left behind by a killed `factory` process must not block the model pool forever."""

from __future__ import annotations

import socket
import subprocess

import dagster as dg

from factory_pipelines.instance import prepare_instance
from factory_pipelines.runs import HOST_TAG, PID_TAG, release_abandoned_runs
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
