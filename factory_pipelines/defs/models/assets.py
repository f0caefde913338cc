"""The models domain: the ticket classifier, trained on Feast historical features and registered in MLflow.

Training reads the labelled days (FACTORY_LABELS_DIR), joins each ticket to its features as they were
when the ticket arrived (Feast point-in-time join through the feature service), holds the last days out,
logs parameters, metrics, signature, input example and lineage to MLflow, and registers a version. The
first version is `champion`; a later one replaces it only when it is at least as good on the holdout
metric, else it is `challenger`. Agents resolve `models:/ticket_classifier@champion` at run time.
"""


import hashlib
from pathlib import Path
from typing import Any

import dagster as dg

from factory_pipelines.lib.agents.models.classifier import ClassifierSpec, load_spec
from factory_pipelines.lib.data.features import ORDER_REF
from factory_pipelines.resources.feature_store import FeatureStoreResource
from factory_pipelines.resources.tracking import TrackingResource
from factory_pipelines.resources.warehouse import WarehouseResource

SPEC_FILE = Path(__file__).with_name("ticket_classifier.yaml")

TICKETS_SQL = """
SELECT t.ticket_id, t.customer_id, t.created_at, t.channel, t.subject, t.body, t.order_id, t.in_reply_to,
       t._partition::VARCHAR AS day, o.amount AS order_amount
FROM staging.tickets t
LEFT JOIN LATERAL (
    SELECT amount FROM staging.orders o
    WHERE o.order_id = coalesce(nullif(t.order_id, ''), upper(regexp_extract(t.body, $order_ref)))
      AND o.updated_at <= t.created_at
    ORDER BY o.updated_at DESC LIMIT 1) o ON true
WHERE t._partition::VARCHAR IN (SELECT unnest($days))
ORDER BY t.created_at, t.ticket_id
"""


def training_frame(spec: ClassifierSpec, warehouse: WarehouseResource, feature_store: FeatureStoreResource,
                   labels: dict[str, dict[str, Any]]) -> Any:
    """Labelled tickets with their point-in-time features, one row per ticket, ordered by time."""
    import pandas as pd

    days = sorted({row["_day"] for row in labels.values()})
    with warehouse.connect(read_only=True) as con:
        tickets = con.execute(TICKETS_SQL, {"days": days, "order_ref": ORDER_REF}).df()
    tickets = tickets[tickets["ticket_id"].isin(labels)]
    if tickets.empty:
        raise dg.Failure(f"no labelled ticket of {days} is in staging.tickets: run the data plane for those days first")
    entities = tickets[["ticket_id", "customer_id"]].assign(
        event_timestamp=pd.to_datetime(tickets["created_at"]).dt.tz_localize("UTC"))
    features = feature_store.historical_features(entities, service=spec.feature_service)
    features = features.drop(columns=[c for c in ("customer_id", "event_timestamp", "channel") if c in features])
    frame = tickets.merge(features, on="ticket_id", how="left")
    for target, column in spec.targets.items():
        frame[target] = [str(labels[t].get(column, "")) for t in frame["ticket_id"]]
    return frame.sort_values(["created_at", "ticket_id"]).reset_index(drop=True)


def rule_exclusions(spec: ClassifierSpec, frame: Any, agents_dir: Path) -> dict[str, Any]:
    """Per target, the rows whose label a rule explains (left out of training that target)."""
    import pandas as pd

    from factory_pipelines.lib.agents.facts import parse_amount
    from factory_pipelines.lib.agents.manifests import agent_file
    from factory_pipelines.lib.agents.rules import explained, load_rules

    if not spec.explained_by_rules:
        return {}
    rules = load_rules(agent_file(agents_dir, "rules", spec.explained_by_rules))
    masks = {}
    for target in spec.targets:
        flags = []
        for row in frame.itertuples(index=False):
            text = f"{row.subject}\n{row.body}"
            amount = row.order_amount if pd.notna(row.order_amount) else parse_amount(text)
            truth = {t: getattr(row, t) for t in spec.targets}
            facts = {"ticket": {"subject": row.subject, "body": row.body}, "text": text, "amount": amount,
                     "first_pass": {t: {"label": v, "confidence": 1.0} for t, v in truth.items()}, "decision": truth}
            flags.append(explained(rules, facts, target, truth[target]))
        masks[target] = pd.Series(flags, index=frame.index)
    return masks


