"""The models domain: one classifier asset per classifier file, trained on Feast historical features and
registered in MLflow.

Training reads the labelled days (FACTORY_LABELS_DIR), joins each ticket to its features as they were when
it arrived (Feast point-in-time join through the feature service) and, when orders are fed, to its order;
holds out the last days or a stratified share; chooses its settings by cross-validation on the training rows;
fits the bare TF-IDF baseline on the same split (a sibling MLflow run); logs both, registers a version and
writes the training report. The first version is `champion`; every later one is `challenger` and becomes
champion only through the promotion gate (`factory promote <agent> --model`).
"""

import hashlib
import time
from pathlib import Path
from typing import Any

import dagster as dg

from factory_pipelines.lib.agents.models.classifier_spec import ClassifierSpec, load_spec
from factory_pipelines.lib.data.features import ORDER_REF
from factory_pipelines.resources.feature_store import FeatureStoreResource
from factory_pipelines.resources.tracking import TrackingResource
from factory_pipelines.resources.warehouse import WarehouseResource

SHIPPED_DIR = Path(__file__).parent  # ticket_classifier.yaml

TICKETS_SQL = """
SELECT t.ticket_id, t.customer_id, t.created_at, t.channel, t.subject, t.body, t.order_id, t.in_reply_to,
       t._partition::VARCHAR AS day, {order_amount} AS order_amount
FROM staging.tickets t
{order_join}
WHERE t._partition::VARCHAR IN (SELECT unnest($days))
ORDER BY t.created_at, t.ticket_id
"""
ORDER_JOIN = """LEFT JOIN LATERAL (
    SELECT amount FROM staging.orders o
    WHERE o.order_id = coalesce(nullif(t.order_id, ''), upper(regexp_extract(t.body, $order_ref)))
      AND o.updated_at <= t.created_at
    ORDER BY o.updated_at DESC LIMIT 1) o ON true"""


def tickets_sql(with_orders: bool) -> str:
    """The labelled days' tickets, with the amount of the order they name when orders are fed (else NULL)."""
    if with_orders:
        return TICKETS_SQL.format(order_amount="o.amount", order_join=ORDER_JOIN)
    return TICKETS_SQL.format(order_amount="NULL::DOUBLE", order_join="")


def training_frame(spec: ClassifierSpec, warehouse: WarehouseResource, feature_store: FeatureStoreResource,
                   labels: dict[str, dict[str, Any]], with_orders: bool, views: list[str]) -> tuple[Any, list[str]]:
    """Labelled tickets with their point-in-time features (the service's views that are fed), one row per
    ticket, ordered by time; and the feature columns (the classifier keeps those that hold values)."""
    import pandas as pd

    days = sorted({row["_day"] for row in labels.values()})
    params = {"days": days, **({"order_ref": ORDER_REF} if with_orders else {})}
    with warehouse.connect(read_only=True) as con:
        tickets = con.execute(tickets_sql(with_orders), params).df()
    tickets = tickets[tickets["ticket_id"].isin(labels)]
    if tickets.empty:
        raise dg.Failure(f"no labelled ticket of {days} is in staging.tickets: run the data plane for those days first")
    entities = tickets[["ticket_id", "customer_id"]].assign(
        event_timestamp=pd.to_datetime(tickets["created_at"]).dt.tz_localize("UTC"))
    features = feature_store.historical_features(entities, service=spec.feature_service, views=views)
    features = features.drop(columns=[c for c in ("customer_id", "event_timestamp", "channel") if c in features])
    frame = tickets.merge(features, on="ticket_id", how="left")
    return frame.sort_values(["created_at", "ticket_id"]).reset_index(drop=True), \
        [c for c in features.columns if c != "ticket_id"]


def target_labels(spec: ClassifierSpec, frame: Any, labels: dict[str, dict[str, Any]],
                  explained: dict[str, Any]) -> dict[str, Any]:
    """Per target, the label of each row: None where the ticket has none or a rule explains it."""
    import pandas as pd

    out = {}
    for target, column in spec.targets.items():
        values = [labels[t].get(column) for t in frame["ticket_id"]]
        series = pd.Series([None if v in (None, "") else str(v) for v in values], index=frame.index, dtype=object)
        if target in explained:
            series[explained[target].to_numpy()] = None
        out[target] = series
    return out


def rule_exclusions(spec: ClassifierSpec, frame: Any, labels: dict[str, Any], agents_dir: Path) -> dict[str, Any]:
    """Per target, the rows whose label a rule explains (neither trained on nor scored for that target)."""
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
        for i, row in enumerate(frame.itertuples(index=False)):
            truth = {t: labels[t].iloc[i] for t in spec.targets}
            if truth[target] is None:
                flags.append(False)
                continue
            text = f"{row.subject}\n{row.body}"
            amount = row.order_amount if pd.notna(row.order_amount) else parse_amount(text)
            facts = {"ticket": {"subject": row.subject, "body": row.body}, "text": text, "amount": amount,
                     "first_pass": {t: {"label": v, "confidence": 1.0} for t, v in truth.items()}, "decision": truth}
            flags.append(explained(rules, facts, target, truth[target]))
        masks[target] = pd.Series(flags, index=frame.index)
    return masks


def build_model_assets(spec_paths: list[Path], labels_dir: Path, agents_dir: Path, staged: set[str],
                       views: list[str]) -> list[dg.AssetsDefinition]:
    """One asset `models/<name>` per classifier file (the shipped ones, yours replacing them by file name);
    `staged`: the fed tables, `views`: the Feast views that have a table."""
    return [classifier_asset(path, labels_dir, agents_dir, "orders" in staged, views) for path in spec_paths]


