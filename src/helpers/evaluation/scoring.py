"""The metrics JSON of a model on a data set (the DESIGN.md contract notebooks 04-06 read):
scored from its predictions with bootstrap CIs, notes on classes left out and a health check,
plus the recorded results a regression run must reproduce."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from helpers.core import paths, progress
from helpers.core.errors import ConfigError, DataError
from helpers.core.groups import group_codes
from helpers.core.jsonio import json_ready, read_json, write_json
from helpers.core.labels import EXPRESSIONS
from helpers.core.run_folder import RunFolder
from helpers.core.trained import weights_sha256
from helpers.evaluation import freshness, health
from helpers.evaluation.bootstrap import paired_difference, with_confidence_intervals
from helpers.evaluation.calibration import calibration_block, fit_temperature
from helpers.evaluation.comparison import (
    ci_range,
    comparison_table,
    flatten_metrics,
    stale,
    to_number,
    tta_headline,
)
from helpers.evaluation.metrics import (
    class_names,
    classification_metrics,
    image_sizes,
    landmark_nme,
    mean_shape_nme,
    regression_metrics,
    restrict_predictions,
    stack_landmarks,
    undefined_notes,
)
from helpers.evaluation.predictions import (
    REGRESSION_HEADS,
    class_names_text,
    predict_table,
    proba_classes,
    proba_column,
    restrict_table,
    shared_classes,
)
from helpers.inference.calibration import class_indices, scale_probabilities
from helpers.inference.predict import training_margin
from helpers.inference.tta import AUTO, TTA_MODES, check_tta, check_tta_setting
from helpers.models import registry

# --------------------------------------------------------------------------- metrics JSON


def evaluate_predictions(
    table: pd.DataFrame | Mapping[str, Any],
    model: str = "model",
    *,
    data_classes: Sequence[int] | None = None,
    label_names: Sequence[str] | None = None,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    groups: Any = None,
) -> dict:
    """The metrics JSON contract for one model on one data set, from columns of predictions.

    table: a DataFrame or a mapping of arrays holding, per head h, the truth in column `h` and
    the prediction in `h_pred`; the expression head may add `expression_proba` (an (N, K) array
    of class probabilities in AffectNet order, or in a DataFrame an object column of length-K
    arrays), from which `expression_pred` is derived when absent. Landmarks are (N, 68, 2) or
    (N, 136), truth and prediction in the same units (pixels, or image fractions for square
    images only: NME is invariant to uniform scaling alone).

    data_classes: the data set's label space in AffectNet order (e.g. 0-6 for FER-2013);
    when given with probabilities, predictions are confined to it (`restricted_to`), so a
    7-class set never sees Contempt predicted. n_boot=0 skips confidence intervals; groups
    (one label per row, e.g. the person) makes them draw whole groups.
    """
    cols = _columns(table)
    n = _n_rows(cols)
    result: dict[str, Any] = {"model": model, "n": n}

    boot = (n_boot, ci, seed, groups)
    result["expression"] = _expression_head(cols, data_classes, label_names, *boot)
    for head in ("valence", "arousal"):
        result[head] = None
        if head in cols and f"{head}_pred" in cols:
            t = np.asarray(cols[head], dtype=np.float64).reshape(-1)
            p = np.asarray(cols[f"{head}_pred"], dtype=np.float64).reshape(-1)
            result[head] = _maybe_ci(regression_metrics(t, p), head, (t, p), *boot)
    result["landmarks"] = None
    if "landmarks" in cols and "landmarks_pred" in cols:
        t, p = stack_landmarks(cols["landmarks"]), stack_landmarks(cols["landmarks_pred"])
        result["landmarks"] = _maybe_ci(landmark_nme(t, p), "landmarks", (t, p), *boot)
        if result["landmarks"] is not None:  # the bar a head must clear to have learned
            result["landmarks"]["baseline_nme"] = mean_shape_nme(t, image_sizes(cols))
    return result


def _expression_head(
    cols: dict[str, Any],
    data_classes: Sequence[int] | None,
    label_names: Sequence[str] | None,
    n_boot: int,
    ci: float,
    seed: int,
    groups: Any = None,
) -> dict | None:
    """Expression metrics (with CIs) from predicted labels and/or probabilities."""
    if "expression" not in cols:
        return None
    pred, proba = _expression_pred(cols, data_classes)
    if pred is None:
        return None
    saved = cols.get("expression_proba")  # the p_ columns as saved: what the AUCs rank by
    metrics = classification_metrics(
        cols["expression"],
        pred,
        proba,
        data_classes,
        label_names,
        scores=None if saved is None else _stack_rows(saved).astype(np.float64),
    )
    if metrics is not None:
        metrics["restricted_to"] = (
            None
            if data_classes is None or proba is None
            else [class_names(label_names, range(proba.shape[1]))[c] for c in sorted(data_classes)]
        )
    return _maybe_ci(metrics, "expression", (cols["expression"], pred), n_boot, ci, seed, groups)


def _expression_pred(
    cols: Mapping[str, Any], data_classes: Sequence[int] | None
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The predicted classes scored (confined to data_classes where probabilities allow) and
    the probabilities they came from; (None, None) without either."""
    proba = cols.get("expression_proba")
    proba = None if proba is None else _stack_rows(proba).astype(np.float64)
    pred = cols.get("expression_pred")
    if proba is None and pred is None:
        return None, None
    if proba is not None and data_classes is not None:
        pred, proba = restrict_predictions(proba, data_classes)
    elif pred is None:
        pred = proba.argmax(axis=1)
    return np.asarray(pred), proba


