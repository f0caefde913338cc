"""Resource keys -> implementations, and the executor of the jobs, chosen from the settings (profile is
configuration, not code)."""

from typing import Any

import dagster as dg

from factory_pipelines.resources.feature_store import FeatureStoreResource
from factory_pipelines.resources.governance import PolicyEngineResource
from factory_pipelines.resources.llm import LLMResource
from factory_pipelines.resources.tracking import TrackingResource
from factory_pipelines.resources.warehouse import WarehouseResource
from factory_pipelines.settings import Settings


def build_resources(settings: Settings) -> dict[str, Any]:
    return {
        "warehouse": WarehouseResource(database=settings.warehouse),
        "feature_store": FeatureStoreResource(
            repo_path=str(settings.feature_repo),
            registry=settings.feast_registry,
            online_store=settings.feast_online_store,
            online_path=str(settings.feast_online_path),
            redis_url=settings.feast_redis_url,
        ),
        "tracking": TrackingResource(tracking_uri=settings.mlflow_tracking_uri,
                                     artifact_root=settings.mlflow_artifact_root),
        "llm": LLMResource(model_dir=str(settings.model_dir), context_window=settings.llm_context_window,
                           threads=settings.llm_threads, usd_per_cpu_second=settings.llm_usd_per_cpu_second,
                           prices=settings.llm_prices),
        "policy_engine": PolicyEngineResource(policies_dir=str(settings.policies_dir),
                                              kill_switches_file=str(settings.kill_switches_file),
                                              review_ttl_hours=settings.review_ttl_hours,
                                              audit_anchor=str(settings.audit_anchor)),
    }


EXECUTORS = {"in_process": dg.in_process_executor, "multiprocess": dg.multiprocess_executor}


def build_executor(settings: Settings) -> dg.ExecutorDefinition:
    """How the factory's jobs execute their steps (`executor`: one process, or one process per step)."""
    return EXECUTORS[settings.executor]
