"""Logging a training to MLflow: the classifier's run (registered as a model version) and the baseline's
sibling run on the same split, tagged to find each other; and the alias a new version gets.

A new version never promotes itself: the first one is `champion` (there is nothing to compare it with), every
later one `challenger`, and only the promotion gate moves `champion` (lib/evals/promotion.py).
"""

from __future__ import annotations

from typing import Any

from factory_pipelines.lib.agents.models.classifier_spec import ClassifierSpec


def _params(spec: ClassifierSpec, result: dict[str, Any]) -> dict[str, Any]:
    classifier = result["classifier"]
    days = sorted(result["train"]["day"].unique())
    return {"feature_service": spec.feature_service, "targets": ",".join(spec.targets), "seed": spec.seed,
            "holdout": result["holdout"], "train_days": ",".join(days), "train_rows": len(result["train"]),
            "holdout_rows": len(result["test"]), "cv_folds": spec.search.folds,
            "feature_columns": ",".join([*classifier.columns.categorical, *classifier.columns.numeric]) or "(text only)",
            **{f"{t}.chosen": classifier.choices[t] for t in classifier.targets},
            **{f"{t}.classes": ",".join(sorted(result["train_labels"][t].dropna().unique())) for t in classifier.targets}}


def log_training(spec: ClassifierSpec, result: dict[str, Any], tags: dict[str, str], report: str,
                 ratios: dict[str, float], requirements: list[str]) -> dict[str, str]:
    """Both runs, the report as an artifact of each, and the registered version: run ids and the version."""
    import mlflow
    from mlflow.models import infer_signature

    from factory_pipelines.lib.agents.models.classifier import as_pyfunc

    classifier, test = result["classifier"], result["test"]
    present = [c for c in ("subject", "body", *classifier.columns.categorical, *classifier.columns.numeric) if c in test]
    example = test[present].head(3)
    signature = infer_signature(example, as_pyfunc(classifier).predict(None, example))
    with mlflow.start_run(run_name=f"{spec.name} baseline {tags['dagster_run_id'][:8]}") as base_run:
        mlflow.log_params({"model": "TF-IDF word 1-2-grams + class-balanced logistic regression", "seed": spec.seed,
                           "holdout": result["holdout"], "targets": ",".join(spec.targets)})
        mlflow.log_metrics(result["baseline"])
        mlflow.set_tags({**tags, "role": "baseline"})
        mlflow.log_text(report, "training_report.md")
    with mlflow.start_run(run_name=f"{spec.name} {tags['dagster_run_id'][:8]}") as run:
        mlflow.log_params(_params(spec, result))
        mlflow.log_metrics({**result["metrics"], **{f"baseline_{k}": v for k, v in result["baseline"].items()},
                            **{f"{t}_macro_f1_vs_baseline": r for t, r in ratios.items()},
                            "train_seconds": result["seconds"]})
        mlflow.set_tags({**tags, "role": "model", "baseline_run_id": base_run.info.run_id})
        mlflow.log_text(report, "training_report.md")
        mlflow.log_dict(result["chosen"], "cv_scores.json")  # every setting tried per target, its mean CV macro-F1
        info = mlflow.pyfunc.log_model(name="model", python_model=as_pyfunc(classifier), signature=signature,
                                       input_example=example, registered_model_name=spec.name,
                                       pip_requirements=requirements)
    mlflow.MlflowClient().set_tag(base_run.info.run_id, "sibling_run_id", run.info.run_id)
    return {"run_id": run.info.run_id, "baseline_run_id": base_run.info.run_id,
            "version": str(info.registered_model_version)}


def assign_alias(client: Any, name: str, version: str) -> tuple[str, str]:
    """`champion` for the first version, else `challenger`; returns the alias and the champion's version."""
    from mlflow.exceptions import MlflowException

    try:
        champion = str(client.get_model_version_by_alias(name, "champion").version)
    except MlflowException as exc:
        if "not found" not in str(exc):
            raise
        champion = None
    alias = "challenger" if champion and champion != version else "champion"
    client.set_registered_model_alias(name, alias, version)
    return alias, champion or version
