"""Evaluation figures in helpers.reporting.plots: each returns a Figure that renders, also on thin
input."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from PIL import Image

from figure_checks import check_figure as _check
from helpers.core.jsonio import write_json
from helpers.core.labels import EXPRESSIONS
from helpers.core.run_folder import RunFolder
from helpers.evaluation import comparison
from helpers.evaluation.scoring import evaluate_predictions
from helpers.reporting import plots


def _is_message(fig: Figure) -> bool:
    """The 'nothing to plot' figure: one hidden axes holding a sentence."""
    _check(fig, 1)
    ax = fig.axes[0]
    return not ax.axison and len(ax.texts) == 1


def _points(size: int, rng: np.random.Generator) -> np.ndarray:
    pts = rng.uniform(0.2, 0.8, size=(68, 2)) * (size - 1)
    pts[36], pts[45] = (0.25 * size, 0.4 * size), (0.75 * size, 0.4 * size)
    return pts.astype(np.float32)


@pytest.fixture(scope="module")
def predictions(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """30 rows, 7 classes in the truth (no Contempt), V/A and landmarks on most rows."""
    folder: Path = tmp_path_factory.mktemp("eval_plots")
    rng = np.random.default_rng(0)
    n = 30
    proba = rng.dirichlet(np.ones(8), n)
    rows = []
    for i in range(n):
        path = folder / f"f{i}.png"
        shape = (32, 32) if i % 2 else (32, 32, 3)
        Image.fromarray(rng.integers(0, 256, size=shape, dtype=np.uint8)).save(path)
        truth = _points(32, rng) if i % 5 else None
        rows.append(
            {
                "id": f"r{i}",
                "image": str(path),
                "expression": i % 7,
                "expression_pred": int(proba[i].argmax()),
                "confidence": float(proba[i].max()),
                "valence": rng.uniform(-1, 1),
                "valence_pred": rng.uniform(-1, 1),
                "arousal": rng.uniform(-1, 1),
                "arousal_pred": rng.uniform(-1, 1),
                "landmarks": truth,
                "landmarks_pred": _points(32, rng),
            }
        )
    df = pd.DataFrame(rows)
    for k, name in enumerate(EXPRESSIONS):
        df[f"p_{name}"] = proba[:, k]
    return df


def _cm(k: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 20, size=(k, k))


def test_confusion_matrices() -> None:
    cm = _cm(7)
    cm[3] = 0  # a class with no test images: its share row stays blank, no division warning
    fig = _check(plots.plot_confusion_matrices(cm, list(EXPRESSIONS[:7]), title="vgg16"), 2)
    assert "vgg16" in fig.get_suptitle()
    assert _is_message(plots.plot_confusion_matrices(np.zeros((0, 0)), []))


def test_confusion_grid() -> None:
    cms = {f"m{i}": (_cm(8, i), list(EXPRESSIONS)) for i in range(4)}
    cms["seven"] = (_cm(7), list(EXPRESSIONS[:7]))
    fig = _check(plots.plot_confusion_grid(cms))
    titled = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert len(titled) == 5 and titled[0].startswith("m0")
    assert _is_message(plots.plot_confusion_grid({}))


def test_roc_pr_skips_classes_absent_from_the_truth(predictions: pd.DataFrame) -> None:
    fig = _check(plots.plot_roc_pr(predictions, list(EXPRESSIONS)), 2)
    roc, pr = fig.axes
    names = [t.get_text().split(" (")[0] for t in roc.get_legend().get_texts()]
    assert names == list(EXPRESSIONS[:7])  # Contempt has no positives
    assert all("AUC" in t.get_text() for t in pr.get_legend().get_texts())
    no_truth = plots.plot_roc_pr(predictions.drop(columns=["expression"]), list(EXPRESSIONS))
    assert isinstance(no_truth, plots.Note) and "no ROC or PR curves" in no_truth
    assert isinstance(plots.plot_roc_pr(predictions.iloc[0:0], list(EXPRESSIONS)), plots.Note)


def test_reliability_diagram_has_a_bar_per_filled_bin() -> None:
    confidence = np.array([0.1, 0.1, 0.5, 0.95, 0.95, 1.0])
    correct = np.array([False, True, True, True, False, True])
    fig = _check(plots.plot_reliability(correct, confidence, title="vgg16"), 2)
    top, counts = fig.axes
    assert len(top.patches) == 3 and len(counts.patches) == 3  # 12 of 15 bins are empty
    assert sorted(p.get_height() for p in counts.patches) == [1, 2, 3]
    assert sorted(round(p.get_height(), 3) for p in top.patches) == [0.5, 0.667, 1.0]
    assert any(list(line.get_xdata()) == [0, 1] for line in top.lines)  # the diagonal
    assert fig.get_suptitle().startswith("vgg16: ECE 0.")
    fig = _check(plots.plot_reliability(correct, confidence, n_bins=5), 2)
    assert len(fig.axes[0].patches) == 3 and "5 bins" in fig.get_suptitle()
    assert _is_message(plots.plot_reliability([], []))


def test_va_predictions(predictions: pd.DataFrame) -> None:
    fig = _check(plots.plot_va_predictions(predictions), 2)
    assert all("CCC" in ax.get_title() for ax in fig.axes)
    assert all(ax.get_legend() is None for ax in fig.axes)  # no key over the points
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["prediction = truth"]
    only_valence = predictions.assign(arousal=np.nan)
    fig = _check(plots.plot_va_predictions(only_valence), 2)
    assert "CCC" in fig.axes[0].get_title() and not fig.axes[1].axison
    assert plots.plot_va_predictions(predictions.assign(valence=np.nan, arousal=np.nan)) is None
    assert plots.plot_va_predictions(predictions[["id", "expression"]]) is None


def test_landmark_predictions(predictions: pd.DataFrame) -> None:
    fig = _check(plots.plot_landmark_predictions(predictions, n=6, seed=1))
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert len(titles) == 6 and all("NME" in t for t in titles)  # rows with truth first
    no_truth = predictions.assign(landmarks=None)
    fig = _check(plots.plot_landmark_predictions(no_truth, n=3))
    assert all("NME" not in ax.get_title() for ax in fig.axes)
    no_head = predictions.drop(columns=["landmarks_pred"])
    assert isinstance(plots.plot_landmark_predictions(no_head), plots.Note)
    assert _is_message(plots.plot_landmark_predictions(predictions.assign(landmarks_pred=None)))
    assert isinstance(plots.plot_signed_heatmaps(predictions.iloc[0:0]), plots.Note)


def test_confident_mistakes(predictions: pd.DataFrame) -> None:
    fig = _check(plots.plot_confident_mistakes(predictions, n=5))
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert len(titles) == 5 and all(t.startswith("true ") for t in titles)
    right = predictions.assign(expression_pred=predictions["expression"])
    assert _is_message(plots.plot_confident_mistakes(right))
    assert _is_message(plots.plot_confident_mistakes(predictions.iloc[0:0]))


def test_learning_curves_pair_each_metric_with_its_val_twin() -> None:
    epochs = 6
    history = pd.DataFrame(
        {
            "epoch": range(epochs),
            "loss": np.linspace(2, 1, epochs),
            "val_loss": np.linspace(2.1, 1.4, epochs),
            "expression_accuracy": np.linspace(0.2, 0.6, epochs),
            "val_expression_accuracy": np.linspace(0.2, 0.5, epochs),
            "landmarks_nme": np.linspace(0.2, 0.1, epochs),  # no val twin
            "val_valence_ccc": np.linspace(0, 0.3, epochs),  # no train twin
            "learning_rate": 1e-3,
            "time_s": 3.0,
            "train_images_per_s": 50.0,
            "phase": [1, 1, 1, 2, 2, 2],
        }
    )
    fig = _check(plots.plot_learning_curves(history, title="vgg16"))
    titles = [ax.get_title() for ax in fig.axes if ax.axison]
    assert titles == ["loss", "expression accuracy", "valence CCC", "landmarks NME"]
    loss_ax = fig.axes[0]
    assert [t.get_text() for t in loss_ax.get_legend().get_texts()][:2] == ["train", "val"]
    assert fig.get_suptitle() == "vgg16: learning curves"
    assert _is_message(plots.plot_learning_curves(pd.DataFrame({"epoch": []})))
    assert _is_message(plots.plot_learning_curves(pd.DataFrame()))
    one = _check(plots.plot_learning_curves(history.head(1), title="smoke"))  # not lone dots
    bars = [[b.get_height() for b in ax.patches] for ax in one.axes if ax.axison]
    assert bars[0] == pytest.approx([2.0, 2.1]) and bars[3] == pytest.approx([0.2])
    assert one.get_suptitle() == "smoke: one epoch, train against validation"


def test_learning_curves_mark_the_epoch_kept_not_each_panels_own_best() -> None:
    """The model card's epoch (chosen by validation loss) is the one marked in every panel,
    also where a metric peaked earlier; the epoch axis counts whole epochs."""
    history = pd.DataFrame(
        {
            "epoch": range(4),  # 0-based, as Keras logs it; the card counts from 1
            "loss": [3.0, 2.0, 1.5, 1.2],
            "val_loss": [3.1, 2.2, 1.9, 1.8],  # lowest at epoch 4
            "val_valence_ccc": [0.2, 0.5, 0.7, 0.6],  # its own best at epoch 3
        }
    )
    card = {"best": {"monitor": "val_loss", "value": 1.8, "epoch": 4}}
    fig = _check(plots.plot_learning_curves(history, title="vgg16", card=card))
    panels = [ax for ax in fig.axes if ax.axison]
    for ax in panels:
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert "kept: epoch 4 (lowest val_loss)" in labels, ax.get_title()
        assert not any(label.startswith("best val") for label in labels)
        kept = [line for line in ax.get_lines() if line.get_label().startswith("kept")]
        assert [float(line.get_xdata()[0]) for line in kept] == [4.0]
        ticks = [t for t in ax.get_xticks() if 1 <= t <= 4]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
    averaged = {**card, "weight_average": {"kept": True}}
    fig = _check(plots.plot_learning_curves(history, card=averaged))
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "epoch 4 (lowest val_loss); the weight average kept" in labels
    plain = _check(plots.plot_learning_curves(history))  # no card: nothing claims to be kept
    assert [t.get_text() for t in plain.axes[0].get_legend().get_texts()] == ["train", "val"]


def _scored_run(tmp_path: Path, models: dict[str, float]) -> Path:
    """A run folder with a metrics JSON per model, scored by notebook 05's own function from
    made-up predictions (`skill` per model: how far its right class leads)."""
    run = RunFolder(tmp_path / "run")
    rng = np.random.default_rng(0)
    n = 120
    for model, skill in models.items():
        t = np.arange(n) % 8
        proba = rng.dirichlet(np.ones(8), n)
        proba[np.arange(n), t] += skill
        proba /= proba.sum(axis=1, keepdims=True)
        va = rng.uniform(-1, 1, n)
        points = rng.uniform(50, 150, (n, 68, 2))
        points[:, 36], points[:, 45] = (80.0, 100.0), (130.0, 100.0)
        scores = evaluate_predictions(
            {
                "expression": t,
                "expression_proba": proba,
                "valence": va,
                "valence_pred": va + rng.normal(0, 0.2, n),
                "arousal": va,
                "arousal_pred": va + rng.normal(0, 0.3, n),
                "landmarks": points,
                "landmarks_pred": points + rng.normal(0, 4, points.shape),
            },
            model,
            n_boot=20,
        )
        write_json(run.metrics_path(model), scores)
    return run.root


def test_the_report_shows_each_classs_f1_and_every_secondary_metric(tmp_path: Path) -> None:
    """What notebook 05 computes reaches the report: F1 per class per model, and the metrics
    beyond the headline (RMSE, MAE, Pearson, SAGR, ROC-AUC, PR-AUC, NME failure rate...)."""
    run = _scored_run(tmp_path, {"custom_cnn": 1.0, "vgg16": 0.2})
    per_class = comparison.per_class_scores(run)
    assert list(per_class.index) == ["custom_cnn", "vgg16"]
    assert list(per_class.columns) == list(EXPRESSIONS)
    assert per_class.attrs["missing"] == []
    fig = _check(plots.plot_per_class_f1(per_class))
    cells = [t.get_text() for t in fig.axes[0].texts]
    assert cells == [f"{v:.2f}" for v in per_class.to_numpy().ravel()]
    table = comparison.comparison_table(run)
    shown = comparison.by_model(table, comparison.SECONDARY_COLUMNS)
    assert list(shown.index) == comparison.SECONDARY_COLUMNS  # every one of them was computed
    assert shown.notna().all().all()
    for name in ("valence_rmse", "arousal_sagr", "expression_roc_auc_ovr", "valence_corr"):
        assert name in comparison.SECONDARY_COLUMNS
    assert {"landmarks_failure_rate", "landmarks_nme_median"} <= set(shown.index)
    (tmp_path / "run" / "metrics" / "vgg16.json").write_text(
        '{"model": "vgg16", "n": 1, "expression": {"accuracy": 0.5}}'
    )  # written before the metrics kept each class: named, not a blank row
    older = comparison.per_class_scores(run)
    assert list(older.index) == ["custom_cnn"] and older.attrs["missing"] == ["vgg16"]
    title = _check(plots.plot_per_class_f1(older)).axes[0].get_title()
    assert "not in the metrics of vgg16 (run notebook 05 again)" in title


def test_metric_comparison() -> None:
    table = pd.DataFrame(
        {
            "model": ["a", "b", "c"],
            "expression_f1_macro": [0.6, 0.5, np.nan],
            "expression_f1_macro_ci_low": [0.55, 0.45, np.nan],
            "expression_f1_macro_ci_high": [0.65, 0.55, np.nan],
            "landmarks_nme": [0.08, 0.05, 0.07],
            "valence_ccc": [np.nan, np.nan, np.nan],  # nobody scored it: no panel
        }
    )
    fig = _check(plots.plot_metric_comparison(table), 2)
    assert "macro F1" in fig.axes[0].get_title() and "lower" in fig.axes[1].get_title()
    assert _is_message(plots.plot_metric_comparison(table.iloc[0:0]))
    assert _is_message(plots.plot_metric_comparison(pd.DataFrame({"model": ["a"]})))


def test_a_near_zero_bar_keeps_a_readable_label() -> None:
    """White text in the middle of a bar vanishes when the bar is a sliver: above it instead."""
    table = pd.DataFrame({"model": ["a", "b"], "expression_f1_macro": [0.8, 0.002]})
    ax = plots.plot_metric_comparison(table).axes[0]
    shown = {t.get_text(): t for t in ax.texts if t.get_text()}
    assert set(shown) == {"0.800", "0.002"}
    assert shown["0.800"].get_color() == "white" and shown["0.002"].get_color() != "white"


def test_roc_pr_of_constant_probabilities_says_why_as_the_metrics_leave_auc_out(
    predictions: pd.DataFrame,
) -> None:
    from helpers.evaluation.metrics import classification_metrics

    flat = predictions.copy()
    jitter = np.random.default_rng(1).normal(0, 1e-9, size=(len(flat), len(EXPRESSIONS)))
    proba = np.full((len(flat), len(EXPRESSIONS)), 1 / len(EXPRESSIONS)) + jitter
    for k, name in enumerate(EXPRESSIONS):
        flat[f"p_{name}"] = proba[:, k]
    scored = classification_metrics(flat["expression"], proba.argmax(axis=1), proba)
    assert scored is not None and scored["roc_auc_ovr"] is None
    note = plots.plot_roc_pr(flat, list(EXPRESSIONS))
    assert isinstance(note, plots.Note) and note == plots.CONSTANT_PROBA_TEXT
    assert note._repr_markdown_() == plots.CONSTANT_PROBA_TEXT  # a notebook shows the sentence


def test_roc_legends_sit_off_the_curves(predictions: pd.DataFrame) -> None:
    fig = _check(plots.plot_roc_pr(predictions, list(EXPRESSIONS)), 2)
    for ax in fig.axes:
        anchor = ax.get_legend().get_bbox_to_anchor().transformed(ax.transAxes.inverted())
        assert anchor.y0 < 0  # below the panel, where no curve runs
