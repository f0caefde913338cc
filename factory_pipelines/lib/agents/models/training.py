"""Training a classifier from a file: holdout split, settings chosen by cross-validation on the training rows
only, the final fit, and holdout scores (accuracy and macro-F1) beside the bare baseline's on the same split.

`labels` maps each target to a Series aligned with the frame: the label, or None where the ticket has none
for that target or a rule explains it (those rows are neither trained on nor scored). Deterministic: every
split and model is seeded, and BLAS/OpenMP run one thread (on two cores, more threads made fits ~20x slower).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from factory_pipelines.lib.agents.models.classifier import Columns, TicketClassifier, prepare, ticket_text
from factory_pipelines.lib.agents.models.classifier_spec import ClassifierSpec, Holdout, Search


def holdout_split(frame: Any, labels: dict[str, Any], holdout: Holdout) -> tuple[Any, str]:
    """A boolean mask of held-out rows and how they were chosen; a ValueError says what to configure instead."""
    days = sorted(frame["day"].unique())
    if holdout.last_days is not None:
        if len(days) <= holdout.last_days:
            raise ValueError(f"{len(days)} labelled day(s) {days}: holdout.last_days={holdout.last_days} leaves no day "
                             "to train on; label more days, or hold out a share: holdout: {fraction: 0.2}")
        test_days = days[-holdout.last_days:]
        return frame["day"].isin(test_days).to_numpy(), f"the last {holdout.last_days} day(s): {', '.join(test_days)}"
    from sklearn.model_selection import train_test_split

    target = min(labels, key=lambda t: labels[t].value_counts().min())  # the rarest class needs stratifying most
    known = labels[target].notna().to_numpy()
    counts = labels[target][known].value_counts()
    stratify = labels[target][known] if counts.min() >= 2 else None
    _, test = train_test_split(np.flatnonzero(known), test_size=holdout.fraction, random_state=holdout.seed,
                               stratify=stratify)
    mask = np.zeros(len(frame), dtype=bool)
    mask[test] = True
    mask[~known] = np.random.default_rng(holdout.seed).random(int((~known).sum())) < holdout.fraction
    return mask, f"{holdout.fraction:.0%} of the rows, stratified by {target} (seed {holdout.seed})"


def cv_folds(days: Any, y: Any, search: Search, seed: int) -> list[tuple[Any, Any]]:
    """Folds over the training rows: whole days when they span several (a model is used on days it has not
    seen; the same folds for every target, so they share their fitted transforms), else stratified by the
    target's label with the seed. Rows without a label for the target are dropped where it is scored."""
    from sklearn.model_selection import GroupKFold, StratifiedKFold

    groups = days.to_numpy()
    if len(set(groups)) >= 2:
        rows = np.arange(len(groups))
        return list(GroupKFold(n_splits=min(search.folds, len(set(groups)))).split(rows, groups=groups))
    known = np.flatnonzero(y.notna().to_numpy())
    classes = y.iloc[known].value_counts()
    splitter = StratifiedKFold(n_splits=max(2, min(search.folds, int(classes.max()))), shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [(known[a], known[b]) for a, b in splitter.split(known, y.iloc[known].astype(str))]


def scores(truth: Any, predicted: Any) -> dict[str, float]:
    """Accuracy and macro-F1 (every class of truth or prediction counts alike)."""
    from sklearn.metrics import accuracy_score, f1_score

    truth, predicted = np.asarray(truth, dtype=str), np.asarray(predicted, dtype=str)
    return {"accuracy": round(float(accuracy_score(truth, predicted)), 4),
            "macro_f1": round(float(f1_score(truth, predicted, average="macro", zero_division=0)), 4)}


@dataclass
class _Cache:
    """Fitted transforms and their matrices per (feature set, fold), so that targets sharing folds share them
    and every model tried on a fold reuses them."""

    data: Any
    columns: Columns
    specs: Any
    fitted: dict[tuple[int, bytes], tuple[Any, Any, int]] = field(default_factory=dict)

    def matrices(self, index: int, train: Any, test: Any) -> tuple[Any, Any, int]:
        """The training and test matrices of a fold, and how many leading columns are text."""
        from factory_pipelines.lib.agents.models.estimators import feature_transform, text_width

        key = (index, np.asarray(train).tobytes() + b"|" + np.asarray(test).tobytes())
        if key not in self.fitted:
            transform = feature_transform(self.specs[index], self.columns)
            matrix = transform.fit_transform(self.data.iloc[train])
            self.fitted[key] = (matrix, transform.transform(self.data.iloc[test]), text_width(transform))
        return self.fitted[key]


def _cv_score(cache: _Cache, folds: list, y: Any, features: int, choice: Any, seed: int) -> float | None:
    """Mean macro-F1 over the folds whose training rows hold two classes or more; None: the model cannot fit.
    A calibrated SVM is scored by its SVM's decisions (calibration, fit on the final model, costs 5x the SVM)."""
    from factory_pipelines.lib.agents.models.estimators import model

    results, known = [], y.notna().to_numpy()
    for train, test in folds:
        fit_rows, test_rows = known[train], known[test]
        if y.iloc[train[fit_rows]].nunique() < 2 or not test_rows.any():
            continue
        matrix, tested, width = cache.matrices(features, train, test)
        labels = y.iloc[train[fit_rows]].astype(str)
        try:
            fitted = model(choice, labels, width, seed, calibrated=False).fit(matrix[fit_rows], labels)
        except ValueError:
            return None
        results.append(scores(y.iloc[test[test_rows]], fitted.predict(tested[test_rows]))["macro_f1"])
    return float(np.mean(results)) if results else None


def choose(data: Any, days: Any, labels: dict[str, Any], columns: Columns, spec: ClassifierSpec) -> dict[str, dict]:
    """Per target: the feature set (scored with the first model), then the model on it, by mean CV macro-F1;
    earlier entries win ties. Returns each target's choice and every score tried."""
    search, cache, chosen = spec.search, _Cache(data, columns, spec.search.features), {}
    for target, y in labels.items():
        folds = cv_folds(days, y, search, spec.seed)
        tried: dict[str, float | None] = {}
        best_features, best = 0, -1.0
        for i, _ in enumerate(search.features):
            score = _cv_score(cache, folds, y, i, search.models[0], spec.seed)
            tried[f"features[{i}] + models[0]"] = score
            if score is not None and score > best + 1e-9:
                best_features, best = i, score
        if best < 0:
            raise ValueError(f"targets.{target}: no fold could be trained (every fold's training rows hold one class)")
        best_model = 0
        for j, choice in enumerate(search.models[1:], start=1):
            score = _cv_score(cache, folds, y, best_features, choice, spec.seed)
            tried[f"features[{best_features}] + models[{j}]"] = score
            if score is not None and score > best + 1e-9:
                best_model, best = j, score
        chosen[target] = {"features": best_features, "model": best_model, "cv_macro_f1": round(best, 4),
                          "folds": len(folds), "tried": tried}
    return chosen


def describe(spec: ClassifierSpec, choice: dict) -> str:
    features = spec.search.features[choice["features"]]
    return (f"{spec.search.models[choice['model']].label()} on word{list(features.word_ngrams)}"
            f"{f' + char{list(features.char_ngrams)}' if features.char_ngrams else ''}"
            f"{f' + amounts>={list(features.amount_edges)}' if features.amount_edges else ''}"
            f"{f' + feast x{features.feast_weight:g}' if features.feast_weight else ''}")


def fit(data: Any, labels: dict[str, Any], columns: Columns, spec: ClassifierSpec, chosen: dict) -> TicketClassifier:
    """The final classifier on all training rows, each target with its chosen settings."""
    from factory_pipelines.lib.agents.models.estimators import feature_transform, model, text_width

    transforms, matrices, heads = {}, {}, {}
    for target, y in labels.items():
        index = chosen[target]["features"]
        if index not in transforms:
            transforms[index] = feature_transform(spec.search.features[index], columns)
            matrices[index] = transforms[index].fit_transform(data)
        keep = y.notna().to_numpy()
        head = model(spec.search.models[chosen[target]["model"]], y[keep], text_width(transforms[index]), spec.seed)
        heads[target] = (index, head.fit(matrices[index][keep], y[keep].astype(str)))
    order = sorted(transforms)
    position = {index: n for n, index in enumerate(order)}
    return TicketClassifier([transforms[i] for i in order], {t: (position[i], h) for t, (i, h) in heads.items()},
                            columns, {t: describe(spec, chosen[t]) for t in labels})


def holdout_scores(predicted: dict[str, Any], labels: dict[str, Any]) -> dict[str, float]:
    """`<target>_accuracy`, `<target>_macro_f1` on the held-out rows that have a label for the target."""
    metrics: dict[str, float] = {}
    for target, y in labels.items():
        keep = y.notna().to_numpy()
        for name, value in scores(y[keep], np.asarray(predicted[target])[keep]).items():
            metrics[f"{target}_{name}"] = value
    return metrics


def train_and_compare(frame: Any, labels: dict[str, Any], features: list[str], spec: ClassifierSpec) -> dict[str, Any]:
    """Split, choose, fit, score; the baseline fitted and scored on the same split. One thread throughout."""
    from threadpoolctl import threadpool_limits

    from factory_pipelines.lib.agents.models.classifier import available_columns
    from factory_pipelines.lib.agents.models.estimators import baseline

    held, how = holdout_split(frame, labels, spec.holdout)
    train, test = frame[~held].reset_index(drop=True), frame[held].reset_index(drop=True)
    train_labels = {t: y[~held].reset_index(drop=True) for t, y in labels.items()}
    test_labels = {t: y[held].reset_index(drop=True) for t, y in labels.items()}
    columns = available_columns(train, features)
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        data = prepare(train, columns)
        chosen = choose(data, train["day"], train_labels, columns, spec)
        classifier = fit(data, train_labels, columns, spec, chosen)
        rows = classifier.predict(test)
        metrics = holdout_scores({t: [r[t] for r in rows] for t in labels}, test_labels)
        base: dict[str, list[str]] = {}
        for target, y in train_labels.items():
            keep = y.notna().to_numpy()
            fitted = baseline(spec.seed).fit(ticket_text(train)[keep], y[keep].astype(str))
            base[target] = list(fitted.predict(ticket_text(test)))
        base_metrics = holdout_scores(base, test_labels)
    classifier.metrics = metrics
    return {"classifier": classifier, "metrics": metrics, "baseline": base_metrics, "chosen": chosen,
            "holdout": how, "train": train, "test": test, "train_labels": train_labels, "test_labels": test_labels}


def comparison(metrics: dict[str, float], base: dict[str, float], goal: float) -> tuple[dict[str, float], list[str]]:
    """Per target the macro-F1 ratio to the baseline, and one line per target that falls short of `goal`."""
    ratios, short = {}, []
    targets = [k.removesuffix("_macro_f1") for k in metrics if k.endswith("_macro_f1")]
    for target in targets:
        model_f1, base_f1 = metrics[f"{target}_macro_f1"], base[f"{target}_macro_f1"]
        ratios[target] = round(model_f1 / base_f1, 4) if base_f1 else float("inf")
        if ratios[target] < goal:
            ceiling = " (unreachable: the baseline is above 1/goal)" if base_f1 * goal > 1 else ""
            short.append(f"falls short of {goal:g}x the baseline on {target}: macro-F1 {model_f1:.3f} vs "
                         f"{base_f1:.3f} ({ratios[target]:.2f}x){ceiling}")
    return ratios, short


def report(spec: ClassifierSpec, result: dict[str, Any], ratios: dict[str, float], short: list[str]) -> str:
    """The training report (Markdown): holdout scores beside the baseline's, the settings chosen, the shortfalls."""
    lines = [f"# {spec.name}: holdout {result['holdout']}", "",
             f"{len(result['train'])} training rows, {len(result['test'])} held out. Goal: {spec.goal_vs_baseline:g}x "
             "the baseline's macro-F1 (word 1-2-gram TF-IDF + class-balanced logistic regression, same split).", "",
             "| target | classes | macro-F1 | baseline | ratio | accuracy | baseline | chosen by CV (macro-F1) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    metrics, base = result["metrics"], result["baseline"]
    for target, y in result["train_labels"].items():
        classes = ", ".join(f"{c} {n}" for c, n in y.value_counts().sort_index().items())
        lines.append(f"| {target} | {classes} | {metrics[f'{target}_macro_f1']:.3f} | {base[f'{target}_macro_f1']:.3f} "
                     f"| {ratios[target]:.2f}x | {metrics[f'{target}_accuracy']:.3f} | {base[f'{target}_accuracy']:.3f} "
                     f"| {result['classifier'].choices[target]} ({result['chosen'][target]['cv_macro_f1']:.3f}, "
                     f"{result['chosen'][target]['folds']} folds) |")
    lines += ["", *(f"- {line}" for line in short)] if short else ["", f"- every target reaches {spec.goal_vs_baseline:g}x"]
    return "\n".join(lines) + "\n"
