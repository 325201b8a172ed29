"""What the report says around its numbers: the data set its summary names, readable row names
for its per-model tables, tables without pandas' index column, the caption of the results table.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd

from helpers.core.run_folder import RunFolder, recorded_data
from helpers.core.words import counted
from helpers.evaluation.metrics import undefined_notes

# Row names the report's per-model tables show instead of the metrics files' keys.
ROW_LABELS: dict[str, str] = {
    "n": "test images",
    "expression_accuracy": "Expression accuracy",
    "expression_f1_macro": "Expression macro F1",
    "expression_f1_macro_ci_low": "Expression macro F1, 95% CI low",
    "expression_f1_macro_ci_high": "Expression macro F1, 95% CI high",
    "no_tta_expression_f1_macro": "Expression macro F1, one view (no TTA)",
    "expression_kappa": "Expression Cohen's kappa",
    "expression_kappa_ci_low": "Expression Cohen's kappa, 95% CI low",
    "expression_kappa_ci_high": "Expression Cohen's kappa, 95% CI high",
    "expression_krippendorff_alpha": "Expression Krippendorff's alpha",
    "expression_ece": "Expression ECE (calibration error)",
    "calibrated_expression_ece": "Expression ECE after temperature scaling",
    "calibration_temperature": "Calibration temperature",
    "calibration_at_bound": "Calibration temperature at an end of its search range",
    "corrupted_expression_f1_macro": "Expression macro F1, degraded faces (mean)",
    "retained_expression_f1_macro": "Share of macro F1 kept on degraded faces",
    "expression_f1_weighted": "Expression weighted F1",
    "expression_precision_macro": "Expression macro precision",
    "expression_recall_macro": "Expression macro recall",
    "expression_roc_auc_ovr": "Expression ROC-AUC (one vs rest, macro)",
    "expression_pr_auc_macro": "Expression PR-AUC (macro)",
    "valence_ccc": "Valence CCC (concordance)",
    "arousal_ccc": "Arousal CCC (concordance)",
    "landmarks_nme": "Landmarks NME (normalised mean error)",
    "landmarks_baseline_nme": "Landmarks NME of the average shape",
    "landmarks_nme_median": "Landmarks median NME",
    "landmarks_failure_rate": "Landmarks failure rate (NME > 0.1)",
    "explain_on_face_share": "Grad-CAM heat on the face (share)",
    "explain_face_area_share": "Face's share of the image",
    "params": "parameters",
    "train_seconds": "training time (s)",
    "train_images_per_s": "training speed (images/s)",
    "inference_images_per_s": "inference speed (images/s)",
    "one_view_images_per_s": "inference speed, one view (images/s)",
    "tta": "test-time augmentation",
    "collapsed_heads": "heads that collapsed",
    "stale": "trained again since scored",
    "keras_accuracy": "Keras accuracy",
    "keras_ms_batched": "Keras ms per image, batched",
    "keras_images_per_s": "Keras images/s, batched",
    "keras_ms_single": "Keras ms per image, one at a time",
    "float_accuracy_change": "TFLite float: accuracy change",
    "float_ms_batched": "TFLite float: ms per image, batched",
    "float_ms_single": "TFLite float: ms per image, one at a time",
    "float_MB": "TFLite float: size (MB)",
    "int8_accuracy_change": "TFLite int8: accuracy change",
    "int8_ms_batched": "TFLite int8: ms per image, batched",
    "int8_ms_single": "TFLite int8: ms per image, one at a time",
    "int8_MB": "TFLite int8: size (MB)",
}
_REGRESSION = {"rmse": "RMSE", "mae": "MAE", "r2": "R²", "corr": "Pearson r", "sagr": "SAGR"}
# A value a row's readers know by another name; an empty cell would read as unknown.
_VALUES = {
    "tta": {"none": "one view"},
    "collapsed_heads": {"": "none"},
    "stale": {"": "no"},
}
# A cell with no value (a statistic null for that model), printed for a reader, not as "None".
MISSING = "n/a"
MISSING_NOTE = (
    f"{MISSING}: no value for that model: a statistic undefined where a head's predictions "
    "are constant (Pearson r, SAGR, ROC-AUC, PR-AUC, the share kept on degraded faces), a "
    "task the data has no labels for, or a value not recorded by the notebook 05 that scored "
    "it (an older one: run 05 again to fill it)."
)


def row_label(key: str) -> str:
    """The readable name of a metrics key (valence_rmse_ci_low: 'Valence RMSE, 95% CI low');
    a key it does not know stays as it is."""
    if key in ROW_LABELS:
        return ROW_LABELS[key]
    for head in ("valence", "arousal"):
        for metric, name in _REGRESSION.items():
            for suffix, tail in (
                ("", ""),
                ("_ci_low", ", 95% CI low"),
                ("_ci_high", ", 95% CI high"),
            ):
                if key == f"{head}_{metric}{suffix}":
                    return f"{head.capitalize()} {name}{tail}"
    return key


def labelled(table: pd.DataFrame) -> pd.DataFrame:
    """A per-model table (comparison.by_model) with readable row names and values, a missing
    one as MISSING (MISSING_NOTE says what it means)."""
    out = table.astype(object)
    out = out.where(out.notna(), MISSING)
    for key, names in _VALUES.items():
        if key in out.index:
            out.loc[key] = [names.get(v, v) if isinstance(v, str) else v for v in out.loc[key]]
    out.index = [row_label(str(k)) for k in out.index]
    return out


def missing_note(shown: pd.DataFrame, metrics: Mapping[str, Any] | None = None) -> str:
    """MISSING_NOTE where a labelled table shows MISSING in some cell, else "": a table whose
    every statistic has a value needs no word on the ones without. With the run's metrics
    (comparison.load_metrics), each shown model's own reason follows, where it has one."""
    if not shown.isin([MISSING]).any().any():
        return ""
    reasons = [
        f"{model}: {'; '.join(undefined_notes(metrics[model]))}"
        for model in map(str, shown.columns)
        if metrics and metrics.get(model) and undefined_notes(metrics[model])
    ]
    return MISSING_NOTE + (" In this run, " + ". ".join(reasons) + "." if reasons else "")