def _maybe_ci(
    metrics: dict | None,
    kind: str,
    arrays: tuple,
    n_boot: int,
    ci: float,
    seed: int,
    groups: Any = None,
) -> dict | None:
    """Confidence intervals unless switched off (n_boot=0)."""
    if metrics is None or n_boot <= 0:
        return metrics
    return with_confidence_intervals(
        metrics, kind, *arrays, n_boot=n_boot, ci=ci, seed=seed, groups=groups
    )


def _stack_rows(values: Any) -> np.ndarray:
    """A 2-D array from an array, or from a column of equal-length arrays."""
    if isinstance(values, np.ndarray) and values.dtype != object:
        return values
    return np.stack([np.asarray(v, dtype=np.float64) for v in values])


def _columns(table: pd.DataFrame | Mapping[str, Any]) -> dict[str, Any]:
    """Column name -> values, from a DataFrame or a mapping of arrays."""
    if isinstance(table, pd.DataFrame):
        return {str(c): table[c].to_numpy() for c in table.columns}
    return dict(table)


def _n_rows(cols: dict[str, Any]) -> int:
    """Row count, the same for every column."""
    lengths = {k: len(v) for k, v in cols.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"evaluate_predictions: columns differ in length {lengths}")
    return next(iter(lengths.values()), 0)


def _metric_inputs(predictions: pd.DataFrame, classes: list[int] | None) -> dict[str, Any]:
    """Columns for evaluate_predictions, probabilities as one (N, K) array."""
    cols: dict[str, Any] = {}
    model_classes = proba_classes(predictions)
    if "expression" in predictions and classes != []:
        cols["expression"] = predictions["expression"].to_numpy()
        if model_classes:
            # Columns in AffectNet order; a class the model lacks gets probability 0.
            proba = np.zeros((len(predictions), max(model_classes) + 1))
            for c in model_classes:
                proba[:, c] = predictions[proba_column(EXPRESSIONS[c])].to_numpy(np.float64)
            cols["expression_proba"] = proba
        if "expression_pred" in predictions:
            cols["expression_pred"] = predictions["expression_pred"].to_numpy()
        if len(cols) == 1:
            del cols["expression"]
    for head in (*REGRESSION_HEADS, "landmarks"):
        for column in (head, f"{head}_pred"):
            if column in predictions:
                cols[column] = predictions[column].to_numpy()
    if "landmarks" in cols:  # the average face shape in each image's frame (mean_shape_nme)
        cols.update({c: predictions[c].to_numpy() for c in ("width", "height") if c in predictions})
    return cols


def _own_classes(model_classes: list[int]) -> list[int] | None:
    """The classes a model's predictions are confined to on its own data: its own, where they
    leave a gap (a class it lacks) that argmax over the probabilities could otherwise pick."""
    return model_classes if model_classes and len(model_classes) <= max(model_classes) else None


def restricted_classes(
    expression: Mapping[str, Any] | None, source: str | os.PathLike = "the metrics JSON"
) -> list[int] | None:
    """The classes an expression block's predictions were confined to (`restricted_to`, e.g.
    FER-2013's 7 for an 8-class model), as AffectNet indices; None where they were not. Read as
    the predictor reads them (inference.calibration.class_indices): names that are not
    expressions are a DataError naming `source`."""
    return class_indices((expression or {}).get("restricted_to"), source)


def _scored_expression(
    predictions: pd.DataFrame, expression: Mapping[str, Any] | None
) -> tuple[np.ndarray, np.ndarray] | None:
    """Truth and class probabilities as an expression block of the metrics JSON scored them
    (confined to `restricted_to`, or to the model's own classes), or None without both."""
    restrict = restricted_classes(expression) or _own_classes(proba_classes(predictions))
    cols = _metric_inputs(predictions, None)
    proba = _expression_pred(cols, restrict)[1]
    if proba is None or "expression" not in cols:
        return None
    return np.asarray(cols["expression"]), proba