def build_model_assets(labels_dir: Path, agents_dir: Path) -> list[dg.AssetsDefinition]:
    spec = load_spec(SPEC_FILE)
    code_version = hashlib.sha256(SPEC_FILE.read_bytes()).hexdigest()[:12]

    @dg.asset(
        key=["models", spec.name],
        deps=[dg.AssetKey(["staging", "tickets"]), dg.AssetKey(["features", "online_store"])],
        group_name="models",
        kinds={"scikitlearn", "mlflow"},
        owners=["team:ml-platform"],
        tags={"layer": "models"},
        code_version=code_version,
        description=(f"{spec.description} Trained on the labelled days in {labels_dir} (the last "
                     f"{spec.holdout_days} held out) with features of service {spec.feature_service}; registered in "
                     f"MLflow as {spec.name} (alias champion, or challenger when it does not beat the champion)."),
    )
    def ticket_classifier(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                          feature_store: FeatureStoreResource, tracking: TrackingResource) -> dg.MaterializeResult:
        from factory_pipelines.lib.agents.models.classifier import read_labels

        labels = read_labels(labels_dir)
        if not labels:
            raise dg.Failure(f"no labelled tickets in {labels_dir}: write labels (one JSONL per day) or the demo data")
        frame = training_frame(spec, warehouse, feature_store, labels)
        days = sorted(frame["day"].unique())
        if len(days) <= spec.holdout_days:
            raise dg.Failure(f"{len(days)} labelled day(s) {days}: need more than holdout_days={spec.holdout_days}")
        train_days, test_days = days[: -spec.holdout_days], days[-spec.holdout_days:]
        train, test = frame[frame["day"].isin(train_days)], frame[frame["day"].isin(test_days)]
        exclude = rule_exclusions(spec, train, agents_dir)
        return _train_and_register(context, spec, tracking, warehouse, train, test, exclude, train_days, test_days)

    return [ticket_classifier]


def _train_and_register(context: dg.AssetExecutionContext, spec: ClassifierSpec, tracking: TrackingResource,
                        warehouse: WarehouseResource, train: Any, test: Any, exclude: dict[str, Any], train_days: list[str],
                        test_days: list[str]) -> dg.MaterializeResult:
    from factory_pipelines.lib.agents.models.classifier import CATEGORICAL, NUMERIC, as_pyfunc, evaluate
    from factory_pipelines.lib.agents.models.classifier import train as fit

    classifier = fit(train, targets=tuple(spec.targets), seed=spec.seed, exclude=exclude)
    metrics = evaluate(classifier, test)
    tracking.activate(f"models/{spec.name}")
    import mlflow
    from mlflow.models import infer_signature

    example = test[["subject", "body", *CATEGORICAL, *NUMERIC]].head(3)
    signature = infer_signature(example, as_pyfunc(classifier).predict(None, example))
    excluded = {t: int(m.sum()) for t, m in exclude.items()}
    with mlflow.start_run(run_name=f"{spec.name} {context.run.run_id[:8]}") as run:
        mlflow.log_params({"train_days": ",".join(train_days), "holdout_days": ",".join(test_days),
                           "feature_service": spec.feature_service, "targets": ",".join(spec.targets),
                           "seed": spec.seed, "train_rows": len(train),
                           "rule_explained_rows": ",".join(f"{t}={n}" for t, n in excluded.items())})
        mlflow.log_metrics(metrics)
        mlflow.set_tags({"dagster_run_id": context.run.run_id, "dagster_asset": f"models/{spec.name}",
                         "lineage.tables": "staging.tickets,staging.orders",
                         "lineage.partitions": ",".join(train_days + test_days),
                         "lineage.feature_service": spec.feature_service})
        info = mlflow.pyfunc.log_model(name="model", python_model=as_pyfunc(classifier), signature=signature,
                                       input_example=example, registered_model_name=spec.name,
                                       pip_requirements=_requirements())
    version = str(info.registered_model_version)
    alias, champion = _promote(tracking.client(), spec, version, metrics)
    context.log.info(f"{spec.name} v{version} is {alias}; holdout {metrics}")
    from factory_pipelines.lib.governance.audit.chain import record_alias_moves

    with warehouse.connect() as con:
        record_alias_moves(con, f"run:{context.run.run_id[:8]}", [{
            "kind": "model", "name": spec.name, "alias": alias, "version": version, "champion_version": champion,
            "metrics": metrics}])
    return dg.MaterializeResult(metadata={
        "model_uri": f"models:/{spec.name}/{version}", "alias": alias, "champion_version": champion,
        "mlflow_run_id": run.info.run_id, "train_days": dg.MetadataValue.json(train_days),
        "holdout_days": dg.MetadataValue.json(test_days), "train_rows": len(train), "holdout_rows": len(test),
        "rule_explained_rows": dg.MetadataValue.json(excluded),
        **{f"holdout_{k}": v for k, v in metrics.items() if k != "test_rows"},
    })


def _promote(client: Any, spec: ClassifierSpec, version: str, metrics: dict[str, float]) -> tuple[str, str]:
    """champion when there is none or the new version is at least as good on `promote_on`; else challenger."""
    try:
        current = client.get_model_version_by_alias(spec.name, "champion")
    except Exception:  # no champion yet
        current = None
    if current is not None and current.version != version:
        best = client.get_run(current.run_id).data.metrics.get(spec.promote_on, 0.0) if current.run_id else 0.0
        if metrics.get(spec.promote_on, 0.0) < best:
            client.set_registered_model_alias(spec.name, "challenger", version)
            return "challenger", str(current.version)
    client.set_registered_model_alias(spec.name, "champion", version)
    return "champion", version


def _requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{p}=={version(p)}" for p in ("scikit-learn", "pandas", "mlflow")]