def without_index(table: pd.DataFrame) -> Any:
    """A table shown without pandas' row numbers, which mean nothing to a reader."""
    from IPython.display import HTML

    return HTML(table.to_html(index=False, border=0, classes="dataframe", na_rep=""))


def data_sentence(run_dir: str | Path) -> str:
    """The data set the run's scores are on, for the report's summary; the generated demo set
    is called what it is, so no one takes its scores for scores on real faces."""
    data = recorded_data(RunFolder(run_dir))
    path = str(data.get("path") or "")
    name = PurePosixPath(path.replace("\\", "/")).name if path else ""
    if data.get("demo"):
        shown = f" (`{name}`)" if name else ""
        return (
            f"Data: the synthetic demo set{shown}, faces drawn by `helpers.synthetic`: these "
            "scores show the pipeline at work, not how well a model reads real faces."
        )
    if name:
        digest = str(data.get("sha256") or "")[:12]
        return f"Data: `{name}`" + (f" (sha256 {digest}...)." if digest else ".")
    return "Data: not recorded in this run's manifest or settings."


def results_caption(results: pd.DataFrame) -> str:
    """The caption of the report's results table, as results.tex captions its table."""
    intervals = bool(results.filter(like="_ci_low").notna().to_numpy().any())
    counted = results.get("n_test", results.get("n", pd.Series(dtype=float)))  # `n`: by hand
    n = pd.to_numeric(counted, errors="coerce").max()
    images = f"the {int(n):,} test images" if pd.notna(n) else "the test images"
    text = f"Each model's headline metrics on {images}"
    text += "; 95% bootstrap intervals in brackets" if intervals else ""
    text += "; the best model per task in bold (highest macro F1 and CCC, lowest NME)"
    text += "; TTA: the test-time augmentation each model was scored with."
    return f"**Table: results.** {text}"


def rare_class_note(support: pd.DataFrame) -> str:
    """Why the report gives F1 per class, told with the test split's rarest class: one the data
    has no test faces of (FER-2013's Contempt) is never named. `support` is
    comparison.per_class_scores(run, "support"); "" where no model scored classes."""
    faces = support.max(axis=0).dropna() if not support.empty else pd.Series(dtype=float)
    faces = faces[faces > 0]
    if faces.empty:
        return ""
    rarest = str(faces.idxmin())
    count = int(faces[rarest])
    return (
        f"Accuracy counts faces, so a model that never finds {rarest} ({count:,} of the "
        f"{int(faces.sum()):,} test faces) can still score well on it; macro-F1 averages the "
        f"classes, {rarest} counting as much as any other."
    )