def scored_confidence(
    predictions: pd.DataFrame, expression: Mapping[str, Any] | None, temperature: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """(correct, confidence) on the rows and classes an expression block of the metrics JSON
    scored, so a reliability diagram shows its `ece`; with a temperature, the confidence the
    predictor gives after calibration (the block's `calibration`), the predictions unchanged."""
    found = _scored_expression(predictions, expression) if expression else None
    if found is None:
        return np.empty(0, dtype=bool), np.empty(0)
    truth, proba = found
    keep = np.isin(truth, (expression or {}).get("label_ids") or [])
    scaled = scale_probabilities(proba[keep], temperature)
    return scaled.argmax(axis=1) == truth[keep], scaled.max(axis=1)


def scored_pairs(
    predictions: pd.DataFrame, expression: Mapping[str, Any] | None = None
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each head's truth and prediction as `evaluate` scored a model on its own test split (its
    metrics JSON's expression block says which classes it confined predictions to), so a paired
    comparison of two models resamples the very labels their metrics JSONs scored."""
    restrict = restricted_classes(expression) or _own_classes(proba_classes(predictions))
    cols = _metric_inputs(predictions, None)
    pairs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    pred, _ = _expression_pred(cols, restrict)
    if "expression" in cols and pred is not None:
        pairs["expression"] = (np.asarray(cols["expression"]), pred)
    for head in (*REGRESSION_HEADS, "landmarks"):
        if head in cols and f"{head}_pred" in cols:
            truth, guess = cols[head], cols[f"{head}_pred"]
            if head == "landmarks":
                truth, guess = stack_landmarks(truth), stack_landmarks(guess)
            pairs[head] = (np.asarray(truth, dtype=np.float64), np.asarray(guess, dtype=np.float64))
    return pairs


def evaluate(
    model_name: str,
    predictions: pd.DataFrame,
    n_boot: int = 1000,
    seed: int = 0,
    classes: Iterable[Any] | None = None,
    *,
    dataset: str | None = None,
    notes: Sequence[str] = (),
    groups: Any = None,
) -> dict:
    """The metrics JSON (DESIGN.md contract) with 95% bootstrap CIs on the headline metrics.

    classes: None scores the model's own label space (the test split of its own data set);
    otherwise the test set's classes (e.g. 0-6 for FER-2013), and only the classes both sides
    have are scored, as shared_classes explains; what was done is listed under "notes".
    groups: one label per row (a person, a set of near-duplicates): the intervals draw whole
    groups, as `ci.method` then says (not where there is one group, or each row is its own).
    """
    notes = list(notes)
    n_groups = len(np.unique(group_codes(groups))) if groups is not None else 0
    if n_groups == 1 and len(predictions) > 1:
        notes.append(
            "the test faces are all of one person: the intervals are over that person's images "
            "and say nothing of other people"
        )
    if not 1 < n_groups < len(predictions):
        groups = None  # every face its own group, or one group (no spread to draw): plain
    model_classes = proba_classes(predictions)
    has_expression = bool(model_classes) or "expression_pred" in predictions
    shared = None
    if classes is not None and has_expression:
        shared, more = shared_classes(
            [EXPRESSIONS[c] for c in model_classes] or EXPRESSIONS, classes
        )
        notes += [note for note in more if note not in notes]  # a caller's shared_classes too
    elif model_classes and "expression" in predictions:
        lacking = sorted(
            set(predictions["expression"][predictions["expression"] >= 0]) - set(model_classes)
        )
        if lacking:
            notes.append(
                f"the model does not predict {class_names_text(lacking)}: those test "
                "images are left out of the expression metrics"
            )
    restrict = shared if shared is not None else _own_classes(model_classes)
    result = evaluate_predictions(
        _metric_inputs(predictions, shared),
        model_name,
        data_classes=restrict,
        n_boot=n_boot,
        seed=seed,
        groups=groups,
    )
    result["dataset"] = dataset
    result["notes"] = notes + [n for n in undefined_notes(result) if n not in notes]
    expression = result.get("expression") or {}
    scored = restrict_table(predictions, shared) if shared else predictions
    result["health"] = health.prediction_health(
        scored, expression.get("label_ids"), expression.get("f1_macro"), split=dataset or "test"
    )
    if n_boot > 0:
        result["ci"] = {
            "level": 0.95,
            "n_boot": int(n_boot),
            "seed": int(seed),
            "method": "percentile bootstrap over images"
            if groups is None
            else "percentile bootstrap over groups of images, each group drawn whole",
        }
        if groups is not None:
            result["ci"]["groups"] = n_groups
    inference = predictions.attrs.get("inference")
    if inference:
        result["inference"] = dict(inference)
    return json_ready(result)


def evaluate_model(
    model: Any,
    model_name: str,
    table: pd.DataFrame,
    *,
    tta: str = "none",
    batch_size: int = 64,
    n_boot: int = 1000,
    seed: int = 0,
    classes: Iterable[Any] | None = None,
    dataset: str | None = None,
    notes: Sequence[str] = (),
) -> tuple[dict, pd.DataFrame]:
    """Metrics JSON and predictions of a model on a table, with test-time augmentation `tta`.

    With tta other than "none" the headline metrics without it are kept too, under
    `without_tta` (with the speed of one view per image), so the report shows what the
    augmentation bought and compares models' speed on the same work. Speeds are
    helpers.inference.speed's measure (`inference.measure` says which).
    """
    tta = check_tta(tta)
    progress.line(scoring_line(len(table), tta, n_boot, dataset))
    predictions = predict_table(model, table, batch_size=batch_size, tta=tta, timed=True)
    scores = evaluate(
        model_name,
        predictions,
        n_boot=n_boot,
        seed=seed,
        classes=classes,
        dataset=dataset,
        notes=notes,
        groups=person_groups(table, predictions),
    )
    scores["tta"] = tta
    if tta != "none":
        plain = evaluate(
            model_name,
            predict_table(model, table, batch_size=batch_size, progress=False, timed=True),
            n_boot=0,
            classes=classes,
            dataset=dataset,
        )
        scores["without_tta"] = tta_headline(plain)
        speed = (plain.get("inference") or {}).get("images_per_s")
        if speed is not None:  # one view per image: the speed models compare on
            scores["without_tta"]["inference"] = {"images_per_s": speed}
    return json_ready(scores), predictions


def scoring_line(n: int, tta: str, n_boot: int, dataset: str | None = None) -> str:
    """What scoring a split does before its result line: the faces, the views, the bootstrap."""
    views = "one view" if tta == "none" else f"test-time augmentation {tta}, then one view"
    resamples = f", {n_boot:,} bootstrap resamples" if n_boot else ""
    return f"scoring {n:,} {dataset or 'test'} faces ({views}{resamples}) ..."


def person_groups(table: pd.DataFrame, predictions: pd.DataFrame) -> np.ndarray | None:
    """Each prediction's person where the data names them (`subject`: JAFFE, CK+), so the
    intervals draw a person's faces together (they are alike, not independent evidence); a
    face without one is a group of its own. None where no face has a person."""
    if "subject" not in table.columns or table["subject"].isna().all():
        return None
    people = dict(zip(table["id"].astype(str), table["subject"], strict=True))
    ids = predictions["id"].astype(str)
    named = ids.map(people)
    return np.where(named.isna(), "face " + ids, "person " + named.astype(str)).astype(str)


HEADLINE_ROWS = {
    "accuracy": ("expression", "accuracy"),
    "macro F1": ("expression", "f1_macro"),
    "kappa": ("expression", "kappa"),
    "ECE": ("expression", "ece"),
    "valence CCC": ("valence", "ccc"),
    "arousal CCC": ("arousal", "ccc"),
    "landmark NME": ("landmarks", "nme"),
}


def calibrate(
    model: Any,
    val_table: pd.DataFrame,
    test_predictions: pd.DataFrame,
    *,
    tta: str = "none",
    expression: Mapping[str, Any] | None = None,
    batch_size: int = 64,
    kept: dict[str, pd.DataFrame] | None = None,
) -> dict[str, Any] | None:
    """The metrics JSON's `calibration` (helpers.evaluation.calibration): the expression head's
    temperature fitted on the validation split, so the predictor's confidence means what it
    says; None without an expression head or validation images.

    Averaging views flattens the probabilities, so a temperature holds for one test-time
    augmentation: it is fitted for the mode the test split was scored with (`tta`, whose
    figures the block reports) and for one view ("none", the predictor's default and every
    TFLite run), kept by mode in `temperatures`. The probabilities are confined to the classes
    the expression block was (`expression`'s `restricted_to`), so `test_ece[0]` is its `ece`.
    kept: validation predictions by mode (tta_on_validation's), predicted here only if absent.
    """
    tta = check_tta(tta)
    test = _scored_expression(test_predictions, expression)
    if not len(val_table) or test is None:
        return None
    block, temperatures = None, {}
    modes = list(dict.fromkeys((tta, "none")))
    missing = [mode for mode in modes if kept is None or mode not in kept]
    if missing:
        progress.line(calibration_line(len(val_table), missing))
    for mode in modes:
        val = _validation_predictions(model, val_table, mode, batch_size, kept)
        found = _scored_expression(val, expression)
        if found is None:
            return None
        if mode == tta:
            block = calibration_block(found[1], found[0], test[1], test[0])
            if block is None:
                return None
            temperatures[mode] = block["temperature"]
        else:
            temperatures[mode] = fit_temperature(found[1], found[0])
    return json_ready({**block, "tta": tta, "temperatures": temperatures})


def calibration_line(n: int, modes: Sequence[str]) -> str:
    """What fitting the temperature predicts first: the validation faces, in which modes."""
    return f"calibrating: predicting {n:,} validation faces ({', '.join(modes)}) ..."


def _validation_predictions(
    model: Any,
    table: pd.DataFrame,
    mode: str,
    batch_size: int,
    kept: dict[str, pd.DataFrame] | None,
) -> pd.DataFrame:
    """The validation split predicted with test-time augmentation `mode`, once per notebook:
    from `kept` where an earlier step predicted it, else predicted now and kept there."""
    if kept is not None and mode in kept:
        return kept[mode]
    predictions = predict_table(model, table, batch_size=batch_size, progress=False, tta=mode)
    if kept is not None:
        kept[mode] = predictions
    return predictions


# How `auto` weighs a test-time augmentation's cost (flip 2 views, ten-crop 10) against its
# lead, said in the metrics JSON (`tta_validation.rule`) and the README.
TTA_LEAD_BOOT = 1000
TTA_RULE = (
    "a mode costlier than one view is used only when it beats one view on the validation split "
    "beyond noise: the paired bootstrap 95% interval of its macro-F1 lead over one view "
    f"({TTA_LEAD_BOOT:,} resamples of the same faces for both, a person's faces drawn together "
    "where the data names people) lies above 0; of one view and the "
    "modes that clear it, the best validation macro-F1 wins (accuracy breaks ties, then the "
    "cheaper mode)"
)


def tta_on_validation(
    model: Any,
    table: pd.DataFrame,
    *,
    batch_size: int = 64,
    classes: Iterable[Any] | None = None,
    kept: dict[str, pd.DataFrame] | None = None,
) -> dict[str, Any]:
    """Every test-time augmentation's headline metrics on the validation split, so the mode a
    profile uses is chosen where choosing is allowed, not on the test split; {} without one.
    `leads`: each costlier mode's macro-F1 lead over one view with its paired 95% interval
    (TTA_RULE), drawing a person's faces together where the records name people (`subject`:
    JAFFE, CK+), as the test split's paired comparison does. kept: a dict that receives each
    mode's validation predictions, for calibrate."""
    if not len(table):
        return {}
    progress.line(tta_choice_line(len(table)))
    modes, pairs, label_ids, groups = {}, {}, None, None
    for mode in TTA_MODES:
        predictions = _validation_predictions(model, table, mode, batch_size, kept)
        if mode == "none":
            groups = person_groups(table, predictions)
        plain = evaluate("validation", predictions, n_boot=0, classes=classes)
        modes[mode] = tta_headline(plain)
        if plain.get("expression"):
            pairs[mode] = scored_pairs(predictions, plain["expression"]).get("expression")
            label_ids = plain["expression"].get("label_ids")
    leads = {}
    for mode in TTA_MODES[1:]:
        if pairs.get(mode) is not None and pairs.get("none") is not None and label_ids:
            found = paired_difference(
                "expression",
                "f1_macro",
                pairs[mode],
                pairs["none"],
                label_ids=label_ids,
                n_boot=TTA_LEAD_BOOT,
                groups=groups,
            )
            leads[mode] = {"metric": "f1_macro", "lead": found["difference"], "ci": found["ci"]}
    block: dict[str, Any] = {"split": "val", "n": len(table), "modes": modes}
    if leads:
        block["leads"] = leads
    return json_ready(block)


def tta_choice_line(n: int) -> str:
    """What comparing test-time augmentations on validation does: faces, modes, their views."""
    return (
        f"comparing test-time augmentation: scoring {n:,} validation faces in "
        f"{len(TTA_MODES)} modes ({', '.join(TTA_MODES)}) ..."
    )


def _clears_noise(validation: Mapping[str, Any], mode: str) -> bool:
    """Whether a mode's validation macro-F1 lead over one view is beyond noise (TTA_RULE)."""
    if mode == "none":
        return True
    low = ((((validation or {}).get("leads") or {}).get(mode) or {}).get("ci") or [None])[0]
    return low is not None and math.isfinite(low) and low > 0


def choose_tta(validation: Mapping[str, Any]) -> str:
    """The mode `auto` evaluates with (TTA_RULE): a costlier mode only where its lead over one
    view is beyond noise, so ten times the work is never bought with a face or two; among
    those, the best validation macro-F1, the metric the report ranks models by; "none" when
    there is no expression score to choose on."""
    best, best_key = "none", None
    for mode in TTA_MODES:  # cheapest first: a dearer mode must score strictly higher
        expression = (((validation or {}).get("modes") or {}).get(mode) or {}).get("expression")
        key = tuple((expression or {}).get(k) for k in ("f1_macro", "accuracy"))
        if None in key or not _clears_noise(validation, mode):
            continue
        if best_key is None or key > best_key:
            best, best_key = mode, key
    return best


def tta_reason(validation: Mapping[str, Any], chosen: str) -> str:
    """Why `auto` chose a mode, with each costlier mode's lead over one view, for the JSON."""
    leads = (validation or {}).get("leads") or {}
    shown = "; ".join(
        f"{mode} {to_number(lead.get('lead')):+.3f} "
        f"(95% CI {ci_range(to_number(lead['ci'][0]), to_number(lead['ci'][1]))})"
        for mode, lead in leads.items()
        if lead.get("ci") and None not in lead["ci"]
    )
    where = f" (macro-F1 lead over one view: {shown})" if shown else ""
    if chosen == "none":
        return "none: no costlier mode beats one view on validation beyond noise" + where
    return f"{chosen}: beats one view on validation beyond noise, best of those that do" + where


def tta_for_evaluation(
    model: Any,
    setting: str | None,
    val_table: pd.DataFrame,
    *,
    compare: bool = True,
    batch_size: int = 64,
    classes: Iterable[Any] | None = None,
    kept: dict[str, pd.DataFrame] | None = None,
) -> tuple[str, dict[str, Any]]:
    """The mode notebook 05 evaluates with, and the validation comparison ({} when not made):
    a mode as it is; "auto" the one that leads on validation beyond noise (choose_tta), recorded
    as `chosen` with the `rule` and the `reason` in the comparison. kept: as
    tta_on_validation's."""
    setting = check_tta_setting(setting)
    validation = {}
    if compare or setting == AUTO:
        validation = tta_on_validation(
            model, val_table, batch_size=batch_size, classes=classes, kept=kept
        )
    if setting != AUTO:
        if validation:
            validation = {**validation, "reason": f"{setting}: named by the setting (tta)"}
        return setting, validation
    mode = choose_tta(validation)
    if not validation:
        return mode, {}
    reason = tta_reason(validation, mode)
    return mode, {**validation, "chosen": mode, "rule": TTA_RULE, "reason": reason}


def tta_validation_table(scores: Mapping[str, Any]) -> pd.DataFrame:
    """One row per test-time augmentation with its validation metrics; the one in use marked."""
    block = scores.get("tta_validation") or {}
    rows = []
    for mode, heads in (block.get("modes") or {}).items():
        row: dict[str, Any] = {"tta": mode, "in use": mode == scores.get("tta", "none")}
        for name, (head, key) in HEADLINE_ROWS.items():
            value = (heads.get(head) or {}).get(key)
            if value is not None:
                row[f"val {name}"] = value
        rows.append(row)
    return pd.DataFrame(rows)


def headline_table(scores: Mapping[str, Any], digits: int = 3) -> pd.DataFrame:
    """The metrics a reader looks at first, with CIs (and without TTA when it was used), as
    text: rounded, an interval as a range, blank where a head has no such score."""

    def shown(value: Any) -> str:
        number = to_number(value)
        return "" if math.isnan(number) else f"{number:.{digits}f}"

    without = scores.get("without_tta") or {}
    rows = []
    for name, (head, key) in HEADLINE_ROWS.items():
        block = scores.get(head) or {}
        ci = block.get(f"{key}_ci")
        row = {
            "metric": name,
            "value": shown(block.get(key)),
            "95% CI": ci_range(*ci, digits=digits) if ci and None not in ci else "",
        }
        if without:
            row["without TTA"] = shown((without.get(head) or {}).get(key))
        rows.append(row)
    return pd.DataFrame(rows)


def result_line(scores: Mapping[str, Any]) -> str:
    """One model's test scores in a line, with any head that learned nothing: what the terminal
    of `./run_all.sh` shows as each evaluation ends, so a long run reads without the report."""

    def number(block: Mapping[str, Any], key: str) -> float:
        return to_number(block.get(key))

    parts = []
    for name, (head, key) in HEADLINE_ROWS.items():
        block = scores.get(head) or {}
        value = number(block, key)
        if name in ("kappa", "ECE") or math.isnan(value):
            continue
        text = f"{name} {value:.3f}"
        ci = block.get(f"{key}_ci")
        if key == "f1_macro" and ci and None not in ci:
            text += f" (95% CI {ci_range(*ci)})"
        if head == "landmarks" and not math.isnan(number(block, "baseline_nme")):
            text += f" (the average shape {number(block, 'baseline_nme'):.3f})"
        parts.append(text)
    line = f"{scores.get('model', 'model')}: " + (", ".join(parts) or "no head scored")
    if scores.get("tta"):
        line += f"; test-time augmentation {scores['tta']}"
    dead = list((scores.get("health") or {}).get("collapsed_heads") or [])
    if dead:
        line += f"; learned nothing for {', '.join(dead)} (not ranked for {_it(dead)})"
    return line


def _it(heads: Sequence[str]) -> str:
    """The pronoun for a list of heads."""
    return "it" if len(heads) == 1 else "them"


def announce(scores: Mapping[str, Any]) -> None:
    """result_line in the terminal of `./run_all.sh` (nothing elsewhere)."""
    progress.terminal(result_line(scores))


def write_metrics(d: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Write a metrics dict as strict JSON (NaN -> null) atomically, so a reader never sees half."""
    return write_json(path, d)


def trained_model(run_dir: str | os.PathLike, model: str) -> tuple[Any, dict[str, Any]]:
    """The model notebook 04 trained in this run folder, loaded, and what identifies that
    training (freshness.training_of), so the metrics say which training they scored; a model
    not trained yet is a DataError that says how to train it."""
    from helpers.models.saving import load_trained  # keras: seconds, so only here

    run = RunFolder(run_dir)
    freshness.check_model_name(run, model)  # a misspelt name: the models the run has
    path = run.model_path(model)
    if not path.is_file() and (run.checkpoints_dir(model) / "progress.json").is_file():
        raise DataError(  # notebook 04 notes its progress there from the start of a training
            path,
            f"{model} is still training or stopped before its model file was written: run "
            f"notebook 04 (model = '{model}') to its end (or ./run_all.sh --resume) first",
        )
    if not path.is_file():
        raise DataError(
            path, f"model file not found: train it with notebook 04 (model = '{model}') first"
        )
    if not run.card_path(model).is_file():  # the card is written last, as training ends
        raise DataError(
            path,
            f"{model} is still training or stopped before its model card was written: run "
            f"notebook 04 (model = '{model}') to its end (or ./run_all.sh --resume) first",
        )
    split = freshness.split_note(run, model)
    if split:  # its test faces may be faces it trained on
        raise DataError(path, split)
    other_training = freshness.training_note(run, model)
    if other_training:  # same split: scored, but told
        progress.say([f"warning: {other_training}"])
    identity = freshness.training_of(run, model)  # before loading: the file that was read
    loaded = load_trained(path)
    identity["weights_sha256"] = weights_sha256(loaded.get_weights())
    return loaded, identity


# Notebook 05's whole-number parameters, by the least each may be.
_COUNTS = {"seed": 0, "n_boot": 0, "batch_size": 1, "corruption_n": 0, "explain_n": 0}
# Notebook 05's parameters check_parameters knows (the profile's three come in `settings`).
PARAMETERS = ("model", "seed", "n_boot", "batch_size", "test_data", "compare_tta", "recorded",
              "corruption_n")  # fmt: skip


def check_parameters(settings: Mapping[str, Any], **values: Any) -> None:
    """Notebook 05's parameters (and its profile's values, resolved into `settings`) checked
    before any work: a wrong type or value is one ConfigError naming the parameter, not an
    error from deep inside after minutes of scoring; a relative path is read from the kernel's
    folder (notebooks/)."""
    shown = {k: settings[k] for k in ("tta", "explain_n", "export_tflite") if k in settings}
    for name, value in {**shown, **values}.items():
        if name in _COUNTS:
            if not (name == "explain_n" and value is None):
                _check_count(name, value, _COUNTS[name])
        elif name == "model":
            registry.check_names([value], given_as="model")
        elif name == "tta":
            check_tta_setting(value)
        elif name in ("compare_tta", "export_tflite") and not isinstance(value, (bool, np.bool_)):
            raise ConfigError(f"{name} must be True or False (got {value!r})")
        elif name in ("test_data", "recorded"):
            _check_paths(name, value)
        elif name not in (*PARAMETERS, *shown):
            raise ConfigError(f"check_parameters: notebook 05 has no parameter {name!r}")


def _check_count(name: str, value: Any, least: int) -> None:
    """A whole number of at least `least`, or a ConfigError naming the parameter."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        raise ConfigError(f"{name} must be an integer >= {least} (got {value!r})")


def _check_paths(name: str, value: Any) -> None:
    """`test_data` (one path or a list) or `recorded` (one path): paths that exist; empty is
    none."""
    many = name == "test_data" and isinstance(value, (list, tuple))
    items = list(value) if many else [value]
    for item in items:
        if not isinstance(item, (str, os.PathLike)):
            kind = "a path or a list of paths" if name == "test_data" else "a path"
            raise ConfigError(f"{name} must be {kind} (got {item!r})")
        if os.fspath(item) and not Path(item).expanduser().exists():
            raise DataError(item, f"{paths.not_found(item)} (the parameter {name})")


def dataset_name(source_path: str | os.PathLike) -> str:
    """Short file-name-safe name of a test set, for metrics/<model>.<name>.json (no dots)."""
    name = Path(str(source_path).rstrip("/\\")).name.lower()
    for suffix in (".tar.gz", ".tgz", ".zip", ".csv", ".lst", ".txt", ".parquet", ".tar"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    name = re.sub(r"[^a-z0-9_-]+", "_", name).strip("_-")[:40].strip("_-")
    return name or "external"


def validation_health(model: Any, table: pd.DataFrame, batch_size: int = 64) -> dict[str, Any]:
    """helpers.evaluation.health on a model's predictions for a table (notebook 04: validation);
    a head that learned nothing is also named in the terminal of `./run_all.sh`."""
    if not len(table):
        return {}
    state = health.prediction_health(
        predict_table(model, table, batch_size=batch_size, progress=False), split="validation"
    )
    dead = state.get("collapsed_heads") or []
    if dead:
        progress.terminal(
            f"{model.name} learned nothing for {', '.join(dead)} on the validation split "
            "(notebook 04 says what it predicts; notebook 05 checks it again on the test split, "
            "and rankings follow that check)"
        )
    return state


def external_test_records(records: pd.DataFrame) -> tuple[pd.DataFrame, str | None]:
    """The records an external test set is scored on: its test split when it has one (FER-2013's
    PrivateTest half of fer2013.csv, the test/ folder of the image zip), else all of them; and
    a note when part was left out. Scoring a source's training faces too would report, for a
    model trained on them, what it memorised."""
    split = records["split"].astype("string").str.lower()
    is_test = (split == "test").fillna(False).to_numpy(bool)
    if not is_test.any() or is_test.all():
        return records, None
    note = (
        f"scored on the source's test split: {int(is_test.sum()):,} of its {len(records):,} "
        "records (its train and validation splits left out)"
    )
    return records[is_test].reset_index(drop=True), note


def evaluate_external(
    model: Any,
    model_name: str,
    source: str | os.PathLike,
    run_dir: str | os.PathLike,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    batch_size: int = 64,
    reader: str | None = None,
    tta: str = "none",
    trained: Mapping[str, Any] | None = None,
) -> tuple[dict, pd.DataFrame]:
    """Cross-dataset check: score a trained model on another source, in the shared label space.

    Writes <run>/metrics/<model>.<dataset>.json; classes only one side has are handled and
    explained in the JSON's notes (see shared_classes). A source with a test split is scored on
    it alone (external_test_records), said in the notes. Sources of whole frames (JAFFE, CK+) are
    cropped around each face as the model's training faces were framed (its card). The JSON
    records which training of the model it scored (`trained`: trained_model's, else the model
    now in the run folder), as the test split's does, so a later training shows it is stale.
    """
    from helpers.data.datasets import read_source
    from helpers.models.factory import model_metadata

    margin, _ = training_margin(RunFolder(run_dir).model_path(model_name))
    read = read_source(source, reader=reader, face_margin=margin)
    if read.dropped or read.repaired:  # what was left out or mended, by reason, with examples
        print(read)
    external, split_note = external_test_records(read.records)
    name = dataset_name(source)
    classes, notes = shared_classes(model_metadata(model)["labels"], external["expression"])
    notes = [*([split_note] if split_note else []), *notes]
    scores, preds = evaluate_model(
        model,
        model_name,
        external,
        tta=tta,
        batch_size=batch_size,
        n_boot=n_boot,
        seed=seed,
        classes=classes,
        dataset=name,
        notes=notes,
    )
    scores[freshness.KEY] = dict(
        trained
        or {
            **freshness.training_of(run_dir, model_name),
            "weights_sha256": weights_sha256(model.get_weights()),
        }
    )
    write_metrics(scores, RunFolder(run_dir).metrics_path(model_name, name))
    return scores, preds


# --------------------------------------------------------------------------- recorded results

RECORDED_METRICS = (
    "expression_accuracy",
    "expression_f1_macro",
    "valence_ccc",
    "arousal_ccc",
    "landmarks_nme",
)
RECORDED_TOLERANCE = 0.15  # absolute; the smoke test split is small (one image = 0.03)


def record_results(
    run_dir: str | os.PathLike, path: str | os.PathLike, tolerance: float = RECORDED_TOLERANCE
) -> dict[str, Any]:
    """Keep a run's headline metrics per model, so a later run can show it reproduces them
    (not those of a model trained again since notebook 05 scored it: they are no model's)."""
    table = comparison_table(run_dir)
    table = table[~stale(table)]
    models = {
        str(row["model"]): {
            k: float(row[k]) for k in sorted(RECORDED_METRICS) if k in row and pd.notna(row[k])
        }
        for _, row in table.iterrows()
    }
    # Keys in sorted order, so a re-recorded file differs only where a number moved.
    recorded = {"models": dict(sorted(models.items())), "tolerance": float(tolerance)}
    write_json(path, recorded)
    return recorded


def compare_recorded(scores: Mapping[str, Any], path: str | os.PathLike | None) -> str:
    """One line: does this model's metrics JSON match the recorded results within tolerance?

    The line names metrics, never values, when everything matches (so a notebook check that
    prints it holds for every model); a mismatch names the value, the record and the tolerance.
    """
    if not path:
        return "no recorded results to compare with (set `recorded` to a file from record_results)"
    recorded = read_json(Path(path))
    model = str(scores.get("model"))
    expected = (recorded.get("models") or {}).get(model)
    tolerance = to_number(recorded.get("tolerance", RECORDED_TOLERANCE))
    if not isinstance(expected, Mapping) or not expected:
        return f"no recorded results for {model} in {Path(path).name}"
    row = flatten_metrics(scores)
    off = [
        f"{key} {to_number(row.get(key)):.3f} (recorded {float(value):.3f} ± {tolerance:.2f})"
        for key, value in sorted(expected.items())
        if not abs(to_number(row.get(key)) - float(value)) <= tolerance
    ]
    if off:
        return "differs from the recorded results: " + "; ".join(off)
    return "matches the recorded results within tolerance: " + ", ".join(sorted(expected))


def check_recorded(scores: Mapping[str, Any], path: str | os.PathLike | None) -> str:
    """compare_recorded's line, or a DataError naming the record when the metrics differ: a
    notebook run with `recorded` set (as the regression checks do) stops there."""
    line = compare_recorded(scores, path)
    if line.startswith("differs"):
        raise DataError(path, line)
    return line


def external_sources(test_data: str | os.PathLike | list | tuple | None) -> list[str]:
    """The external test sets of notebook 05's `test_data`: one path, a list of them, or none
    ('' or None); each once, in the order given."""
    if not test_data:
        return []
    items = [test_data] if isinstance(test_data, (str, os.PathLike)) else list(test_data)
    return list(dict.fromkeys(os.fspath(item) for item in items if item))