def classifier_asset(path: Path, labels_dir: Path, agents_dir: Path, with_orders: bool,
                     views: list[str]) -> dg.AssetsDefinition:
    spec = load_spec(path)
    holdout = (f"the last {spec.holdout.last_days} labelled days" if spec.holdout.last_days
               else f"a stratified {spec.holdout.fraction:.0%} of the labelled tickets")
    deps = ["tickets", *(["orders"] if with_orders else [])]

    @dg.asset(
        key=["models", spec.name],
        deps=[*(dg.AssetKey(["staging", d]) for d in deps), dg.AssetKey(["features", "online_store"])],
        group_name="models",
        kinds={"scikitlearn", "mlflow"},
        owners=["team:ml-platform"],
        tags={"layer": "models"},
        code_version=hashlib.sha256(path.read_bytes()).hexdigest()[:12],
        description=(f"{spec.description} Config {path.name}; trained on the labelled days in {labels_dir} "
                     f"({holdout} held out) with features of service {spec.feature_service}, its settings chosen by "
                     f"cross-validation on the training rows, beside a TF-IDF baseline on the same split; registered "
                     f"in MLflow as {spec.name}: the first version champion, later ones challenger (promoted only "
                     f"by `factory promote <agent> --model`)."),
    )
    def classifier(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                   feature_store: FeatureStoreResource, tracking: TrackingResource) -> dg.MaterializeResult:
        from factory_pipelines.lib.agents.models.classifier import read_labels
        from factory_pipelines.lib.agents.models.classifier_spec import check_labels
        from factory_pipelines.lib.agents.models.training import train_and_compare

        started = time.perf_counter()
        labels = read_labels(labels_dir)
        if not labels:
            raise dg.Failure(f"no labelled tickets in {labels_dir}: write labels (one JSONL per day) or the demo data")
        check_labels(spec, path, labels, labels_dir)
        frame, features = training_frame(spec, warehouse, feature_store, labels, with_orders, views)
        every = target_labels(spec, frame, labels, {})  # the rules judge every label; those they explain go
        by_target = target_labels(spec, frame, labels, rule_exclusions(spec, frame, every, agents_dir))
        try:
            result = train_and_compare(frame, by_target, features, spec)
        except ValueError as exc:
            raise dg.Failure(f"{path}: {exc}") from exc
        result["seconds"] = round(time.perf_counter() - started, 1)
        return _register(context, spec, tracking, warehouse, result, with_orders)

    return classifier


def _register(context: dg.AssetExecutionContext, spec: ClassifierSpec, tracking: TrackingResource,
              warehouse: WarehouseResource, result: dict[str, Any], with_orders: bool) -> dg.MaterializeResult:
    """Log both runs, register the version, give it its alias (audited) and say how it compares."""
    from factory_pipelines.lib.agents.models.registry import assign_alias, log_training
    from factory_pipelines.lib.agents.models.training import comparison, report
    from factory_pipelines.lib.governance.audit.chain import record_alias_moves

    ratios, short = comparison(result["metrics"], result["baseline"], spec.goal_vs_baseline)
    text = report(spec, result, ratios, short)
    days = sorted(set(result["train"]["day"]) | set(result["test"]["day"]))
    tags = {"dagster_run_id": context.run.run_id, "dagster_asset": f"models/{spec.name}",
            "lineage.tables": "staging.tickets" + (",staging.orders" if with_orders else ""),
            "lineage.partitions": ",".join(days), "lineage.feature_service": spec.feature_service}
    tracking.activate(f"models/{spec.name}")
    logged = log_training(spec, result, tags, text, ratios, _requirements())
    alias, champion = assign_alias(tracking.client(), spec.name, logged["version"])
    metrics = result["metrics"]
    context.log.info(f"{spec.name} v{logged['version']} is {alias}; holdout {metrics}; baseline {result['baseline']}")
    for line in short:
        context.log.warning(f"{spec.name}: {line}")
    with warehouse.connect() as con:
        record_alias_moves(con, f"run:{context.run.run_id[:8]}", [{
            "kind": "model", "name": spec.name, "alias": alias, "version": logged["version"],
            "champion_version": champion, "metrics": metrics}])
    held_days = sorted(result["test"]["day"].unique())
    return dg.MaterializeResult(metadata={
        "model_uri": f"models:/{spec.name}/{logged['version']}", "alias": alias, "champion_version": champion,
        "mlflow_run_id": logged["run_id"], "baseline_run_id": logged["baseline_run_id"],
        "train_days": dg.MetadataValue.json(sorted(result["train"]["day"].unique())),
        "holdout_days": dg.MetadataValue.json(held_days), "holdout": result["holdout"],
        "train_rows": len(result["train"]), "holdout_rows": len(result["test"]), "train_seconds": result["seconds"],
        "chosen": dg.MetadataValue.json(result["classifier"].choices),
        "macro_f1_vs_baseline": dg.MetadataValue.json(ratios), "falls_short": dg.MetadataValue.json(short),
        "training_report": dg.MetadataValue.md(text),
        **{f"holdout_{k}": v for k, v in metrics.items()},
        **{f"baseline_{k}": v for k, v in result["baseline"].items()},
    })


def _requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{p}=={version(p)}" for p in ("scikit-learn", "pandas", "mlflow")]