NO_VA_NOTE = (
    "No model here has valence or arousal predictions with a truth to set them against (the "
    "test split has no valence or arousal labels): nothing to plot."
)


def va_figures_or_note(tables: Mapping[str, pd.DataFrame]) -> list[Any] | str:
    """Each model's predicted-against-true valence and arousal figure (predictions tables by
    model), or the one sentence that says why the section has none, never a bare heading."""
    from helpers.reporting.plots import plot_va_predictions

    drawn = [plot_va_predictions(table, title=model) for model, table in tables.items()]
    shown = [figure for figure in drawn if figure is not None]
    return shown or NO_VA_NOTE


_CURVES_TEXT = (
    "train (solid) against validation (dashed) for every loss and metric. The black line is the "
    "epoch kept, the one whose validation score (the model card's `best`, the validation loss "
    "unless the profile says otherwise) chose the model: a panel's own best validation epoch "
    "can be another, and is not the model scored above."
)
_BARS_TEXT = (
    "trained one epoch, which has no curve: {its} figure puts training and validation side by "
    "side as bars, one panel per loss and metric, and the model scored above is that epoch's."
)


def learning_curves_caption(histories: Mapping[str, pd.DataFrame | None]) -> str:
    """What the learning-curve figures below it show, from the histories they are drawn from:
    curves and the epoch kept for a training of several epochs, bars for one of one epoch."""
    epochs = {model: 0 if h is None else len(h) for model, h in histories.items()}
    bars = [model for model, n in epochs.items() if n == 1]
    curves = [model for model, n in epochs.items() if n > 1]
    if not bars and not curves:
        return "No training history in this run (notebook 04 writes one): nothing to plot."
    parts = []
    if curves:
        lead = "Per model, " if not bars else f"For {', '.join(curves)}: "
        parts.append(lead + _CURVES_TEXT)
    if bars:
        who = "Each model" if not curves else ", ".join(bars)
        parts.append(f"{who} " + _BARS_TEXT.format(its="its" if len(bars) == 1 else "each"))
    return " ".join(parts)


def _map_cells(layer: Any) -> tuple[str, int] | None:
    """('block4_relu2, 5x5 map', 5) from an explained layer as stored ('block4_relu2 5x5')."""
    found = re.fullmatch(r"(.*\S)\s+(\d+)x(\d+)", str(layer or "").strip())
    if not found:
        return None
    h, w = int(found.group(2)), int(found.group(3))
    return f"{found.group(1)}, a {h}x{w} map", min(h, w)


def gradcam_maps_text(
    metrics: Mapping[str, Mapping[str, Any] | None], cards: Mapping[str, Mapping[str, Any] | None]
) -> str:
    """What each model's Grad-CAM map is, from the run's metrics (`explain.layer`) and model
    cards (`pretrained_backbone`): its layer, its size, how the network was trained, and
    whether a map that coarse can localise anything within the face."""
    from helpers.reporting.plots import COARSEST_LOCALISING

    described, coarse = [], []
    for model, scores in metrics.items():
        cells = _map_cells(((scores or {}).get("explain") or {}).get("layer"))
        if cells is None:
            continue
        pretrained = (cards.get(model) or {}).get("pretrained_backbone")
        how = {True: " (pretrained backbone)", False: " (trained from scratch)"}.get(pretrained, "")
        described.append(f"{model}{how}: {cells[0]}")
        if cells[1] < COARSEST_LOCALISING:
            coarse.append(model)
    if not described:
        return ""
    text = "Maps explained: " + "; ".join(described) + "."
    if coarse:
        text += (
            f" A map under {COARSEST_LOCALISING} cells a side ({', '.join(coarse)}) is stretched "
            "over the whole face and cannot localise anything within it, so its heat says "
            "little about where the model looks."
        )
    else:
        text += (
            f" {'Each' if len(described) > 1 else 'It'} has at least {COARSEST_LOCALISING} "
            "cells a side, so it can tell parts of "
            "the face apart, if coarsely: a cell covers a patch of the face, not a feature's edge."
        )
    return text


def figures_line(models: int) -> str:
    """What notebook 06 starts on after its tables: each model's figures, drawn and saved as PDF
    and PNG (a minute or two for four models on a busy CPU, silent otherwise)."""
    return (
        f"drawing the figures of {counted(models, 'model')} (Grad-CAM, learning curves, "
        "predictions), each saved as PDF and PNG ..."
    )
